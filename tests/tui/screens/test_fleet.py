"""Pilot tests of the fleet screen: board, spread, details, live refresh, outages, servers never heard from."""

from __future__ import annotations

import datetime as dt

import pytest
from textual.widgets import Static

from tests.support.fleet import NOW, FakeSource, fleet_state, record
from tests.support.pilot import settle, static_text, until
from workbench.distribute.client import ClientError
from workbench.distribute.fleet import Canary, FleetEvent, Health, summarize
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.fleet import FleetScreen
from workbench.tui.widgets.fleet_board import GLYPHS, FleetBoard
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (120, 40)


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> list[FakeSource]:
    """The screen reads the last source a test appends here."""
    made: list[FakeSource] = []
    monkeypatch.setattr("workbench.tui.screens.fleet.fleet_source", lambda workspace, url: made[-1])
    return made


async def open_fleet(pilot, app: WorkbenchApp) -> FleetScreen:
    await settle(pilot)
    await pilot.press("f6")
    screen = app.screen
    assert isinstance(screen, FleetScreen)
    await until(pilot, lambda: screen.state is not None)
    return screen


async def test_the_board_the_spread_and_a_failed_servers_details(ui_workspace: Workspace,
                                                                 source: list[FakeSource]) -> None:
    state = fleet_state()
    fake = FakeSource(state)
    source.append(fake)
    failed = next(s for s in state.servers if s.health is Health.RED and s.state == "failed")
    fake.history[(failed.tower, failed.server)] = [
        FleetEvent(failed.tower, failed.server, dt.datetime(2026, 11, 18, 11, 0, tzinfo=dt.UTC), "failed",
                   4, 5, "refused serial 5: self-test failed"),
        FleetEvent(failed.tower, failed.server, dt.datetime(2026, 11, 17, 9, 0, tzinfo=dt.UTC), "ok", 4, None, ""),
    ]
    app = make_app(ui_workspace, fleet_refresh=30)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_fleet(pilot, app)
        summary = static_text(screen.query_one("#fleet-summary", Static))
        on_newest = sum(1 for s in state.servers if s.serial == 5)
        assert f"Newest serial 5 · on {on_newest:,} of {len(state.servers):,} servers" in summary
        assert f"{state.counts['red']:,} red" in summary and "failed" in summary and "silent" in summary
        assert "serials in use: 5 on" in summary
        assert "from a test fleet" in static_text(screen.query_one("#fleet-source", Static))
        board = screen.query_one(FleetBoard)
        assert len(board.servers) == len(state.servers) and board.towers[0].tower == "t000"
        # tab walks to the problems; the details follow with the error and history
        while board.current() != failed:
            await pilot.press("tab")
        await settle(pilot)
        detail = static_text(screen.query_one("#fleet-detail", Static))
        assert f"{failed.tower} / {failed.server}" in detail and "red" in detail
        assert "last error" in detail and "self-test failed" in detail
        assert "serial   4 (target 5)" in detail and "11-18 11:00:00 failed" in detail


