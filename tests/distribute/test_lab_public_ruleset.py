"""A public ruleset the whole way: imported, released, published, pulled by the demo lab's
towers and used by a tower scanner, with real processes throughout.

The real ReversingLabs set (MIT, ``tests/support/rulesets.py``) is imported beside the
house rules of a demo workspace; the lab (``workbench serve`` on loopback and one
``workbench tower run`` process per lab tower, as ``workbench demo --open`` starts it)
takes the release; the fleet report shows every tower on it with the set's rule count;
and ``workbench tower scan``, run with a lab tower's own config, loads that bundle and
flags a message built here that one imported rule must match (a made-up file, not
malware: an ``MZ`` header, the rule's text string and its two short byte patterns with
the wildcards filled in). libyara, given the upstream file alone, agrees in the same test.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import git
import pytest
import yara

from tests.distribute.scanning import Sink, mail, send
from tests.support.live_server import free_port
from tests.support.rulesets import PUBLIC_RULESET
from tests.support.signatures import HOUSE
from workbench.demo.lab import LAB_TOWERS, Lab, lab_folder, prepare_lab
from workbench.distribute.fleet import FleetStore
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.release.bundle import load_extracted, open_bundle
from workbench.release.importing import import_source
from workbench.release.release_store import ReleaseStore
from workbench.release.service import make_release
from workbench.rules.parse import parse_file
from workbench.samples.mail import Attachment
from workbench.workspace import Workspace, create_workspace

pytestmark = pytest.mark.slow

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
# a plain-text string and two short byte patterns (UPX's own decompression loop, not the
# PUA's code): a file holding them after an MZ header matches, and is harmless
RULE = "Win32_PUA_Domaiq"
RULE_FILE = "yara/pua/Win32.PUA.Domaiq.yara"
PATTERNS = ("$payload", "$UPX_Decompression", "$UPX_Encrypting")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def bytes_of(value: str) -> bytes:
    """The bytes a text literal or a hex string without jumps or alternatives stands for,
    each ``??`` (or nibble wildcard) as 0."""
    if value.startswith('"'):
        assert "\\" not in value
        return value.strip('"').encode()
    body = value.strip().removeprefix("{").removesuffix("}")
    tokens = body.split()
    assert all(re.fullmatch(r"[0-9A-Fa-f?]{2}", t) for t in tokens), "jumps or alternatives"
    return bytes(int(t.replace("?", "0"), 16) for t in tokens)


def matching_file(upstream: Path) -> bytes:
    [rule] = [r for r in parse_file(upstream / RULE_FILE).rules if r.name == RULE]
    strings = {s.identifier: s.value for s in rule.strings}
    body = b"".join(bytes_of(strings[p]) + b"\0" * 16 for p in PATTERNS)
    return b"MZ" + b"\0" * 62 + b"synthetic test file\0" + body


def test_the_public_ruleset_reaches_the_lab_towers_and_their_scanner(tmp_path: Path) -> None:
    if not (PUBLIC_RULESET / "yara").is_dir():
        pytest.skip(f"no public ruleset at {PUBLIC_RULESET} (set WORKBENCH_PUBLIC_RULESET)")
    ws = Workspace.resolve(tmp_path / "demo")
    create_workspace(ws, signatures_from=HOUSE)
    assert prepare_lab(ws).published_serial == 1
    repository = UpdateRepository.for_workspace(ws)

    def servers() -> list[tuple[str, int | None, int | None]]:
        with FleetStore.for_workspace(ws) as store:
            return sorted((s.tower, s.serial, s.rule_count)
                          for s in store.state(repository.newest_serial()).servers)

    # the vendor set, imported, committed and released beside the house rules
    report = import_source(ws.signatures, str(PUBLIC_RULESET), name="reversinglabs")
    assert report.licence == "MIT" and report.rules >= 1100
    repo = git.Repo(ws.signatures)
    repo.git.add(A=True)
    repo.index.commit("import the ReversingLabs rules")
    outcome = make_release(ws, message="house and ReversingLabs rules")
    release = ReleaseStore(ws).get(outcome.serial)
    manifest = open_bundle(release.bundle_path).manifest
    assert outcome.serial == 2 and manifest.rule_count >= report.shipping > 1000
    assert RULE in {r.name for r in manifest.rules}

    lab = Lab(ws).start()
    try:
        wait_until(lambda: [s[1] for s in servers()] == [1] * len(LAB_TOWERS), "the lab on serial 1")
        publish_bundle(repository, release.bundle_path)
        # each agent pulls, verifies, test-loads (every rule compiled, the self-test run) and
        # switches, then reports the serial and the rule count it loaded
        expected = sorted((tower, 2, manifest.rule_count) for tower, _ in LAB_TOWERS)
        wait_until(lambda: servers() == expected, f"the four lab towers on serial 2 with "
                   f"{manifest.rule_count} rules")

        # the fleet report, as the analyst reads it from the lab's server
        done = subprocess.run([WORKBENCH, "--home", str(ws.home), "fleet", "--url", lab.url,
                               "--all", "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        fleet = json.loads(done.stdout)
        assert fleet["newest_serial"] == 2 and fleet["serials"] == {"2": len(LAB_TOWERS)}
        assert {(s["tower"], s["serial"], s["rule_count"], s["health"]) for s in fleet["servers"]} \
            == {(tower, 2, manifest.rule_count, "green") for tower, _ in LAB_TOWERS}

        tower = LAB_TOWERS[0][0]
        config = lab_folder(ws) / "towers" / tower / "agent.toml"
        done = subprocess.run([WORKBENCH, "tower", "status", "--config", str(config), "--json"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert '"serial": 2' in done.stdout
        installed = lab_folder(ws) / "towers" / tower / "install" / "current"
        loaded = load_extracted(installed.resolve())
        assert loaded.manifest.serial == 2 and loaded.manifest.rule_count == manifest.rule_count

        # that tower's scanner, started with its agent's config, scans with the bundle
        sample = matching_file(PUBLIC_RULESET)
        reference = yara.compile(filepath=str(PUBLIC_RULESET / RULE_FILE))
        assert [m.rule for m in reference.match(data=sample)] == [RULE]      # libyara agrees
        sink = Sink().start()
        port = free_port()
        (tmp_path / "scanner.toml").write_text('on_match = "tag"\n')
        scanner = subprocess.Popen(
            [WORKBENCH, "tower", "scan", "--config", str(config), "--scanner-config",
             str(tmp_path / "scanner.toml"), "--listen", f"127.0.0.1:{port}",
             "--next-hop", f"127.0.0.1:{sink.port}"], stderr=subprocess.PIPE, text=True)
        try:
            message = mail("setup", attachments=[Attachment("setup.bin", sample)])
            deadline = time.monotonic() + 120
            while True:
                try:
                    code, answer = send(port, message)
                    break
                except OSError:
                    assert scanner.poll() is None and time.monotonic() < deadline, "no scanner"
                    time.sleep(0.2)
            assert code == 250 and b"match" in answer
            code, answer = send(port, mail("lunch", text="sandwiches at noon"))
            assert code == 250 and b"clean" in answer
        finally:
            scanner.send_signal(signal.SIGTERM)
            _, err = scanner.communicate(timeout=60)
            sink.stop()
        assert scanner.returncode == 0, err
        assert "rules serial 2" in err
        tagged, clean = sink.received
        header = tagged.original_content.split(b"\r\n", 1)[0].decode()
        assert header.startswith("X-Workbench-Scan: match") and RULE in header, header
        assert not clean.original_content.startswith(b"X-Workbench-Scan")
    finally:
        lab.stop()
