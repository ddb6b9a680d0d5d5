"""The quarantine list: a virtual table over a ``Listing`` whose pages load on demand."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.message import Message

from workbench.humanize import shown
from workbench.quarantine.index import MessageRow
from workbench.quarantine.query import SORT_COLUMNS
from workbench.tui.pages import Listing
from workbench.tui.safety import visible
from workbench.tui.widgets.virtual_table import Cell, Column, VirtualTable

COLUMNS = (
    Column("received", "Received", 16),
    Column("tower", "Tower", 7),
    Column("server", "Server", 6),
    Column("reason", "Reason", 13),
    Column("status", "Status", 9),
    Column("from", "From", 0, 8, weight=3),
    Column("subject", "Subject", 0, 8, weight=4),
    Column("attachments", "Attachments", 0, 8, weight=3),
)

STATUS_STYLES = {
    "new": "bold",
    "triaged": "cyan",
    "drafted": "yellow",
    "signed": "green",
    "dismissed": "dim",
}


def received_text(stamp: str) -> str:
    """``2026-11-02T09:30:00.000000Z`` -> ``2026-11-02 09:30`` (the index stores UTC)."""
    return shown(stamp, seconds=False)


def row_cells(row: MessageRow) -> list[Cell]:
    subject = Text(visible(row.subject) or "(no subject)")
    if row.tags:
        subject.append("  " + " ".join(f"#{t}" for t in row.tags), style="italic")
    names = visible(", ".join(row.attachment_names))
    return [
        received_text(row.first_seen), visible(row.tower), visible(row.server),
        visible(row.reason), Text(row.status, style=STATUS_STYLES.get(row.status, "")),
        visible(row.from_addr), subject, names,
    ]


class MessageList(VirtualTable):
    """Rows come from ``listing``; a missing page is asked for with ``PageWanted``."""

    class PageWanted(Message):
        """A visible row's page is not loaded: the screen fetches it in a worker."""

        def __init__(self, generation: int, page: int) -> None:
            super().__init__()
            self.generation = generation
            self.page = page

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.listing: Listing | None = None
        self.marked: set[str] = set()        # sha256s; the screen owns and shares the set

    def show(self, listing: Listing) -> None:
        """Attribute down: the screen hands over a new listing (new query or new data)."""
        same_query = self.listing is not None and self.listing.generation == listing.generation
        self.listing = listing
        if not same_query:
            self.cursor_row = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        self.reset()

    def row_count(self) -> int:
        return self.listing.known_rows if self.listing else 0

    def row_cells(self, row: int) -> Sequence[Cell] | None:
        if self.listing is None:
            return None
        message = self.listing.row(row)
        if message is None:
            page = self.listing.page_of(row)
            if self.listing.want(page):
                self.post_message(self.PageWanted(self.listing.generation, page))
            return None
        return row_cells(message)

    def row_marked(self, row: int) -> bool:
        if not self.marked or self.listing is None:
            return False
        message = self.listing.row(row)
        return message is not None and message.sha256 in self.marked

    def current(self) -> MessageRow | None:
        return self.listing.row(self.cursor_row) if self.listing else None

    def header_titles(self) -> list[str]:
        titles = [c.title for c in self.columns]
        if self.listing is not None:
            query = self.listing.query
            arrow = "▼" if query.descending else "▲"
            for i, column in enumerate(self.columns):
                if SORT_COLUMNS.get(column.key) == SORT_COLUMNS[query.sort]:
                    titles[i] = f"{column.title} {arrow}"
        return titles
