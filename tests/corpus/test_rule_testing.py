"""``run_rule_tests``: per-rule TP/FP/FN with context, and the cache giving the same answers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.corpus_lab import (
    CLEAN_NOISY,
    DROPPER,
    LOADER,
    Lab,
    edit_rules,
    rules_text,
    sha256,
    write_files,
)
from workbench.corpus.corpus_registry import CorpusRegistry, UnknownCorpus
from workbench.corpus.rule_testing import RuleResult, RuleTestReport, run_rule_tests
from workbench.corpus.ruleset import PARSE_CACHE, RulesetError, load_ruleset
from workbench.document import to_data


def by_rule(report: RuleTestReport) -> dict[str, RuleResult]:
    return {r.rule: r for r in report.rules}


def test_true_positives_false_positives_and_false_negatives(lab: Lab) -> None:
    report = run_rule_tests(lab.workspace, [lab.rules])
    rules = by_rule(report)
    dropper, anyeicar, gtube, combo = (rules[n] for n in (
        "MAL_Dropper_Eicar", "MAL_Any_Eicar", "MAL_Pdf_Gtube", "MAL_Pdf_Gtube_Dropper"))
    assert (dropper.tp_count, dropper.fp_count, dropper.false_negatives) == (1, 0, [])
    assert dropper.true_positives[0].sha256 == sha256(DROPPER)
    assert sorted(s.identifier for s in dropper.true_positives[0].strings) == ["$eicar", "$url"]
    assert (gtube.tp_count, gtube.fp_count, gtube.false_negatives) == (1, 0, [])   # md5 resolved
    assert sorted(f.sha256 for f in combo.true_positives) == sorted([sha256(DROPPER), sha256(LOADER)])

    assert (anyeicar.tp_count, anyeicar.fp_count) == (1, 1)
    fp = anyeicar.false_positives[0]
    assert (fp.sha256, fp.name, fp.corpora) == (sha256(CLEAN_NOISY), "av-notes.txt", ["goodware"])
    detail = fp.strings[0]
    at = CLEAN_NOISY.index(b"EICAR-STANDARD")
    assert (detail.identifier, detail.offset, detail.length) == ("$eicar", at, 34)
    assert detail.data == CLEAN_NOISY[at:at + 34]
    assert detail.before == CLEAN_NOISY[max(0, at - 32):at]
    assert detail.after == CLEAN_NOISY[at + 34:at + 34 + 32]
    assert [(fn.hash, fn.reason) for fn in anyeicar.false_negatives] == [("ab" * 32, "absent")]
    assert not report.passed
    assert (report.true_positives, report.false_positives, report.false_negatives) == (5, 1, 1)


def test_a_named_sample_the_rule_misses_is_a_false_negative(lab: Lab, tmp_path: Path) -> None:
    rule = tmp_path / "miss.yar"
    rule.write_text(f'rule MAL_Miss {{ meta: hash = "{hashlib.sha1(LOADER).hexdigest()}" strings: $a = "not in there" '
                    'condition: $a }')
    result = by_rule(run_rule_tests(lab.workspace, [rule]))["MAL_Miss"]
    [fn] = result.false_negatives
    assert (fn.reason, fn.sha256, fn.corpora, fn.name) == ("missed", sha256(LOADER), ["mal"],
                                                          "docs/loader.pdf")


def test_cached_results_equal_cold_results(lab: Lab) -> None:
    cold = run_rule_tests(lab.workspace, [lab.rules], use_index=False)
    warm = run_rule_tests(lab.workspace, [lab.rules])
    uncached = run_rule_tests(lab.workspace, [lab.rules], use_cache=False)
    assert cold.stats.files_scanned == 4 and cold.stats.rules_compiled == 4
    assert warm.stats.files_scanned == 0 and warm.stats.rules_compiled == 0
    assert warm.stats.pairs_cached == 16
    assert to_data(cold.rules) == to_data(warm.rules) == to_data(uncached.rules)
    assert (cold.true_positives, cold.false_positives, cold.false_negatives) == \
        (warm.true_positives, warm.false_positives, warm.false_negatives)


def test_editing_one_rule_rescans_only_that_rule(lab: Lab) -> None:
    run_rule_tests(lab.workspace, [lab.rules])
    edit_rules(lab, "  condition:\n    $eicar\n", "  condition:\n    $eicar and filesize > 1000\n")
    edited = run_rule_tests(lab.workspace, [lab.rules])
    # only the two files holding the EICAR string are read; the index rules out the others
    assert edited.stats.rules_compiled == 1 and edited.stats.files_scanned == 2
    assert edited.stats.files_skipped == 2
    assert by_rule(edited)["MAL_Any_Eicar"].fp_count == 0           # the edit took effect
    assert to_data(edited.rules) == to_data(run_rule_tests(lab.workspace, [lab.rules],
                                                       use_cache=False).rules)


def test_metadata_and_layout_edits_reuse_the_cache(lab: Lab) -> None:
    run_rule_tests(lab.workspace, [lab.rules])
    edit_rules(lab, 'description = "EICAR inside a PE-looking dropper"',
          'description = "reworded"\n    author = "someone"')
    edit_rules(lab, "uint16(0) == 0x5A4D and filesize < 1MB and all of them",
          "uint16(0) == 0x5A4D   and\n      filesize < 1MB // comment\n      and all of them")
    again = run_rule_tests(lab.workspace, [lab.rules])
    assert again.stats.rules_compiled == 0 and again.stats.files_scanned == 0


def test_a_rule_naming_an_edited_rule_is_rescanned_too(lab: Lab) -> None:
    run_rule_tests(lab.workspace, [lab.rules])
    edit_rules(lab, "uint32(0) == 0x46445025 and $g", "uint32(0) == 0x0 and $g")
    report = run_rule_tests(lab.workspace, [lab.rules])
    # MAL_Pdf_Gtube changed; MAL_Pdf_Gtube_Dropper names it (and MAL_Dropper_Eicar, compiled along)
    assert report.stats.rules_compiled == 3
    rules = by_rule(report)
    assert rules["MAL_Pdf_Gtube"].tp_count == 0
    assert [f.sha256 for f in rules["MAL_Pdf_Gtube_Dropper"].true_positives] == [sha256(DROPPER)]


def test_a_global_rule_change_invalidates_every_rule(lab: Lab) -> None:
    (lab.rules / "global.yar").write_text("global rule Small { condition: filesize < 10MB }\n")
    first = run_rule_tests(lab.workspace, [lab.rules])
    assert by_rule(first)["MAL_Dropper_Eicar"].tp_count == 1
    (lab.rules / "global.yar").write_text("global rule Small { condition: filesize < 10 }\n")
    second = run_rule_tests(lab.workspace, [lab.rules])
    assert second.stats.rules_compiled == 5
    assert all(r.tp_count == 0 for r in second.rules)


def test_private_rules_are_compiled_but_have_no_results(lab: Lab, tmp_path: Path) -> None:
    rule = tmp_path / "private.yar"
    rule.write_text('private rule Helper { strings: $a = "EICAR" condition: $a }\n'
                    'rule MAL_Uses_Helper { condition: Helper }\n')
    rules = by_rule(run_rule_tests(lab.workspace, [rule]))
    assert rules["Helper"].private and rules["Helper"].tp_count == 0
    assert "private" in rules["Helper"].warnings[0]
    assert (rules["MAL_Uses_Helper"].tp_count, rules["MAL_Uses_Helper"].fp_count) == (1, 1)


def test_a_rule_matching_too_many_files_is_reported_not_fatal(lab: Lab, tmp_path: Path) -> None:
    many = write_files(tmp_path / "many", {f"f{i}.txt": b"common %d" % i for i in range(30)})
    with CorpusRegistry(lab.workspace) as reg:
        reg.add("many", many, "malicious")
    rule = tmp_path / "broad.yar"
    rule.write_text('rule MAL_Broad { strings: $a = "common" condition: $a }\n')
    result = by_rule(run_rule_tests(lab.workspace, [rule], ["many"]))["MAL_Broad"]
    assert result.tp_count == 30 and len(result.true_positives) == 25      # listed, capped
    assert any("too broad" in w for w in result.warnings)
    assert result.passed


def test_compile_errors_point_at_the_original_file_and_line(lab: Lab, tmp_path: Path) -> None:
    rule = tmp_path / "bad.yar"
    rule.write_text("rule Good { condition: true }\n\nrule Bad {\n  condition:\n    nosuchthing\n}\n")
    with pytest.raises(RulesetError) as info:
        run_rule_tests(lab.workspace, [rule])
    [problem] = info.value.problems
    assert (problem.file, problem.line) == (str(rule.resolve()), 5)
    assert "nosuchthing" in problem.message


def test_syntax_errors_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yar").write_text("rule Twice { condition: true }\n")
    (tmp_path / "b.yar").write_text("rule Twice { condition: false }\nrule Broken {\n")
    with pytest.raises(RulesetError) as info:
        load_ruleset([tmp_path])
    messages = [p.message for p in info.value.problems]
    assert any("duplicated rule name 'Twice'" in m for m in messages)
    assert any("rule Broken" in p.message and p.line == 3 for p in info.value.problems)


def test_includes_are_followed_once(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "base.yar").write_text('rule Base { strings: $a = "GTUBE" condition: $a }\n')
    top = tmp_path / "top.yar"
    top.write_text('include "inc/base.yar"\ninclude "inc/base.yar"\n'
                   "rule MAL_Top { condition: Base }\n")
    rules = by_rule(run_rule_tests(lab.workspace, [top]))
    assert [f.sha256 for f in rules["MAL_Top"].true_positives] == [sha256(LOADER)]


def test_corpora_can_be_chosen_and_unknown_ones_are_refused(lab: Lab) -> None:
    report = run_rule_tests(lab.workspace, [lab.rules], ["goodware"])
    assert [c.name for c in report.corpora] == ["goodware"]
    assert by_rule(report)["MAL_Any_Eicar"].fp_count == 1
    assert by_rule(report)["MAL_Dropper_Eicar"].false_negatives[0].reason == "absent"
    with pytest.raises(UnknownCorpus):
        run_rule_tests(lab.workspace, [lab.rules], ["nope"])


def test_rules_default_to_the_signature_repository(lab: Lab) -> None:
    folder = lab.workspace.signatures / "rules"
    folder.mkdir(parents=True)
    (folder / "r.yar").write_text(rules_text())
    assert {r.rule for r in run_rule_tests(lab.workspace, None).rules} == {
        "MAL_Dropper_Eicar", "MAL_Any_Eicar", "MAL_Pdf_Gtube", "MAL_Pdf_Gtube_Dropper"}


def test_a_parse_cache_that_lost_a_parse_reads_the_rule_file_again(lab: Lab) -> None:
    first = run_rule_tests(lab.workspace, [lab.rules])
    parses = lab.workspace.state / PARSE_CACHE
    for stored in parses.glob("*.rules"):
        stored.unlink()
    again = run_rule_tests(lab.workspace, [lab.rules], use_cache=False)    # compiles every rule
    assert to_data(again.rules) == to_data(first.rules)
    # ... but only while the file is what was loaded
    ruleset = load_ruleset([lab.rules], parse_cache=parses)
    for stored in parses.glob("*.rules"):
        stored.unlink()
    edit_rules(lab, "$eicar\n}", "$eicar and filesize > 1\n}")
    with pytest.raises(RulesetError, match="changed while it was being tested"):
        ruleset.compile([0])


EXTERNAL_RULE = """
rule MAL_Named_Dropper {
  strings:
    $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
  condition:
    $eicar and filename contains "dropper"
}
"""


def test_the_policy_externals_are_compiled_in(lab: Lab) -> None:
    """``test`` honours ``[externals]`` as validate and release do (issue 19, defect 1)."""
    rules = lab.root / "ext.yar"
    rules.write_text(EXTERNAL_RULE)
    with pytest.raises(RulesetError, match=r"\[externals\]"):
        run_rule_tests(lab.workspace, [rules])          # no policy yet: the hint names the table
    lab.workspace.signatures.mkdir(parents=True, exist_ok=True)
    (lab.workspace.signatures / "workbench.toml").write_text('[externals]\nfilename = "dropper.exe"\n')
    hit = by_rule(run_rule_tests(lab.workspace, [rules]))["MAL_Named_Dropper"]
    assert hit.tp_count == 1 and hit.fp_count == 1          # the rule ran, with the policy's value
    (lab.workspace.signatures / "workbench.toml").write_text('[externals]\nfilename = "other"\n')
    quiet = by_rule(run_rule_tests(lab.workspace, [rules]))["MAL_Named_Dropper"]
    assert quiet.tp_count == 0 and quiet.fp_count == 0      # a new value is a new result, not a cached one
    assert by_rule(run_rule_tests(lab.workspace, [rules], externals={"filename": "dropper"}))[
        "MAL_Named_Dropper"].tp_count == 1


def test_every_file_that_does_not_compile_is_named(lab: Lab) -> None:
    folder = lab.root / "several"
    folder.mkdir()
    (folder / "a_good.yar").write_text('rule Good_One { strings: $a = "evil.example" condition: $a }\n')
    (folder / "b_bad.yar").write_text("rule Bad_One { condition: $missing }\n")
    (folder / "c_bad.yar").write_text('rule Bad_Two {\n  condition:\n    nosuchthing > 1\n}\n')
    with pytest.raises(RulesetError) as caught:
        run_rule_tests(lab.workspace, [folder])
    named = {Path(p.file).name for p in caught.value.problems}
    assert named == {"b_bad.yar", "c_bad.yar"}
