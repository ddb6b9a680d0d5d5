"""Pilot tests of the message screen: summary at once, the tree filling as dissection runs."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.widgets import Static, Tab, Tree

from tests.support.pilot import settle, sha_of, static_text
from workbench.quarantine.service import Quarantine
from workbench.tui.app import make_app
from workbench.tui.screens.artifact import ArtifactScreen
from workbench.tui.screens.message import MessageScreen
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def tree_labels(screen: MessageScreen) -> list[str]:
    tree = screen.query_one("#artifacts", Tree)
    out = []
    stack = list(reversed(tree.root.children))
    while stack:
        node = stack.pop()
        out.append(str(node.label))
        stack.extend(reversed(node.children))
    return out


def view_text(screen: MessageScreen, tab: str) -> str:
    """What ``tab`` shows once chosen (the screen draws a tab when it is shown)."""
    screen.show_tab(tab)
    return static_text(screen.query_one("#tab-view", Static))


async def test_open_from_the_list_shows_summary_tree_and_tabs(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, query="loader")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MessageScreen)
        summary = static_text(screen.query_one("#message-summary", Static))
        assert "Loader sample" in summary and "t12/mx9" in summary
        labels = tree_labels(screen)
        assert labels[0].startswith("message")
        assert any(label.startswith("setup.exe") for label in labels)
        assert "Subject: Loader sample" in view_text(screen, "headers")
        assert "see attached" in view_text(screen, "body")
        assert "artifacts" in static_text(screen.query_one("#artifact-status", Static))
        # raw headers on demand
        await pilot.press("r")
        assert screen.active_tab == "headers"
        assert screen.raw_headers
        # enter on an artifact opens it
        tree = screen.query_one("#artifacts", Tree)
        exe = next(n for n in screen.nodes.values() if str(n.label).startswith("setup.exe"))
        tree.move_cursor(exe)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ArtifactScreen)
        assert app.screen.artifact.safe_name == "setup.exe"
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("escape")
        assert not isinstance(app.screen, MessageScreen)


async def test_sender_problems_flag_the_auth_tab(ui_workspace: Workspace) -> None:
    import datetime as dt

    from workbench.quarantine.ingest import ingest_bytes
    from workbench.samples.mail import Mail

    mail = Mail("Billing <billing@bank.example>", "analyst@corp.example", "Spoofed",
                date=dt.datetime(2027, 1, 2, tzinfo=dt.UTC), text="pay",
                headers=[("Authentication-Results", "mx.corp.example; spf=fail "
                          "smtp.mailfrom=bank.example; dmarc=fail header.from=bank.example"),
                         ("Reply-To", "collect@elsewhere.example")])
    with Quarantine.open(ui_workspace) as q:
        sha = ingest_bytes(q, mail.build(), tower="t1", server="mx1", reason="phish", source="t",
                           received_at=mail.date).messages[0].sha256
    app = make_app(ui_workspace, open_message=sha)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        label = screen.query_one("#tab-auth", Tab).label.plain
        assert label == "Auth ⚠ 3"          # spf, dmarc and the Reply-To domain
        auth = view_text(screen, "auth")
        assert "differs from Reply-To domain elsewhere.example" in auth
        assert auth.index("Sender mismatches") < auth.index("spf")


async def test_urls_are_defanged_and_history_lists_sightings(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Invoice 3")[:12])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MessageScreen)
        urls = view_text(screen, "urls")
        assert "hxxp://evil-3[.]example/login?id=3" in urls
        assert "http://evil-3.example" not in view_text(screen, "body")
        assert "t12/mx3" in view_text(screen, "history")
        labels = tree_labels(screen)
        assert any(label.startswith("invoice-3.zip") for label in labels)
        assert any(label.startswith("eicar.com") for label in labels)


async def test_tree_fills_while_dissection_runs(ui_workspace: Workspace, monkeypatch) -> None:
    """The root (with the headers) shows before the rest of the message is dissected."""
    import workbench.dissect.walker as engine

    real = engine.dissect_message
    root_shown = threading.Event()
    proceed = threading.Event()

    def paused(quarantine: Any, sha256: str, *, on_node: Any = None, **kwargs: Any) -> Any:
        def hold_after_root(artifact: Any) -> None:
            on_node(artifact)
            if artifact.depth == 0:
                root_shown.set()
                assert proceed.wait(10), "the test never released the dissection"

        return real(quarantine, sha256, on_node=hold_after_root, **kwargs)

    monkeypatch.setattr(engine, "dissect_message", paused)
    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Loader sample"))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if root_shown.is_set() and isinstance(app.screen, MessageScreen) and app.screen.nodes:
                break
        screen = app.screen
        assert isinstance(screen, MessageScreen)
        assert list(screen.nodes) == ["message"]            # only the root so far
        assert "Subject: Loader sample" in view_text(screen, "headers")
        assert "dissecting" in static_text(screen.query_one("#artifact-status", Static))
        proceed.set()
        await settle(pilot)
        assert any(label.startswith("setup.exe") for label in tree_labels(screen))


async def test_headers_show_before_the_dissector_reports(ui_workspace: Workspace,
                                                         monkeypatch) -> None:
    """Read from the store with the index summary: no waiting for a big attachment."""
    import workbench.dissect.walker as engine

    real = engine.dissect_message
    proceed = threading.Event()

    def stalled(*args: Any, **kwargs: Any) -> Any:
        assert proceed.wait(10), "the test never released the dissection"
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "dissect_message", stalled)
    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Loader sample"))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            screen = app.screen
            if isinstance(screen, MessageScreen) and screen.quick_headers:
                break
        assert isinstance(screen, MessageScreen)
        assert not screen.nodes
        headers = view_text(screen, "headers")
        assert "Subject: Loader sample" in headers and "Content-Type: multipart/mixed" in headers
        await pilot.press("r")
        assert "Subject: Loader sample" in view_text(screen, "headers")
        proceed.set()
        await settle(pilot)
        assert screen.report is not None and screen.nodes


async def test_unknown_id_is_reported_in_place(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, open_message="ffffffffffff")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MessageScreen)
        assert "no quarantined message" in static_text(screen.query_one("#message-summary", Static))


async def test_dissection_failure_is_shown_not_fatal(ui_workspace: Workspace, monkeypatch) -> None:
    import workbench.dissect.walker as engine

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(engine, "dissect_message", broken)
    shown: list[str] = []
    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Loader sample"))
    monkeypatch.setattr(app, "notify", lambda message, **kw: shown.append(f"{kw.get('title')}: {message}"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen)      # still running, still on the screen
        assert shown == ["Could not dissect the message: OSError: disk on fire"]


async def test_triage_from_the_message(ui_workspace: Workspace) -> None:
    sha = sha_of(ui_workspace, "GTUBE spam")
    app = make_app(ui_workspace, open_message=sha)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s", "5")           # dismissed
        await settle(pilot)
        assert "dismissed" in static_text(app.screen.query_one("#message-summary", Static))
    with Quarantine.open(ui_workspace) as q:
        assert q.index.get(sha).status == "dismissed"


async def test_closed_message_screens_are_collectable(ui_workspace: Workspace) -> None:
    """Opening and closing messages leaves nothing of them behind: one message screen is
    kept and reused, and neither it, nor the app's title watchers, nor the footer's
    bindings keep what earlier messages showed."""
    import gc
    import weakref

    from textual.widgets import Header
    from textual.widgets._footer import FooterKey

    from workbench.dissect.model import Dissection
    from workbench.tui.screens.base import prune_watchers

    app = make_app(ui_workspace, list_refresh=0)
    screens: set[int] = set()
    shown: list[weakref.ref[Dissection]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for _ in range(6):
            await pilot.press("enter")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, MessageScreen) and screen.dissection is not None
            screens.add(id(screen))
            shown.append(weakref.ref(screen.dissection))
            del screen
            await pilot.press("escape")
            await settle(pilot)
            await pilot.press("down")
        await pilot.pause(0.1)
        await settle(pilot)
        gc.collect()
        assert len(screens) == 1                      # the same screen every time
        assert len([o for o in gc.get_objects() if isinstance(o, MessageScreen)]) == 1
        alive = [n for n, ref in enumerate(shown) if ref() is not None]
        assert alive == [len(shown) - 1], f"dissections of earlier messages {alive} still referenced"
        headers = [o for o in gc.get_objects() if isinstance(o, Header)]
        assert len(headers) == 2                      # the list's and the message screen's
        watchers = getattr(app, "__watchers")
        assert len(watchers["title"]) <= 2 and len(watchers["sub_title"]) <= 2
        prune_watchers(app)
        keys = [o for o in gc.get_objects() if isinstance(o, FooterKey)]
        assert len(keys) < 40                         # the two footers' keys


async def test_reopened_screen_shows_only_the_new_message(ui_workspace: Workspace) -> None:
    """The kept screen forgets the last message: tree, tabs, raw headers, the Auth flag."""
    spoofed, plain = sha_of(ui_workspace, "Loader sample"), sha_of(ui_workspace, "Invoice 3")
    app = make_app(ui_workspace, open_message=spoofed, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MessageScreen)
        assert any(label.startswith("setup.exe") for label in tree_labels(screen))
        await pilot.press("r")                       # raw headers, on the headers tab
        view_text(screen, "body")                    # another tab shown
        await pilot.press("escape")
        await settle(pilot)
        app.open_message(plain)
        await settle(pilot)
        assert app.screen is screen
        assert screen.sha256 == plain and not screen.raw_headers
        assert screen.active_tab == "headers"
        labels = tree_labels(screen)
        assert not any(label.startswith("setup.exe") for label in labels)
        assert any(label.startswith("invoice-3.zip") for label in labels)
        assert "Invoice 3" in static_text(screen.query_one("#message-summary", Static))
        assert "Subject: Invoice 3" in static_text(screen.query_one("#tab-view", Static))


async def test_a_tab_is_drawn_when_first_shown(ui_workspace: Workspace) -> None:
    """Opening a message draws the tab shown and no other: one view, filled on demand."""
    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Invoice 3"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MessageScreen) and screen.report is not None
        assert screen.active_tab == "headers"
        assert set(screen.drawn) == {"headers"}                 # body, URLs ... known, not drawn
        assert {"body", "urls", "history"} <= set(screen.makers)
        assert len(screen.query(".report-text")) == 1           # one view for every tab
        await pilot.click("#message-tabs #tab-body")
        await settle(pilot)
        assert screen.active_tab == "body"
        assert set(screen.drawn) == {"headers", "body"}
        assert "Hello," in static_text(screen.query_one("#tab-view", Static))


async def test_the_footer_is_not_rebuilt_for_the_same_keys(ui_workspace: Workspace) -> None:
    """Back on the list, its footer keeps the key widgets it drew (Textual's footer made
    new ones on every return and focus change)."""
    from workbench.tui.widgets.key_footer import KeyFooter

    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        footer = app.screen.query_one(KeyFooter)
        keys_before = list(footer.children)
        composed = footer.recomposed
        assert keys_before and composed >= 1
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert footer.recomposed == composed
        assert list(footer.children) == keys_before
        await pilot.press("slash")                  # the filter's keys differ: drawn again
        await settle(pilot)
        assert footer.recomposed == composed + 1


def count_reads(app: Any, monkeypatch: Any) -> list[object]:
    """Every reader the app's index pool lends from now on (a read of the index), recorded."""
    borrowed: list[object] = []
    real = app.pool.reader

    def counted(*args: Any, **kwargs: Any) -> Any:
        borrowed.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(app.pool, "reader", counted)
    return borrowed


