"""The tower scanner: decoding, judging, and the SMTP content filter on loopback (real sockets)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.distribute.scanning import EICAR, GTUBE, Sink, install, mail, send, zip_attachment
from tests.support.live_server import LiveServer, free_port
from workbench.distribute.outbox import Outbox
from workbench.distribute.scanner import (
    CurrentRules,
    MessageScanner,
    ScanConfig,
    ScanConfigError,
    decode_message,
    read_stats,
)
from workbench.distribute.smtp_filter import TowerScanService, scanner_dir
from workbench.distribute.tower_config import TowerConfig
from workbench.quarantine.service import Quarantine
from workbench.samples.archives import build_gzip, build_tar
from workbench.samples.mail import Attachment
from workbench.samples.office import AUTOOPEN_SHELL_MACRO, build_docm
from workbench.samples.pe import build_pe
from workbench.workspace import Workspace


@pytest.fixture
def installed(tmp_path: Path, bundles: dict[Any, Path]) -> Path:
    """An install folder whose ``current`` is serial 1 (one rule: EICAR)."""
    install_dir = tmp_path / "install"
    install(install_dir, bundles[1])
    return install_dir


def scanner(install_dir: Path, **settings: Any) -> MessageScanner:
    return MessageScanner(CurrentRules(install_dir), ScanConfig(**settings))


# --- the engine -------------------------------------------------------------------------------------


def test_rules_run_over_decoded_attachments_and_archive_members(installed: Path) -> None:
    s = scanner(installed)
    in_b64 = mail("b64", attachments=[Attachment("readme.txt", EICAR)])
    in_zip = mail("zip", attachments=[zip_attachment("files.zip", [("inner.txt", EICAR)])])
    in_tgz = mail("tgz", attachments=[Attachment("f.tar.gz", build_gzip(build_tar([("x.txt", EICAR)])))])
    # base64 hides the string from a scan of the raw message: the reference (a bare
    # yara-python scan of the raw bytes) misses what the decoded parts show
    rules = CurrentRules(installed).get()
    assert rules is not None
    assert not rules.rules.match(data=in_b64)
    for raw, where in ((in_b64, "part 2"), (in_zip, "part 2/inner.txt"), (in_tgz, "part 2/x.txt")):
        verdict = s.scan(raw)
        assert verdict.verdict == "match", verdict
        assert verdict.rules == ("eicar_test_file",)
        assert where in verdict.where["eicar_test_file"]
        assert verdict.action == "tag" and verdict.serial == 1
    assert s.scan(mail("plain", text="nothing here")).verdict == "clean"


def test_finds_at_least_what_the_reference_finds_on_each_stdlib_decoded_part(installed: Path) -> None:
    """Reference: the stdlib's policy.default decoder and a bare yara-python scan of each part."""
    raws = [mail("m1", attachments=[Attachment("a.bin", EICAR), Attachment("b.txt", b"plain")]),
            mail("m2", attachments=[Attachment("c.txt", GTUBE, "text/plain", "quoted-printable")]),
            mail("m3", text=EICAR.decode())]
    rules = CurrentRules(installed).get()
    assert rules is not None
    s = scanner(installed)
    for raw in raws:
        expected: set[str] = {m.rule for m in rules.rules.match(data=raw)}
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.walk():
            if not part.is_multipart():
                expected |= {m.rule for m in rules.rules.match(data=part.get_payload(decode=True) or b"")}
        assert expected <= set(s.scan(raw).rules)


@pytest.mark.parametrize(("attachment", "reason"), [
    (Attachment("invoice.pdf.exe", b"not really a program"), "double extension: invoice.pdf.exe"),
    (Attachment("tool.bin", build_pe()), "executable: tool.bin"),
    (zip_attachment("docs.zip", [("setup.scr", b"x")]), "archive holds an executable: part 2/setup.scr"),
    (Attachment("report.docm", build_docm(AUTOOPEN_SHELL_MACRO)), "macros: report.docm"),
])
def test_unmatched_mail_that_looks_like_an_unknown_virus(installed: Path, attachment: Attachment,
                                                        reason: str) -> None:
    verdict = scanner(installed).scan(mail("unknown", attachments=[attachment]))
    assert verdict.verdict == "unknown", verdict
    assert reason in verdict.unknown
    assert verdict.quarantine_reason(ScanConfig()).startswith("unknown-virus: ")


def test_unknown_virus_checks_are_configurable(installed: Path) -> None:
    raw = mail("u", attachments=[Attachment("invoice.pdf.exe", b"x")])
    off = scanner(installed, unknown_double_extensions=False, unknown_executables=False)
    assert off.scan(raw).verdict == "clean"


