"""Keys go where the analyst expects: ? opens help, help lists our keys only, typing filters."""

from __future__ import annotations

from textual.widgets import Input, Markdown

from tests.support.pilot import settle
from workbench.tui.app import make_app
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.widgets.message_list import MessageList
from workbench.workspace import Workspace


async def test_question_mark_opens_help_without_textuals_own_keys(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        assert "## Quarantine" in text and "| `s` | Status |" in text
        for foreign in ("page left", "Page Left", "super+c", "Copy", "scroll"):
            assert foreign not in text, foreign
        assert app.screen.query_one(Markdown) is not None
        await pilot.press("question_mark")            # ? closes it again
        assert isinstance(app.screen, QuarantineScreen)


async def test_after_enter_in_the_filter_letters_keep_filtering(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        box = screen.query_one("#filter", Input)
        assert box.placeholder.startswith("no filter")        # not mistaken for an active filter
        sort = screen.listing.query.sort
        await pilot.press("slash", *"inv", "enter")
        await settle(pilot)
        await pilot.press(*"oice")                            # "o" used to re-sort the list
        await settle(pilot)
        assert box.value == "invoice" and app.focused is box
        assert screen.listing.query.sort == sort
        await pilot.press("down")
        assert isinstance(app.focused, MessageList)


async def test_a_letter_on_the_list_that_is_no_command_goes_to_the_filter(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    shown: list[str] = []
    app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        assert isinstance(app.focused, MessageList)
        await pilot.press("g")
        box = screen.query_one("#filter", Input)
        assert app.focused is box and box.value == "g"
        # elsewhere a stray letter says so instead of doing nothing
        await pilot.press("f4")
        await settle(pilot)
        await pilot.press("z")
        assert any("'z' does nothing here" in s for s in shown)
