"""A virtual table over a list of items the screen hands down, one row per item."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from rich.segment import Segment
from textual.strip import Strip

from workbench.tui.widgets.virtual_table import Cell, Column, VirtualTable, fit

T = TypeVar("T")


class ListTable(VirtualTable, Generic[T]):
    """Attributes down: ``show(items)``; ``cells(item)`` draws a row. Messages: VirtualTable's."""

    def __init__(self, columns: Sequence[Column], cells: Callable[[T], Sequence[Cell]], *,
                 empty: str = "", id: str | None = None, classes: str | None = None) -> None:
        super().__init__(columns, id=id, classes=classes)
        self.items: list[T] = []
        self.cells = cells
        self.empty = empty          # shown in the first row when there is nothing to list

    def show(self, items: Sequence[T], *, keep_cursor: bool = False) -> None:
        self.items = list(items)
        if not keep_cursor:
            self.cursor_row = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        self.reset()

    def row_count(self) -> int:
        return len(self.items) or (1 if self.empty else 0)

    def row_cells(self, row: int) -> Sequence[Cell] | None:
        return self.cells(self.items[row])

    def _render_row(self, row: int, width: int) -> tuple[Strip, bool]:
        if row >= 0 and not self.items:
            # the "nothing here" line spans the columns
            style = self._style("virtual-table--placeholder")
            return Strip([Segment(fit(self.empty, width), style)]).adjust_cell_length(width, style), True
        return super()._render_row(row, width)

    def current(self) -> T | None:
        if not self.items or not 0 <= self.cursor_row < len(self.items):
            return None
        return self.items[self.cursor_row]

    def action_select(self) -> None:
        if self.items:
            super().action_select()
