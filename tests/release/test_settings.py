"""Release settings read from the policy's [release] and [externals] tables."""

from __future__ import annotations

import pytest

from tests.support.signatures import HOUSE
from workbench.release.changelog import RuleState, diff_rulesets
from workbench.release.settings import ReleaseSettings
from workbench.rules.policy import Policy, PolicyError


def _settings(toml: str) -> ReleaseSettings:
    import tomllib

    return ReleaseSettings.from_policy(Policy.from_dict(tomllib.loads(toml)))


def test_house_policy() -> None:
    s = ReleaseSettings.from_policy(Policy.load(HOUSE))
    assert s.ship == ("RELEASED", "NOISY") and s.rules == "rules" and s.budget_ms_per_mib == 10
    assert s.ships("NOISY") and not s.ships("TESTING")


def test_values_and_defaults() -> None:
    s = _settings('[release]\nship = ["RELEASED"]\nscan_budget_ms_per_mib = 5\n'
                  '[release.budgets]\nA_B_C = 50\n[externals]\nfilename = ""\nsize_hint = 3\n'
                  '[[release.allow]]\nrule = "A_B_C"\nfile = "x.txt"\nreason = "reviewed"\n')
    assert s.ship == ("RELEASED",) and s.budget_for("A_B_C") == 50 and s.budget_for("Other") == 5
    assert s.externals == {"filename": "", "size_hint": 3}
    assert s.allow[0].file == "x.txt"
    assert _settings("").ship == ("RELEASED", "NOISY")


@pytest.mark.parametrize("toml, message", [
    ('[release]\nship = ["LIVE"]', "LIVE"),
    ('[release]\nship = "RELEASED"', "list of strings"),
    ('[release]\nrules = "/etc"', "relative path"),
    ('[release]\nclean = "../elsewhere"', "relative path"),
    ('[release]\nscan_budget_ms_per_mib = -1', "non-negative"),
    ('[release.budgets]\nX = "fast"', "non-negative"),
    ('[[release.allow]]\nrule = "X"\nfile = "y"', "needs a reason"),
    ('[[release.allow]]\nfile = "y"\nreason = "z"', "needs rule"),
    ('[externals]\nlist = [1]', "externals.list"),
])
def test_bad_values_are_refused_with_a_reason(toml: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _settings(toml)


def test_changelog_diff() -> None:
    def st(name: str, status: str = "RELEASED", version: str = "1", fp: str = "a") -> RuleState:
        return RuleState(name, f"rules/{name}.yar", status, version, fp, status == "RELEASED")

    old = [st("Keep"), st("Gone"), st("Edit"), st("Promote", "TESTING")]
    new = [st("Keep"), st("Edit", version="2", fp="b"), st("Promote"), st("New", "TESTING")]
    log = diff_rulesets(old, new, 4)
    assert [c.name for c in log.added] == ["New"]
    assert [c.name for c in log.removed] == ["Gone"] and log.removed[0].previous_status == "RELEASED"
    assert [(c.name, c.previous_version, c.version) for c in log.modified] == [("Edit", "1", "2")]
    assert [(c.name, c.previous_status, c.status) for c in log.status_changed] == [
        ("Promote", "TESTING", "RELEASED")]
    assert log.summary() == "1 added (0 ship, 1 stays in testing), 1 modified, 1 removed, 1 status changes"
    assert diff_rulesets(new, new, 5).empty
