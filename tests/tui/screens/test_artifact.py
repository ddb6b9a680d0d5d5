"""Pilot tests of the artifact screen: strings, hex, marks, and a draft that lands in the editor."""

from __future__ import annotations

import pytest
import yara
from textual.widgets import Input, Static

from tests.support.pilot import open_artifact, settle
from tests.support.ui_samples import MARKER
from workbench.tui.app import make_app
from workbench.tui.screens.artifact import ArtifactScreen
from workbench.tui.screens.editor import EditorScreen
from workbench.tui.widgets.hex_view import HexView
from workbench.tui.widgets.strings_table import StringsTable
from workbench.tui.widgets.yara_editor import YaraEditor
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


async def test_strings_search_mark_hex_select_and_draft(ui_workspace: Workspace, loader_exe) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_artifact(pilot, loader_exe)
        data = screen.data
        assert data[:2] == b"MZ"
        # strings: search for the marker and mark it
        await pilot.press("3")
        table = screen.query_one(StringsTable)
        search = screen.query_one("#strings-search", Input)
        assert app.focused is search              # typing searches: no letter fires a command
        assert any(r.text == MARKER for r in table.rows)
        assert any(r.score is not None for r in table.rows)       # scored by the suggester
        await pilot.press("d")
        assert app.screen is screen and search.value == "d"
        await pilot.press("down")                 # into the list; a letter typed there searches on
        assert app.focused is table
        await pilot.press("w")
        assert app.focused is search and search.value == "dw"
        await pilot.press("down", "slash")        # / goes back to the search
        assert app.focused is search
        search.value = "wbtest-loade"             # typing is slow under Pilot: set, then type one
        search.action_end()
        await pilot.press("r")
        await settle(pilot)
        assert [r.text for r in table.rows] == [MARKER]
        await pilot.press("enter")                                   # back to the list
        assert app.focused is table
        await pilot.press("m")
        assert len(app.marks) == 1 and table.row_marked(0)
        # hex: jump to the PE header and mark 4 bytes
        await pilot.press("4", "g")
        await pilot.press(*"0x3c", "enter")
        hex_view = screen.query_one(HexView)
        assert app.focused is hex_view and hex_view.cursor == 0x3C
        await pilot.press("shift+right", "shift+right", "shift+right")
        assert hex_view.selection == (0x3C, 0x3F)
        await pilot.press("m")
        hexes = app.marks.hexes()
        assert [m.value for m in hexes] == [" ".join(f"{b:02X}" for b in data[0x3C:0x40])]
        # a bad offset says so and moves nothing
        await pilot.press("g", *"zzz", "enter")
        assert hex_view.cursor == 0x3F
        # draft from both marks: it opens in the editor
        await pilot.press("d")
        app.screen.query_one("#prompt", Input).value = "MAL TestLoader"
        await pilot.press("enter")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        text = editor.query_one(YaraEditor).text
        assert "rule MAL_TestLoader_" in text
        assert MARKER in text
        assert " ".join(f"{b:02X}" for b in data[0x3C:0x40]) in text
        assert yara.compile(source=text).match(data=data)
        assert len(app.marks) == 0
        assert editor.dirty                                         # a draft is unsaved work
        assert not table.row_marked(0)                              # no stale ● left behind


async def test_draft_without_marks_explains(ui_workspace: Workspace, loader_exe) -> None:
    app = make_app(ui_workspace)
    shown: list[str] = []
    app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await open_artifact(pilot, loader_exe)
        await pilot.press("d")
        assert isinstance(app.screen, ArtifactScreen)
        assert any("mark strings" in s for s in shown)


async def test_sort_strings_by_score(ui_workspace: Workspace, loader_exe) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_artifact(pilot, loader_exe)
        await pilot.press("3", "down", "S")
        rows = screen.query_one(StringsTable).rows
        scores = [r.score for r in rows if r.score is not None]
        assert scores == sorted(scores, reverse=True)
        assert rows[0].score == max(scores)


async def test_a_macro_shows_its_source_with_keywords(ui_workspace: Workspace) -> None:
    from workbench.dissect.walker import dissect_bytes
    from workbench.quarantine.object_store import ObjectStore
    from workbench.samples.office import build_vba_document

    doc = build_vba_document('Sub AutoOpen()\n  Shell "calc.exe"\nEnd Sub\n')
    store = ObjectStore(ui_workspace.quarantine)
    put = store.put_bytes(doc)
    assert put.sha256
    tree = dissect_bytes(doc, "macro.doc", store=store)
    module = next(a for a in tree.root.walk() if a.extension == "cls")
    app = make_app(ui_workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_artifact(pilot, module)
        await pilot.press("2")
        source = screen.query_one("#source-view", Static)
        assert source.display
        text = source.content
        assert "Sub AutoOpen()" in text.plain
        red = {text.plain[s.start:s.end] for s in text.spans if "red" in str(s.style)}
        assert {"AutoOpen", "Shell"} <= red
