"""Pilot tests of the rule-health screen: the fleet's numbers per rule, the storm flag, the kill switch."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, Input, Static

from tests.support.pilot import settle, static_text, until
from workbench.distribute.fleet import FleetReport, FleetStore
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.telemetry import HOUR
from workbench.distribute.update_repository import UpdateRepository
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.release.release_store import ReleaseStore
from workbench.release.service import make_release
from workbench.rules.parse import parse_file
from workbench.samples.mail import GTUBE, Mail
from workbench.tui.app import make_app
from workbench.tui.screens.fleet import FleetScreen
from workbench.tui.screens.modals import ChoiceScreen, ConfirmScreen
from workbench.tui.screens.rule_health import RuleHealthScreen
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (120, 40)
NOISY = "SPAM_GTUBE_TestString"
QUIET = "TEST_EICAR_TestFile_Plain"


def report_hits(workspace: Workspace) -> None:
    """Two towers' scanners: NOISY jumps far above its baseline in the last hour, QUIET ticks along."""
    now = time.time()
    with FleetStore(workspace.state / "fleet.sqlite") as store:
        for tower in ("t01", "t02"):
            for h in range(24, 0, -1):
                store.record(tower, FleetReport(server="mx1", state="ok", serial=1, scanner={
                    "started": "a", "messages": 30 - h, "rule_hits": {NOISY: 25 - h, QUIET: (25 - h) // 4}}),
                    received_at=now - h * HOUR)
            store.record(tower, FleetReport(server="mx1", state="ok", serial=1, scanner={
                "started": "a", "messages": 900, "rule_hits": {NOISY: 400 if tower == "t01" else 250,
                                                               QUIET: 6}}), received_at=now)


def quarantine_copies(workspace: Workspace, count: int = 6, dismissed: int = 5) -> None:
    """Copies the towers sent for NOISY; analysts dismissed most of them as clean."""
    with Quarantine.open(workspace) as q:
        for n in range(count):
            mail = Mail(sender="news@shop.example", to="a@corp.example", subject=f"offer {n}",
                        text=f"{GTUBE.decode()} {n}")
            summary = ingest_bytes(q, mail.build(), tower="t01", server="mx1",
                                   reason=f"match: {NOISY}", source=f"test#{n}")
            if n < dismissed:
                q.set_status(summary.messages[0].sha256, "dismissed", note="newsletter, clean")


@pytest.fixture
def fleet_workspace(sig_workspace: Workspace) -> Workspace:
    """Released once, published, with the fleet's telemetry and the quarantine's verdicts."""
    make_release(sig_workspace, message="first release")
    from workbench.distribute.update_repository import publish_bundle

    repo = UpdateRepository.for_workspace(sig_workspace)
    repo.init(RepositorySettings())
    publish_bundle(repo, ReleaseStore(sig_workspace).get(1).bundle_path)
    report_hits(sig_workspace)
    quarantine_copies(sig_workspace)
    return sig_workspace


async def open_health(pilot, app) -> RuleHealthScreen:   # type: ignore[no-untyped-def]
    """From the fleet screen (H), as an analyst would, and wait for the full read."""
    await settle(pilot)
    await pilot.press("f6")
    assert isinstance(app.screen, FleetScreen)
    await pilot.press("H")
    screen = app.screen
    assert isinstance(screen, RuleHealthScreen)
    await until(pilot, lambda: screen.complete, timeout=60)
    return screen


def pane_text(screen: RuleHealthScreen) -> str:
    """The pane under the table: the highlighted rule's numbers, then its flag and evidence."""
    return "\n".join(static_text(screen.query_one(f"#{name}", Static))
                     for name in ("health-detail", "health-evidence"))


def rule_status(workspace: Workspace, rule: str) -> str | None:
    path = workspace.signatures / "rules" / "spam" / "gtube.yar"
    return next(r for r in parse_file(path).rules if r.name == rule).meta_value("status")


async def test_the_storm_is_flagged_first_with_its_evidence(fleet_workspace: Workspace) -> None:
    app = make_app(fleet_workspace, fleet_refresh=3600)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_health(pilot, app)
        table = screen.query_one(DataTable)
        assert table.row_count == len(screen.report.rules) >= 8          # every house rule
        first = table.get_row_at(0)
        assert first[0] == NOISY and str(first[-1]) == "storm → DISABLED"
        assert first[-2] == "5/6" and first[6] == "2" and first[1] == "0/0"   # dismissed, towers, lint
        summary = static_text(screen.query_one("#health-summary", Static))
        assert "1 flagged as likely false-positive storms" in summary
        assert "this workspace's fleet store" in summary and "measuring" not in summary
        detail = pane_text(screen)
        assert NOISY in detail and "rules/spam/gtube.yar" in detail and "RELEASED" in detail
        assert "5 of 6 quarantined copies, as clean" in detail
        assert "fp-storm: proposed DISABLED" in detail and "hits in the last 1 h" in detail
        assert "5 of 6 quarantined copies dismissed as clean" in detail
        assert "t01" in detail and "t02" in detail
        # the quiet rule: live hits, nothing flagged; f shows only the flagged one
        await pilot.press("down")
        quiet = pane_text(screen)
        assert QUIET in quiet and "not flagged" in quiet and "proposed" not in quiet
        await pilot.press("f")
        assert table.row_count == 1 and table.get_row_at(0)[0] == NOISY


async def test_the_kill_switch_asks_then_releases_and_publishes(fleet_workspace: Workspace) -> None:
    app = make_app(fleet_workspace, fleet_refresh=3600)
    repo = UpdateRepository.for_workspace(fleet_workspace)
    shown: list[str] = []
    app.notify = lambda message, **kw: shown.append(f"{kw.get('title')}: {message}")  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_health(pilot, app)
        await pilot.press("k")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert f"take {NOISY} off the whole fleet now" in dialog.question
        assert "publishes it" in dialog.question and "--emergency" in dialog.question
        assert "Flagged fp-storm" in dialog.question
        await pilot.press("n")                      # cancelled: nothing happens
        await settle(pilot)
        assert app.screen is screen and ReleaseStore(fleet_workspace).latest().serial == 1
        await pilot.press("k")
        await pilot.press("y")
        await until(pilot, lambda: repo.newest_serial() == 2, timeout=60)
        await settle(pilot)
        assert any(f"Kill switch: {NOISY} disabled in signatures-2 (published" in m for m in shown)
        # again: refused (it no longer ships), said in red, nothing released
        await until(pilot, lambda: screen.complete, timeout=60)
        await pilot.press("k", "y")
        await until(pilot, lambda: any("does not ship" in m for m in shown))
        assert repo.newest_serial() == 2
    latest = ReleaseStore(fleet_workspace).latest()
    assert latest.serial == 2 and "EMERGENCY" in latest.message and "dismissed as clean" in latest.message
    assert rule_status(fleet_workspace, NOISY) == "DISABLED"
    assert NOISY not in {r.name for r in latest.ruleset if r.shipped}


async def test_a_proposal_sets_the_status_in_the_rule_file(fleet_workspace: Workspace) -> None:
    app = make_app(fleet_workspace, fleet_refresh=3600)
    async with app.run_test(size=SIZE) as pilot:
        await open_health(pilot, app)
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, ChoiceScreen) and dialog.current == "DISABLED"
        await pilot.press("1")                      # NOISY instead
        await until(pilot, lambda: rule_status(fleet_workspace, NOISY) == "NOISY")
    assert ReleaseStore(fleet_workspace).latest().serial == 1           # no release: that is F5's


async def test_the_palette_and_f9_reach_it(ui_workspace: Workspace) -> None:
    app = make_app(ui_workspace)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        app.screen.query_one(Input).value = "go to rule health"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RuleHealthScreen)
        await until(pilot, lambda: screen.complete)
        # nothing reported, no signatures tree: it says so rather than showing nothing
        summary = static_text(screen.query_one("#health-summary", Static))
        assert "0 rules" in summary and "none flagged" in summary
        await pilot.press("f2", "f9")
        assert app.screen is screen
