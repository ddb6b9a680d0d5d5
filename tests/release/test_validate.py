"""workbench validate: each check passes on the house tree and fails on the breakage it is for."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.signatures import (
    SigRepo,
    house_rule,
    refresh_fingerprint,
    set_meta,
    sha256,
)
from workbench.cli import main
from workbench.exitcodes import E_FINDINGS, E_NOT_FOUND, E_OK, E_USAGE
from workbench.release.validate import validate
from workbench.rules.parse import parse_file

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

EICAR_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def ids(report) -> set[str]:
    return {f.id for f in report.findings if f.severity == "error"}


def run_cli(sig: SigRepo, *args: str) -> int:
    return main(["--home", str(sig.workspace.home), "--signatures", str(sig.root), *args])


def test_the_committed_house_tree_passes(sig: SigRepo) -> None:
    # a copy in a repository of its own: the checkout's history and tags are not the test's
    report = validate(sig.root)
    assert report.ok, [f"{f.id} {f.rule} {f.message}" for f in report.findings]
    assert report.rules_total >= 9
    assert [c.status for c in report.checks] == ["passed"] * len(report.checks)
    by_name = {r.name: r for r in report.rules}
    # every rule matched every sample it names, and nothing clean
    for rr in by_name.values():
        assert rr.positives and rr.matched == rr.positives and rr.clean_matches == [], rr
        assert rr.ms_per_mib is not None
    assert "eicar/statement.zip" in report.uncovered     # zip in a zip: only dissection finds it


def test_cli_passes_on_the_house_tree_and_fails_on_a_broken_rule(sig: SigRepo, capsys) -> None:
    # as .ci/run calls it: workbench --home DIR validate PATH
    ci = ["--home", str(sig.workspace.home), "validate", str(sig.root)]
    assert main(ci) == E_OK
    assert "OK: 0 errors" in capsys.readouterr().out
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("condition:", "condition:\n        $missing and", 1))
    sig.commit("broken rule")
    assert main(ci) == E_FINDINGS
    out = capsys.readouterr().out
    assert "C101" in out and "SPAM_GTUBE_TestString" in out and "FAILED" in out


def test_unknown_path_and_bad_write_spec(sig: SigRepo, tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == E_NOT_FOUND
    assert run_cli(sig, "validate", "--write", "pdf:x") == E_USAGE


def test_duplicate_names_across_files_fail_the_whole_set_compile(sig: SigRepo) -> None:
    (sig.root / "rules" / "test" / "copy.yar").write_text(sig.rule_file("test/eicar.yar").read_text())
    report = validate(sig.root, scan_corpus=False)
    assert {"N304", "V101"} <= ids(report)


def test_shipped_rule_needing_an_unshipped_one(sig: SigRepo) -> None:
    helper = house_rule("TEST_Helper_Small", strings="", condition="filesize < 1KB", status="TESTING",
                        hashes=[EICAR_SHA], private=True)
    user = house_rule("TEST_EICAR_Small_Only", strings='        $e = "EICAR-STANDARD"',
                      condition="$e and TEST_Helper_Small", hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "dep.yar").write_text(helper + "\n" + user)
    report = validate(sig.root)
    errors = [f for f in report.findings if f.id == "V103"]
    assert errors and "TEST_Helper_Small" in errors[0].hint
    # once the helper ships too, the set is fine
    set_meta(sig.root / "rules" / "test" / "dep.yar", "TEST_Helper_Small", "status", "RELEASED")
    assert "V103" not in ids(validate(sig.root))


def test_includes_must_resolve_inside_the_rules_folder(sig: SigRepo) -> None:
    path = sig.rule_file("spam/gtube.yar")
    original = path.read_text()
    path.write_text('include "missing.yar"\n' + original)
    report = validate(sig.root, scan_corpus=False)
    assert any(f.id == "V104" and "no such file" in f.message for f in report.findings)
    (sig.root / "outside.yar").write_text("rule Outside { condition: false }\n")
    path.write_text('include "../../outside.yar"\n' + original)
    report = validate(sig.root, scan_corpus=False)
    assert any(f.id == "V104" and "outside the rules folder" in f.message for f in report.findings)


def test_included_file_is_compiled_once_and_in_order(sig: SigRepo) -> None:
    common = house_rule("TEST_Common_Small", strings="", condition="filesize < 1KB", hashes=[EICAR_SHA],
                        private=True)
    (sig.root / "rules" / "test" / "common.yar").write_text(common)
    user = house_rule("TEST_EICAR_Included_Helper", strings='        $e = "EICAR-STANDARD"',
                      condition="$e and TEST_Common_Small", hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "a_user.yar").write_text('include "common.yar"\n\n' + user)
    (sig.root / "rules" / "test" / "b_user.yar").write_text(
        'include "common.yar"\n\n' + user.replace("TEST_EICAR_Included_Helper", "TEST_EICAR_Included_Again")
        .replace('family = "EICAR"', 'family = "EICAR"'))
    refresh_fingerprint(sig.root / "rules" / "test" / "b_user.yar", "TEST_EICAR_Included_Again")
    report = validate(sig.root)
    assert report.ok, [f"{f.id} {f.message}" for f in report.findings if f.severity == "error"]


def test_externals_must_be_declared(sig: SigRepo) -> None:
    rule = house_rule("TEST_EICAR_Named_File", strings='        $e = "EICAR-STANDARD"',
                      condition='$e and filename != "skip.me"', hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "ext.yar").write_text(rule)
    report = validate(sig.root, scan_corpus=False)
    assert "V105" in ids(report)
    assert any("filename" in f.message for f in report.findings if f.id == "V105")
    policy = sig.root / "workbench.toml"
    policy.write_text(policy.read_text().replace("[externals]\n", '[externals]\nfilename = ""\n'))
    report = validate(sig.root)
    assert report.ok, [f"{f.id} {f.message}" for f in report.findings if f.severity == "error"]


def test_shipped_rule_with_a_stale_fingerprint(sig: SigRepo) -> None:
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 11MB"))
    assert "V201" in ids(validate(sig.root, scan_corpus=False))
    # a TESTING rule may carry a stale one (lint warns); only shipped rules are checked by towers
    set_meta(path, "SPAM_GTUBE_TestString", "status", "TESTING")
    assert "V201" not in ids(validate(sig.root, scan_corpus=False))


def test_the_v201_hint_fixes_what_it_finds(sig: SigRepo) -> None:
    """Stale: refresh that one file; missing: the value to add (--update-meta cannot add it)."""
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 11MB"))
    [stale] = [f for f in validate(sig.root, scan_corpus=False).findings if f.id == "V201"]
    assert f"rule fmt --update-meta {path}" in stale.hint
    text = path.read_text()
    start = text.index("fingerprint = ")
    path.write_text(text[:start] + text[text.index("\n", start) + 1:])
    [missing] = [f for f in validate(sig.root, scan_corpus=False).findings if f.id == "V201"]
    assert "missing" in missing.message and 'add fingerprint = "' in missing.hint
    assert "--update-meta" not in missing.hint


def test_rule_without_a_positive_sample(sig: SigRepo) -> None:
    rule = house_rule("TEST_Orphan_Rule", strings='        $e = "NOTHING-LIKE-THIS-ANYWHERE"',
                      condition="$e", hashes=["a" * 64])
    (sig.root / "rules" / "test" / "orphan.yar").write_text(rule)
    report = validate(sig.root)
    assert any(f.id == "V301" and f.rule == "TEST_Orphan_Rule" for f in report.findings)


def test_rule_missing_its_sample(sig: SigRepo) -> None:
    rule = house_rule("TEST_EICAR_Wrong_Marker", strings='        $e = "NOTHING-LIKE-THIS-ANYWHERE"',
                      condition="$e", hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "miss.yar").write_text(rule)
    report = validate(sig.root)
    assert any(f.id == "V302" and f.rule == "TEST_EICAR_Wrong_Marker" for f in report.findings)
    assert not report.ok


def _clean_matcher(sig: SigRepo, status: str = "RELEASED") -> None:
    rule = house_rule("TEST_EICAR_Memo_Words", strings='        $e = "EICAR"', condition="$e",
                      hashes=[EICAR_SHA], status=status, family="EICAR")
    (sig.root / "rules" / "test" / "memo.yar").write_text(rule)


def test_clean_corpus_match_fails_and_the_allow_list_accepts_it_visibly(sig: SigRepo, capsys) -> None:
    _clean_matcher(sig)
    report = validate(sig.root)
    fps = [f for f in report.findings if f.id == "V303"]
    assert fps and "security_memo.txt" in fps[0].message and not report.ok
    memo = sha256(sig.root / "corpora" / "clean" / "security_memo.txt")
    policy = sig.root / "workbench.toml"
    policy.write_text(policy.read_text() + f'\n[[release.allow]]\nrule = "TEST_EICAR_Memo_Words"\n'
                      f'file = "{memo}"\nreason = "the memo names the test file"\n')
    report = validate(sig.root)
    assert report.ok, [f.message for f in report.findings if f.severity == "error"]
    assert [(a.rule, a.path) for a in report.allowed] == [("TEST_EICAR_Memo_Words", "security_memo.txt")]
    assert run_cli(sig, "validate") == E_OK
    assert "allowed: TEST_EICAR_Memo_Words matches clean security_memo.txt" in capsys.readouterr().out


def test_allow_list_by_path_and_stale_entries(sig: SigRepo) -> None:
    _clean_matcher(sig)
    policy = sig.root / "workbench.toml"
    policy.write_text(policy.read_text() + '\n[[release.allow]]\nrule = "TEST_EICAR_Memo_Words"\n'
                      'file = "security_memo.txt"\nreason = "reviewed"\n'
                      '\n[[release.allow]]\nrule = "TEST_Gone_Rule"\nfile = "x.txt"\nreason = "old"\n')
    report = validate(sig.root)
    assert report.ok
    stale = [f for f in report.findings if f.id == "V306"]
    assert len(stale) == 1 and "TEST_Gone_Rule" in stale[0].message


def test_noisy_rule_matching_clean_files_only_warns(sig: SigRepo) -> None:
    _clean_matcher(sig, status="NOISY")
    report = validate(sig.root)
    assert report.ok
    assert any(f.id == "V304" and f.severity == "warning" for f in report.findings)


def test_disabled_rules_skip_the_corpus_checks(sig: SigRepo) -> None:
    _clean_matcher(sig, status="DISABLED")
    report = validate(sig.root)
    assert report.ok and "TEST_EICAR_Memo_Words" not in {r.name for r in report.rules}


def test_scan_time_budget(sig: SigRepo) -> None:
    """A rule over its budget is an error naming the rule; a per-rule budget lifts it.

    Budgets are set so the verdict does not depend on this machine's speed: nothing can
    exceed 10^9 ms per MiB and every timed rule costs more than 0. Which real rules cost
    what is a measurement (bench/validate.py), not a test."""
    # it matches its sample and nothing clean (a rule that already fails is not timed), and
    # its regex is searched everywhere
    rule = house_rule("TEST_EICAR_Slow_Regex", strings='        $e = "EICAR-STANDARD"\n'
                      '        $r = /[a-z]{2}[0-9a-z]{0,9}[A-Z]{2}/',
                      condition="$e and #r >= 0", hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "slow.yar").write_text(rule)
    policy = sig.root / "workbench.toml"
    text = policy.read_text().replace("scan_budget_ms_per_mib = 10", "scan_budget_ms_per_mib = 1000000000")
    policy.write_text(text.replace("[release.budgets]\n", "[release.budgets]\nTEST_EICAR_Slow_Regex = 0\n"))
    report = validate(sig.root)
    slow = [f for f in report.findings if f.id == "V401"]
    assert [f.rule for f in slow] == ["TEST_EICAR_Slow_Regex"]
    assert "over its budget of 0" in slow[0].message
    costs = {r.name: r.ms_per_mib for r in report.rules}
    assert costs["TEST_EICAR_Slow_Regex"] > 0
    # over budget in its group, so measured alone: its own cost, not an upper bound; the half
    # of the rules split away from it clears as a group (a budget nothing reaches): each of
    # those costs the group's, an upper bound (the rules split off beside it are measured alone)
    assert not next(r for r in report.rules if r.name == "TEST_EICAR_Slow_Regex").cost_at_most
    bounded = [r for r in report.rules if r.cost_at_most]
    assert len(bounded) >= 2 and len({r.ms_per_mib for r in bounded}) < len(bounded)
    # a per-rule budget lifts it for that rule alone
    policy.write_text(text.replace("[release.budgets]\n", "[release.budgets]\nTEST_EICAR_Slow_Regex = 1000000000\n"))
    report = validate(sig.root)
    assert "V401" not in {f.id for f in report.findings}


def test_rules_that_already_fail_are_not_timed(sig: SigRepo) -> None:
    """A rule that misses its sample fails whatever it costs: the budget check skips it."""
    rule = house_rule("TEST_EICAR_Slow_Regex", strings='        $e = "EICAR-STANDARD"\n'
                      '        $r = /[a-z]{2}[0-9a-z]{0,9}[A-Z]{2}/',
                      condition="$e and $r", hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "slow.yar").write_text(rule)
    report = validate(sig.root)
    assert {f.id for f in report.findings if f.rule == "TEST_EICAR_Slow_Regex"} >= {"V302"}
    assert "V401" not in {f.id for f in report.findings}
    costs = {r.name: r.ms_per_mib for r in report.rules}
    assert costs["TEST_EICAR_Slow_Regex"] is None
    assert all(c is not None and c <= 10 for n, c in costs.items() if n != "TEST_EICAR_Slow_Regex")


def _change_gtube(sig: SigRepo) -> Path:
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 12MB"))
    refresh_fingerprint(path, "SPAM_GTUBE_TestString")
    return path


def _modified(sig: SigRepo) -> dt.date:
    rule = next(r for r in parse_file(sig.rule_file("spam/gtube.yar")).rules if r.name == "SPAM_GTUBE_TestString")
    return dt.date.fromisoformat(str(rule.meta_value("modified")))


def test_changed_rule_must_bump_version(sig: SigRepo) -> None:
    written = _modified(sig)
    path = _change_gtube(sig)
    report = validate(sig.root, changed_since="HEAD", today=written)
    assert ids(report) == {"V501"}
    set_meta(path, "SPAM_GTUBE_TestString", "version", 2)
    report = validate(sig.root, changed_since="HEAD", today=written)
    assert report.ok, [f"{f.id} {f.message}" for f in report.findings if f.severity == "error"]
    # metadata-only edits need no bump
    sig.commit("bumped")
    set_meta(path, "SPAM_GTUBE_TestString", "description", "GTUBE, reworded")
    assert validate(sig.root, changed_since="HEAD", today=written).ok


def test_a_same_day_edit_with_a_version_bump_passes(sig: SigRepo) -> None:
    """The rule was written today and changed today: modified stays today, version goes up."""
    written = _modified(sig)
    path = _change_gtube(sig)
    set_meta(path, "SPAM_GTUBE_TestString", "version", 2)
    report = validate(sig.root, changed_since="HEAD", today=written)
    assert report.ok, [f"{f.id} {f.message}" for f in report.findings if f.severity == "error"]
    # and a later day's edit may move modified forward to that day
    set_meta(path, "SPAM_GTUBE_TestString", "modified", str(written + dt.timedelta(days=3)))
    assert validate(sig.root, changed_since="HEAD", today=written + dt.timedelta(days=3)).ok


def test_modified_may_not_go_back(sig: SigRepo) -> None:
    written = _modified(sig)
    path = _change_gtube(sig)
    set_meta(path, "SPAM_GTUBE_TestString", "version", 2)
    set_meta(path, "SPAM_GTUBE_TestString", "modified", str(written - dt.timedelta(days=1)))
    report = validate(sig.root, changed_since="HEAD", today=written)
    v502 = [f for f in report.findings if f.id == "V502"]
    assert ids(report) == {"V502"} and "before its previous value" in v502[0].message
    assert v502[0].hint == f'set modified = "{written}"'


def test_modified_that_is_not_a_date_fails_for_a_changed_rule(sig: SigRepo) -> None:
    written = _modified(sig)
    path = _change_gtube(sig)
    set_meta(path, "SPAM_GTUBE_TestString", "version", 2)
    set_meta(path, "SPAM_GTUBE_TestString", "modified", "yesterday")
    report = validate(sig.root, changed_since="HEAD", today=written)
    assert "V502" in ids(report)


def test_future_modified_dates_are_refused(sig: SigRepo) -> None:
    """A false future date used to be the only way past V502; now it fails, changed or not."""
    written = _modified(sig)
    path = _change_gtube(sig)
    set_meta(path, "SPAM_GTUBE_TestString", "version", 2)
    set_meta(path, "SPAM_GTUBE_TestString", "modified", str(written + dt.timedelta(days=1)))
    report = validate(sig.root, changed_since="HEAD", today=written)
    assert ids(report) == {"V502"}
    assert "in the future" in next(f.message for f in report.findings if f.id == "V502")
    # an unchanged rule with a future date fails too, without any base to compare with
    sig.commit("future")
    assert "V502" in ids(validate(sig.root, base="", today=written))
    assert validate(sig.root, base="", today=written + dt.timedelta(days=1)).ok


def test_full_validation_compares_with_the_newest_release_tag(sig: SigRepo) -> None:
    sig.repo.create_tag("signatures-3", message="release 3")
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 12MB"))
    refresh_fingerprint(path, "SPAM_GTUBE_TestString")
    sig.commit("unbumped change")
    report = validate(sig.root)
    assert report.base == "signatures-3" and "V501" in ids(report)


def test_changed_since_checks_only_changed_rules(sig: SigRepo) -> None:
    report = validate(sig.root, changed_since="HEAD")
    assert report.mode == "changed" and report.rules_checked == [] and report.ok
    path = sig.rule_file("mal/wbjsdrop.yar")
    set_meta(path, "MAL_WbJsDrop_Downloader_Js", "description", "reworded")
    report = validate(sig.root, changed_since="HEAD")
    assert report.rules_checked == ["MAL_WbJsDrop_Downloader_Js"] and report.files_checked == 1
    assert [r.name for r in report.rules] == ["MAL_WbJsDrop_Downloader_Js"]
    # a broken rule elsewhere is still caught by the whole-set compile ...
    other = sig.rule_file("test/eicar.yar")
    (sig.root / "rules" / "test" / "dupe.yar").write_text(other.read_text())
    report = validate(sig.root, changed_since="HEAD")
    assert "V101" in ids(report)
    # ... and a policy change validates everything
    (sig.root / "rules" / "test" / "dupe.yar").unlink()
    policy = sig.root / "workbench.toml"
    policy.write_text(policy.read_text() + "\n# reviewed\n")
    report = validate(sig.root, changed_since="HEAD")
    assert report.mode == "full" and len(report.rules_checked) == report.rules_total
    assert any("workbench.toml changed" in n for n in report.notes)


def test_changed_since_needs_git_and_a_known_revision(sig: SigRepo, tmp_path: Path) -> None:
    assert run_cli(sig, "validate", "--changed-since", "no-such-rev") == E_NOT_FOUND
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "rules").mkdir()
    assert main(["validate", str(plain), "--changed-since", "HEAD"]) != E_OK


def test_lint_baseline_accepts_a_reviewed_warning(sig: SigRepo) -> None:
    rule = house_rule("TEST_EICAR_Nocase_Words", strings='        $e = "EICAR" nocase',
                      condition="$e and filesize < 100", hashes=[EICAR_SHA], family="EICAR")
    (sig.root / "rules" / "test" / "nocase.yar").write_text(rule)
    report = validate(sig.root, scan_corpus=False)
    warned = [f for f in report.findings if f.rule == "TEST_EICAR_Nocase_Words" and f.severity == "warning"]
    assert warned, report.findings
    from workbench.rules.findings import Baseline

    Baseline.from_findings(warned, reason="reviewed").save(sig.root / "lint-baseline.json")
    report = validate(sig.root, scan_corpus=False)
    assert not [f for f in report.findings if f.rule == "TEST_EICAR_Nocase_Words" and f.severity == "warning"]
    assert {f.key for f in report.accepted} >= {f.key for f in warned}
    (sig.root / "lint-baseline.json").write_text("{broken")
    assert "V003" in ids(validate(sig.root, scan_corpus=False))


def test_bad_policy_or_missing_rules_folder(sig: SigRepo) -> None:
    policy = sig.root / "workbench.toml"
    policy.write_text(policy.read_text().replace('ship = ["RELEASED", "NOISY"]', 'ship = ["SHIPPED"]'))
    report = validate(sig.root)
    assert ids(report) == {"V001"} and "SHIPPED" in report.findings[0].message
    policy.write_text(policy.read_text().replace('ship = ["SHIPPED"]', 'ship = ["RELEASED"]')
                      .replace('rules = "rules"', 'rules = "nowhere"'))
    assert ids(validate(sig.root)) == {"V002"}


def test_machine_readable_formats(sig: SigRepo, capsys, tmp_path: Path) -> None:
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("$gtube\n}", "$gtube and $nope\n}"))
    sarif_file, junit_file = tmp_path / "v.sarif", tmp_path / "v.xml"
    code = run_cli(sig, "validate", "--format", "json", "--write", f"sarif:{sarif_file}",
                   "--write", f"junit:{junit_file}")
    assert code == E_FINDINGS
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "full" and any(f["rule"] == "SPAM_GTUBE_TestString" for f in doc["findings"])
    sarif = json.loads(sarif_file.read_text())
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "workbench-validate"
    result = next(r for r in run["results"] if r["level"] == "error")
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "rules/spam/gtube.yar"     # relative to the repository
    assert location["region"]["startLine"] > 1
    assert result["ruleId"] in {r["id"] for r in run["tool"]["driver"]["rules"]}
    suites = ET.parse(junit_file).getroot()
    failed = [c for c in suites.iter("testcase") if c.find("failure") is not None]
    assert failed and {c.get("name") for c in failed} == {"SPAM_GTUBE_TestString"}
    assert int(suites.get("failures")) == len(failed)


def test_junit_marks_skipped_checks(sig: SigRepo, capsys) -> None:
    assert run_cli(sig, "validate", "--no-corpus", "--format", "junit") == E_OK
    root = ET.fromstring(capsys.readouterr().out)
    skipped = [s for s in root.iter("testsuite") if s.get("skipped") != "0"]
    assert {s.get("name").split(":")[0] for s in skipped} == {"V3", "V4"}


@pytest.mark.parametrize("broken", ["syntax", "policy"])
def test_junit_reports_setup_failures(sig: SigRepo, capsys, broken: str) -> None:
    if broken == "policy":
        (sig.root / "workbench.toml").write_text("[release\n")
    else:
        sig.rule_file("spam/gtube.yar").write_text("rule {")
    assert run_cli(sig, "validate", "--format", "junit") == E_FINDINGS
    root = ET.fromstring(capsys.readouterr().out)
    assert int(root.get("failures")) >= 1
