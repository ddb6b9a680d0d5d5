"""The rule editor: metadata refreshed on save, changes on disk detected, several files in tabs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import git
import pytest
from textual.widgets import Static

from tests.support.pilot import settle, static_text
from workbench.release.validate import validate
from workbench.rules.parse import parse_file, parse_text
from workbench.tui.app import make_app
from workbench.tui.screens.editor import DIFF, KEEP, RELOAD, EditorScreen
from workbench.tui.screens.modals import ChoiceScreen, DiffScreen
from workbench.tui.widgets.yara_editor import YaraEditor
from workbench.workspace import Workspace

RULE = "SPAM_GTUBE_TestString"


def _set_modified_today(path: Path) -> str:
    today = dt.date.today().isoformat()
    text = path.read_text()
    start = text.index(f"rule {RULE}")
    head, body = text[:start], text[start:]
    old = next(line for line in body.splitlines() if line.strip().startswith("modified ="))
    path.write_text(head + body.replace(old, old.split("=")[0] + f'= "{today}"', 1))
    return today


@pytest.fixture
def released(sig_workspace: Workspace) -> Workspace:
    """The house rules released as signatures-1 today (gtube's modified is today)."""
    sig = sig_workspace.signatures
    _set_modified_today(sig / "rules" / "spam" / "gtube.yar")
    repo = git.Repo(sig)
    repo.git.add(A=True)
    repo.git.commit("-q", "-m", "written today")
    repo.create_tag("signatures-1", message="release 1")
    return sig_workspace


def _rule(path: Path):
    return next(r for r in parse_file(path).rules if r.name == RULE)


async def test_a_same_day_edit_of_a_released_rule_saves_with_its_metadata_refreshed(released: Workspace) -> None:
    path = released.signatures / "rules" / "spam" / "gtube.yar"
    before = _rule(path)
    app = make_app(released, open_rule=path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EditorScreen)
        editor = screen.query_one(YaraEditor)
        editor.replace(editor.text.replace("filesize < 10MB", "filesize < 12MB"), (0, 0), editor.document.end)
        await pilot.press("ctrl+s")
        await settle(pilot)
        after = _rule(path)
        assert after.fingerprint != before.fingerprint
        assert after.meta_value("fingerprint") == after.fingerprint
        assert after.meta_value("version") == 2
        assert after.meta_value("modified") == before.meta_value("modified") == dt.date.today().isoformat()
        assert editor.text == path.read_text() and not screen.dirty
        status = static_text(screen.query_one("#editor-status", Static))
        assert f"refreshed {RULE}: fingerprint" in status and "version 1→2" in status
        # saving again (another edit, same day) does not bump twice
        editor.replace(editor.text.replace("filesize < 12MB", "filesize < 14MB"), (0, 0), editor.document.end)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert _rule(path).meta_value("version") == 2
    report = validate(released.signatures, scan_corpus=False)
    assert not [f for f in report.findings if f.severity == "error"], \
        [f"{f.id} {f.message}" for f in report.findings if f.severity == "error"]


async def test_format_refreshes_stale_metadata_instead_of_saying_already_formatted(released: Workspace) -> None:
    path = released.signatures / "rules" / "spam" / "gtube.yar"
    app = make_app(released, open_rule=path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EditorScreen)
        editor = screen.query_one(YaraEditor)
        shown: list[str] = []
        app.notify = lambda message, **kw: shown.append(f"{kw.get('title')}: {message}")  # type: ignore[method-assign]
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert not any("Metadata refreshed" in s for s in shown)     # nothing stale yet
        editor.replace(editor.text.replace("filesize < 10MB", "filesize < 12MB"), (0, 0), editor.document.end)
        shown.clear()
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert not any("already formatted" in s for s in shown)
        assert any(s.startswith("Metadata refreshed") and "version 1→2" in s for s in shown)
        rule = next(r for r in parse_text(editor.text).rules if r.name == RULE)
        assert rule.meta_value("fingerprint") == rule.fingerprint and rule.meta_value("version") == 2
        assert screen.dirty                              # formatted in the buffer, not saved


async def test_a_file_changed_on_disk_reloads_when_the_editor_has_no_edits(released: Workspace) -> None:
    path = released.signatures / "rules" / "spam" / "gtube.yar"
    app = make_app(released, open_rule=path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EditorScreen)
        await pilot.press("f2")
        path.write_text(path.read_text() + "// changed outside\n")
        await pilot.press("f3")                     # shown again: it looks at the disk
        await settle(pilot)
        assert screen.query_one(YaraEditor).text == path.read_text() and not screen.dirty


async def test_before_saving_over_a_change_on_disk_it_asks(released: Workspace) -> None:
    path = released.signatures / "rules" / "spam" / "gtube.yar"
    app = make_app(released, open_rule=path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EditorScreen)
        editor = screen.query_one(YaraEditor)
        editor.move_cursor((0, 0))
        await pilot.press(*"// mine", "enter")
        outside = path.read_text() + "// changed outside\n"
        path.write_text(outside)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen) and app.screen.choices == [RELOAD, KEEP, DIFF]
        assert path.read_text() == outside              # nothing written yet
        await pilot.press("3")                          # the diff: disk -> editor
        await settle(pilot)
        assert isinstance(app.screen, DiffScreen)
        assert "+// mine" in app.screen.diff and "-" in app.screen.diff
        await pilot.press("escape")                     # back to the question
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("escape")                     # not now: the editor does not ask again
        await settle(pilot)
        assert app.screen is screen and path.read_text() == outside
        await pilot.press("ctrl+s")                     # ... until the next save
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("1")                          # reload: the outside change wins
        await settle(pilot)
        assert editor.text == outside and not screen.dirty
        # once more, keeping mine this time: the save then overwrites
        editor.move_cursor((0, 0))
        await pilot.press(*"// mine", "enter")
        path.write_text(outside + "\n// outside again\n")
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert path.read_text().startswith("// mine\n") and "outside again" not in path.read_text()
        assert not screen.dirty


async def test_several_files_in_tabs_keep_their_edits(released: Workspace) -> None:
    sig = released.signatures / "rules"
    gtube, eicar = sig / "spam" / "gtube.yar", sig / "test" / "eicar.yar"
    app = make_app(released, open_rule=gtube)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EditorScreen)
        editor = screen.query_one(YaraEditor)
        editor.move_cursor((0, 0))
        await pilot.press(*"// a", "enter")
        app.open_rule_file(eicar)
        await settle(pilot)
        assert [b.label for b in screen.buffers] == ["gtube.yar", "eicar.yar"]
        assert editor.text == eicar.read_text() and not screen.dirty
        await pilot.press("ctrl+pageup")
        assert editor.text.startswith("// a\n") and screen.dirty and screen.path == gtube
        assert str(screen.query_one("#rule-tabs").active_tab.label) == "gtube.yar ●"
        # closing a tab with edits asks first
        screen.action_close_tab()
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert [b.label for b in screen.buffers] == ["eicar.yar"] and screen.path == eicar
        assert not gtube.read_text().startswith("// a")
