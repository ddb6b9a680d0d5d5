"""The app itself: switching screens from anywhere, the palette's screens, start-up objects frozen."""

from __future__ import annotations

import gc

import pytest

from tests.support.pilot import settle
from workbench.tui.app import make_app
from workbench.tui.commands import WorkbenchCommands
from workbench.tui.screens.editor import EditorScreen
from workbench.tui.screens.fleet import FleetScreen
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.screens.release import ReleaseScreen
from workbench.tui.screens.testing import RuleTestScreen
from workbench.tui.widgets.yara_editor import YaraEditor
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


async def test_function_keys_switch_screens_even_inside_the_editor(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace, fleet_refresh=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        expected = {"f3": EditorScreen, "f4": RuleTestScreen, "f5": ReleaseScreen,
                    "f6": FleetScreen, "f2": QuarantineScreen}
        for key, screen in expected.items():
            await pilot.press("f3")
            assert isinstance(app.focused, YaraEditor)      # TextArea binds f6 and f7 itself
            await pilot.press(key)
            assert isinstance(app.screen, screen), key
        # each screen keeps its state: the editor's text survives a round trip
        await pilot.press("f3")
        app.screen.query_one(YaraEditor).text = "rule kept { condition: true }"
        await pilot.press("f6", "f3")
        assert app.screen.query_one(YaraEditor).text == "rule kept { condition: true }"
        assert app.mode_screen("fleet") is not None and app.mode_screen("nowhere") is None


async def test_the_palette_offers_every_screen(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        provider = WorkbenchCommands(app.screen)
        names = [c.name for c in provider.commands()]
        assert {"Go to quarantine", "Go to rule editor", "Go to test", "Go to release",
                "Go to fleet"} <= set(names)
        next(c for c in provider.commands() if c.name == "Go to release").run()
        await pilot.pause()
        assert isinstance(app.screen, ReleaseScreen)


async def test_start_up_objects_are_frozen_only_when_asked(ui_workspace: Workspace) -> None:
    gc.unfreeze()
    try:
        async with make_app(ui_workspace).run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert gc.get_freeze_count() == 0
        async with make_app(ui_workspace, freeze_startup=True).run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_a_new_mode_screen_does_not_parse_the_css_again(ui_workspace: Workspace,
                                                              monkeypatch) -> None:
    """Textual's switch_mode took a new mode screen for stale CSS and parsed every source
    again, twice, at launch (and on the first F3, F4 ...)."""
    from textual.css.stylesheet import Stylesheet

    reparsed: list[int] = []
    real = Stylesheet.reparse

    def counted(self: Stylesheet) -> None:
        reparsed.append(1)
        real(self)

    monkeypatch.setattr(Stylesheet, "reparse", counted)
    app = make_app(ui_workspace, list_refresh=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert reparsed == []
        await pilot.press("f7")                      # a mode opened for the first time
        await settle(pilot)
        assert reparsed == []


async def test_closed_screens_are_collected_back_on_the_list(ui_workspace: Workspace) -> None:
    """Not while a message is open over the list; back on it, a closed screen goes (the
    kept message screen closes nothing: no collection then)."""
    from workbench.tui.screens.artifact import ArtifactScreen
    from workbench.tui.screens.message import MessageScreen

    app = make_app(ui_workspace, freeze_startup=True, list_refresh=0, query="loader")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert gc.get_freeze_count() > 0              # frozen once the first rows showed
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, MessageScreen)
            await pilot.press("escape")
            await settle(pilot)
            assert not app.settle_garbage()               # nothing was closed
            await pilot.press("enter")
            await settle(pilot)
            await pilot.press("enter")                    # the root artifact
            await settle(pilot)
            assert isinstance(app.screen, ArtifactScreen)
            assert not app.settle_garbage()               # not with screens open over the list
            settled = app._settled_closed
            await pilot.press("escape", "escape")
            await settle(pilot)
            await pilot.pause(0.5)                        # past SETTLE_AFTER: collected by itself
            assert app._settled_closed == app.closed_screens > settled
            # only the one message screen the app keeps and reuses
            assert [o for o in gc.get_objects() if isinstance(o, MessageScreen)] == [app.get_screen("message")]
        assert not make_app(ui_workspace).settle_garbage()     # tests' apps never collect
    finally:
        gc.unfreeze()


async def test_the_session_log_keeps_every_notice_and_a_failure_s_traceback(ui_workspace: Workspace) -> None:
    """Toasts go when they time out; <home>/state/tui.log keeps what the UI said, and for a
    failed background task the traceback a bug report needs."""
    from textual import work

    app = make_app(ui_workspace, fleet_refresh=3600)
    log = ui_workspace.state / "tui.log"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.notify("drafting MAL_Example from 2 marked item(s)…", timeout=1)

        @work(thread=True, exit_on_error=False, description="draft a rule")
        def failing(screen: QuarantineScreen) -> None:
            raise RuntimeError("the drafter broke")

        worker = failing(app.screen)
        while not worker.is_finished:
            await pilot.pause(0.05)
        await settle(pilot)
    text = log.read_text()
    assert "information drafting MAL_Example from 2 marked item(s)…" in text
    assert "error Could not draft a rule:" in text
    assert "Traceback" in text and "RuntimeError: the drafter broke" in text
