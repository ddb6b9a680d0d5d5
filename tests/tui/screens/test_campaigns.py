"""The campaigns screen: the wave listed, its details, triage of every member, a draft for all."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from tests.support.campaign_lab import build_wave_lab
from tests.support.pilot import settle, static_text, until
from workbench.quarantine.service import Quarantine
from workbench.tui.app import make_app
from workbench.tui.screens.campaigns import CampaignsScreen
from workbench.tui.screens.modals import StatusScreen

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (160, 50)


async def test_the_wave_its_reasons_triage_and_a_draft(tmp_path: Path) -> None:
    lab = build_wave_lab(tmp_path / "home", wave_size=4, dissect=False)
    app = make_app(lab.workspace)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f7")
        screen = app.screen
        assert isinstance(screen, CampaignsScreen)
        await app.workers.wait_for_complete()
        await until(pilot, lambda: bool(screen.campaigns))
        table = screen.query_one(DataTable)
        wave = next(c for c in screen.campaigns if c.size == 4)
        assert table.row_count == len(screen.campaigns)
        while screen.current != wave.id:
            await pilot.press("down")
            await settle(pilot)
        await app.workers.wait_for_complete()
        await until(pilot, lambda: wave.id in static_text(screen.query_one("#campaign-detail", Static)))
        detail = static_text(screen.query_one("#campaign-detail", Static))
        assert "4 messages" in detail and "same URL" in detail and "courier-track.example/parcel" in detail
        # s: every member's status at once
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, StatusScreen)
        await pilot.press("2")          # triaged
        await settle(pilot)
        await pilot.press("enter")      # no note
        await app.workers.wait_for_complete()
        await settle(pilot)
        with Quarantine.open(lab.workspace) as q:
            assert {q.index.get(s).status for s in lab.wave} == {"triaged"}
            assert {q.index.get(s).status for s in lab.others} == {"new"}
        # d: one rule for the wave, tested at once; e takes it to the editor
        await pilot.press("d")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: screen.draft is not None)
        detail = static_text(screen.query_one("#campaign-detail", Static))
        assert "coverage 4 of 4 members (100%)" in detail and "rule MAL_" in detail
        await pilot.press("e")
        await settle(pilot)
        assert app.current_mode == "rules"
