"""The fleet board's sources and the spread of the newest serial."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.distribute.conftest import free_port
from tests.tui.fleet_data import NOW, fleet_state, record
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
    from workbench.distribute.repository import UpdateRepository

    workspace = Workspace.resolve(tmp_path / "home").ensure()
    source = fleet_source(workspace, None)
    assert isinstance(source, LocalFleet)
    assert source.state().servers == [] and source.newest_serial() is None   # no keys init yet
    with FleetStore.for_workspace(workspace) as store:
        store.record("t07", FleetReport(server="mx1", state="ok", serial=None))
        store.record("t07", FleetReport(server="mx1", state="failed", error="boom", target_serial=3))
    UpdateRepository.for_workspace(workspace).init(RepositorySettings())
    state = source.state()
    assert [(s.tower, s.server, s.state) for s in state.servers] == [("t07", "mx1", "failed")]
    assert state.newest_serial is None                                   # nothing published yet
    events = source.events("t07", "mx1")
    assert [e.state for e in events] == ["failed", "ok"]
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
