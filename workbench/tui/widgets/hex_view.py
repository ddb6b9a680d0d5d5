"""A hex view drawn line by line: offsets, bytes, ASCII, a byte cursor and a selected range."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

ROW = 16


def printable(byte: int) -> str:
    return chr(byte) if 0x20 <= byte < 0x7F else "."


def parse_offset(text: str) -> int:
    """``0x1f0``, ``1f0h``, ``$1f0`` and ``496`` all name byte 496; ValueError otherwise."""
    value = text.strip().lower().replace("_", "")
    if value.startswith(("0x", "$")):
        return int(value.lstrip("$").removeprefix("0x"), 16)
    if value.endswith("h"):
        return int(value[:-1], 16)
    if any(c in "abcdef" for c in value):
        return int(value, 16)
    return int(value, 10)


HEX_START = 10                      # "00000000  "
ASCII_START = HEX_START + ROW * 3 + 2   # the bytes, an extra gap after the 8th, then "│"


def column_at(x: int) -> int | None:
    """Which byte of a row the cell ``x`` shows, in the hex or the ASCII part."""
    for i in range(ROW):
        left = HEX_START + 3 * i + (1 if i >= 8 else 0)
        if left <= x < left + 2:
            return i
    if ASCII_START <= x < ASCII_START + ROW:
        return x - ASCII_START
    return None


class HexView(ScrollView, can_focus=True):
    """Attributes down: ``data``. Messages up: ``CursorMoved`` (the screen shows where)."""

    BINDINGS = [
        Binding("left", "move(-1)", show=False),
        Binding("right", "move(1)", show=False),
        Binding("up", "move(-16)", show=False),
        Binding("down", "move(16)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "row_edge(0)", show=False),
        Binding("end", "row_edge(1)", show=False),
        Binding("ctrl+home", "jump(0)", show=False),
        Binding("ctrl+end", "jump(-1)", show=False),
        Binding("shift+left", "extend(-1)", show=False),
        Binding("shift+right", "extend(1)", show=False),
        Binding("shift+up", "extend(-16)", show=False),
        Binding("shift+down", "extend(16)", show=False),
        Binding("v", "toggle_selection", "Select"),
    ]

    COMPONENT_CLASSES = {"hex-view--offset", "hex-view--cursor", "hex-view--selection",
                         "hex-view--zero"}

    DEFAULT_CSS = """
    HexView {
        background: $surface;
        overflow-y: scroll;
        & > .hex-view--offset { color: $text-muted; }
        & > .hex-view--zero { color: $foreground 40%; }
        & > .hex-view--selection { background: $accent 40%; }
        & > .hex-view--cursor { background: $block-cursor-blurred-background; }
        &:focus > .hex-view--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    }
    """

    cursor: reactive[int] = reactive(0, repaint=False)

    @dataclass(eq=False)
    class CursorMoved(Message):
        view: HexView
        offset: int
        selection: tuple[int, int] | None

    def __init__(self, data: bytes = b"", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._data = data
        self.select_from: int | None = None
        self._lines: LRUCache[tuple[int, int], Strip] = LRUCache(256)

    @property
    def data(self) -> bytes:
        return self._data

    @data.setter
    def data(self, value: bytes) -> None:
        self._data = value
        self.select_from = None
        self.cursor = 0
        self._lines.clear()
        self._update_size()
        self.refresh()

    @property
    def rows(self) -> int:
        return (len(self._data) + ROW - 1) // ROW

    @property
    def selection(self) -> tuple[int, int] | None:
        """(start, end) inclusive, when a range is selected."""
        if self.select_from is None:
            return None
        return (min(self.select_from, self.cursor), max(self.select_from, self.cursor))

    def selected_bytes(self) -> bytes:
        span = self.selection
        if span is None:
            return self._data[self.cursor:self.cursor + 1]
        return self._data[span[0]:span[1] + 1]

    def _update_size(self) -> None:
        self.virtual_size = Size(ASCII_START + ROW + 1, self.rows)

    def on_mount(self) -> None:
        self._update_size()

    def notify_style_update(self) -> None:
        self._lines.clear()
        super().notify_style_update()

    # -- movement --------------------------------------------------------------------

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, max(0, len(self._data) - 1)))

    def watch_cursor(self) -> None:
        self._lines.clear()
        row = self.cursor // ROW
        top = int(self.scroll_y)
        height = max(1, self.scrollable_content_region.height)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.CursorMoved(self, self.cursor, self.selection))

    def go_to(self, offset: int, *, select_to: int | None = None) -> None:
        """Put the cursor on ``offset`` (and select up to ``select_to``, inclusive)."""
        if select_to is not None:
            self.select_from = self.validate_cursor(offset)
            self.cursor = select_to
        else:
            self.select_from = None
            self.cursor = offset
        self._lines.clear()
        self.refresh()

    def action_move(self, delta: int) -> None:
        self.cursor += delta

    def action_extend(self, delta: int) -> None:
        if self.select_from is None:
            self.select_from = self.cursor
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * ROW * max(1, self.scrollable_content_region.height - 1)

    def action_row_edge(self, end: int) -> None:
        self.cursor = self.cursor - self.cursor % ROW + (ROW - 1 if end else 0)

    def action_jump(self, offset: int) -> None:
        self.cursor = offset if offset >= 0 else len(self._data) - 1

    def action_toggle_selection(self) -> None:
        self.select_from = None if self.select_from is not None else self.cursor
        self._lines.clear()
        self.refresh()
        self.post_message(self.CursorMoved(self, self.cursor, self.selection))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = int(self.scroll_y) + offset.y
        column = column_at(offset.x)
        if column is None:
            return
        target = row * ROW + column
        if target < len(self._data):
            if event.shift and self.select_from is None:
                self.select_from = self.cursor
            elif not event.shift:
                self.select_from = None
            self.cursor = target

    # -- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if row >= self.rows:
            return Strip.blank(width, self.rich_style)
        # every cursor or selection change clears the cache, so (row, width) is enough
        key = (row, width)
        cached = self._lines.get(key)
        if cached is None:
            cached = self._lines[key] = self._render_row(row, width, self.selection or (-1, -1))
        return cached

    def _render_row(self, row: int, width: int, span: tuple[int, int]) -> Strip:
        base = self.rich_style
        offset_style = base + self.get_component_rich_style("hex-view--offset")
        zero_style = base + self.get_component_rich_style("hex-view--zero")
        selected = self.get_component_rich_style("hex-view--selection")
        cursor = self.get_component_rich_style("hex-view--cursor")
        start = row * ROW
        chunk = self._data[start:start + ROW]
        segments = [Segment(f"{start:08x}  ", offset_style)]
        ascii_segments: list[Segment] = []

        def style_for(position: int, byte: int) -> Style:
            style = zero_style if byte == 0 else base
            if span[0] <= position <= span[1]:
                style += selected
            if position == self.cursor:
                style += cursor
            return style

        for i in range(ROW):
            position = start + i
            if i < len(chunk):
                byte = chunk[i]
                style = style_for(position, byte)
                segments.append(Segment(f"{byte:02x}", style))
                ascii_segments.append(Segment(printable(byte), style))
            else:
                segments.append(Segment("  ", base))
                ascii_segments.append(Segment(" ", base))
            segments.append(Segment(" " if i != 7 else "  ", base))
        segments.append(Segment("│", offset_style))
        segments.extend(ascii_segments)
        segments.append(Segment("│", offset_style))
        return Strip(segments).adjust_cell_length(width, base)
