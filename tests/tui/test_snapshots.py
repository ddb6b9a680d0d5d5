"""Screenshots of every screen at 120x40 (pytest-textual-snapshot; update with --snapshot-update)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.support.pilot import linted, open_artifact, settle, sha_of, until
from tests.support.ui_samples import CLEAN
from workbench.rules.parse import parse_text
from workbench.tui.app import make_app
from workbench.tui.screens.editor import EditorScreen
from workbench.tui.screens.message import MessageScreen
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (120, 40)
Snap = Callable[..., bool]
# the screens issue 15 changed are shot at both sizes: nothing may be cut at 120 columns
BOTH = pytest.mark.parametrize("size", [(120, 40), (160, 50)], ids=["120x40", "160x50"])


def clean_rule() -> str:
    """The editor sample with its real fingerprint, so it lints clean."""
    fingerprint = parse_text(CLEAN).rules[0].fingerprint
    return CLEAN.replace("0" * 64, fingerprint)


@BOTH
def test_quarantine(snap_compare: Snap, ui_workspace: Workspace, size: tuple[int, int]) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("down", "down", "space")

    assert snap_compare(make_app(ui_workspace), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", [(120, 40), (160, 50)], ids=["120x40", "160x50"])
def test_quarantine_counts_panel_in_full(snap_compare: Snap, ui_workspace: Workspace,
                                         size: tuple[int, int]) -> None:
    """Reason and Status both show in full and nothing wraps (the panel was cut at 9 lines)."""
    from workbench.tui.widgets.facets import FacetPanel

    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        panel = pilot.app.screen.query_one(FacetPanel)
        assert panel.scrollable_content_region.height >= panel.option_count

    assert snap_compare(make_app(ui_workspace, list_refresh=0), terminal_size=size, run_before=ready)


def test_quarantine_filtered_light(snap_compare: Snap, ui_workspace: Workspace) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)

    app = make_app(ui_workspace, theme="light", query="has:attachment -tower:t30 sort:+subject")
    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_quarantine_bad_query(snap_compare: Snap, ui_workspace: Workspace) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)

    assert snap_compare(make_app(ui_workspace, query="after:yesterday"), terminal_size=SIZE,
                        run_before=ready)


def test_status_dialog(snap_compare: Snap, ui_workspace: Workspace) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("s")

    assert snap_compare(make_app(ui_workspace), terminal_size=SIZE, run_before=ready)


def test_message(snap_compare: Snap, ui_workspace: Workspace) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        assert isinstance(pilot.app.screen, MessageScreen)

    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Invoice 3"))
    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_message_auth_tab(snap_compare: Snap, ui_workspace: Workspace) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.click("#message-tabs #tab-auth")
        await settle(pilot)

    app = make_app(ui_workspace, open_message=sha_of(ui_workspace, "Invoice 3"))
    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


async def _open_exe(pilot: Pilot[object], artifact: Any, tab: str) -> None:
    await open_artifact(pilot, artifact)
    await pilot.press(tab)
    await settle(pilot)


@BOTH
@pytest.mark.parametrize("tab", ["1", "2", "3"])
def test_artifact_tabs(snap_compare: Snap, ui_workspace: Workspace, loader_exe: Any,
                       tab: str, size: tuple[int, int]) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await _open_exe(pilot, loader_exe, tab)

    assert snap_compare(make_app(ui_workspace), terminal_size=size, run_before=ready)


def test_artifact_hex_selection(snap_compare: Snap, ui_workspace: Workspace, loader_exe: Any) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await _open_exe(pilot, loader_exe, "4")
        await pilot.press("down", "down", "down", "right", "shift+right", "shift+right",
                          "shift+down")

    assert snap_compare(make_app(ui_workspace), terminal_size=SIZE, run_before=ready)


@BOTH
def test_editor_clean(snap_compare: Snap, ui_workspace: Workspace, size: tuple[int, int]) -> None:
    rule = ui_workspace.signatures / "rules" / "test" / "editor.yar"
    rule.parent.mkdir(parents=True)
    rule.write_text(clean_rule())

    async def ready(pilot: Pilot[object]) -> None:
        await linted(pilot)
        assert isinstance(pilot.app.screen, EditorScreen)

    assert snap_compare(make_app(ui_workspace, open_rule=rule), terminal_size=size, run_before=ready)


@BOTH
def test_editor_with_errors(snap_compare: Snap, ui_workspace: Workspace, size: tuple[int, int]) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        pilot.app.open_draft(clean_rule().replace("        $a\n}", "        $a and\n}"))  # type: ignore[attr-defined]
        await linted(pilot)

    assert snap_compare(make_app(ui_workspace), terminal_size=size, run_before=ready)


@BOTH
def test_help(snap_compare: Snap, ui_workspace: Workspace, size: tuple[int, int]) -> None:
    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")

    assert snap_compare(make_app(ui_workspace), terminal_size=size, run_before=ready)


@BOTH
def test_test_screen(snap_compare: Snap, corpora_workspace: Workspace, size: tuple[int, int]) -> None:
    from workbench.tui.screens.testing import RuleTestScreen

    rule = corpora_workspace.signatures / "rules" / "test" / "eicar_marker.yar"

    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("f4", "r")
        screen = pilot.app.screen
        assert isinstance(screen, RuleTestScreen)
        await until(pilot, lambda: screen.report is not None)
        # the run's timings differ every time: show fixed ones
        report, scope = screen.report, screen.scope()
        stats = dataclasses.replace(report.stats, seconds=0.04, files_scanned=4, pairs_cached=0)
        screen.show_report(dataclasses.replace(report, stats=stats), scope, at="09:30:00")
        await settle(pilot)

    assert snap_compare(make_app(corpora_workspace, open_rule=rule), terminal_size=size,
                        run_before=ready)


def test_release_screen(snap_compare: Snap, sig_workspace: Workspace) -> None:
    from tests.support.signatures import set_meta

    gtube = sig_workspace.signatures / "rules" / "spam" / "gtube.yar"
    set_meta(gtube, "SPAM_GTUBE_TestString", "status", "NOISY")

    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("f5")
        screen = pilot.app.screen
        await until(pilot, lambda: getattr(screen, "view", None) is not None)
        changes = screen.query_one("#changes")
        changes.cursor_row = next(i for i, c in enumerate(changes.items) if c.rule == "SPAM_GTUBE_TestString")
        await settle(pilot)

    assert snap_compare(make_app(sig_workspace), terminal_size=SIZE, run_before=ready)


def test_fleet_screen(snap_compare: Snap, ui_workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.fleet import FakeSource, fleet_state
    from workbench.distribute.fleet import Health
    from workbench.tui.widgets.fleet_board import FleetBoard

    state = fleet_state()
    monkeypatch.setattr("workbench.tui.screens.fleet.fleet_source", lambda workspace, url: FakeSource(state))

    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("f6")
        await until(pilot, lambda: getattr(pilot.app.screen, "state", None) is not None)
        board = pilot.app.screen.query_one(FleetBoard)
        board.action_jump(next(i for i, s in enumerate(board.servers) if s.health is Health.RED))
        await settle(pilot)

    assert snap_compare(make_app(ui_workspace, fleet_refresh=3600), terminal_size=SIZE, run_before=ready)


@BOTH
def test_editor_tabs_and_a_change_on_disk(snap_compare: Snap, ui_workspace: Workspace,
                                          size: tuple[int, int]) -> None:
    """Two files in tabs, the shown one edited here and on disk: the editor asks what to keep."""
    folder = ui_workspace.signatures / "rules" / "test"
    folder.mkdir(parents=True)
    first, second = folder / "editor.yar", folder / "other.yar"
    first.write_text(clean_rule())
    second.write_text(clean_rule().replace("TEST_Editor_Sample", "TEST_Editor_Other"))

    async def ready(pilot: Pilot[object]) -> None:
        await linted(pilot)
        pilot.app.open_rule_file(second)  # type: ignore[attr-defined]
        await linted(pilot)
        await pilot.press("end", *"  // mine")
        second.write_text(second.read_text() + "// changed elsewhere\n")
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(make_app(ui_workspace, open_rule=first), terminal_size=size, run_before=ready)


def test_rule_health_screen(snap_compare: Snap, ui_workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed health document (the Pilot tests read real ones): a storm flagged first, its evidence."""
    from collections import Counter

    from workbench.distribute.health import build_health
    from workbench.distribute.telemetry import FleetRules, RuleTelemetry
    from workbench.release.validate import RuleResult, ValidationReport

    at = 1795172400.0                   # 2026-11-20 11:00 UTC
    live = FleetRules(generated_at=at, window_hours=24, messages=48_210, scan_seconds=60.0, errors=0, rules=[
        RuleTelemetry("SPAM_Newsletter_Footer", 3_912, 163.0, {"t01": 2_410, "t02": 1_302, "t07": 200}, at,
                      3_400, 6.2, "3,400 hits in the last 1 h, 25x the baseline of 136/h"),
        RuleTelemetry("MAL_WbLoader_Config_Overlay", 14, 0.58, {"t01": 9, "t07": 5}, at - 5400, 1, 0.5),
        RuleTelemetry("TEST_EICAR_TestFile_Plain", 3, 0.13, {"t02": 3}, at - 30000, 0, 0.1)])
    validation = ValidationReport(root="signatures", mode="full", base="", rules=[
        RuleResult("SPAM_Newsletter_Footer", "rules/spam/footer.yar", "RELEASED", positives=["s1"],
                   matched=["s1"], clean_matches=["c1", "c2"], ms_per_mib=0.9),
        RuleResult("MAL_WbLoader_Config_Overlay", "rules/mal/wbloader.yar", "RELEASED",
                   positives=["s2", "s3"], matched=["s2", "s3"], clean_matches=[], ms_per_mib=0.4),
        RuleResult("TEST_EICAR_TestFile_Plain", "rules/test/eicar.yar", "RELEASED", positives=["s4"],
                   matched=["s4"], clean_matches=[], ms_per_mib=0.2),
        RuleResult("PHISH_VoicemailKit_Html_Form", "rules/phish/voicemailkit.yar", "TESTING",
                   positives=["s5", "s6"], matched=["s5"], clean_matches=[], ms_per_mib=1.7)])
    report = build_health(validation=validation, telemetry=live,
                          copies=Counter({"SPAM_Newsletter_Footer": 40, "MAL_WbLoader_Config_Overlay": 3}),
                          dismissed=Counter({"SPAM_Newsletter_Footer": 37}), corpus=True)
    monkeypatch.setattr("workbench.distribute.health.rule_health", lambda *a, **k: report)

    async def ready(pilot: Pilot[object]) -> None:
        await settle(pilot)
        await pilot.press("f9")
        await until(pilot, lambda: getattr(pilot.app.screen, "complete", False))
        await settle(pilot)

    assert snap_compare(make_app(ui_workspace), terminal_size=SIZE, run_before=ready)
