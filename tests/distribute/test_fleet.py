"""Fleet judgement (pure) and the fleet store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.distribute.fleet import (
    FleetReport,
    FleetState,
    FleetStore,
    FleetThresholds,
    Health,
    ServerRecord,
    classify,
    summarize,
)
from workbench.document import dumps

NOW = 1_800_000_000.0
T = FleetThresholds(stale_after=300, silent_after=1800)


def record(tower: str = "t01", server: str = "s01", *, state: str = "ok", serial: int | None = 7,
           age: float = 10, error: str = "", target: int | None = None) -> ServerRecord:
    return ServerRecord(tower=tower, server=server, state=state, serial=serial, error=error,
                        target_serial=target, agent_version="0.1.0", libyara_version="4.5.4",
                        rule_count=3, reported_at=NOW - age)


@pytest.mark.parametrize(("rec", "health", "reason"), [
    (record(), Health.GREEN, "on serial 7"),
    (record(serial=6), Health.YELLOW, "behind: serial 6, newest 7"),
    (record(serial=None), Health.YELLOW, "no rules installed yet"),
    (record(serial=9), Health.YELLOW, "serial 9 is not in this repository"),
    (record(state="updating", serial=6, target=7), Health.YELLOW, "updating to 7"),
    (record(age=301), Health.YELLOW, "last report 5m ago"),
    (record(state="failed", serial=6, target=7, error="self-test failed"), Health.RED,
     "failed serial 7: self-test failed"),
    (record(state="failed", age=600, error="x"), Health.RED, "failed: x"),
    (record(age=1801), Health.RED, "silent for 30m"),
    (record(age=3 * 86400), Health.RED, "silent for 3d"),
])
def test_classify(rec: ServerRecord, health: Health, reason: str) -> None:
    got_health, got_reason = classify(rec, 7, NOW, T)
    assert got_health is health
    assert got_reason.startswith(reason)


def test_classify_without_any_release() -> None:
    assert classify(record(serial=None), None, NOW, T) == (Health.YELLOW, "no rules installed yet")
    assert classify(record(serial=3), None, NOW, T) == (Health.GREEN, "on serial 3")


def test_summarize_rolls_up_towers_worst_first() -> None:
    records = [record("t01", "s01"), record("t01", "s02", serial=6),
               record("t02", "s01"), record("t02", "s02", state="failed", error="boom"),
               record("t03", "s01")]
    fleet = summarize(records, 7, now=NOW, thresholds=T)
    assert fleet.counts == {"green": 3, "yellow": 1, "red": 1}
    assert fleet.serials == {"7": 4, "6": 1}
    towers = {t.tower: t for t in fleet.towers}
    assert towers["t01"].health is Health.YELLOW and towers["t01"].serials == {"7": 1, "6": 1}
    assert towers["t02"].health is Health.RED and towers["t02"].red == 1
    assert towers["t03"].health is Health.GREEN
    assert [(s.tower, s.server) for s in fleet.servers] == sorted((r.tower, r.server) for r in records)


def test_fleet_state_survives_json() -> None:
    fleet = summarize([record(), record(server="s02", state="failed", error="e")], 7, now=NOW)
    again = FleetState.from_data(json.loads(dumps(fleet)))
    assert again == fleet


def test_summarize_a_full_fleet() -> None:
    records = [record(f"t{t:03d}", f"s{s:02d}", serial=7 if s % 9 else 6)
               for t in range(100) for s in range(36)]
    fleet = summarize(records, 7, now=NOW)
    assert len(fleet.servers) == 3600 and len(fleet.towers) == 100
    assert fleet.counts["yellow"] == 400 and fleet.counts["green"] == 3200


def test_store_keeps_the_newest_report_and_the_changes(tmp_path: Path) -> None:
    with FleetStore(tmp_path / "fleet.sqlite") as store:
        store.record("t01", FleetReport(server="s01", state="ok", serial=1), received_at=NOW)
        store.record("t01", FleetReport(server="s01", state="ok", serial=1), received_at=NOW + 60)
        store.record("t01", FleetReport(server="s01", state="failed", serial=1, target_serial=2,
                                        error="self-test failed"), received_at=NOW + 120)
        store.record("t02", FleetReport(server="s01", state="ok", serial=1), received_at=NOW + 130)
        records = {(r.tower, r.server): r for r in store.records()}
        assert records[("t01", "s01")].state == "failed"
        assert records[("t01", "s01")].reported_at == NOW + 120
        history = store.events(tower="t01")
        assert [(e.state, e.error) for e in history] == [("failed", "self-test failed"), ("ok", "")]
        assert len(store.events()) == 3
        state = store.state(2, now=NOW + 140)
        assert state.counts == {"green": 0, "yellow": 1, "red": 1}
        assert store.forget("t01", "s01") == 1 and store.forget("t09") == 0
        assert [r.tower for r in store.records()] == ["t02"]
    with FleetStore(tmp_path / "fleet.sqlite") as reopened:        # persisted
        assert len(reopened.records()) == 1 and len(reopened.events()) == 3


def test_store_truncates_long_errors(tmp_path: Path) -> None:
    with FleetStore(tmp_path / "fleet.sqlite") as store:
        store.record("t01", FleetReport(server="s01", state="failed", error="x" * 10_000))
        assert len(store.records()[0].error) == 2000
