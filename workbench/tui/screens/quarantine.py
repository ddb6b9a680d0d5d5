"""The quarantine screen: a filter bar, the virtual message list, counts by reason and status."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from dataclasses import dataclass
from functools import partial

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.quarantine.index import MessageRow
from workbench.quarantine.query import SORT_COLUMNS, Query, QueryError, parse_query
from workbench.tui.commands import PaletteCommand
from workbench.tui.pages import PAGE_SIZE, Listing, fetch_page
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.facets import FacetPanel, narrow
from workbench.tui.widgets.key_footer import KeyFooter
from workbench.tui.widgets.message_list import COLUMNS, MessageList
from workbench.tui.widgets.virtual_table import VirtualTable

SORT_ORDER = [c.key for c in COLUMNS]
SETTLE_AFTER = 0.3          # seconds back on the list before closed screens are collected
_generations = itertools.count(1)


def _interrupted(exc: sqlite3.OperationalError) -> bool:
    return "interrupt" in str(exc).lower()


class QuarantineScreen(WorkbenchScreen):
    """Browse and triage the quarantine."""

    HELP = """\
## Quarantine

Every quarantined message, newest first. The list is virtual: it reads the index
a page at a time, so it stays instant with hundreds of thousands of messages.

The **filter** uses the same language as `workbench quarantine list --query`:
`tower:t12 reason:unknown-virus status:new has:attachment from:acme invoice`,
`-status:dismissed` negates, `after:2026-11-01`, `sort:from` / `sort:+size`.
Words without a field match the subject, the sender and attachment names.
`/` goes to the filter; enter applies it and leaves you typing there (↓, tab or
esc go to the list). A letter typed on the list that is no command (below) goes
on the end of the filter.

Choose a reason or status on the right to narrow the filter. Mark rows with
**space** to triage several at once.

