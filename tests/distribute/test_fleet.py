"""Fleet judgement (pure), the inventory of expected servers, and the fleet store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.distribute.fleet import (
    NEVER_REPORTED,
    ExpectedServer,
    FleetReport,
    FleetState,
    FleetStore,
    FleetThresholds,
    Health,
    ServerRecord,
    classify,
    fleet_json_data,
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
        assert store.forget("t01", "s01") == ["s01"] and store.forget("t09") == []
        assert [r.tower for r in store.records()] == ["t02"]
    with FleetStore(tmp_path / "fleet.sqlite") as reopened:        # persisted
        assert len(reopened.records()) == 1 and len(reopened.events()) == 3


def test_readers_of_the_store_judge_by_the_servers_thresholds(tmp_path: Path) -> None:
    """`workbench fleet` and the TUI board read the store; they must colour as serve does."""
    with FleetStore(tmp_path / "fleet.sqlite") as store:
        store.record("t01", FleetReport(server="s01", state="ok", serial=1), received_at=NOW)
        assert store.state(1, now=NOW + 400).counts["yellow"] == 1       # default: stale at 5 min
        store.save_thresholds(FleetThresholds(stale_after=600, silent_after=3600))
        assert store.state(1, now=NOW + 400).counts["green"] == 1
        assert store.state(1, now=NOW + 400, thresholds=T).counts["yellow"] == 1   # asked for
    with FleetStore(tmp_path / "fleet.sqlite") as reopened:
        assert reopened.saved_thresholds() == FleetThresholds(stale_after=600, silent_after=3600)


def test_store_truncates_long_errors(tmp_path: Path) -> None:
    with FleetStore(tmp_path / "fleet.sqlite") as store:
        store.record("t01", FleetReport(server="s01", state="failed", error="x" * 10_000))
        assert len(store.records()[0].error) == 2000


# --- the inventory: expected servers ------------------------------------------------------------


def test_an_empty_inventory_changes_nothing() -> None:
    records = [record("t01", "s01"), record("t01", "s02", serial=6), record("t02", "s01", age=4000)]
    plain = summarize(records, 7, now=NOW, thresholds=T)
    assert summarize(records, 7, now=NOW, thresholds=T, expected={}) == plain
    assert summarize(records, 7, now=NOW, thresholds=T, expected={"t09": []}) == plain
    assert (plain.expected, plain.never_reported, plain.not_in_inventory) == (0, 0, 0)
    assert all(s.expected is None and s.reported_at is not None for s in plain.servers)
    assert all((t.expected, t.never_reported, t.not_in_inventory) == (0, 0, 0) for t in plain.towers)


def test_expected_servers_that_never_reported_are_red_and_counted() -> None:
    records = [record("t01", "s01"),                            # listed, green
               record("t01", "s09", serial=6),                  # reports, not listed: stays yellow
               record("t03", "s01")]                            # a tower without an inventory
    expected = {"t01": ["s01", "s03"], "t02": ["a", "b"]}     # t02: not one agent came up
    fleet = summarize(records, 7, now=NOW, thresholds=T, expected=expected)
    by = {(s.tower, s.server): s for s in fleet.servers}
    assert list(by) == [("t01", "s01"), ("t01", "s03"), ("t01", "s09"), ("t02", "a"), ("t02", "b"),
                        ("t03", "s01")]
    never = by[("t01", "s03")]
    assert (never.health, never.reason, never.state) == (Health.RED, "never reported", NEVER_REPORTED)
    assert never.serial is None and never.reported_at is None and never.age_seconds is None
    assert never.expected is True and never.never_reported
    assert by[("t01", "s01")].expected is True and by[("t01", "s01")].health is Health.GREEN
    unlisted = by[("t01", "s09")]
    assert unlisted.health is Health.YELLOW and unlisted.expected is False
    assert unlisted.reason == "behind: serial 6, newest 7 (not in the inventory)"
    assert by[("t03", "s01")].expected is None and "inventory" not in by[("t03", "s01")].reason
    # counted in the health counts and the towers, not in the serials in use
    assert fleet.counts == {"green": 2, "yellow": 1, "red": 3}
    assert fleet.serials == {"7": 2, "6": 1}
    assert (fleet.expected, fleet.never_reported, fleet.not_in_inventory) == (4, 3, 1)
    towers = {t.tower: t for t in fleet.towers}
    assert [t.tower for t in fleet.towers] == ["t01", "t02", "t03"]
    t01, t02, t03 = towers["t01"], towers["t02"], towers["t03"]
    assert (t01.health, t01.servers, t01.red, t01.expected, t01.never_reported, t01.not_in_inventory) \
        == (Health.RED, 3, 1, 2, 1, 1)
    assert (t02.health, t02.servers, t02.red, t02.never_reported, t02.serials) == (Health.RED, 2, 2, 2, {})
    assert (t03.health, t03.expected, t03.never_reported) == (Health.GREEN, 0, 0)


def test_a_fleet_with_never_reported_servers_survives_json() -> None:
    fleet = summarize([record(), record(server="s02", serial=6)], 7, now=NOW,
                      expected={"t01": ["s01", "s03"], "t02": ["x"]})
    data = json.loads(dumps(fleet))
    missing = next(s for s in data["servers"] if s["server"] == "s03")
    assert missing["reported_at"] is None and missing["age_seconds"] is None
    assert missing["health"] == "red" and missing["reason"] == "never reported"
    assert FleetState.from_data(data) == fleet


def test_fleet_documents_of_other_versions_still_read() -> None:
    fleet = summarize([record()], 7, now=NOW, expected={"t01": ["s01", "s02"]})
    data = json.loads(dumps(fleet))
    # a newer server may add fields: they are left out, not an error
    data["quorum"] = 3
    data["towers"][0]["racks"] = 2
    data["servers"][0]["rack"] = "r1"
    data["thresholds"]["dead_after"] = 1.0
    assert FleetState.from_data(data) == fleet
    # an older server has no inventory fields at all
    for key in ("expected", "never_reported", "not_in_inventory"):
        del data[key]
        del data["towers"][0][key]
    for s in data["servers"]:
        del s["expected"]
    older = FleetState.from_data(data)
    assert older.never_reported == 0 and older.towers[0].expected == 0
    assert [s.expected for s in older.servers] == [None, None]


# the keys of GET /v1/fleet before the inventory existed: older boards and scripts read these
OLD_FLEET_KEYS = {"generated_at", "newest_serial", "thresholds", "counts", "serials", "towers", "servers"}
OLD_TOWER_KEYS = {"tower", "health", "servers", "green", "yellow", "red", "serials"}
OLD_SERVER_KEYS = {"tower", "server", "health", "reason", "state", "serial", "target_serial", "error",
                   "reported_at", "age_seconds", "agent_version", "libyara_version", "rule_count"}


def test_without_an_inventory_the_json_document_is_the_old_one() -> None:
    fleet = summarize([record(), record("t02", "s01", state="failed", error="x")], 7, now=NOW)
    data = fleet_json_data(fleet)
    assert set(data) == OLD_FLEET_KEYS
    assert all(set(t) == OLD_TOWER_KEYS for t in data["towers"])
    assert all(set(s) == OLD_SERVER_KEYS for s in data["servers"])
    assert FleetState.from_data(data) == fleet


def test_with_an_inventory_the_json_document_says_what_is_missing() -> None:
    fleet = summarize([record("t01", "s01"), record("t01", "s09"), record("t02", "s01")], 7, now=NOW,
                      expected={"t01": ["s01", "s02"]})
    data = fleet_json_data(fleet)
    assert (data["expected"], data["never_reported"], data["not_in_inventory"]) == (2, 1, 1)
    towers = {t["tower"]: t for t in data["towers"]}
    assert (towers["t01"]["expected"], towers["t01"]["never_reported"], towers["t01"]["not_in_inventory"]) \
        == (2, 1, 1)
    assert set(towers["t02"]) == OLD_TOWER_KEYS                     # no inventory for t02
    servers = {(s["tower"], s["server"]): s for s in data["servers"]}
    assert servers[("t01", "s02")]["reported_at"] is None and servers[("t01", "s02")]["expected"] is True
    assert servers[("t01", "s09")]["expected"] is False and "expected" not in servers[("t02", "s01")]
    assert FleetState.from_data(json.loads(json.dumps(data))) == fleet


def test_the_inventory_in_the_store(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    with FleetStore(path) as store:
        assert store.inventory() == {}
        change = store.expect({"t01": ["s02", "s01"], "t02": ["a"]})
        assert change.added == [ExpectedServer("t01", "s01"), ExpectedServer("t01", "s02"),
                                ExpectedServer("t02", "a")]
        assert (change.removed, change.expected, change.dry_run) == ([], 3, False)
        again = store.expect({"t01": ["s01", "s03"]})                     # adds; keeps s02
        assert again.added == [ExpectedServer("t01", "s03")] and again.expected == 4
        preview = store.expect({"t01": ["s01", "s04"]}, replace=True, dry_run=True)
        assert preview.added == [ExpectedServer("t01", "s04")] and preview.dry_run
        assert preview.removed == [ExpectedServer("t01", "s02"), ExpectedServer("t01", "s03")]
        assert preview.expected == 3
        assert store.inventory() == {"t01": ["s01", "s02", "s03"], "t02": ["a"]}   # dry run
        store.expect({"t01": ["s01", "s04"]}, replace=True)
        assert store.inventory() == {"t01": ["s01", "s04"], "t02": ["a"]}          # t02 untouched
        emptied = store.expect({"t02": []}, replace=True)
        assert emptied.removed == [ExpectedServer("t02", "a")]
        store.record("t01", FleetReport(server="s01", state="ok", serial=7), received_at=NOW)
        store.record("t01", FleetReport(server="s09", state="ok", serial=7), received_at=NOW)
        state = store.state(7, now=NOW + 10)
        assert [(s.server, s.health.value, s.reason) for s in state.servers] == [
            ("s01", "green", "on serial 7"), ("s04", "red", "never reported"),
            ("s09", "green", "on serial 7 (not in the inventory)")]
    with FleetStore(path) as reopened:                                   # persisted
        assert reopened.inventory() == {"t01": ["s01", "s04"]}
        # forget drops the reports and the inventory entries together
        assert reopened.forget("t01", "s04", "s09", "s77") == ["s04", "s09"]
        assert reopened.inventory() == {"t01": ["s01"]}
        assert [r.server for r in reopened.records()] == ["s01"]
        assert reopened.forget("t01") == ["s01"] and reopened.inventory() == {}
        assert len(reopened.events()) == 2                               # the history stays


def test_the_server_sees_an_inventory_change_at_once(tmp_path: Path) -> None:
    """The server keeps its connection open while the CLI writes through another one."""
    path = tmp_path / "fleet.sqlite"
    with FleetStore(path) as server, FleetStore(path) as cli:
        server.record("t01", FleetReport(server="s01", state="ok", serial=7), received_at=NOW)
        assert server.state(7, now=NOW).counts == {"green": 1, "yellow": 0, "red": 0}
        cli.expect({"t01": ["s01", "s02"]})
        assert server.state(7, now=NOW).counts == {"green": 1, "yellow": 0, "red": 1}
        cli.forget("t01", "s02")
        assert server.state(7, now=NOW).never_reported == 0


def test_summarize_a_full_fleet_with_its_inventory() -> None:
    records = [record(f"t{t:03d}", f"s{s:02d}") for t in range(100) for s in range(36) if (t + s) % 50]
    expected = {f"t{t:03d}": [f"s{s:02d}" for s in range(36)] for t in range(100)}
    fleet = summarize(records, 7, now=NOW, expected=expected)
    assert len(fleet.servers) == 3600 and fleet.never_reported == 3600 - len(records) == 72
    assert fleet.counts["red"] == 72 and sum(fleet.serials.values()) == len(records)


def test_closing_the_store_waits_for_a_reader_in_another_thread(tmp_path: Path) -> None:
    """The TUI board's worker may still be reading when its screen closes the store; closing
    a SQLite connection under a running statement crashes the process, so close waits."""
    import sqlite3
    import threading

    store = FleetStore(tmp_path / "fleet.sqlite")
    for n in range(2000):
        store.record(f"t{n % 50:02d}", FleetReport(server=f"s{n:04d}", state="ok", serial=1),
                     received_at=NOW)
    outcome: list[str] = []
    started = threading.Event()

    def read() -> None:
        try:
            while True:
                started.set()
                store.state(1, now=NOW)
        except sqlite3.ProgrammingError:
            outcome.append("closed")          # the next read after close: a clean error

    reader = threading.Thread(target=read)
    reader.start()
    started.wait(5)
    store.close()
    reader.join(10)
    assert outcome == ["closed"]
