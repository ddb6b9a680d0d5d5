"""The whole loop through the UI: from an unknown sample in the quarantine to a rule on every tower.

Pilot drives the real app over a demo quarantine, a git signature repository, a
``workbench serve`` on loopback and two tower agents (``tests/support/tui_loop.py``): open the
message with the WbStealer sample, dissect it, mark strings, draft a rule, see it lint
clean, promote it, save, test it (it matches the sample and nothing clean), retro-hunt,
commit, release, publish, and watch both towers report the new serial on the board.
Opening a match and retro-hunting have their own tests (tests/tui/screens/test_testing.py).

With ``WORKBENCH_WALKTHROUGH_SHOTS=DIR`` it saves an SVG screenshot of each step there
(``docs/images`` holds the walkthrough's, see docs/walkthrough.md), and adds a retro-hunt.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static, Tree

from tests.support.pilot import linted, settle, static_text, until
from tests.support.tui_loop import Loop, running_loop
from workbench.distribute.fleet import Health
from workbench.release.release_store import ReleaseStore
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.artifact import ArtifactScreen
from workbench.tui.screens.editor import EditorScreen
from workbench.tui.screens.fleet import FleetScreen
from workbench.tui.screens.message import MessageScreen
from workbench.tui.screens.modals import ChoiceScreen, PromptScreen
from workbench.tui.screens.release import ReleaseScreen
from workbench.tui.screens.testing import RuleTestScreen
from workbench.tui.widgets.fleet_board import FleetBoard
from workbench.tui.widgets.list_table import ListTable
from workbench.tui.widgets.strings_table import StringsTable
from workbench.tui.widgets.yara_editor import YaraEditor

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (120, 40)
STRONG = "http://exfil.stealer.example/upload.php"
SUPPORT = "WbUpdater"


class Shots:
    """Numbered SVG screenshots of the walkthrough, when asked for."""

    def __init__(self, app: WorkbenchApp) -> None:
        folder = os.environ.get("WORKBENCH_WALKTHROUGH_SHOTS")
        self.folder = Path(folder) if folder else None
        self.app = app
        self.n = 0

    def take(self, name: str) -> None:
        if self.folder is None:
            return
        self.n += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        self.app.save_screenshot(f"walkthrough-{self.n:02d}-{name}.svg", str(self.folder))


async def mark_string(pilot: Pilot[object], screen: ArtifactScreen, text: str) -> None:
    """Search the strings tab (the box is filled directly: typing is slow under Pilot) and mark."""
    search = screen.query_one("#strings-search", Input)
    search.value = text
    await pilot.pause()
    table = screen.query_one(StringsTable)
    assert [r.text for r in table.rows] == [text]
    table.focus()
    await pilot.press("m")


async def retrohunt_for_the_walkthrough(pilot: Pilot[object], tester: RuleTestScreen, sha256: str,
                                       shots: Shots) -> None:
    """The walkthrough also shows a retro-hunt (tests/tui/screens/test_testing.py tests it)."""
    await pilot.press("h", "enter")                  # the suggested tag, retro-wbstealer
    await until(pilot, lambda: tester.hunt is not None, timeout=60)
    assert sha256 in [m.sha256 for m in tester.hunt.messages]
    shots.take("retrohunt")


async def test_from_an_unknown_sample_to_every_tower(tmp_path: Path) -> None:
    with running_loop(tmp_path) as loop:
        await walk(loop)


async def walk(loop: Loop) -> None:
    workspace = loop.workspace
    app = make_app(workspace, fleet_refresh=0.2)
    shots = Shots(app)
    async with app.run_test(size=SIZE) as pilot:
        # -- the quarantine: find the message, open it, watch it dissect ----------------------
        await settle(pilot)
        app.screen.query_one("#filter", Input).value = "QuickBooks"
        await settle(pilot)
        shots.take("quarantine")
        await pilot.press("enter")
        message = app.screen
        assert isinstance(message, MessageScreen)
        await until(pilot, lambda: message.dissection is not None, timeout=60)
        exe = next(n for n in message.nodes.values() if n.data.safe_name == "QuickBooks_Update.exe")
        message.query_one("#artifacts", Tree).move_cursor(exe)
        await pilot.pause()
        shots.take("message")
        await pilot.press("enter")
        await settle(pilot)
        artifact = app.screen
        assert isinstance(artifact, ArtifactScreen)
        assert artifact.data[:2] == b"MZ"

        # -- mark two strings, draft a rule ---------------------------------------------------
        await pilot.press("3")
        await settle(pilot)
        await mark_string(pilot, artifact, STRONG)
        await mark_string(pilot, artifact, SUPPORT)
        assert [m.value for m in app.marks] == [STRONG, SUPPORT]
        artifact.query_one("#strings-search", Input).value = "stealer"
        await pilot.pause()
        shots.take("strings")
        await pilot.press("d")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("#prompt", Input).value = "MAL WbStealer"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen), timeout=30)
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        await linted(pilot)
        text = editor.query_one(YaraEditor).text
        assert "rule MAL_WbStealer_" in text and STRONG in text and 'status      = "TESTING"' in text
        assert editor.findings == [], [f.message for f in editor.findings]
        assert "clean" in static_text(editor.query_one("#lint-title", Static))

        # -- promote it (TESTING never ships) and save ---------------------------------------
        await pilot.press("ctrl+r")
        chooser = app.screen
        assert isinstance(chooser, ChoiceScreen)
        await pilot.press(str(chooser.choices.index("RELEASED") + 1))
        assert 'status      = "RELEASED"' in editor.query_one(YaraEditor).text
        await linted(pilot)
        assert editor.findings == []
        shots.take("editor")
        await pilot.press("ctrl+s")
        prompt = app.screen
        assert isinstance(prompt, PromptScreen)
        assert prompt.query_one("#prompt", Input).value == "rules/mal/wbstealer.yar"
        await pilot.press("enter")
        await settle(pilot)
        rule_file = loop.signatures / "rules" / "mal" / "wbstealer.yar"
        assert rule_file.read_text() == editor.query_one(YaraEditor).text and not editor.dirty

        # -- test it: the sample matches, nothing clean does -------------------------------------
        await pilot.press("f4")
        tester = app.screen
        assert isinstance(tester, RuleTestScreen)
        await settle(pilot)
        assert "rules/mal/wbstealer.yar" in static_text(tester.query_one("#test-scope", Static))
        await pilot.press("r")
        await until(pilot, lambda: tester.report is not None, timeout=60)
        report = tester.report
        [rule] = report.rules
        assert (rule.rule, rule.tp_count, rule.fp_count, rule.false_negatives) == \
            ("MAL_WbStealer_Exe", 1, 0, [])
        assert {c.label for c in report.corpora} == {"malicious", "clean"}
        assert "PASS" in static_text(tester.query_one("#test-summary", Static))
        shots.take("test")
        hits = tester.query_one("#tp", ListTable).items
        assert {(row.name, row.data) for row in hits} == {("QuickBooks_Update.exe", STRONG.encode()),
                                                          ("QuickBooks_Update.exe", SUPPORT.encode())}
        if shots.folder is not None:
            await retrohunt_for_the_walkthrough(pilot, tester, message.sha256, shots)

        # -- commit, release, publish ------------------------------------------------------------
        await pilot.press("f5")
        releaser = app.screen
        assert isinstance(releaser, ReleaseScreen)
        await until(pilot, lambda: releaser.view is not None and bool(releaser.view.changes))
        added = [c for c in releaser.view.changes if c.kind == "added"]
        assert [(c.rule, c.file, c.git) for c in added] == \
            [("MAL_WbStealer_Exe", "rules/mal/wbstealer.yar", "untracked")]
        await settle(pilot)
        assert "+    $x1" in static_text(releaser.query_one("#release-detail", Static)).replace('"', " ") \
            or STRONG in static_text(releaser.query_one("#release-detail", Static))
        shots.take("changes")
        await pilot.press("c")
        assert isinstance(app.screen, PromptScreen)
        assert app.screen.query_one("#prompt", Input).value == "Add MAL_WbStealer_Exe"
        await pilot.press("enter")
        await until(pilot, lambda: not releaser.busy and releaser.view is not None
                    and not releaser.view.uncommitted, timeout=60)
        assert releaser.view.changes[0].git == ""           # still a change since serial 1, committed
        await pilot.press("R")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("#prompt", Input).value = "WbStealer"
        await pilot.press("enter")
        await until(pilot, lambda: not releaser.busy and releaser.view is not None
                    and releaser.view.latest is not None and releaser.view.latest.serial == 2,
                    timeout=60)
        latest = ReleaseStore(workspace).latest()
        assert latest is not None and latest.serial == 2 and latest.message == "WbStealer"
        assert [c.name for c in latest.changelog.added] == ["MAL_WbStealer_Exe"]
        await pilot.press("p")
        await until(pilot, lambda: not releaser.busy and releaser.view is not None
                    and 2 in releaser.view.published, timeout=60)
        shots.take("release")

        # -- the fleet board: both towers report serial 2 ------------------------------------------
        await pilot.press("f6")
        fleet = app.screen
        assert isinstance(fleet, FleetScreen)

        def everyone_on_2() -> bool:
            state = fleet.state
            return (state is not None and state.newest_serial == 2 and len(state.servers) == 2
                    and all(s.serial == 2 and s.health is Health.GREEN for s in state.servers))

        await until(pilot, everyone_on_2, timeout=60)
        board = fleet.query_one(FleetBoard)
        assert [t.tower for t in board.towers] == ["ams-t03", "fra-t07"]
        summary = static_text(fleet.query_one("#fleet-summary", Static))
        assert "Newest serial 2" in summary and "on 2 of 2 servers (100%)" in summary
        assert "on serial 2" in static_text(fleet.query_one("#fleet-detail", Static))
        shots.take("fleet")
