"""Pilot tests of the test screen: run, results per rule, open a match, cancel, errors, retro-hunt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Input, SelectionList, Static, TabbedContent

from tests.support.pilot import settle, static_text, until, waiting
from tests.support.ui_samples import ABSENT, QUOTED, RULE, SLOW_RULE
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.quarantine.service import Quarantine
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.screens.artifact import ArtifactScreen
from workbench.tui.screens.modals import PromptScreen
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.screens.testing import RuleTestScreen, Scope, default_tag
from workbench.tui.testing_rows import preview
from workbench.tui.widgets.hex_view import HexView
from workbench.tui.widgets.list_table import ListTable
from workbench.tui.widgets.yara_editor import YaraEditor
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (120, 40)
def rule_file(workspace: Workspace) -> Path:
    return workspace.signatures / "rules" / "test" / "eicar_marker.yar"


async def open_tester(pilot, app: WorkbenchApp) -> RuleTestScreen:
    await settle(pilot)
    await pilot.press("f4")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, RuleTestScreen)
    return screen


async def run(pilot, screen: RuleTestScreen) -> None:
    await pilot.press("r")
    await until(pilot, lambda: not screen.running, timeout=60)


async def test_results_per_rule_and_a_match_opens_at_its_offset(corpora_workspace: Workspace) -> None:
    app = make_app(corpora_workspace, open_rule=rule_file(corpora_workspace))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tester(pilot, app)
        assert "rules/test/eicar_marker.yar" in static_text(screen.query_one("#test-scope", Static))
        assert sorted(screen.query_one("#corpora", SelectionList).selected) == ["clean", "mal"]
        await run(pilot, screen)
        report = screen.report
        assert report is not None and not report.passed
        [rule] = report.rules
        assert (rule.rule, rule.tp_count, rule.fp_count) == ("TEST_Eicar_Marker", 1, 1)
        assert [(f.hash, f.reason) for f in rule.false_negatives] == [(ABSENT, "absent")]
        summary = static_text(screen.query_one("#test-summary", Static))
        assert "1 TP · 1 FP · 1 FN" in summary and "FAIL" in summary
        assert "✗ FP and FN" in screen.query_one("#test-rules", ListTable).render_line(1).text
        # a failing rule shows its false positives first; the tabs count each list
        tabs = screen.query_one("#test-tabs", TabbedContent)
        assert tabs.active == "tab-fp"
        assert str(tabs.get_tab("tab-tp").label) == "True positives 1"
        assert str(tabs.get_tab("tab-fn").label) == "False negatives 1"
        [fp] = screen.query_one("#fp", ListTable).items
        assert (fp.name, fp.corpora, fp.identifier) == ("notes.txt", "clean", "$a")
        assert fp.offset == QUOTED.index(b"EICAR-STANDARD")
        [missed] = screen.query_one("#fn", ListTable).items
        assert missed.reason.startswith("absent") and not missed.sha256
        # enter on the false positive opens the clean file in the artifact view, at the match
        await pilot.press("2", "enter")
        await until(pilot, lambda: isinstance(app.screen, ArtifactScreen), timeout=30)
        artifact = app.screen
        await settle(pilot)
        hex_view = artifact.query_one(HexView)
        assert hex_view.cursor == fp.offset
        assert hex_view.selected_bytes() == b"EICAR-STANDARD-ANTIVIRUS"
        await pilot.press("escape")
        assert app.screen is screen
        # a false negative that is in no corpus has nothing to open
        shown: list[str] = []
        app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
        await pilot.press("3", "enter")
        assert app.screen is screen and any("nothing to open" in s for s in shown)


async def test_r_before_the_corpora_are_read_runs_once_they_are(corpora_workspace: Workspace) -> None:
    """A fast analyst (or a terminal script) presses r as the screen appears, while the
    corpora list is still being read: the test starts when it arrives, not "tick a corpus"."""
    app = make_app(corpora_workspace, open_rule=rule_file(corpora_workspace))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tester(pilot, app)
        screen.corpora_read = False                  # as just after mount, before the list arrives
        screen.query_one("#corpora", SelectionList).clear_options()
        await pilot.press("r")
        assert not screen.running and screen.report is None
        screen.load_corpora()
        await until(pilot, lambda: screen.report is not None and not screen.running, timeout=60)
        assert sorted(screen.query_one("#corpora", SelectionList).selected) == ["clean", "mal"]
        [rule] = screen.report.rules
        assert rule.rule == "TEST_Eicar_Marker"


async def test_unsaved_edits_are_tested_as_they_are(corpora_workspace: Workspace) -> None:
    app = make_app(corpora_workspace, open_rule=rule_file(corpora_workspace))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        editor = app.screen.query_one(YaraEditor)
        editor.text = RULE.replace("EICAR-STANDARD-ANTIVIRUS", "harmless.")      # only the clean file
        screen = await open_tester(pilot, app)
        assert "(unsaved edits)" in static_text(screen.query_one("#test-scope", Static))
        await run(pilot, screen)
        [rule] = screen.report.rules
        assert (rule.tp_count, rule.fp_count) == (0, 1)
        assert rule_file(corpora_workspace).read_text() == RULE                    # the file is untouched


async def test_the_whole_ruleset_and_rules_that_do_not_compile(corpora_workspace: Workspace) -> None:
    app = make_app(corpora_workspace)
    shown: list[str] = []
    app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tester(pilot, app)
        # no rule in the editor: every rule of the repository
        assert "every rule in the signature repository" in static_text(screen.query_one("#test-scope", Static))
        await run(pilot, screen)
        assert [r.rule for r in screen.report.rules] == ["TEST_Eicar_Marker"]
        broken = corpora_workspace.signatures / "rules" / "test" / "broken.yar"
        broken.write_text("rule Broken { condition: $nope }\n")
        await run(pilot, screen)
        phase = static_text(screen.query_one("#test-phase", Static))
        assert "do not compile" in phase and "broken.yar" in phase
        assert any("do not compile" in s for s in shown)
        assert screen.report.rules[0].rule == "TEST_Eicar_Marker"          # the last good results stay
        # nothing ticked: nothing to run
        screen.query_one("#corpora", SelectionList).deselect_all()
        await pilot.pause()
        await pilot.press("r")
        assert not screen.running and any("tick at least one corpus" in s for s in shown)


async def test_progress_flows_and_cancel_stops_the_scan(corpora_workspace: Workspace, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for n in range(16):
        (big / f"blob{n:02d}.bin").write_bytes(os.urandom(1 << 20))
    with CorpusRegistry(corpora_workspace) as registry:
        registry.add("big", big, "malicious")      # a clean corpus would feed the goodware database
    slow = corpora_workspace.signatures / "rules" / "test" / "slow.yar"
    # a loop over every byte: about 0.2 s per MiB, so the scan is still running when cancelled
    slow.write_text(SLOW_RULE)
    app = make_app(corpora_workspace, open_rule=slow)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tester(pilot, app)
        await pilot.press("n")                             # no cache: scan everything
        app.simulate_key("r")
        await waiting(pilot, lambda: bool(screen.running), timeout=5)

        def scanning() -> bool:
            return screen.last_progress is not None and screen.last_progress.phase == "scanning"

        # waits without settling: settling waits for the scan's worker to end
        await waiting(pilot, lambda: scanning() or not screen.running)
        assert screen.running, "the scan ended before it could be cancelled"
        assert "MiB" in static_text(screen.query_one("#test-phase", Static))     # bytes done of total
        # the UI answers keys while the scan runs (keys are posted, not pressed: Pilot's press
        # waits for the progress bar's animation to finish, which it never does while scanning)
        app.simulate_key("4")
        await waiting(pilot, lambda: screen.query_one("#test-tabs", TabbedContent).active == "tab-other",
                      timeout=1)
        app.simulate_key("x")
        await waiting(pilot, lambda: not screen.running)
        phase = static_text(screen.query_one("#test-phase", Static))
        assert phase.startswith("cancelled after") and "r resumes" in phase
        assert screen.report is None
        # promised: stopped within 1 s; bench/tui.py measures it


async def test_retrohunt_dissects_tags_and_marks_the_messages(corpora_workspace: Workspace) -> None:
    from workbench.dissect.catalog import undissected

    workspace = corpora_workspace
    assert len(undissected(workspace)) > 30                 # the template dissected two messages
    app = make_app(workspace, open_rule=rule_file(workspace))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tester(pilot, app)
        await pilot.press("h")
        prompt = app.screen
        assert isinstance(prompt, PromptScreen)
        assert prompt.query_one("#prompt", Input).value == "retro-eicar-marker"
        await pilot.press("enter")
        await until(pilot, lambda: screen.hunt is not None, timeout=120)
        hunt = screen.hunt
        with Quarantine.open(workspace) as q:
            invoices = {r.sha256 for r in q.index.list("has:attachment subject:Invoice", limit=100)}
            hit = {m.sha256 for m in hunt.messages}
            assert hit == invoices and len(hit) == 12      # every zipped EICAR, dissected or not
            assert all("retro-eicar-marker" in q.index.get(sha).tags for sha in hit)
        assert undissected(workspace) == []
        assert app.marked_messages == hit
        retro = screen.query_one("#retro", ListTable)
        assert {m.sha256 for m in retro.items} == hit
        # the quarantine list shows them marked (and their new tag) for triage
        await pilot.press("f2")
        await settle(pilot)
        quarantine = app.screen
        assert isinstance(quarantine, QuarantineScreen)
        assert "12 marked" in static_text(quarantine.query_one("#count", Static))
        # triage since the hunt shows when the tab is seen again (not the hunt-time status)
        first = retro.items[0].sha256
        with Quarantine.open(workspace) as q:
            q.set_status(first, "dismissed")
        # enter on a hit in the retro-hunt tab opens the message
        await pilot.press("f4")
        await settle(pilot)
        assert next(m for m in retro.items if m.sha256 == first).status == "dismissed"
        retro.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.__class__.__name__ == "MessageScreen"


def test_default_tag_and_preview() -> None:
    assert default_tag(Scope([Path("rules/mal/Wb_Stealer.yar")], "x", single=True)) == "retro-wb-stealer"
    assert default_tag(Scope([Path("rules")], "x", single=False)) == "retro-hunt"
    assert preview(b"WbUpdater") == "WbUpdater"
    assert preview(b"MZ\x90\x00") == "4D 5A 90 00"


async def test_an_unexpected_failure_ends_the_run_and_is_shown(corpora_workspace: Workspace,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.corpus.rule_testing

    real = workbench.corpus.rule_testing.run_rule_tests

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(workbench.corpus.rule_testing, "run_rule_tests", broken)
    app = make_app(corpora_workspace, open_rule=rule_file(corpora_workspace))
    shown: list[str] = []
    app.notify = lambda message, **kw: shown.append(f"{kw.get('title')}: {message}")  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_tester(pilot, app)
        await pilot.press("r")
        await until(pilot, lambda: not screen.running)
        assert "disk on fire" in static_text(screen.query_one("#test-phase", Static))
        assert any(s.startswith("Could not test the rules") and "disk on fire" in s for s in shown)
        # and the next run is not refused as "still running"
        monkeypatch.setattr(workbench.corpus.rule_testing, "run_rule_tests", real)
        await pilot.press("r")
        await until(pilot, lambda: not screen.running and screen.report is not None)
