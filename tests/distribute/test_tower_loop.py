"""The loop from the towers back to the analyst, on loopback with real parts throughout.

Two towers, each with a real agent (long-polling the real server) and a real SMTP
scanner re-injecting into an SMTP sink; mail sent with smtplib. An unknown sample is
copied to the central quarantine; live hits appear per rule and tower; a release goes to
the canary tower first, then to both; the noisy rule is disabled by the kill switch and
is gone from both scanners within one notification.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.distribute.scanning import GTUBE, Sink, mail
from tests.support.live_server import LiveServer, free_port
from tests.support.signatures import HOUSE, init_repo
from workbench.cli import main
from workbench.distribute.agent import PullResult, TowerAgent
from workbench.distribute.scanner import ScanConfig
from workbench.distribute.server import ServerSettings
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.smtp_filter import TowerScanService
from workbench.distribute.tokens import TokenStore
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.exitcodes import E_FINDINGS, E_OK
from workbench.quarantine.service import Quarantine
from workbench.release.emergency import emergency_disable
from workbench.release.release_store import ReleaseStore
from workbench.release.service import make_release, revert_release
from workbench.samples.mail import Attachment
from workbench.samples.pe import build_pe
from workbench.workspace import Workspace

NOISY = "SPAM_GTUBE_TestString"
pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Tower:
    name: str
    agent: TowerAgent
    scanner: TowerScanService
    sink: Sink
    thread: threading.Thread
    results: list[tuple[float, PullResult]]


def wait_until(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def send(tower: Tower, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", tower.scanner.port, timeout=60) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        return client.data(raw)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[Workspace, LiveServer, list[Tower], threading.Event]]:
    root = tmp_path / "signatures"
    shutil.copytree(HOUSE, root, ignore=shutil.ignore_patterns("CHANGELOG.md"))
    init_repo(root, "house rules")
    workspace = Workspace.resolve(tmp_path / "home", signatures=root).ensure()
    release = make_release(workspace, message="first")
    repo = UpdateRepository.for_workspace(workspace)
    repo.init(RepositorySettings())
    publish_bundle(repo, Path(release.bundle_path))
    # held polls answered after 1 s: the agents report often, so the test sees hits soon
    # the rollout watcher is off: the test judges the canary itself, with no soak time
    server = LiveServer(workspace, settings=ServerSettings(
        max_poll_wait=1, canary_check_interval=0, canary_soak=0)).start()
    stop = threading.Event()
    towers: list[Tower] = []
    try:
        for name in ("t01", "t02"):
            token = TokenStore.for_workspace(workspace).add(name)[1]
            pinned = tmp_path / name / "root.json"
            pinned.parent.mkdir()
            pinned.write_bytes(repo.trusted_root.read_bytes())
            config = TowerConfig(repository_url=server.repository_url, trusted_root=pinned,
                                 install_dir=tmp_path / name / "install", tower=name, server="mx01",
                                 token=token, poll_seconds=100.0, long_poll=True, timeout_seconds=10.0,
                                 report_spread_seconds=1.0)
            agent = TowerAgent(config)
            assert agent.pull().serial == 1
            sink = Sink().start()
            scanner = TowerScanService(config, ScanConfig(
                listen_port=free_port(), next_hop_port=sink.port, copy_matches=True,
                outbox_retry_seconds=0.2, stats_interval_seconds=0.1), threads=2).start()
            results: list[tuple[float, PullResult]] = []
            thread = threading.Thread(target=agent.run, args=(stop,), kwargs={
                "on_result": lambda r, out=results: out.append((time.monotonic(), r))}, daemon=True)
            thread.start()
            towers.append(Tower(name, agent, scanner, sink, thread, results))
        yield workspace, server, towers, stop
    finally:
        stop.set()
        for t in towers:
            t.thread.join(timeout=30)
            t.scanner.stop()
            t.sink.stop()
        server.stop()


def test_mail_through_two_towers_to_telemetry_and_the_kill_switch(loop: Any) -> None:
    workspace, server, towers, _stop = loop
    spam = mail("cheap pills", text=GTUBE.decode())
    for tower in towers:
        for _ in range(3):
            code, text = send(tower, spam)
            assert code == 250 and b"match" in text
        assert all(e.original_content.startswith(b"X-Workbench-Scan: match; rules=" + NOISY.encode())
                   for e in tower.sink.received)

    # an unknown sample: nothing matches, it looks like a virus: copied to the quarantine
    unknown = mail("invoice", attachments=[Attachment("invoice.pdf.exe", build_pe())])
    assert send(towers[0], unknown)[0] == 250
    unknown_sha = hashlib.sha256(unknown).hexdigest()

    def in_quarantine() -> bool:
        with Quarantine.open(workspace) as q:
            return q.index.count(f"sha:{unknown_sha}") == 1

    wait_until(in_quarantine, "the unknown sample in the central quarantine")
    with Quarantine.open(workspace) as q:
        assert q.index.sightings(unknown_sha)[0].reason.startswith("unknown-virus: double extension")

    # live hits per rule and tower, from the scanners' counters in the agents' reports
    def live() -> dict[str, Any]:
        data = httpx.get(f"{server.url}/v1/fleet/rules", timeout=30).json()
        return {r["rule"]: r for r in data["rules"]}

    wait_until(lambda: live().get(NOISY, {}).get("towers") == {"t01": 3, "t02": 3},
               "3 live hits per tower for the noisy rule")
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert f'workbench_rule_hits_total{{rule="{NOISY}",tower="t01"}} 3.0' in metrics

    # the analyst sees it in rules health (with the matched copies the towers sent) ...
    wait_until(lambda: not any(t.scanner.outbox.pending() for t in towers), "the outboxes sent")
    assert main(["--home", str(workspace.home), "rules", "health", "--url", server.url,
                 "--no-validate", "--json"]) in (E_OK, E_FINDINGS)

    # a release goes to the canary tower first, then (canary green, no storm) to all
    repo = UpdateRepository.for_workspace(workspace)
    second = revert_release(workspace, 1, message="re-ship serial 1 as 2")
    publish_bundle(repo, Path(second.bundle_path), canaries=("t01",))
    state = server.app.state.workbench
    wait_until(lambda: any(s.tower == "t01" and s.reason == "on canary serial 2"
                           for s in state.fleet_state().servers), "the canary green on serial 2")
    assert all(r.serial == 1 for _, r in towers[1].results)      # t02 was not offered it
    decision = state.judge_rollout()
    assert decision is not None and decision.stage == "all", decision
    wait_until(lambda: any(r.serial == 2 for _, r in towers[1].results), "t02 promoted to 2")

    # ... and takes the noisy rule off the fleet: one signed minimal release, published
    outcome = emergency_disable(workspace, NOISY, message="mass false positive")
    assert outcome.serial == 3
    publish_bundle(repo, ReleaseStore(workspace).get(3).bundle_path)
    published = time.monotonic()
    wait_until(lambda: all(any(r.serial == 3 for _, r in t.results) for t in towers),
               "both towers on serial 3")
    for tower in towers:
        after = [(end, r) for end, r in tower.results if end - r.duration_seconds >= published]
        # every attempt that started after the publish already runs serial 2, and the one
        # that brought it was a held poll: the notification, not a poll interval
        assert all(r.serial == 3 for _, r in after)
        first = next(r for _, r in tower.results if r.serial == 3)
        assert first.changed and first.long_polled
        # the scanner uses it from the next message: the noisy rule is gone
        code, text = send(tower, spam)
        assert code == 250 and b"clean" in text
        assert not tower.sink.received[-1].original_content.startswith(b"X-Workbench-Scan")
    board = httpx.get(f"{server.url}/v1/fleet", timeout=30).json()
    wait_until(lambda: httpx.get(f"{server.url}/v1/fleet", timeout=30).json()["serials"] == {"3": 2},
               "the fleet board showing serial 3 everywhere")
    assert board["newest_serial"] == 3
    changelog = (workspace.signatures / "CHANGELOG.md").read_text()
    assert f"EMERGENCY: {NOISY} disabled: mass false positive" in changelog
    assert json.loads(json.dumps(live()[NOISY]))["hits"] == 6
