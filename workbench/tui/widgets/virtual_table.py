"""A table drawn line by line (Textual's Line API): only the visible rows are ever built.

Subclasses say how many rows there are and what a row's cells are; a row whose data
is not loaded yet returns ``None`` and is drawn as a placeholder, so the table never
waits for data. The first line is a fixed header; clicking a title posts
``HeaderClicked`` (the quarantine list sorts by it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip

from workbench.tui.widgets.drawn_view import DrawnView

Cell = str | Text


def fit(text: str, width: int) -> str:
    """``text`` on one line, cut with an ellipsis or padded to exactly ``width`` cells."""
    text = text.replace("\n", " ").replace("\t", " ")
    if text.isascii() and text.isprintable():
        return text[: width - 1] + "…" if len(text) > width else text.ljust(width)
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


SORT_ARROWS = ("▲", "▼")


def fit_title(title: str, width: int) -> str:
    """A header title in ``width`` cells; a sort arrow at its end always stays in sight."""
    if cell_len(title) <= width or width < 3 or not title.endswith(SORT_ARROWS):
        return fit(title, width)
    arrow = title[-1]
    return set_cell_size(title[:-1].rstrip(), width - 2) + " " + arrow


def cell_text(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int = 0            # 0: share the space left by fixed columns, by weight
    min_width: int = 6
    weight: int = 1


class VirtualTable(DrawnView, can_focus=True):
    """Rows drawn on demand with a cursor and optional marks."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    COMPONENT_CLASSES = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--marked",
        "virtual-table--placeholder",
    }

    DEFAULT_CSS = """
    VirtualTable {
        background: $surface;
        scrollbar-gutter: stable;
        overflow-y: scroll;
        overflow-x: hidden;
        & > .virtual-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .virtual-table--cursor { background: $block-cursor-blurred-background; }
        & > .virtual-table--marked { color: $warning; text-style: bold; }
        & > .virtual-table--placeholder { color: $foreground 40%; }
        &:focus > .virtual-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    cursor_row: reactive[int] = reactive(0, repaint=False, always_update=True)

    @dataclass(eq=False)
    class _TableMessage(Message):
        table: VirtualTable

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Highlighted(_TableMessage):
        """The cursor moved to ``row``."""

        def __init__(self, table: VirtualTable, row: int) -> None:
            super().__init__(table)
            self.row = row

    class Selected(_TableMessage):
        """``row`` was chosen (enter or a double click)."""

        def __init__(self, table: VirtualTable, row: int) -> None:
            super().__init__(table)
            self.row = row

    class HeaderClicked(_TableMessage):
        def __init__(self, table: VirtualTable, column: Column) -> None:
            super().__init__(table)
            self.column = column

    def __init__(self, columns: Sequence[Column], *, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self._line_cache: LRUCache[tuple[object, ...], Strip] = LRUCache(maxsize=512)
        self._epoch = 0          # bumped whenever cached lines go stale

    # -- what subclasses provide ----------------------------------------------------

    def row_count(self) -> int:
        raise NotImplementedError

    def row_cells(self, row: int) -> Sequence[Cell] | None:
        """The cells of a row, or None while its data is loading."""
        raise NotImplementedError

    def row_marked(self, row: int) -> bool:
        return False

    def header_titles(self) -> list[str]:
        return [c.title for c in self.columns]

    # -- state changes ---------------------------------------------------------------

    def reset(self) -> None:
        """The rows changed: drop drawn lines and recompute the scroll extent."""
        self._epoch += 1
        self._line_cache.clear()
        count = self.row_count()
        self.virtual_size = Size(self.scrollable_content_region.width, count + 1)
        if self.cursor_row >= count:
            self.cursor_row = max(0, count - 1)
        self.refresh()

    def forget_drawn_lines(self) -> None:
        self._line_cache.clear()

    def on_resize(self, event: events.Resize) -> None:
        self._line_cache.clear()
        self.virtual_size = Size(event.size.width, self.row_count() + 1)

    # -- cursor ------------------------------------------------------------------------

    @property
    def visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def watch_cursor_row(self, old: int, new: int) -> None:
        # cached lines know whether they hold the cursor: only two lines change, unless we scroll
        top = int(self.scroll_y)
        self._scroll_cursor_into_view()
        if int(self.scroll_y) != top:
            self.refresh()
        else:
            for row in (old, new):
                if top <= row < top + self.visible_rows:
                    self.refresh_line(row - top + 1)
        self.post_message(self.Highlighted(self, new))

    def validate_cursor_row(self, row: int) -> int:
        count = self.row_count()
        return 0 if count == 0 else max(0, min(row, count - 1))

    def _scroll_cursor_into_view(self) -> None:
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + self.visible_rows:
            self.scroll_to(y=self.cursor_row - self.visible_rows + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.cursor_row += delta

    def action_page(self, direction: int) -> None:
        self.cursor_row += direction * self.visible_rows

    def action_jump(self, row: int) -> None:
        self.cursor_row = row if row >= 0 else self.row_count() - 1

    def action_select(self) -> None:
        if self.row_count():
            self.post_message(self.Selected(self, self.cursor_row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x)
            if column is not None:
                self.post_message(self.HeaderClicked(self, column))
            return
        row = int(self.scroll_y) + offset.y - 1
        if row < self.row_count():
            if row == self.cursor_row and event.chain >= 2:
                self.post_message(self.Selected(self, row))
            self.cursor_row = row

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """A cell cut short shows in full as the tooltip (tag names, paths, long messages)."""
        offset = event.get_content_offset(self)
        full = None
        if offset is not None:
            row = -1 if offset.y == 0 else int(self.scroll_y) + offset.y - 1
            index = self._column_index_at(offset.x)
            if index is not None and row < self.row_count():
                cells = self.header_titles() if row < 0 else self.row_cells(row)
                if cells is not None and index < len(cells):
                    text = cell_text(cells[index])
                    width = self.column_widths(self.scrollable_content_region.width)[index]
                    if cell_len(text.replace("\n", " ")) > width:
                        full = text
        if full != self.tooltip:
            self.tooltip = full

    def _column_index_at(self, x: int) -> int | None:
        left = 0
        for i, width in enumerate(self.column_widths(self.scrollable_content_region.width)):
            if left <= x < left + width + 1:
                return i
            left += width + 1
        return None

    # -- drawing -------------------------------------------------------------------------

    def column_widths(self, width: int) -> list[int]:
        gaps = max(0, len(self.columns) - 1)
        fixed = sum(c.width for c in self.columns if c.width)
        weights = sum(c.weight for c in self.columns if not c.width)
        spare = max(0, width - fixed - gaps)
        widths = [c.width or max(c.min_width, spare * c.weight // weights) for c in self.columns]
        # rounding leaves a few cells over: give them to the last flexible column
        flexible = [i for i, c in enumerate(self.columns) if not c.width]
        if flexible:
            widths[flexible[-1]] += max(0, width - gaps - sum(widths))
        return widths

    def _column_at(self, x: int) -> Column | None:
        left = 0
        for column, width in zip(self.columns, self.column_widths(self.scrollable_content_region.width), strict=True):
            if left <= x < left + width + 1:
                return column
            left += width + 1
        return None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            key: tuple[object, ...] = ("header", width, self._epoch, tuple(self.header_titles()))
            row = -1
        else:
            row = int(self.scroll_y) + y - 1
            if row >= self.row_count():
                return Strip.blank(width, self._style())
            key = (row, width, self._epoch, row == self.cursor_row, self.has_focus)
        cached = self._line_cache.get(key)
        if cached is not None:
            return cached
        strip, complete = self._render_row(row, width)
        if complete:                       # placeholders are drawn again once data arrives
            self._line_cache[key] = strip
        return strip

    def _render_row(self, row: int, width: int) -> tuple[Strip, bool]:
        complete = True
        if row < 0:
            cells: Sequence[Cell] = self.header_titles()
            style = self._style("virtual-table--header")
        else:
            loaded = self.row_cells(row)
            if loaded is None:
                complete = False
                cells = ["…"] + [""] * (len(self.columns) - 1)
                style = self._style("virtual-table--placeholder")
            else:
                cells = loaded
                style = self._style()
            if self.row_marked(row):
                style += self._style("virtual-table--marked")
            if row == self.cursor_row:
                style += self._style("virtual-table--cursor")
        segments: list[Segment] = []
        gap = Segment(" ", style)
        for i, (cell, w) in enumerate(zip(cells, self.column_widths(width), strict=False)):
            if i:
                segments.append(gap)
            if isinstance(cell, Text):
                text = cell.copy()
                text.truncate(w, overflow="ellipsis", pad=True)
                segments.extend(Segment(s.text, style + s.style if s.style else style)
                                for s in text.render(self.app.console) if s.text)
            elif row < 0:
                segments.append(Segment(fit_title(str(cell), w), style))
            else:
                # plain cells (most of them) skip Rich's Text machinery
                segments.append(Segment(fit(str(cell), w), style))
        return Strip(segments).adjust_cell_length(width, style), complete