New mail and other analysts' triage show up by themselves while the cursor is on
the first row; further down, the count gets a ↻ and **r** reloads, so the row under
the cursor never moves on its own.
"""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("enter", "open", "Open", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("s", "status", "Status"),
        Binding("t", "tags", "Tags"),
        Binding("o", "sort", "Sort"),
        Binding("O", "reverse", "Reverse"),
        Binding("r", "refresh", "Refresh"),
        Binding("f", "toggle_facets", "Counts"),
        Binding("escape", "leave_filter", "List", show=False),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        """The first page of a query (and, when it fits in a page, its total)."""

        generation: int
        rows: list[MessageRow]
        change: int   # the index's last_change() the rows were read at

    @dataclass(eq=False)
    class IndexChanged(Message):
        """The index's last_change() as polled now."""

        change: int | None   # None: the look failed (the error is shown)

    @dataclass(eq=False)
    class Counted(Message):
        generation: int
        total: int

    @dataclass(eq=False)
    class PageLoaded(Message):
        generation: int
        page: int
        rows: list[MessageRow]

    @dataclass(eq=False)
    class FacetsLoaded(Message):
        generation: int
        facets: dict[str, dict[str, int]]

    @dataclass(eq=False)
    class Triaged(Message):
        rows: list[MessageRow]
        summary: str
        changes: tuple[int, int]   # the index's last_change() before and after our writes

    def __init__(self, query: str | None = None) -> None:
        super().__init__()
        self.initial_query = query
        self.listing: Listing | None = None
        self.sort: str | None = None             # set by the sort keys; overrides the text
        self.descending: bool | None = None
        self.marked: set[str] = set()             # the app's: other screens mark too (retro-hunt)
        self.listed_change: int | None = None     # index.last_change() when the list was read
        self.changed_since = False                # the index moved on and the list was not reloaded
        self.checking = False                     # a look for changes is under way
        self.writing = 0                          # our triage writes not yet shown (Triaged)
        self.facets_token: int | None = None      # the pool token of the latest count by reason

    # -- layout -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.initial_query is None:
            self.initial_query = self.workbench.initial_query
        yield Header()
        with Horizontal(id="filter-bar"):
            yield Input(self.initial_query or "", id="filter",
                        placeholder="no filter · / then type, e.g. has:attachment or a word from the subject")
            yield Static("", id="count")
        yield Static("", id="query-error")
        with Horizontal(id="quarantine-body"):
            with Vertical(id="list-pane"):
                yield MessageList(id="messages")
                yield Static("", id="empty")
            yield FacetPanel(id="facets")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = self.workbench.workspace.home.name
        self.marked = self.workbench.marked_messages
        messages = self.query_one(MessageList)
        messages.marked = self.marked
        if not self.workbench.pool.exists:
            self.query_one("#empty", Static).update(
                f"No quarantine yet in {self.workbench.workspace.home}.\n\n"
                "Ingest mail with  workbench quarantine ingest PATH\n"
                "or build a demo with  workbench demo")
            self.add_class("-no-quarantine")
            self.query_one("#filter", Input).disabled = True
            return
        messages.focus()
        self.apply_filter(self.initial_query or "")
        if self.workbench.list_refresh > 0:
            self.set_interval(self.workbench.list_refresh, self.poll_changes)

    def on_screen_resume(self) -> None:
        """Back from another screen: tags or marks may have changed there (a retro-hunt)."""
        if self.workbench.quarantine_stale and self.is_mounted and self.workbench.pool.exists:
            self.workbench.quarantine_stale = False
            self.action_refresh()
        # once the list is drawn and the closed screen removed: its garbage is collected
        # then, in one short pass, rather than in a long one in the middle of a later open
        asyncio.get_running_loop().call_later(SETTLE_AFTER, self._settle_garbage)

    def _settle_garbage(self) -> None:
        if self.app.screen is self:
            self.workbench.settle_garbage()

    # -- querying ---------------------------------------------------------------

    def apply_filter(self, text: str) -> None:
        """Parse the filter (cheap, on the event loop) and start the query in a worker."""
        error = self.query_one("#query-error", Static)
        filter_input = self.query_one("#filter", Input)
        try:
            query = parse_query(text, sort=self.sort, descending=self.descending)
        except QueryError as exc:
            filter_input.add_class("-invalid")
            error.update(f"✗ {exc}")
            error.display = True
            return
        filter_input.remove_class("-invalid")
        error.display = False
        self.start_listing(query)

    def start_listing(self, query: Query) -> None:
        if self.listing is not None:
            # the superseded list and count stop now, not when they finish
            self.workbench.pool.interrupt(self.listing.generation)
        self.listing = Listing(query=query, generation=next(_generations))
        self.query_one("#count", Static).update("searching…")
        self.query_one(FacetPanel).show(None)
        if self.facets_token is not None:
            self.workbench.pool.interrupt(self.facets_token)
            self.facets_token = None
        self.run_query(self.listing.query, self.listing.generation)
        # the counts by reason start once the first page is shown (_loaded): at launch and
        # on every keystroke the rows come first, without a second scan competing for them

    def start_facets(self) -> None:
        """Count by reason and status for the current listing; a count under way stops."""
        if self.facets_token is not None:
            self.workbench.pool.interrupt(self.facets_token)
        listing = self.listing
        if listing is None:
            return
        # a token of its own per count (a triage recounts the same listing): the reader
        # lent under it is the one interrupted, never the next count's
        self.facets_token = -next(_generations)
        self.run_facets(listing.query, listing.generation, self.facets_token)

    @work(thread=True, exclusive=True, group="query", exit_on_error=False,
          description="list the quarantine")
    def run_query(self, query: Query, generation: int) -> None:
        worker = get_current_worker()
        try:
            with self.workbench.pool.reader(generation) as index:
                change = index.last_change()         # before the rows: a write between is seen
                rows = fetch_page(index, query, 0)
                if worker.is_cancelled:
                    return
                self.post_message(self.Loaded(generation, rows, change))
                if len(rows) < PAGE_SIZE or worker.is_cancelled:
                    return
                total = index.count(query)
        except sqlite3.OperationalError as exc:
            if worker.is_cancelled or _interrupted(exc):
                return
            raise
        if not worker.is_cancelled:
            self.post_message(self.Counted(generation, total))

    @work(thread=True, exclusive=True, group="facets", exit_on_error=False,
          description="count by reason and status")
    def run_facets(self, query: Query, generation: int, token: int) -> None:
        worker = get_current_worker()
        try:
            with self.workbench.pool.reader(token) as index:   # start_facets interrupts it
                if worker.is_cancelled:
                    return
                facets = index.facets(query)
        except sqlite3.OperationalError as exc:
            if worker.is_cancelled or _interrupted(exc):
                return
            raise
        if not worker.is_cancelled:
            self.post_message(self.FacetsLoaded(generation, facets))

    @work(thread=True, group="pages", exit_on_error=False, description="read a page of the list")
    def load_page(self, query: Query, generation: int, page: int) -> None:
        with self.workbench.pool.reader() as index:
            rows = fetch_page(index, query, page)
        self.post_message(self.PageLoaded(generation, page, rows))

    def _current(self, generation: int) -> Listing | None:
        listing = self.listing
        return listing if listing is not None and listing.generation == generation else None

    def poll_changes(self) -> None:
        """Every ``list_refresh`` seconds while this screen is shown: has the index changed?"""
        if self.app.screen is self and self.listing is not None and not self.checking:
            self.checking = True                  # one look at a time, however slow the disk
            self.check_changes()

    @work(thread=True, group="changes", exit_on_error=False, description="look for new mail")
    def check_changes(self) -> None:
        try:
            with self.workbench.pool.reader() as index:
                change = index.last_change()
        except Exception:
            self.post_message(self.IndexChanged(None))
            raise
        self.post_message(self.IndexChanged(change))

    @on(IndexChanged)
    def _index_changed(self, event: IndexChanged) -> None:
        self.checking = False
        if event.change is None or self.listed_change is None or event.change == self.listed_change:
            return
        if self.writing:
            # a look taken while our own triage wrote cannot tell it from someone else's
            # change (its Triaged, still on the way, says which rows it was): the next look will
            return
        if self.query_one(MessageList).cursor_row == 0:
            self.action_refresh()               # at the top: new mail simply appears
        elif not self.changed_since:
            self.changed_since = True
            self._show_count()
            self.notify("The quarantine changed: r reloads the list", timeout=6)

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        listing = self._current(event.generation)
        if listing is None:
            return
        self.listed_change = event.change
        self.changed_since = False
        listing.store(0, event.rows)
        self.query_one(MessageList).show(listing)
        self._show_count()
        self.workbench.first_rows_shown()
        if self.facets_token is None:
            self.start_facets()

    @on(Counted)
    def _counted(self, event: Counted) -> None:
        listing = self._current(event.generation)
        if listing is None:
            return
        listing.total = event.total
        self.query_one(MessageList).reset()
        self._show_count()

    @on(PageLoaded)
    def _page_loaded(self, event: PageLoaded) -> None:
        listing = self._current(event.generation)
        if listing is None:
            return
        listing.store(event.page, event.rows)
        self.query_one(MessageList).reset()

    @on(FacetsLoaded)
    def _facets_loaded(self, event: FacetsLoaded) -> None:
        if self._current(event.generation) is not None:
            self.query_one(FacetPanel).show(event.facets)

    @on(MessageList.PageWanted)
    def _page_wanted(self, event: MessageList.PageWanted) -> None:
        listing = self._current(event.generation)
        if listing is not None:
            self.load_page(listing.query, listing.generation, event.page)

    def _show_count(self) -> None:
        listing = self.listing
        if listing is None:
            return
        marked = f" · {len(self.marked):,} marked" if self.marked else ""
        changed = "↻ " if self.changed_since else ""      # the width is tight: a mark, and a toast
        if listing.total is None:
            text = f"{listing.known_rows - listing.page_size:,}+ messages · counting…"
        else:
            text = f"{listing.total:,} message{'s' if listing.total != 1 else ''}"
        self.query_one("#count", Static).update(changed + text + marked)

    # -- events from widgets --------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        # the filter keeps the keys: letters typed after enter go on into it (they used to
        # reach the list and re-sort it); ↓ or tab goes to the list, esc too
        self.apply_filter(self.query_one("#filter", Input).value)

    def on_key(self, event: events.Key) -> None:
        # (WorkbenchScreen.on_key runs after this one unless the default is prevented)
        if event.key == "down" and self.focused is self.query_one("#filter", Input):
            event.stop()
            event.prevent_default()
            self.query_one(MessageList).focus()

    def typed(self, character: str) -> bool:
        """A letter typed on the list that is no command goes on the end of the filter."""
        filter_input = self.query_one("#filter", Input)
        if filter_input.disabled:
            return False
        filter_input.focus()
        filter_input.insert_text_at_cursor(character)
        return True

    @on(FacetPanel.Chosen)
    def _facet_chosen(self, event: FacetPanel.Chosen) -> None:
        filter_input = self.query_one("#filter", Input)
        filter_input.value = narrow(filter_input.value, event.field, event.value)

    @on(VirtualTable.Selected, "#messages")
    def _selected(self) -> None:
        self.action_open()

    @on(VirtualTable.HeaderClicked, "#messages")
    def _header_clicked(self, event: VirtualTable.HeaderClicked) -> None:
        key = event.column.key
        listing = self.listing
        if listing is not None and SORT_COLUMNS[key] == SORT_COLUMNS[listing.query.sort]:
            self.sort, self.descending = key, not listing.query.descending
        else:
            self.sort, self.descending = key, key == "received"
        self.apply_filter(self.query_one("#filter", Input).value)

    # -- actions ---------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one(MessageList).focus()

    def action_refresh(self) -> None:
        self.apply_filter(self.query_one("#filter", Input).value)

    def action_toggle_facets(self) -> None:
        facets = self.query_one(FacetPanel)
        facets.display = not facets.display

    def action_sort(self) -> None:
        current = self.listing.query.sort if self.listing else "received"
        keys = SORT_ORDER
        position = keys.index(current) if current in keys else -1
        self._sort_by(keys[(position + 1) % len(keys)])

    def action_reverse(self) -> None:
        self.descending = not (self.listing.query.descending if self.listing else True)
        self.apply_filter(self.query_one("#filter", Input).value)

    def action_open(self) -> None:
        row = self.query_one(MessageList).current()
        if row is not None:
            self.workbench.open_message(row.sha256, row=row)

    def action_mark(self) -> None:
        messages = self.query_one(MessageList)
        row = messages.current()
        if row is None:
            return
        self.marked.symmetric_difference_update({row.sha256})
        messages.reset()
        messages.action_cursor(1)
        self._show_count()

    def _targets(self) -> list[str]:
        if self.marked:
            return sorted(self.marked)
        row = self.query_one(MessageList).current()
        return [row.sha256] if row else []

    def action_status(self) -> None:
        from workbench.tui.screens.modals import StatusScreen

        targets = self._targets()
        if not targets:
            return
        row = self.query_one(MessageList).current()

        def chosen(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self.writing += 1
                self.set_status(targets, *answer)

        self.app.push_screen(StatusScreen(len(targets), row.status if row else ""), chosen)

    def action_tags(self) -> None:
        from workbench.tui.screens.modals import TagsScreen

        targets = self._targets()
        if not targets:
            return
        row = self.query_one(MessageList).current()

        def chosen(answer: tuple[list[str], list[str]] | None) -> None:
            if answer is not None:
                self.writing += 1
                self.set_tags(targets, *answer)

        self.app.push_screen(TagsScreen(len(targets), row.tags if row and len(targets) == 1 else []),
                             chosen)

    def palette_commands(self) -> list[PaletteCommand]:
        presets = [("new", "status:new"), ("with attachments", "has:attachment"),
                   ("not dismissed", "-status:dismissed"), ("with header defects", "has:defects"),
                   ("tagged", "has:tag")]
        commands = [
            PaletteCommand(f"Show {label}", f"filter: {query}", partial(self._set_filter, query))
            for label, query in presets]
        commands += [
            PaletteCommand(f"Sort by {c.title.lower()}", f"column {c.key} (o cycles)",
                           partial(self._sort_by, c.key))
            for c in COLUMNS]
        commands += [
            PaletteCommand("Reverse the order", "O", self.action_reverse),
            PaletteCommand("Set triage status", "of the marked rows or the current one (s)",
                           self.action_status),
            PaletteCommand("Edit tags", "t", self.action_tags),
            PaletteCommand("Clear the filter", "show every message",
                           lambda: self._set_filter("")),
            PaletteCommand("Refresh", "read the index again (r)", self.action_refresh),
            PaletteCommand("Toggle counts", "the reason and status panel (f)",
                           self.action_toggle_facets),
        ]
        return commands

    def _set_filter(self, text: str) -> None:
        self.query_one("#filter", Input).value = text

    def _sort_by(self, key: str) -> None:
        self.sort, self.descending = key, key == "received"
        self.apply_filter(self.query_one("#filter", Input).value)

    @work(thread=True, exclusive=True, group="triage", exit_on_error=False,
          description="set the triage status")
    def set_status(self, shas: list[str], status: str, note: str) -> None:
        from workbench.quarantine.service import Quarantine  # (not needed to list)

        with Quarantine(self.workbench.workspace.quarantine) as q:
            before = q.index.last_change()
            for sha in shas:
                q.set_status(sha, status, note=note)
            rows = [q.index.get(sha) for sha in shas]
            changes = (before, q.index.last_change())
        self.post_message(self.Triaged(rows, f"{len(rows):,} set to {status}", changes))

    @work(thread=True, exclusive=True, group="triage", exit_on_error=False,
          description="tag messages")
    def set_tags(self, shas: list[str], add: list[str], remove: list[str]) -> None:
        from workbench.quarantine.service import Quarantine

        with Quarantine(self.workbench.workspace.quarantine) as q:
            before = q.index.last_change()
            for sha in shas:
                q.tag(sha, add, remove)
            rows = [q.index.get(sha) for sha in shas]
            changes = (before, q.index.last_change())
        self.post_message(self.Triaged(rows, f"{len(rows):,} tagged", changes))

    @on(Worker.StateChanged)
    def _triage_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "triage" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.writing = max(0, self.writing - 1)      # (no Triaged will come)

    @on(Triaged)
    def _triaged(self, event: Triaged) -> None:
        self.writing = max(0, self.writing - 1)
        self.marked.clear()
        self.rows_changed(event.rows, event.changes)
        self.notify(event.summary, timeout=3)

    def rows_changed(self, rows: list[MessageRow], changes: tuple[int, int]) -> None:
        """Rows triaged here or on a message's screen: shown as they are now, in place (the
        list is not read again); ``changes``: the index's last_change() before and after."""
        before, after = changes
        if self.listed_change == before:     # only our own writes since the list was read:
            self.listed_change = after       # they are in the rows below, not "a change"
        if self.listing is not None:
            for row in rows:
                self.listing.replace(row)
        self.query_one(MessageList).reset()
        self._show_count()
        self.start_facets()                  # the counts by status moved
