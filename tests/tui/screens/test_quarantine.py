"""Pilot tests of the quarantine screen: filter, sort, counts, triage, open."""

from __future__ import annotations

import datetime as dt

import pytest
from textual.widgets import Input, Static

from tests.support.pilot import settle
from tests.support.ui_samples import MESSAGES
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.tui.app import make_app
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.widgets.facets import FacetPanel
from workbench.tui.widgets.message_list import MessageList
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

TOTAL = MESSAGES + 2


def _visible_subjects(app) -> list[str]:
    messages = app.screen.query_one(MessageList)
    rows = [messages.listing.row(i) for i in range(messages.row_count())]
    return [r.subject for r in rows if r is not None]


async def test_lists_every_message_newest_first(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        messages = app.screen.query_one(MessageList)
        assert messages.row_count() == TOTAL
        assert "38 messages" in str(app.screen.query_one("#count", Static).render())
        received = [messages.listing.row(i).first_seen for i in range(TOTAL)]
        assert received == sorted(received, reverse=True)
        assert messages.listing.row(0).subject == "GTUBE spam"


async def test_filter_narrows_the_list_and_shows_query_errors(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await pilot.press(*"tower:t07")
        await settle(pilot)
        subjects = _visible_subjects(app)
        assert len(subjects) == 12
        assert all(s.startswith("Payroll update") for s in subjects)
        # a broken query keeps the last good list and says what is wrong
        await pilot.press("space", "quotation_mark")
        await settle(pilot)
        error = app.screen.query_one("#query-error", Static)
        assert error.display and "quotes" in str(error.render())
        assert app.screen.query_one("#filter", Input).has_class("-invalid")
        assert len(_visible_subjects(app)) == 12
        await pilot.press("backspace")
        await settle(pilot)
        assert not app.screen.query_one("#query-error", Static).display
        assert not app.screen.query_one("#filter", Input).has_class("-invalid")


async def test_initial_query_and_free_text(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, query="loader")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert _visible_subjects(app) == ["Loader sample"]


async def test_sort_key_and_header_click(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        await pilot.press("o")          # received -> tower, ascending
        await settle(pilot)
        assert screen.listing.query.sort == "tower" and not screen.listing.query.descending
        towers = [screen.listing.row(i).tower for i in range(TOTAL)]
        assert towers == sorted(towers)
        await pilot.press("O")
        await settle(pilot)
        towers = [screen.listing.row(i).tower for i in range(TOTAL)]
        assert towers == sorted(towers, reverse=True)
        # clicking the Subject title sorts by subject
        messages = screen.query_one(MessageList)
        widths = messages.column_widths(messages.scrollable_content_region.width)
        x = sum(w + 1 for w in widths[:6]) + 1
        await pilot.click(MessageList, offset=(x, 0))
        await settle(pilot)
        assert screen.listing.query.sort == "subject"
        assert "Subject ▲" in messages.header_titles()


async def test_counts_by_reason_and_status_narrow_the_filter(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        facets = app.screen.query_one(FacetPanel)
        labels = [str(facets.get_option_at_index(i).prompt) for i in range(facets.option_count)]
        assert any(label.strip() == "stuck 24" for label in labels)
        assert any(label.strip() == "unknown-virus 13" for label in labels)
        assert any(label.strip() == "new 38" for label in labels)
        index = next(i for i, label in enumerate(labels) if label.strip().startswith("spam"))
        facets.focus()
        facets.highlighted = index
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.query_one("#filter", Input).value == "reason:spam"
        assert _visible_subjects(app) == ["GTUBE spam"]


async def test_set_status_and_tags_on_marked_rows(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        first, second = screen.listing.row(0).sha256, screen.listing.row(1).sha256
        await pilot.press("space", "space")          # mark two rows
        assert screen.marked == {first, second}
        await pilot.press("s")
        await pilot.press("3")                       # drafted
        await settle(pilot)
        assert screen.marked == set()
        assert screen.listing.row(0).status == "drafted"
        await pilot.press("home", "t")
        app.screen.query_one("#tags", Input).value = "+campaign-"
        await pilot.press("x", "enter")
        await settle(pilot)
        assert screen.listing.row(0).tags == ["campaign-x"]
    with Quarantine.open(ui_workspace) as q:
        assert q.index.get(first).status == "drafted"
        assert q.index.get(second).status == "drafted"
        assert q.index.get(first).tags == ["campaign-x"]
        assert [a.action for a in q.index.audit(first)][-2:] == ["status", "tags"]


async def test_empty_workspace_says_how_to_fill_it(tmp_path) -> None:
    workspace = Workspace.resolve(tmp_path / "empty")
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        empty = app.screen.query_one("#empty", Static)
        assert "workbench quarantine ingest" in str(empty.render())
    assert not (tmp_path / "empty" / "quarantine" / "index.sqlite").exists()


async def test_command_palette_offers_the_screens_commands(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        names = [c.name for c in screen.palette_commands()]
        assert "Show new" in names and "Sort by subject" in names
        await pilot.press("ctrl+p")
        app.screen.query_one(Input).value = "show with attachm"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.query_one("#filter", Input).value == "has:attachment"
        assert len(_visible_subjects(app)) == 13


def _arrive(workspace: Workspace, subject: str) -> None:
    """Mail from a tower while the analyst watches (another process would do the same)."""
    data = (f"From: tower@t09.example\r\nTo: soc@corp.example\r\nSubject: {subject}\r\n\r\n"
            "body\r\n").encode()
    with Quarantine.open(workspace) as q:
        ingest_bytes(q, data, tower="t09", server="mx01", reason="stuck", source="test",
                     received_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))


async def _until(pilot, condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the screen did not change in time")


async def test_new_mail_appears_by_itself_at_the_top(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, list_refresh=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        messages = app.screen.query_one(MessageList)
        _arrive(ui_workspace, "Arrived while watching")
        await _until(pilot, lambda: messages.row_count() == TOTAL + 1)
        await settle(pilot)
        assert messages.listing.row(0).subject == "Arrived while watching"
        assert f"{TOTAL + 1} messages" in str(app.screen.query_one("#count", Static).render())


async def test_new_mail_further_down_waits_for_r_and_the_cursor_stays(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, list_refresh=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        messages = screen.query_one(MessageList)
        await pilot.press("down", "down", "down")
        under_cursor = messages.current().sha256
        toasts: list[str] = []
        notify = screen.notify
        screen.notify = lambda message, **kw: (toasts.append(message), notify(message, **kw))[1]
        _arrive(ui_workspace, "Arrived while reading")
        count = screen.query_one("#count", Static)
        await _until(pilot, lambda: str(count.render()).startswith("↻ "))
        assert toasts == ["The quarantine changed: r reloads the list"]
        assert messages.cursor_row == 3 and messages.current().sha256 == under_cursor
        assert messages.row_count() == TOTAL
        _arrive(ui_workspace, "And another")             # one toast per change, not per poll
        await pilot.pause(0.4)
        assert len(toasts) == 1
        await pilot.press("r")
        await settle(pilot)
        assert messages.row_count() == TOTAL + 2
        assert "↻" not in str(count.render())
        assert {messages.listing.row(i).subject for i in (0, 1)} == {"Arrived while reading",
                                                                     "And another"}


async def test_no_refresh_when_asked_for_none(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        _arrive(ui_workspace, "Unseen")
        await pilot.pause(0.5)
        await settle(pilot)
        assert app.screen.query_one(MessageList).row_count() == TOTAL


async def test_the_analysts_own_triage_is_not_reported_as_a_change(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, list_refresh=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        toasts: list[str] = []
        notify = screen.notify
        screen.notify = lambda message, **kw: (toasts.append(message), notify(message, **kw))[1]
        await pilot.press("down", "down", "space", "s", "2")      # triaged, further down
        await settle(pilot)
        await pilot.pause(0.4)                                     # several polls
        await settle(pilot)
        assert toasts == ["1 set to triaged"]
        assert not str(screen.query_one("#count", Static).render()).startswith("↻")
        _arrive(ui_workspace, "Someone else's mail")               # a real change still shows
        await _until(pilot, lambda: str(screen.query_one("#count", Static).render()).startswith("↻"))


async def test_a_keystroke_interrupts_the_superseded_counts(ui_workspace: Workspace,
                                                          monkeypatch) -> None:
    """Counts by reason for the old filter stop when the filter changes (sqlite interrupt)."""
    import sqlite3
    import threading

    from workbench.quarantine.index import QuarantineIndex

    original = QuarantineIndex.facets
    slow_started = threading.Event()
    outcomes: list[str] = []

    def facets(self, query):
        if "slow" in query.text:
            slow_started.set()
            try:        # a statement that would run for minutes on a real index
                self.db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                                "SELECT count(*) FROM c").fetchone()
                outcomes.append("finished")
            except sqlite3.OperationalError as exc:
                outcomes.append(str(exc))
                raise
        return original(self, query)

    monkeypatch.setattr(QuarantineIndex, "facets", facets)
    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one("#filter", Input).value = "slow"
        await pilot.pause()
        assert slow_started.wait(10)
        app.screen.query_one("#filter", Input).value = "invoice"
        for _ in range(1000):                  # the superseded worker's thread ends by itself
            if outcomes and not any(w.is_cancelled and w.is_running for w in app.workers):
                break
            await pilot.pause(0.01)
        assert outcomes == ["interrupted"]
        await settle(pilot)
        panel = app.screen.query_one(FacetPanel)
        labels = [str(panel.get_option_at_index(i).prompt).strip() for i in range(panel.option_count)]
        assert "Reason" in labels and "Status" in labels



def _endless_counts(monkeypatch: pytest.MonkeyPatch, blocked_text: str) -> tuple[list[str], object]:
    """The first count by reason for ``blocked_text`` runs a statement that ends only when
    SQLite is interrupted (a progress handler gives up after 60 s: a broken test cannot hang)."""
    import sqlite3
    import threading
    import time

    from workbench.quarantine.index import QuarantineIndex

    real = QuarantineIndex.facets
    ended: list[str] = []
    started = threading.Event()

    def facets(self: QuarantineIndex, query: object = "") -> dict[str, dict[str, int]]:
        if getattr(query, "text", query) != blocked_text or started.is_set():
            return real(self, query)  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        self.db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        started.set()
        try:
            self.db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                            "SELECT count(*) FROM c").fetchone()
        except sqlite3.OperationalError:
            ended.append("gave up" if time.monotonic() > deadline else "interrupted")
            raise
        finally:
            self.db.set_progress_handler(None, 0)
        return real(self, query)  # type: ignore[arg-type]

    monkeypatch.setattr(QuarantineIndex, "facets", facets)
    return ended, started


async def test_a_superseded_count_is_interrupted(ui_workspace: Workspace,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A keystroke that changes the filter stops the counts of the filter before it."""
    ended, started = _endless_counts(monkeypatch, "reason:stuck")
    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        screen.query_one("#filter", Input).value = "reason:stuck"
        await pilot.pause()
        assert started.wait(30)                      # type: ignore[attr-defined]
        screen.query_one("#filter", Input).value = "tower:t30"     # the next keystroke
        await settle(pilot)
        assert ended == ["interrupted"]
        panel = screen.query_one(FacetPanel)
        labels = [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]
        assert any(label.startswith("  stuck") for label in labels)   # t30's counts, shown


async def test_a_triage_recount_stops_the_count_under_way(ui_workspace: Workspace,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Triage recounts the same listing: the count it supersedes stops too."""
    ended, started = _endless_counts(monkeypatch, "")
    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert started.wait(30)                      # type: ignore[attr-defined]
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        screen.start_facets()                        # what a triage does when it is written
        await settle(pilot)
        assert ended == ["interrupted"]


async def test_the_counts_by_reason_wait_for_the_first_rows(ui_workspace: Workspace,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """At launch and on each keystroke the rows are read first, alone; then the counts."""
    from workbench.quarantine.index import QuarantineIndex

    real = QuarantineIndex.facets
    rows_shown: list[bool] = []
    app = make_app(ui_workspace, list_refresh=0)

    def facets(self: QuarantineIndex, query: object = "") -> dict[str, dict[str, int]]:
        listing = app.screen.query_one(MessageList).listing
        rows_shown.append(listing is not None and listing.row(0) is not None)
        return real(self, query)  # type: ignore[arg-type]

    monkeypatch.setattr(QuarantineIndex, "facets", facets)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.query_one("#filter", Input).value = "tower:t30"
        await settle(pilot)
    assert rows_shown == [True, True]