async def test_back_to_the_list_reads_nothing_when_nothing_changed(ui_workspace: Workspace,
                                                                    monkeypatch) -> None:
    """The list keeps its rows under a message: going back neither queries the index nor
    starts a new listing."""
    from workbench.tui.screens.quarantine import QuarantineScreen

    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        listing = app.screen.listing
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen)
        borrowed = count_reads(app, monkeypatch)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.pause(0.4)                  # (past the settling of garbage)
        assert isinstance(app.screen, QuarantineScreen)
        assert app.screen.listing is listing
        assert borrowed == []


async def test_status_set_on_the_message_shows_in_the_list_on_return(ui_workspace: Workspace,
                                                                     monkeypatch) -> None:
    """The row triaged on the message's screen is replaced in the list's pages; the list is
    not read again for it."""
    from workbench.tui.widgets.message_list import MessageList

    app = make_app(ui_workspace, query="GTUBE", list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        listing = app.screen.listing
        assert listing is not None and listing.row(0).status == "new"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen)
        await pilot.press("s", "5")               # dismissed
        await settle(pilot)
        borrowed = count_reads(app, monkeypatch)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.listing is listing
        assert listing.row(0).status == "dismissed"
        assert app.screen.query_one(MessageList).current().status == "dismissed"
        assert borrowed == []
        assert not app.screen.changed_since       # our own write: not "the quarantine changed"


async def test_opening_a_dissected_message_writes_nothing(ui_workspace: Workspace) -> None:
    """An open of a message dissected before reads the cache: no catalog commit, no index
    write, no disk sync (an open waited for all three)."""
    from workbench.dissect.cache import DissectCache

    sha = sha_of(ui_workspace, "Loader sample")         # dissected by the fixture

    def catalog() -> tuple[object, ...]:
        with DissectCache.open(ui_workspace) as cache:
            return tuple(tuple(r) for r in cache.query(
                "SELECT * FROM dissected WHERE message_sha256 = ?", (sha,)))

    with Quarantine.open(ui_workspace) as q:
        change = q.index.last_change()
    recorded = catalog()
    assert recorded
    app = make_app(ui_workspace, open_message=sha, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen) and app.screen.dissection is not None
    assert catalog() == recorded                          # not even its time
    with Quarantine.open(ui_workspace) as q:
        assert q.index.last_change() == change
