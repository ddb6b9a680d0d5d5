"""The NOC board: one line (or more) per tower, one coloured bar per server, drawn line by line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip

from workbench.distribute.fleet import FleetState, Health, ServerStatus, TowerSummary
from workbench.tui.safety import visible
from workbench.tui.widgets.drawn_view import DrawnView
from workbench.tui.widgets.virtual_table import fit

# each state has its own shape as well as its colour, so the board reads without colour too:
# a tower is a green strip (7/8 high: rows do not run together), behind is a dip, failed or
# silent a full-height shaded block that stands out
GLYPHS = {Health.GREEN: "▇", Health.YELLOW: "▄", Health.RED: "▓"}
NAME_MAX = 16
SUMMARY_WIDTH = 22          # " 36  ✓34 ⚠1 ✗1" and room to spare
CELL = 1                    # cells per server: 36 servers take 36 columns


@dataclass(frozen=True)
class BoardLine:
    tower: int              # index into the board's towers
    first: int              # index of the line's first server in the flat list
    count: int
    head: bool              # the tower's first line carries its name and counts


def layout(sizes: Sequence[int], per_line: int) -> list[BoardLine]:
    """Lines for towers of ``sizes`` servers, ``per_line`` bars to a line (pure, for tests)."""
    lines: list[BoardLine] = []
    first = 0
    per_line = max(1, per_line)
    for tower, size in enumerate(sizes):
        for start in range(0, max(size, 1), per_line):
            lines.append(BoardLine(tower, first + start, max(0, min(per_line, size - start)),
                                   start == 0))
        first += size
    return lines


class FleetBoard(DrawnView, can_focus=True):
    """Attributes down: ``show(state)``. Messages up: ``Highlighted`` and ``Selected`` servers."""

    BINDINGS = [
        Binding("left,h", "move(-1)", "Previous server", show=False),
        Binding("right,l", "move(1)", "Next server", show=False),
        Binding("up,k", "line(-1)", "Tower above", show=False),
        Binding("down,j", "line(1)", "Tower below", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("tab", "next_problem", "Next problem", show=False),
        Binding("enter", "select", "Details", show=False),
    ]

    COMPONENT_CLASSES = {
        "fleet-board--green", "fleet-board--yellow", "fleet-board--red",
        "fleet-board--name", "fleet-board--muted", "fleet-board--cursor",
    }

    DEFAULT_CSS = """
    FleetBoard {
        background: $surface;
        overflow-y: auto;
        overflow-x: hidden;
        & > .fleet-board--green { color: $success; }
        & > .fleet-board--yellow { color: $warning; }
        & > .fleet-board--red { color: $error; text-style: bold; }
        & > .fleet-board--name { text-style: bold; }
        & > .fleet-board--muted { color: $text-muted; }
        & > .fleet-board--cursor { background: $block-cursor-blurred-background; }
        &:focus > .fleet-board--cursor { background: $block-cursor-background; }
    }
    """

    @dataclass(eq=False)
    class Highlighted(Message):
        board: FleetBoard
        server: ServerStatus

        @property
        def control(self) -> FleetBoard:
            return self.board

    class Selected(Highlighted):
        """enter or a click on a server: show its details."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: FleetState | None = None
        self.towers: list[TowerSummary] = []
        self.servers: list[ServerStatus] = []          # tower by tower, in board order
        self.lines: list[BoardLine] = []
        self.cursor = 0
        self.per_line = 1
        self._line_of: list[int] = []                  # server index -> line
        self._width = 0
        self._epoch = 0
        self._cache: LRUCache[tuple[object, ...], Strip] = LRUCache(maxsize=256)

    # -- data ------------------------------------------------------------------------

    def show(self, state: FleetState | None) -> None:
        """A new fleet document; the cursor stays on the same server when it is still there."""
        keep = self.current()
        self.state = state
        self.towers = list(state.towers) if state else []
        by_tower: dict[str, list[ServerStatus]] = {t.tower: [] for t in self.towers}
        for s in state.servers if state else []:
            by_tower.setdefault(s.tower, []).append(s)
        self.servers = [s for t in self.towers for s in by_tower[t.tower]]
        self.cursor = 0
        if keep is not None:
            for i, s in enumerate(self.servers):
                if s.tower == keep.tower and s.server == keep.server:
                    self.cursor = i
                    break
        self._relayout()
        if self.servers:
            self.post_message(self.Highlighted(self, self.servers[self.cursor]))

    def current(self) -> ServerStatus | None:
        return self.servers[self.cursor] if 0 <= self.cursor < len(self.servers) else None

    def _relayout(self) -> None:
        width = self.scrollable_content_region.width or self.size.width
        self._width = width
        per_line = max(1, (width - self.name_width() - 1 - SUMMARY_WIDTH) // CELL)
        longest = max((t.servers for t in self.towers), default=1)
        self.per_line = per_line = min(per_line, max(1, longest))
        counted = {t.tower: 0 for t in self.towers}
        for s in self.servers:
            counted[s.tower] += 1
        # a document without the per-server list still shows its towers (as empty lines)
        sizes = [counted[t.tower] for t in self.towers]
        self.lines = layout(sizes, per_line)
        self._line_of = [0] * len(self.servers)
        for n, line in enumerate(self.lines):
            for i in range(line.first, line.first + line.count):
                self._line_of[i] = n
        self._epoch += 1
        self._cache.clear()
        self.virtual_size = Size(width, len(self.lines))
        self._scroll_to_cursor()
        self.refresh()

    def name_width(self) -> int:
        return min(NAME_MAX, max((cell_len(t.tower) for t in self.towers), default=5)) + 1

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._width:
            self._relayout()

    def forget_drawn_lines(self) -> None:
        self._cache.clear()

    # -- cursor ------------------------------------------------------------------------

    def _move_to(self, index: int) -> None:
        if not self.servers:
            return
        index = max(0, min(index, len(self.servers) - 1))
        old_line = self._line_of[self.cursor] if self.cursor < len(self._line_of) else 0
        self.cursor = index
        self._scroll_to_cursor()
        top = int(self.scroll_y)
        for line in (old_line, self._line_of[index]):
            if top <= line < top + self.scrollable_content_region.height:
                self.refresh_line(line - top)
        self.post_message(self.Highlighted(self, self.servers[index]))

    def _scroll_to_cursor(self) -> None:
        if not self.servers:
            return
        line = self._line_of[self.cursor]
        top = int(self.scroll_y)
        height = max(1, self.scrollable_content_region.height)
        if line < top:
            self.scroll_to(y=line, animate=False, immediate=True)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False, immediate=True)

    def action_move(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_line(self, delta: int) -> None:
        if not self.servers:
            return
        here = self.lines[self._line_of[self.cursor]]
        column = self.cursor - here.first
        target = self._line_of[self.cursor] + delta
        while 0 <= target < len(self.lines) and not self.lines[target].count:
            target += delta           # skip towers without servers listed
        if 0 <= target < len(self.lines):
            line = self.lines[target]
            self._move_to(line.first + min(column, line.count - 1))

    def action_page(self, direction: int) -> None:
        for _ in range(max(1, self.scrollable_content_region.height - 1)):
            self.action_line(direction)

    def action_jump(self, index: int) -> None:
        self._move_to(index if index >= 0 else len(self.servers) - 1)

    def action_next_problem(self) -> None:
        """The next server that is not green (wrapping), so a red one is one key away."""
        count = len(self.servers)
        for step in range(1, count + 1):
            i = (self.cursor + step) % count
            if self.servers[i].health is not Health.GREEN:
                self._move_to(i)
                return

    def action_select(self) -> None:
        current = self.current()
        if current is not None:
            self.post_message(self.Selected(self, current))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        line_no = int(self.scroll_y) + offset.y
        if not 0 <= line_no < len(self.lines):
            return
        line = self.lines[line_no]
        column = (offset.x - self.name_width() - 1) // CELL
        if 0 <= column < line.count:
            self._move_to(line.first + column)
            self.action_select()

    # -- drawing -------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line_no = int(self.scroll_y) + y
        if not 0 <= line_no < len(self.lines):
            return Strip.blank(width, self._style())
        line = self.lines[line_no]
        cursor = self.cursor - line.first if line.first <= self.cursor < line.first + line.count else -1
        key = (line_no, width, self._epoch, cursor, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = self._draw_line(line, width, cursor)
        return strip

    def _draw_line(self, line: BoardLine, width: int, cursor: int) -> Strip:
        base = self._style()
        tower = self.towers[line.tower]
        name_width = self.name_width()
        health_style = {h: self._style(f"fleet-board--{h.value}") for h in Health}
        segments: list[Segment] = []
        if line.head:
            name_style = self._style("fleet-board--name") + health_style[tower.health]
            segments.append(Segment(fit(visible(tower.tower), name_width), name_style))
        else:
            segments.append(Segment(" " * name_width, base))
        segments.append(Segment(" ", base))
        cursor_style = self._style("fleet-board--cursor")
        for n, server in enumerate(self.servers[line.first:line.first + line.count]):
            style = health_style[server.health]
            if n == cursor:
                style += cursor_style
            segments.append(Segment(GLYPHS[server.health], style))
        if line.count < self.per_line:          # counts line up in one column
            segments.append(Segment(" " * (CELL * (self.per_line - line.count)), base))
        if line.head:
            muted = self._style("fleet-board--muted")
            segments.append(Segment(f" {tower.servers:>3} ", muted))
            for count, health, mark in ((tower.green, Health.GREEN, "✓"),
                                        (tower.yellow, Health.YELLOW, "⚠"),
                                        (tower.red, Health.RED, "✗")):
                segments.append(Segment(f" {mark}{count}", health_style[health] if count else muted))
        return Strip(segments).adjust_cell_length(width, base)