async def test_live_refresh_follows_the_towers(ui_workspace: Workspace, source: list[FakeSource]) -> None:
    before = summarize([record("t1", "a", serial=1), record("t1", "b", serial=1)], 2, now=NOW)
    after = summarize([record("t1", "a", serial=2), record("t1", "b", serial=2)], 2, now=NOW + 5)
    fake = FakeSource(before, after)
    source.append(fake)
    app = make_app(ui_workspace, fleet_refresh=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_fleet(pilot, app)
        await until(pilot, lambda: screen.state is after)
        board = screen.query_one(FleetBoard)
        assert {s.health for s in board.servers} == {Health.GREEN}
        assert "on 2 of 2 servers (100%)" in static_text(screen.query_one("#fleet-summary", Static))
        # space pauses polling; r still refreshes at once
        await pilot.press("space")
        polls = fake.polls
        await pilot.pause(0.4)
        assert fake.polls == polls
        assert "paused" in static_text(screen.query_one("#fleet-source", Static))
        await pilot.press("r")
        await until(pilot, lambda: fake.polls == polls + 1)
        # away from the screen it does not poll either
        await pilot.press("space", "f2")
        polls = fake.polls
        await pilot.pause(0.4)
        assert fake.polls <= polls + 1


async def test_an_unreachable_server_is_shown_and_the_last_board_kept(ui_workspace: Workspace,
                                                                       source: list[FakeSource]) -> None:
    good = summarize([record("t1", "a")], 5, now=NOW)
    fake = FakeSource(good, ClientError("cannot reach http://fleet.example:8470/v1/fleet: refused"))
    source.append(fake)
    app = make_app(ui_workspace, fleet_refresh=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_fleet(pilot, app)
        await until(pilot, lambda: bool(screen.error))
        text = static_text(screen.query_one("#fleet-source", Static))
        assert "cannot reach http://fleet.example:8470" in text and "showing the last board read" in text
        assert screen.state is good and len(screen.query_one(FleetBoard).servers) == 1


async def test_no_reports_yet_says_how_towers_report(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)                        # the real local source: nothing reported
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_fleet(pilot, app)
        summary = static_text(screen.query_one("#fleet-summary", Static))
        assert "none published" in summary and "no tower server has reported yet" in summary
        assert "this workspace's fleet store" in static_text(screen.query_one("#fleet-source", Static))
        assert "choose a server" in static_text(screen.query_one("#fleet-detail", Static))


async def test_servers_that_never_reported_are_red_bars_with_their_reason(
        ui_workspace: Workspace, source: list[FakeSource]) -> None:
    records = [record("t1", "a"), record("t1", "b"),
               record("t1", "c", state="failed", serial=4, target=5, error="boom"),
               record("t2", "x"), record("t2", "y")]
    expected = {"t1": ["a", "b", "c", "d"], "t2": ["x"], "t3": ["p", "q"]}
    state = summarize(records, 5, now=NOW, expected=expected)
    source.append(FakeSource(state))
    app = make_app(ui_workspace, fleet_refresh=30)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_fleet(pilot, app)
        board = screen.query_one(FleetBoard)
        assert [(s.tower, s.server) for s in board.servers] == [
            ("t1", "a"), ("t1", "b"), ("t1", "c"), ("t1", "d"), ("t2", "x"), ("t2", "y"),
            ("t3", "p"), ("t3", "q")]
        assert [t.tower for t in board.towers] == ["t1", "t2", "t3"]     # a tower nobody reported from
        summary = static_text(screen.query_one("#fleet-summary", Static))
        assert "4 red (1 failed, 3 never reported)" in summary and "1 not in the inventory" in summary
        # each never-reported server is a red bar in its tower's line
        for i, s in enumerate(board.servers):
            line = board._line_of[i]
            drawn = board.render_line(line - int(board.scroll_y)).text
            column = board.name_width() + 1 + i - board.lines[line].first
            assert drawn[column] == GLYPHS[s.health], (s.server, drawn)
        assert [GLYPHS[s.health] for s in board.servers if s.never_reported] == [GLYPHS[Health.RED]] * 3
        # tab: the failed one, then the one that never reported, and its details say so
        await pilot.press("tab", "tab")
        await settle(pilot)
        assert (board.current().tower, board.current().server) == ("t1", "d")
        detail = static_text(screen.query_one("#fleet-detail", Static))
        assert "t1 / d" in detail and "red  never reported" in detail
        assert "reported never" in detail and "workbench fleet forget t1 d" in detail
        assert "history" not in detail and "last error" not in detail
        # a server that reports but is not listed keeps its colour and says why it is flagged
        board.action_jump(5)
        await settle(pilot)
        detail = static_text(screen.query_one("#fleet-detail", Static))
        assert "green  on serial 5 (not in the inventory)" in detail
        assert "`workbench fleet expect t2 y` adds it" in detail


@pytest.mark.parametrize(("stage", "shown"), [
    ("canary", "Rollout serial 6 on its canaries (t000, t001)"),
    ("halted", "Rollout serial 6 HALTED on its canaries (t000, t001)"),
    ("all", "Rollout serial 6 PROMOTED from its canaries (t000, t001) to every tower"),
])
async def test_the_canary_rollout_is_on_the_board_with_its_reason(
        ui_workspace: Workspace, source: list[FakeSource], stage: str, shown: str) -> None:
    canary = Canary(serial=6, stage=stage, towers=("t000", "t001"), since="2026-11-18T11:00:00Z",
                    reason="rule X looks like a false-positive storm" if stage == "halted" else "")
    records = [record("t000", "a", serial=6), record("t001", "b", serial=6), record("t002", "c", serial=5)]
    source.append(FakeSource(summarize(records, 5 if stage != "all" else 6, now=NOW, canary=canary)))
    app = make_app(ui_workspace, fleet_refresh=30)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_fleet(pilot, app)
        summary = static_text(screen.query_one("#fleet-summary", Static))
        assert shown + " since 2026-11-18 11:00:00" in summary
        if stage == "halted":
            assert "false-positive storm" in summary
        greens = {s.server for s in screen.query_one(FleetBoard).servers if s.health is Health.GREEN}
        assert greens == ({"a", "b", "c"} if stage == "canary" else {"a", "b"} if stage == "all" else {"c"})