def test_limits_make_an_error_verdict_per_policy(installed: Path) -> None:
    raw = mail("big", attachments=[Attachment("a.txt", b"A" * 5000)])
    verdict = scanner(installed, max_message_bytes=1000, on_error="hold").scan(raw)
    assert (verdict.verdict, verdict.action) == ("error", "hold")
    assert "over the 1000-byte limit" in verdict.problems[0]
    cut = scanner(installed, max_part_bytes=10).scan(
        mail("cut", attachments=[Attachment("a.txt", b"B" * 100 + EICAR)]))
    assert cut.verdict == "clean" and any("scanned the first 10" in p for p in cut.problems)
    many = decode_message(mail("n", attachments=[Attachment(f"{i}.txt", b"x") for i in range(9)]),
                          ScanConfig(max_parts=4))
    assert len(many.parts) == 4 and "more than 4 parts" in many.problems[0]


def test_no_rules_installed_is_an_error_not_clean(tmp_path: Path) -> None:
    verdict = scanner(tmp_path / "empty").scan(mail("x"))
    assert verdict.verdict == "error" and "no rules installed" in verdict.problems


def test_scan_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "scanner.toml"
    path.write_text('listen_port = 2525\non_match = "hold"\nstuck_after_seconds = "5m"\n'
                    'executable_extensions = [".EXE", "js"]\n')
    config = ScanConfig.load(path)
    assert (config.listen_port, config.on_match, config.stuck_after_seconds) == (2525, "hold", 300.0)
    assert config.executable_extensions == ("exe", "js")
    for bad, where in (('on_match = "drop"', "on_match"), ("nope = 1", "nope"),
                       ("listen_port = -1", "listen_port")):
        path.write_text(bad + "\n")
        with pytest.raises(ScanConfigError, match=where):
            ScanConfig.load(path)


def test_a_new_bundle_is_used_from_the_next_message(installed: Path, bundles: dict[Any, Path]) -> None:
    s = scanner(installed)
    gtube = mail("spam", text=GTUBE.decode())
    assert s.scan(gtube).verdict == "clean"             # serial 1 has no GTUBE rule
    install(installed, bundles[2])
    verdict = s.scan(gtube)
    assert (verdict.verdict, verdict.serial, verdict.rules) == ("match", 2, ("gtube_test_mail",))


def test_a_bundle_that_does_not_load_keeps_the_old_rules(installed: Path, bundles: dict[Any, Path]) -> None:
    s = scanner(installed)
    s.scan(mail("x"))
    broken = install(installed, bundles[2])
    (broken / "manifest.json").write_text("{}")
    verdict = s.scan(mail("eicar", text=EICAR.decode()))
    assert (verdict.verdict, verdict.serial) == ("match", 1)
    assert "kept serial 1" in s.rules.error


# --- the SMTP filter on loopback --------------------------------------------------------------------------


@pytest.fixture
def sink() -> Any:
    s = Sink().start()
    yield s
    s.stop()


def _tower(install_dir: Path, server_url: str = "http://127.0.0.1:9", token: str = "",
           server: str = "s01", tower: str = "t01") -> TowerConfig:
    return TowerConfig(repository_url=f"{server_url}/repository", trusted_root=install_dir / "root.json",
                       install_dir=install_dir, tower=tower, server=server, token=token,
                       timeout_seconds=5.0)


@pytest.fixture
def start_service(sink: Sink) -> Any:
    started: list[TowerScanService] = []

    def start(tower: TowerConfig, **settings: Any) -> TowerScanService:
        config = ScanConfig(listen_port=free_port(), next_hop_port=sink.port,
                            outbox_retry_seconds=0.2, stats_interval_seconds=0.1, **settings)
        service = TowerScanService(tower, config, threads=2).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def test_smtp_filter_scans_tags_and_reinjects(installed: Path, sink: Sink, start_service: Any,
                                              bundles: dict[Any, Path]) -> None:
    service = start_service(_tower(installed))
    clean = mail("clean")
    assert send(service.port, clean)[0] == 250
    bad = mail("bad", attachments=[Attachment("e.txt", EICAR)])
    code, text = send(service.port, bad)
    assert code == 250 and b"match" in text
    assert len(sink.received) == 2
    assert sink.received[0].original_content == clean
    tagged = sink.received[1].original_content
    assert tagged.startswith(b"X-Workbench-Scan: match; rules=eicar_test_file; serial=1\r\n")
    assert sink.received[1].rcpt_tos == ["b@example.net"]
    # one connection, a new bundle between two messages: the second uses it, nothing dropped
    with smtplib.SMTP("127.0.0.1", service.port, timeout=30) as client:
        spam = mail("spam", text=GTUBE.decode())
        client.sendmail("a@example.org", ["b@example.net"], spam)
        install(installed, bundles[2])
        client.sendmail("a@example.org", ["b@example.net"], spam)
    assert not sink.received[2].original_content.startswith(b"X-Workbench-Scan")
    assert sink.received[3].original_content.startswith(
        b"X-Workbench-Scan: match; rules=gtube_test_mail; serial=2")
    service.save_stats()
    stats = read_stats(scanner_dir(installed))
    assert stats is not None
    assert stats["messages"] == 4 and stats["rule_hits"] == {"eicar_test_file": 1, "gtube_test_mail": 1}
    assert stats["serial"] == 2 and stats["scan_seconds"] > 0


