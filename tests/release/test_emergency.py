"""The emergency kill switch: one rule out, nothing else in, recorded like any release."""

from __future__ import annotations

import json

import pytest

from tests.support.signatures import SigRepo
from workbench.cli import main
from workbench.exitcodes import E_CONFLICT, E_OK
from workbench.release.bundle import load_extracted, open_bundle
from workbench.release.emergency import emergency_disable, set_rule_status
from workbench.release.release_store import ReleaseStore
from workbench.release.service import ReleaseRefused, make_release
from workbench.rules.parse import parse_file, parse_text

RULE = "SPAM_GTUBE_TestString"


@pytest.fixture
def released(sig: SigRepo) -> SigRepo:
    make_release(sig.workspace, message="first release")
    return sig


def shipped(sig: SigRepo, serial: int, tmp_path) -> set[str]:      # type: ignore[no-untyped-def]
    bundle = open_bundle(ReleaseStore(sig.workspace).get(serial).bundle_path)
    folder = bundle.extract_to(tmp_path / f"x{serial}")
    return {r.identifier for r in load_extracted(folder).rules}


def test_set_rule_status_replaces_or_adds_the_meta() -> None:
    text = 'rule a {\n    meta:\n        status = "RELEASED"\n    condition:\n        true\n}\n' \
           'rule b {\n    condition:\n        true\n}\n'
    once = set_rule_status(text, "a", "DISABLED")
    assert 'status = "DISABLED"' in once and once.count("status") == 1
    both = set_rule_status(once, "b", "DISABLED")
    assert [r.meta_value("status") for r in parse_text(both).rules] == ["DISABLED", "DISABLED"]
    with pytest.raises(ReleaseRefused, match="not found"):
        set_rule_status(text, "c", "DISABLED")


def test_emergency_release_removes_exactly_one_rule_and_records_it(released: SigRepo, tmp_path) -> None:
    sig = released
    outcome = emergency_disable(sig.workspace, RULE, message="mass false positive")
    assert (outcome.serial, outcome.previous_serial) == (2, 1)
    before, after = shipped(sig, 1, tmp_path), shipped(sig, 2, tmp_path)
    assert before - after == {RULE} and after <= before
    # recorded: the branch has the status change and the changelog; the tag is on it
    assert sig.repo.head.commit.hexsha == outcome.branch_commit == outcome.commit
    assert sig.repo.tags["signatures-2"].commit.hexsha == outcome.commit
    rule = next(r for r in parse_file(sig.rule_file("spam/gtube.yar")).rules if r.name == RULE)
    assert rule.meta_value("status") == "DISABLED"
    changelog = (sig.root / "CHANGELOG.md").read_text()
    assert "EMERGENCY: SPAM_GTUBE_TestString disabled: mass false positive" in changelog
    assert sig.repo.is_dirty(untracked_files=True) is False
    # the next ordinary release keeps it out (nothing to release: the tree is what shipped)
    with pytest.raises(ReleaseRefused, match="nothing to release"):
        make_release(sig.workspace)


def test_unreleased_work_on_the_branch_never_ships_by_this_path(released: SigRepo, tmp_path) -> None:
    sig = released
    path = sig.rule_file("mal/wbjsdrop.yar")
    path.write_text(path.read_text() + "\nrule UNVALIDATED_Work { condition: true }\n")
    sig.commit("work in progress, not validated")
    outcome = emergency_disable(sig.workspace, RULE)
    after = shipped(sig, 2, tmp_path)
    assert "UNVALIDATED_Work" not in after and RULE not in after
    tagged = sig.repo.commit(outcome.commit)
    release_1 = ReleaseStore(sig.workspace).get(1).commit
    assert [p.hexsha for p in tagged.parents] == [release_1]          # beside the branch
    assert outcome.branch_commit == sig.repo.head.commit.hexsha != outcome.commit
    assert "UNVALIDATED_Work" in path.read_text()                     # the branch keeps the work


def test_refusals(released: SigRepo) -> None:
    sig = released
    with pytest.raises(ReleaseRefused, match="does not ship"):
        emergency_disable(sig.workspace, "NO_Such_Rule")
    gtube = sig.rule_file("spam/gtube.yar")
    gtube.write_text(gtube.read_text() + "\n")
    with pytest.raises(ReleaseRefused, match="uncommitted"):
        emergency_disable(sig.workspace, RULE)


def test_cli_emergency_disable_releases_and_publishes(released: SigRepo, capsys) -> None:   # type: ignore[no-untyped-def]
    sig = released
    base = ["--home", str(sig.workspace.home), "--signatures", str(sig.root)]
    assert main([*base, "keys", "init"]) == E_OK
    capsys.readouterr()
    assert main([*base, "rule", "disable", RULE, "--emergency", "-m", "storm", "--json"]) == E_OK
    data = json.loads(capsys.readouterr().out)
    assert data["emergency"]["serial"] == 2 and data["published"]["target"]["serial"] == 2
    assert main([*base, "rule", "disable", RULE, "--emergency"]) == E_CONFLICT
