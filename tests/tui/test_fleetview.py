"""The fleet board's sources and the spread of the newest serial."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fleet import NOW, fleet_state, record
from tests.support.live_server import free_port
from workbench.distribute.client import ClientError
from workbench.distribute.fleet import FleetReport, FleetStore, summarize
from workbench.distribute.settings import RepositorySettings
from workbench.tui.fleetview import LocalFleet, RemoteFleet, fleet_source, spread
from workbench.workspace import Workspace


def test_spread_counts_what_holds_the_newest_back() -> None:
    records = [
        record("t1", "a"), record("t1", "b"),                                    # on 5, green
        record("t1", "c", serial=4),                                             # behind
        record("t1", "d", serial=None),                                          # nothing yet
        record("t2", "a", state="updating", serial=4, target=5),
        record("t2", "b", state="failed", serial=4, target=5, error="self-test failed"),
        record("t2", "c", age=7200.0),                                           # silent, on 5
        record("t2", "d", age=600.0, serial=4),                                  # stale
    ]
    s = spread(summarize(records, 5, now=NOW))
    assert (s.newest, s.servers, s.on_newest) == (5, 8, 3)
    assert (s.behind, s.updating, s.failed, s.silent, s.stale) == (2, 1, 1, 1, 1)
    assert s.fraction == pytest.approx(3 / 8)


def test_spread_counts_servers_that_never_reported() -> None:
    records = [record("t1", "a"), record("t1", "b", serial=4), record("t1", "c", age=7200.0),
               record("t2", "a", state="failed", error="boom")]
    expected = {"t1": ["a", "b", "c", "d"], "t2": ["a"], "t3": ["a", "b"]}
    state = summarize(records, 5, now=NOW, expected=expected)
    s = spread(state)
    assert (s.servers, s.on_newest, s.behind) == (7, 3, 1)      # silent and failed are on 5
    assert (s.failed, s.silent, s.never_reported) == (1, 1, 3)
    assert state.counts["red"] == s.failed + s.silent + s.never_reported


def test_spread_of_a_big_fleet_with_an_inventory_adds_up() -> None:
    state = fleet_state(missing=25)
    s = spread(state)
    assert s.never_reported == state.never_reported == 25
    assert state.counts["red"] == s.failed + s.silent + s.never_reported
    assert sum(state.serials.values()) == s.servers - 25


def test_spread_of_an_empty_or_unpublished_fleet() -> None:
    empty = spread(summarize([], None, now=NOW))
    assert (empty.servers, empty.on_newest, empty.fraction) == (0, 0, 0.0)
    unpublished = spread(summarize([record("t", "a", serial=None)], None, now=NOW))
    assert (unpublished.on_newest, unpublished.behind) == (0, 0)


def test_spread_of_a_big_fleet_adds_up() -> None:
    state = fleet_state()
    s = spread(state)
    assert s.servers == len(state.servers) > 2000
    assert state.counts["red"] == s.failed + s.silent
    assert state.counts["yellow"] == s.behind + s.updating + s.stale


def test_local_fleet_reads_the_workspace_store(tmp_path: Path) -> None:
    from workbench.distribute.update_repository import UpdateRepository

    workspace = Workspace.resolve(tmp_path / "home").ensure()
    source = fleet_source(workspace, None)
    assert isinstance(source, LocalFleet)
    assert source.state().servers == [] and source.newest() == (None, None)   # no keys init yet
    with FleetStore.for_workspace(workspace) as store:
        store.record("t07", FleetReport(server="mx1", state="ok", serial=None))
        store.record("t07", FleetReport(server="mx1", state="failed", error="boom", target_serial=3))
    UpdateRepository.for_workspace(workspace).init(RepositorySettings())
    state = source.state()
    assert [(s.tower, s.server, s.state) for s in state.servers] == [("t07", "mx1", "failed")]
    assert state.newest_serial is None                                   # nothing published yet
    events = source.events("t07", "mx1")
    assert [e.state for e in events] == ["failed", "ok"]
    # the inventory in the same store: a server that never reported is on the board, red
    with FleetStore.for_workspace(workspace) as store:
        store.expect({"t07": ["mx1", "mx2"], "t08": ["mx1"]})
    state = source.state()
    assert [(s.tower, s.server, s.reason) for s in state.servers if s.never_reported] == [
        ("t07", "mx2", "never reported"), ("t08", "mx1", "never reported")]
    assert [(t.tower, t.health.value, t.never_reported) for t in state.towers] == [
        ("t07", "red", 1), ("t08", "red", 1)]
    assert source.events("t08", "mx1") == []
    source.close()
    source.close()                                                       # twice is fine


def test_remote_fleet_says_when_it_cannot_reach_the_server() -> None:
    source = fleet_source(Workspace.resolve("/nonexistent"), f"http://127.0.0.1:{free_port()}/")
    assert isinstance(source, RemoteFleet) and source.label == source.url
    source.timeout = 2
    with pytest.raises(ClientError, match="cannot reach"):
        source.state()
    with pytest.raises(ClientError):
        source.events("t", "s")