def test_hold_keeps_the_message_and_does_not_reinject(installed: Path, sink: Sink,
                                                      start_service: Any) -> None:
    service = start_service(_tower(installed), on_match="hold")
    code, text = send(service.port, mail("bad", text=EICAR.decode()))
    assert code == 250 and b"held" in text
    assert sink.received == []
    held = sorted((scanner_dir(installed) / "hold").glob("*.json"))
    assert len(held) == 1
    assert json.loads(held[0].read_text())["rules"] == ["eicar_test_file"]
    assert EICAR in held[0].with_suffix(".eml").read_bytes()


def test_next_hop_refusal_is_passed_back(installed: Path, sink: Sink, start_service: Any) -> None:
    sink.handler.answer = "554 5.7.1 no thanks"
    service = start_service(_tower(installed))
    assert send(service.port, mail("x")) == (554, b"5.7.1 no thanks")


def test_unknown_sample_reaches_the_quarantine_through_the_outbox_even_after_an_outage(
        installed: Path, sink: Sink, start_service: Any, workspace: Workspace,
        live_server: LiveServer, tower_token: str) -> None:
    live_server.stop()                                    # the centre is down at first
    service = start_service(_tower(installed, live_server.url, tower_token))
    raw = mail("invoice", attachments=[Attachment("invoice.pdf.exe", build_pe())])
    code, text = send(service.port, raw)
    assert code == 250, text                              # delivered (tagged) all the same
    assert sink.received[0].original_content.startswith(b"X-Workbench-Scan: suspicious")
    waiting = service.outbox.pending()
    assert len(waiting) == 1 and waiting[0].reason.startswith("unknown-virus: double extension")
    assert service.flush_outbox() == 1                    # still down: kept
    live_server.start()
    deadline = time.monotonic() + 20
    while service.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.outbox.pending() == []
    with Quarantine.open(workspace) as q:
        assert q.index.count() == 1
        sightings = q.index.sightings(hashlib.sha256(raw).hexdigest())
    assert [(s.tower, s.server) for s in sightings] == [("t01", "s01")]
    assert sightings[0].reason.startswith("unknown-virus: double extension: invoice.pdf.exe")


def test_stuck_mail_is_answered_4xx_and_copied_once(installed: Path, sink: Sink, start_service: Any,
                                                    tmp_path: Path) -> None:
    sink.stop()
    service = start_service(_tower(installed), stuck_after_seconds=0.05)
    raw = mail("stuck")
    assert send(service.port, raw)[0] == 451
    assert service.outbox.pending() == []                  # not stuck long enough yet
    time.sleep(0.1)
    assert send(service.port, raw)[0] == 451
    assert send(service.port, raw)[0] == 451
    copies = service.outbox.pending()
    assert len(copies) == 1 and copies[0].reason.startswith("stuck: re-injection failing for")
    assert service.stats.stuck == 1


def test_outbox_moves_permanent_refusals_aside(tmp_path: Path, live_server: LiveServer) -> None:
    box = Outbox(tmp_path / "outbox", server_url=live_server.url, token="wbt_wrong_token",
                 tower="t01", server="s01")
    box.put(mail("x"), "unknown-virus: test")
    result = box.send_pending()
    assert result.rejected == 1 and box.pending() == []
    assert len(list((tmp_path / "outbox" / "rejected").glob("*.eml"))) == 1


def test_the_command_scans_over_smtp_and_stops_on_sigterm(installed: Path, sink: Sink,
                                                          tmp_path: Path) -> None:
    config = tmp_path / "tower.toml"
    _tower(installed).write(config)
    (tmp_path / "scanner.toml").write_text('on_match = "tag"\nstats_interval_seconds = "1s"\n')
    port = free_port()
    command = Path(sys.executable).with_name("workbench")
    proc = subprocess.Popen([str(command), "tower", "scan", "--config", str(config),
                             "--scanner-config", str(tmp_path / "scanner.toml"),
                             "--listen", f"127.0.0.1:{port}", "--next-hop", f"127.0.0.1:{sink.port}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                code, _ = send(port, mail("bad", text=EICAR.decode()))
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert code == 250
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "rules serial 1" in err
    assert sink.received[0].original_content.startswith(b"X-Workbench-Scan: match")
    stats = read_stats(scanner_dir(installed))
    assert stats is not None and stats["rule_hits"] == {"eicar_test_file": 1}
