"""The changelog says what ships and what stays in testing."""

from __future__ import annotations

import re

from tests.support.signatures import SigRepo
from workbench.release.changelog import Changelog, diff_rulesets
from workbench.release.service import make_release


def test_the_first_changelog_separates_what_ships_from_what_stays_in_testing(sig: SigRepo) -> None:
    outcome = make_release(sig.workspace, message="first release")
    testing = [r for r in outcome.changelog.added if not r.ships]
    assert [r.status for r in testing] == ["TESTING"] and outcome.rules_total - outcome.rules_shipped == 1
    text = (sig.root / "CHANGELOG.md").read_text()
    assert "9 added (8 ship, 1 stays in testing)" in text
    shipped_part, testing_part = text.split("### Added, stays in testing (not shipped)")
    assert f"`{testing[0].name}`" in testing_part and f"`{testing[0].name}`" not in shipped_part
    shipped_names = set(re.findall(r"- `([^`]+)`", shipped_part))
    assert len(shipped_names) == outcome.rules_shipped


def test_a_changelog_stored_before_ships_was_kept_still_loads() -> None:
    old = {"previous_serial": 1, "added": [{"name": "R", "file": "rules/x.yar", "status": "RELEASED",
                                            "version": "1", "previous_status": "", "previous_version": ""}]}
    changelog = Changelog.from_data(old)
    assert changelog.added[0].ships and changelog.summary().startswith("1 added,")
    assert diff_rulesets([], [], None).empty
