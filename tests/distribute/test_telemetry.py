"""Rule telemetry: scanner counters in fleet reports become hits over time, per rule and tower."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import LiveServer
from workbench.distribute.agent import TowerAgent
from workbench.distribute.fleet import FleetReport, FleetStore
from workbench.distribute.scanner import ScanStats, scanner_dir
from workbench.distribute.telemetry import HOUR, StormThresholds
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle

T0 = 1_800_000_000.0 - (1_800_000_000.0 % HOUR)      # the start of an hour


def stats(started: str, messages: int, **hits: int) -> dict[str, Any]:
    return {"started": started, "messages": messages, "scan_seconds": messages * 0.001,
            "errors": 0, "rule_hits": hits}


def report(server: str, scanner: dict[str, Any]) -> FleetReport:
    return FleetReport(server=server, state="ok", serial=1, scanner=scanner)


def test_increases_are_counted_once_and_restarts_are_not_negative(tmp_path: Path) -> None:
    with FleetStore(tmp_path / "fleet.sqlite") as store:
        store.record("t1", report("s1", stats("a", 10, r1=3)), received_at=T0 + 10)
        store.record("t1", report("s1", stats("a", 10, r1=3)), received_at=T0 + 70)   # nothing new
        store.record("t1", report("s1", stats("a", 25, r1=5, r2=1)), received_at=T0 + 130)
        store.record("t1", report("s1", stats("b", 4, r1=2)), received_at=T0 + 190)   # restarted
        store.record("t2", report("s9", stats("x", 7, r1=1)), received_at=T0 + 200)
        rules = store.rules(window_hours=2, now=T0 + 300)
    by_rule = {r.rule: r for r in rules.rules}
    assert by_rule["r1"].hits == 3 + 2 + 2 + 1
    assert by_rule["r1"].towers == {"t1": 7, "t2": 1}
    assert by_rule["r1"].last_hit == T0 + 200
    assert by_rule["r2"].hits == 1
    assert rules.messages == 25 + 4 + 7
    assert rules.history["r1"] == [0, 8]


def test_a_rule_far_above_its_baseline_is_flagged(tmp_path: Path) -> None:
    with FleetStore(tmp_path / "fleet.sqlite") as store:
        for hour in range(24):                       # one hit an hour for a day, both rules
            store.record("t1", report("s1", stats("a", hour + 1, calm=hour + 1, noisy=hour + 1)),
                         received_at=T0 + hour * HOUR)
        store.record("t1", report("s1", stats("a", 500, calm=25, noisy=400)),
                     received_at=T0 + 24 * HOUR + 60)
        rules = store.rules(now=T0 + 24 * HOUR + 120, storm=StormThresholds())
    flagged = {r.rule: r.storm for r in rules.rules if r.storm}
    assert list(flagged) == ["noisy"]
    assert "376 hits in the last 1 h" in flagged["noisy"]
    assert rules.rules[0].rule == "noisy"           # storms first


def test_agent_reports_scanner_counters_and_the_server_serves_them(
        tower_config: TowerConfig, repo: UpdateRepository, bundles: dict[Any, Path],
        live_server: LiveServer) -> None:
    publish_bundle(repo, bundles[1])
    s = ScanStats(started="2026-12-07T18:00:00Z", messages=12, scan_seconds=0.5)
    s.rule_hits["eicar_test_file"] = 4
    s.save(scanner_dir(tower_config.install_dir) / "stats.json")
    assert TowerAgent(tower_config).pull().reported
    data = httpx.get(f"{live_server.url}/v1/fleet/rules").json()
    assert data["messages"] == 12
    assert [(r["rule"], r["hits"], r["towers"]) for r in data["rules"]] == [
        ("eicar_test_file", 4, {"t01": 4})]
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert 'workbench_rule_hits_total{rule="eicar_test_file",tower="t01"} 4.0' in metrics
    assert 'workbench_scanner_messages_total{tower="t01"} 12.0' in metrics


def test_a_report_with_bad_scanner_counters_is_422(live_server: LiveServer, tower_token: str) -> None:
    body = {"server": "s01", "state": "ok", "scanner": {"started": "x", "messages": -1}}
    response = httpx.post(f"{live_server.url}/v1/fleet/report", json=body,
                          headers={"authorization": f"Bearer {tower_token}"})
    assert response.status_code == 422
    assert "-1" not in response.text
