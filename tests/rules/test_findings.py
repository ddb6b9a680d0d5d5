"""Baselines (accepted findings survive line moves, errors never accepted) and SARIF output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.lint_rules import house_rule
from workbench.rules.findings import Baseline, BaselineError
from workbench.rules.lint import check_catalog, lint_paths, lint_text
from workbench.rules.policy import Policy
from workbench.rules.sarif import to_sarif

NOISY = house_rule(strings='$x1 = "Invoice" nocase', condition="uint16(0) == 0x5A4D and $x1 and nope")


def test_baseline_accepts_warnings_even_after_lines_move(tmp_path: Path, policy: Policy) -> None:
    before = lint_text(NOISY, Path("r.yar"), policy)
    assert {f.id for f in before.findings} >= {"P402", "C101"}
    path = tmp_path / "lint-baseline.json"
    Baseline.from_findings(before.findings, reason="legacy").save(path)
    saved = json.loads(path.read_text())
    assert saved["version"] == 1 and all(e["id"] != "C101" for e in saved["accepted"])

    moved = "// a new header comment\n\n\n" + NOISY
    after = lint_text(moved, Path("r.yar"), policy, baseline=Baseline.load(path))
    assert "P402" in [f.id for f in after.accepted]
    assert "P402" not in [f.id for f in after.findings]
    assert "C101" in [f.id for f in after.findings]      # errors are never accepted
    assert not after.ok


def test_editing_the_string_makes_the_finding_new(tmp_path: Path, policy: Policy) -> None:
    baseline = Baseline.from_findings(lint_text(NOISY, None, policy).findings)
    edited = NOISY.replace('$x1 = "Invoice" nocase', '$x1 = "Invoice" nocase\n    $x2 = "Receipt" nocase') \
        .replace("$x1 and nope", "any of them and nope")
    report = lint_text(edited, None, policy, baseline=baseline)
    new = [f.subject for f in report.findings if f.id == "P402"]
    assert new == ["$x2"]


@pytest.mark.parametrize("content", ["{", '{"version": 9, "accepted": []}', '{"version": 1, "accepted": [{}]}'])
def test_bad_baselines_are_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(BaselineError):
        Baseline.load(path)
    with pytest.raises(BaselineError, match="not found"):
        Baseline.load(tmp_path / "missing.json")


def test_sarif_log_has_what_code_scanning_requires(tmp_path: Path, policy: Policy, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yar").write_text(NOISY)
    report = lint_paths([Path("rules")], policy)
    accepted = Baseline.from_findings([f for f in report.findings if f.id == "P402"])
    accepted.apply(report)
    log = json.loads(json.dumps(to_sarif(report)))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == [c["id"] for c in check_catalog()]
    assert all(r["defaultConfiguration"]["level"] in ("error", "warning", "note") for r in driver["rules"])
    results = run["results"]
    assert len(results) == len(report.findings) + len(report.accepted)
    for result in results:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note") and result["message"]["text"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"] == {"uri": "rules/r.yar", "uriBaseId": "SRCROOT"}
        assert loc["region"]["startLine"] >= 1
        assert result["partialFingerprints"]["workbenchFindingKey/v1"]
    suppressed = [r for r in results if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["P402"]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == tmp_path.resolve().as_uri() + "/"
