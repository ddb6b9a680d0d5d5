"""A real Postfix from Debian relays through ``workbench tower scan`` as its after-queue content filter.

Mail submitted to Postfix over SMTP goes to the scanner (master.cf's ``scan`` service, as
docs/distribution.md configures it), comes back to Postfix on the re-injection port and
is relayed to a loopback SMTP sink: matched mail carries the verdict header, clean mail
arrives untouched, and the scanner counted both.
"""

from __future__ import annotations

import email
import email.policy
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.distribute.postfix_instance import PostfixInstance, why_not
from tests.distribute.scanning import EICAR, Sink, install, mail
from tests.support.live_server import free_port
from workbench.distribute.scanner import read_stats
from workbench.distribute.smtp_filter import scanner_dir
from workbench.distribute.tower_config import TowerConfig

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(why_not()), reason=why_not() or "-")]


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def scan_command(tmp_path: Path, bundles: dict[Any, Path]) -> Iterator[tuple[int, int, Path]]:
    """``workbench tower scan`` with serial 1 (the EICAR rule) installed: (its port, the
    Postfix re-injection port it hands mail back to, the install folder)."""
    install_dir = tmp_path / "install"
    install(install_dir, bundles[1])
    config = tmp_path / "tower.toml"
    TowerConfig(repository_url="http://127.0.0.1:9/repository", trusted_root=install_dir / "root.json",
                install_dir=install_dir, tower="t01", server="mx01", timeout_seconds=5.0).write(config)
    (tmp_path / "scanner.toml").write_text('on_match = "tag"\nstats_interval_seconds = "1s"\n')
    port, reinject = free_port(), free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("workbench")), "tower", "scan",
                             "--config", str(config), "--scanner-config", str(tmp_path / "scanner.toml"),
                             "--listen", f"127.0.0.1:{port}", "--next-hop", f"127.0.0.1:{reinject}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        yield port, reinject, install_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


@pytest.fixture
def postfix(sink: Sink, scan_command: tuple[int, int, Path]) -> Iterator[PostfixInstance]:
    filter_port, reinject, _ = scan_command
    instance = PostfixInstance(smtp_port=free_port(), filter_port=filter_port, reinject_port=reinject,
                               relay_port=sink.port).start()
    try:
        yield instance
    finally:
        instance.stop()


def wait_for(condition: Any, what: str, postfix: PostfixInstance, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached; Postfix's log:\n{postfix.log()[-4000:]}")
        time.sleep(0.1)


def test_postfix_relays_through_the_tower_scanner(postfix: PostfixInstance, sink: Sink,
                                                   scan_command: tuple[int, int, Path]) -> None:
    clean = mail("quarterly figures", text="nothing to see")
    bad = mail("invoice", text=EICAR.decode())
    with smtplib.SMTP("127.0.0.1", postfix.smtp_port, timeout=30) as client:
        client.sendmail("a@example.org", ["b@example.net"], clean)
        client.sendmail("a@example.org", ["c@example.net"], bad)
    wait_for(lambda: len(sink.received) == 2, "both messages at the sink", postfix)

    by_rcpt = {tuple(e.rcpt_tos): email.message_from_bytes(e.original_content, policy=email.policy.compat32)
               for e in sink.received}
    tagged, untouched = by_rcpt[("c@example.net",)], by_rcpt[("b@example.net",)]
    assert tagged["X-Workbench-Scan"] == "match; rules=eicar_test_file; serial=1"
    assert tagged["Subject"] == "invoice" and EICAR in tagged.get_payload(decode=True)
    assert untouched["X-Workbench-Scan"] is None and untouched["Subject"] == "quarterly figures"
    # Postfix took each message twice (submission, then back from the filter): two Received
    # lines of its own, the filter's header between them
    for message in (tagged, untouched):
        assert sum("wb-postfix.test" in r for r in message.get_all("Received", [])) == 2
    headers = tagged.keys()
    assert headers.index("X-Workbench-Scan") > headers.index("Received")
    # and the scanner counted both messages and the hit
    _, _, install_dir = scan_command

    def counted() -> bool:
        stats = read_stats(scanner_dir(install_dir))
        return stats is not None and stats["messages"] == 2
    wait_for(counted, "the scanner's counters", postfix, timeout=30)
    stats = read_stats(scanner_dir(install_dir))
    assert stats is not None and stats["rule_hits"] == {"eicar_test_file": 1}
    assert "relay=127.0.0.1[127.0.0.1]" in postfix.log() and "status=sent" in postfix.log()
