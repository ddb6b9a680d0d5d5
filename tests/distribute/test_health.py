"""Rule health: live hits, dismissals and corpus results per rule; FP storms flagged with evidence."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from workbench.cli import main
from workbench.distribute.fleet import FleetReport, FleetStore
from workbench.distribute.health import build_health, quarantine_verdicts
from workbench.distribute.telemetry import HOUR, FleetRules, RuleTelemetry
from workbench.exitcodes import E_FINDINGS, E_OK
from workbench.release.validate import RuleResult, ValidationReport
from workbench.workspace import Workspace


def test_dismissed_copies_are_counted_per_rule() -> None:
    copies, dismissed = quarantine_verdicts([
        ("match: a,b", "dismissed"), ("match: a", "new"), ("unknown-virus: x", "dismissed"),
        ("match: a", "dismissed")])
    assert copies == Counter({"a": 3, "b": 1})
    assert dismissed == Counter({"a": 2, "b": 1})


def test_storms_and_mostly_dismissed_rules_are_proposed_with_evidence() -> None:
    live = FleetRules(generated_at=0, window_hours=24, messages=1000, scan_seconds=1, errors=0, rules=[
        RuleTelemetry("storm", 500, 20.8, {"t1": 300, "t2": 200}, 10.0, 400, 4, "400 hits in the last 1 h"),
        RuleTelemetry("quiet", 3, 0.1, {"t1": 3}, 5.0, 0, 0.1)])
    validation = ValidationReport(root="x", mode="full", base="", rules=[
        RuleResult("quiet", "rules/q.yar", "RELEASED", positives=["s1", "s2"], matched=["s1"],
                   clean_matches=[], ms_per_mib=0.5),
        RuleResult("storm", "rules/s.yar", "RELEASED", positives=["s3"], matched=["s3"],
                   clean_matches=["c1"])])
    report = build_health(validation=validation, telemetry=live,
                          copies=Counter({"storm": 10, "dismissy": 6}),
                          dismissed=Counter({"storm": 9, "dismissy": 5}), corpus=True)
    by = {h.rule: h for h in report.rules}
    assert (by["storm"].flag, by["storm"].proposal) == ("fp-storm", "DISABLED")
    assert by["storm"].evidence == ["400 hits in the last 1 h",
                                    "9 of 10 quarantined copies dismissed as clean",
                                    "1 clean corpus files matched"]
    assert (by["dismissy"].flag, by["dismissy"].proposal) == ("mostly-dismissed", "NOISY")
    assert (by["quiet"].flag, by["quiet"].true_positives, by["quiet"].false_negatives) == ("", 1, 1)
    assert by["quiet"].towers == {"t1": 3} and by["quiet"].ms_per_mib == 0.5
    assert report.rules[0].flag                              # flagged rules first


def test_a_cost_measured_only_with_its_group_is_shown_as_an_upper_bound() -> None:
    """validate clears a group under budget at once: its rules' cost is the group's, at most."""
    validation = ValidationReport(root="x", mode="full", base="", rules=[
        RuleResult("alone", "rules/a.yar", "RELEASED", ms_per_mib=0.42),
        RuleResult("grouped", "rules/g.yar", "RELEASED", ms_per_mib=6.728, cost_at_most=True),
        RuleResult("unmeasured", "rules/u.yar", "TESTING")])
    report = build_health(validation=validation, telemetry=None, copies=Counter(),
                          dismissed=Counter(), corpus=False)
    shown = {h.rule: h.cost_text() for h in report.rules}
    assert shown == {"alone": "0.42", "grouped": "≤6.728", "unmeasured": "-"}


def test_cli_rules_health_from_the_local_fleet_store(workspace: Workspace, capsys) -> None:   # type: ignore[no-untyped-def]
    import time

    now = time.time()
    with FleetStore(workspace.state / "fleet.sqlite") as store:
        for h in range(24, 0, -1):
            store.record("t1", FleetReport(server="s1", state="ok", serial=1, scanner={
                "started": "a", "messages": 25 - h, "rule_hits": {"noisy": 25 - h}}),
                received_at=now - h * HOUR)
        store.record("t1", FleetReport(server="s1", state="ok", serial=1, scanner={
            "started": "a", "messages": 600, "rule_hits": {"noisy": 500}}), received_at=now)
    code = main(["--home", str(workspace.home), "rules", "health", "--no-validate", "--json"])
    assert code == E_FINDINGS
    data = json.loads(capsys.readouterr().out)
    noisy = data["rules"][0]
    assert (noisy["rule"], noisy["flag"], noisy["proposal"]) == ("noisy", "fp-storm", "NOISY")
    assert noisy["towers"] == {"t1": noisy["hits"]}
    empty = Workspace.resolve(Path(workspace.home).parent / "empty").ensure()
    assert main(["--home", str(empty.home), "rules", "health", "--no-validate"]) == E_OK
