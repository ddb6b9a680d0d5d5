"""The fleet board widget: layout, drawing, and moving between servers."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from tests.support.fleet import NOW, fleet_state, record
from workbench.distribute.fleet import Health, summarize
from workbench.tui.widgets.fleet_board import GLYPHS, BoardLine, FleetBoard, layout

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


class BoardApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str]] = []

    def compose(self) -> ComposeResult:
        yield FleetBoard(id="board")

    def on_fleet_board_highlighted(self, event: FleetBoard.Highlighted) -> None:
        self.seen.append(("highlighted", event.server.tower, event.server.server))

    def on_fleet_board_selected(self, event: FleetBoard.Selected) -> None:
        self.seen.append(("selected", event.server.tower, event.server.server))


def test_layout_wraps_big_towers_and_keeps_empty_ones() -> None:
    assert layout([3, 0, 5], 2) == [
        BoardLine(0, 0, 2, True), BoardLine(0, 2, 1, False),
        BoardLine(1, 3, 0, True),
        BoardLine(2, 3, 2, True), BoardLine(2, 5, 2, False), BoardLine(2, 7, 1, False),
    ]
    assert layout([], 10) == []


def line_text(board: FleetBoard, y: int) -> str:
    return board.render_line(y).text


async def test_board_draws_a_bar_per_server_in_its_health() -> None:
    state = summarize([record("ams-t03", "mx01"), record("ams-t03", "mx02", serial=4),
                       record("ams-t03", "mx03", state="failed", error="boom"),
                       record("fra-t07", "mx01")], 5, now=NOW)
    app = BoardApp()
    async with app.run_test(size=(100, 10)) as pilot:
        board = app.query_one(FleetBoard)
        board.show(state)
        await pilot.pause()
        first, second = line_text(board, 0), line_text(board, 1)
        bars = f"{GLYPHS[Health.GREEN]}{GLYPHS[Health.YELLOW]}{GLYPHS[Health.RED]}"
        assert first.startswith("ams-t03") and bars in first and "3  ✓1 ⚠1 ✗1" in first
        assert second.startswith("fra-t07") and "✓1 ⚠0 ✗0" in second
        # the counts line up in one column whatever the tower's size
        assert first.index("✓") == second.index("✓")
        # the red bar is drawn in the error colour, the cursor's bar highlighted
        strip = board.render_line(0)
        red = next(seg for seg in strip if seg.text == GLYPHS[Health.RED])
        green = next(seg for seg in strip if seg.text == GLYPHS[Health.GREEN])
        assert red.style is not None and green.style is not None and red.style.color != green.style.color
        assert green.style.bgcolor != red.style.bgcolor          # the cursor sits on the first server
        assert app.seen[-1] == ("highlighted", "ams-t03", "mx01")


async def test_moving_between_servers_and_towers() -> None:
    app = BoardApp()
    async with app.run_test(size=(50, 20)) as pilot:
        board = app.query_one(FleetBoard)
        board.focus()
        board.show(fleet_state(towers=30))
        await pilot.pause()
        per_line = board.per_line
        assert 1 < per_line < 36
        assert len(board.lines) > 30                    # big towers take more than one line
        await pilot.press("right", "right")
        assert board.cursor == 2
        await pilot.press("down")                       # the next line, the same column
        line = board.lines[1]
        assert board.cursor == line.first + 2 and board.current() is board.servers[line.first + 2]
        await pilot.press("end")
        assert board.cursor == len(board.servers) - 1
        assert int(board.scroll_y) > 0                  # the cursor's line scrolled into view
        await pilot.press("home", "tab")
        problem = board.current()
        assert problem is not None and problem.health is not Health.GREEN
        assert all(s.health is Health.GREEN for s in board.servers[:board.cursor])
        await pilot.press("enter")
        assert app.seen[-1] == ("selected", problem.tower, problem.server)


async def test_a_refresh_keeps_the_cursor_on_the_same_server() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 20)) as pilot:
        board = app.query_one(FleetBoard)
        board.show(fleet_state(towers=10))
        await pilot.pause()
        board.action_jump(40)
        chosen = board.current()
        assert chosen is not None
        # a new document where the first tower went away: the cursor follows the server
        newer = fleet_state(towers=10)
        first = newer.towers[0].tower
        newer = summarize([r for r in _records_of(newer) if r.tower != first], 5, now=NOW)
        board.show(newer)
        current = board.current()
        assert current is not None and (current.tower, current.server) == (chosen.tower, chosen.server)
        board.show(None)
        assert board.current() is None and board.lines == []


async def test_clicking_a_bar_selects_its_server() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 10)) as pilot:
        board = app.query_one(FleetBoard)
        board.show(summarize([record("t1", f"mx{n}") for n in range(5)], 5, now=NOW))
        await pilot.pause()
        x = board.name_width() + 1 + 3                   # the fourth bar
        await pilot.click(FleetBoard, offset=(x, 0))
        assert app.seen[-1] == ("selected", "t1", "mx3")


def _records_of(state):  # the records a summarised state came from (enough for these tests)
    return [record(s.tower, s.server, serial=s.serial, state=s.state, age=s.age_seconds,
                   error=s.error, target=s.target_serial) for s in state.servers]
