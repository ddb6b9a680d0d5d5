"""Pilot tests of the rule editor: live lint, format, save, append, unsaved-changes guard."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from tests.support.pilot import linted, settle, static_text
from tests.support.ui_samples import CLEAN
from workbench.rules.parse import parse_text
from workbench.tui.app import make_app
from workbench.tui.screens.editor import STARTER, EditorScreen
from workbench.tui.screens.modals import ConfirmScreen, PromptScreen
from workbench.tui.widgets.yara_editor import ERROR_LINE, YaraEditor
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


async def open_editor(pilot) -> EditorScreen:
    await settle(pilot)
    await pilot.press("f3")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    return screen


def findings(screen: EditorScreen) -> list[tuple[str, int]]:
    return [(f.severity, f.line) for f in screen.findings]


async def test_a_syntax_error_appears_and_goes_away_after_a_fix(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(pilot)
        editor = screen.query_one(YaraEditor)
        screen.load_draft(CLEAN)
        await linted(pilot)
        assert not [f for f in screen.findings if f.severity == "error"]
        # break the condition: "$a and" is not YARA
        editor.move_cursor((18, len("        $a")))
        await pilot.press("space", *"and")
        await linted(pilot)                     # the lint waits for typing to pause
        errors = [f for f in screen.findings if f.severity == "error"]
        assert errors and errors[0].line in (19, 20)       # at "and" or where the rule ends
        assert any(name == ERROR_LINE for spans in editor._highlights.values()
                   for _s, _e, name in spans)
        assert "error" in static_text(screen.query_one("#lint-title", Static))
        # choosing the finding moves the cursor to it
        options = screen.query_one("#findings", OptionList)
        options.focus()
        options.highlighted = options.get_option_index(f"finding-{screen.findings.index(errors[0])}")
        await pilot.press("enter")
        assert editor.cursor_location[0] == errors[0].line - 1
        assert app.focused is editor
        # fix it: the error goes away
        editor.move_cursor((18, len("        $a and")))
        for _ in range(4):
            await pilot.press("backspace")
        await linted(pilot)
        assert not [f for f in screen.findings if f.severity == "error"]
        assert not any(name == ERROR_LINE for spans in editor._highlights.values()
                       for _s, _e, name in spans)


async def test_save_a_draft_into_its_family_file_then_append(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(pilot)
        screen.load_draft(CLEAN)
        await settle(pilot)
        await pilot.press("ctrl+s")
        prompt = app.screen
        assert isinstance(prompt, PromptScreen)
        assert prompt.query_one("#prompt", Input).value == "rules/test/editor.yar"
        await pilot.press("enter")
        await settle(pilot)
        target = ui_workspace.signatures / "rules" / "test" / "editor.yar"
        # the placeholder fingerprint was made true on save; a rule never released keeps version 1
        saved = parse_text(target.read_text()).rules[0]
        assert saved.meta_value("fingerprint") == saved.fingerprint
        assert saved.meta_value("version") == 1 and saved.meta_value("modified") == str(dt.date.today())
        assert screen.query_one(YaraEditor).text == target.read_text()
        assert screen.path == target and not screen.dirty
        status = static_text(screen.query_one("#editor-status", Static))
        assert "rules/test/editor.yar" in status and "refreshed TEST_Editor_Sample: fingerprint" in status
        # a second draft opens in a tab of its own; ctrl+n opens another
        second = CLEAN.replace("TEST_Editor_Sample", "TEST_Editor_Second")
        screen.load_draft(second)
        await settle(pilot)
        await pilot.press("ctrl+n")
        assert len(screen.buffers) == 3 and screen.query_one(YaraEditor).text == STARTER
        await pilot.press("ctrl+pageup")
        assert "TEST_Editor_Second" in screen.query_one(YaraEditor).text
        # ... and is appended to the family's file, after asking
        await pilot.press("ctrl+s", "enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        text = target.read_text()
        assert "TEST_Editor_Sample" in text and "TEST_Editor_Second" in text
        assert screen.path == target and screen.query_one(YaraEditor).text == text
        # opening a file that is open goes to its tab (and its older tab reloads what is on disk)
        await pilot.press("ctrl+pagedown")
        assert screen.query_one(YaraEditor).text == STARTER
        screen.load_file(target)
        await settle(pilot)
        assert len(screen.buffers) == 3 and screen.path == target
        assert screen.query_one(YaraEditor).text == text


async def test_append_refuses_a_taken_name_and_a_file_that_does_not_parse(ui_workspace: Workspace) -> None:
    """As ``rule draft --out`` does (issue 14): the UI used to append a second rule of the
    same name (YARA then refuses the whole family file) and append to a broken file."""
    target = ui_workspace.signatures / "rules" / "test" / "editor.yar"
    target.parent.mkdir(parents=True)
    target.write_text(CLEAN)
    app = make_app(ui_workspace)
    shown: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(pilot)
        app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
        screen.load_draft(CLEAN)                      # the same rule name again
        await settle(pilot)
        await pilot.press("ctrl+s", "enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert target.read_text() == CLEAN            # untouched
        assert any("already has a rule named TEST_Editor_Sample" in m for m in shown), shown
        assert screen.path is None and screen.dirty   # the draft stays in the editor, unsaved

        broken = "rule Broken {\n"
        target.write_text(broken)
        screen.load_draft(CLEAN.replace("TEST_Editor_Sample", "TEST_Editor_Third"))
        await settle(pilot)                           # a tab of its own beside the refused draft
        await pilot.press("ctrl+s", "enter", "y")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert target.read_text() == broken
        assert any("does not parse" in m for m in shown), shown


async def test_edit_an_existing_file_saves_in_place(ui_workspace: Workspace, tmp_path: Path) -> None:
    rule = ui_workspace.signatures / "rules" / "test" / "existing.yar"
    rule.parent.mkdir(parents=True)
    rule.write_text(CLEAN)
    app = make_app(ui_workspace, open_rule=rule)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EditorScreen)
        editor = screen.query_one(YaraEditor)
        assert editor.text == CLEAN and not screen.dirty
        editor.move_cursor((18, 0))
        await pilot.press(*"//")
        assert screen.dirty
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert rule.read_text().splitlines()[18].startswith("//")
        assert not screen.dirty


async def test_format_on_a_key(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(pilot)
        messy = 'rule TEST_Fmt_X {strings: $a="abcd" condition: $a}'
        screen.load_draft(messy)
        await settle(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        text = screen.query_one(YaraEditor).text
        assert text != messy
        assert "strings:" in text.splitlines()[1] or "strings:" in text
        assert len(text.splitlines()) > 3
        # formatting broken text says why and changes nothing
        shown: list[str] = []
        app.notify = lambda message, **kw: shown.append(f"{kw.get('title')}: {message}")  # type: ignore[method-assign]
        screen.load_draft("rule {")                # (a tab of its own)
        await settle(pilot)
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert screen.query_one(YaraEditor).text == "rule {"
        assert any(s.startswith("Could not format the rule") for s in shown)


async def test_highlighting_uses_the_yara_tokenizer(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_editor(pilot)
        editor = screen.query_one(YaraEditor)
        editor.load_text(CLEAN)
        names = {name for spans in editor._highlights.values() for _s, _e, name in spans}
        assert {"keyword", "type.class", "heading", "yaml.field", "string", "function"} <= names
        assert editor.theme == "workbench-dark"
        await pilot.press("ctrl+t")
        assert editor.theme == "workbench-light"
