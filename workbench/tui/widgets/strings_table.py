"""An artifact's strings as a virtual table: offset, encoding, suggestion score, goodware count."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.text import Text

from workbench.tui.widgets.virtual_table import Cell, Column, VirtualTable

COLUMNS = (
    Column("mark", " ", 1),
    Column("offset", "Offset", 9),
    Column("encoding", "Enc", 5),
    Column("score", "Score", 6),
    Column("goodware", "Goodware", 8),
    Column("text", "String", 0, 20),
)


@dataclass
class StringRow:
    offset: int
    encoding: str
    text: str
    score: float | None = None          # from the suggester, when it ranked this string
    goodware: int | None = None
    reasons: list[str] = field(default_factory=list)


def score_text(score: float | None) -> Text:
    if score is None:
        return Text("")
    style = "bold green" if score >= 5 else ("red" if score < 0 else "")
    return Text(f"{score:+.1f}", style=style)


class StringsTable(VirtualTable):
    """Attributes down: ``rows`` (already filtered and ordered) and ``is_marked``."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.rows: list[StringRow] = []
        self.is_marked: Callable[[StringRow], bool] = lambda _row: False

    def show(self, rows: list[StringRow]) -> None:
        self.rows = rows
        self.reset()

    def row_count(self) -> int:
        return len(self.rows)

    def row_cells(self, row: int) -> Sequence[Cell] | None:
        item = self.rows[row]
        return [
            Text("●", style="bold yellow") if self.is_marked(item) else "",
            f"{item.offset:08x}",
            "wide" if item.encoding == "utf-16le" else "ascii",
            score_text(item.score),
            "" if item.goodware is None else f"{item.goodware:,}",
            item.text,
        ]

    def row_marked(self, row: int) -> bool:
        return self.is_marked(self.rows[row])

    def current(self) -> StringRow | None:
        return self.rows[self.cursor_row] if self.rows else None
