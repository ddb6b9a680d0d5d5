"""Rule health: what the analyst knows about each rule before and after it ships, in one document.

Per rule of the signatures tree: its lint state and measured cost and its corpus true
positives, false positives and misses (``validate``, where the corpus is set up), its
live hits per hour and per tower since the window began and its last hit (the fleet's
scanner telemetry), and how many of the copies towers sent for it analysts dismissed
as clean in the quarantine. A rule whose rate jumped far above its baseline, or whose
copies are mostly dismissed, is flagged as a likely false-positive storm and proposed
for NOISY or DISABLED, with the evidence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from workbench.distribute.telemetry import FleetRules, RuleTelemetry
from workbench.release.validate import ValidationReport

if TYPE_CHECKING:
    from workbench.workspace import Workspace

DISMISSED = "dismissed"
MATCH_REASON = "match:"
MIN_DISMISSED = 5               # copies dismissed before "mostly dismissed" means anything
DISMISSED_SHARE = 0.5


@dataclass(frozen=True)
class RuleHealth:
    rule: str
    file: str = ""
    status: str = ""
    lint_errors: int = 0
    lint_warnings: int = 0
    ms_per_mib: float | None = None         # measured scan cost (validate)
    cost_at_most: bool = False              # ms_per_mib is its group's cost: an upper bound
    true_positives: int | None = None       # corpus samples matched (None: no corpus run)
    false_negatives: int | None = None      # corpus samples missed
    false_positives: int | None = None      # clean corpus files matched
    hits: int = 0                           # live, in the window
    hits_per_hour: float = 0.0
    towers: dict[str, int] = field(default_factory=dict)
    last_hit: float | None = None
    copies: int = 0                         # matched mail copied to the quarantine
    dismissed: int = 0                      # of those, dismissed as clean by analysts
    flag: str = ""                          # "fp-storm", "mostly-dismissed" or ""
    proposal: str = ""                      # "NOISY", "DISABLED" or ""
    evidence: list[str] = field(default_factory=list)

    def cost_text(self) -> str:
        """The scan cost as shown: ``0.42``, ``≤6.73`` when only its group was measured (a group
        under every member's budget clears them all at once), ``-`` when not measured."""
        if self.ms_per_mib is None:
            return "-"
        return f"{'≤' if self.cost_at_most else ''}{self.ms_per_mib:g}"


@dataclass(frozen=True)
class HealthReport:
    """``workbench rules health --json``."""

    window_hours: int
    messages_scanned: int
    corpus: bool                            # TP/FP/FN measured
    rules: list[RuleHealth]


def rule_health(workspace: Workspace, *, url: str | None = None, hours: int = 24,
                validate: bool = True, corpus: bool = True, flagged: bool = False) -> HealthReport:
    """The rule-health document of ``workbench rules health`` and the UI's rule-health view.

    Live telemetry from ``url``'s ``GET /v1/fleet/rules`` (``ClientError`` when it cannot
    be reached) or from this workspace's fleet store; lint, cost and, with ``corpus``,
    TP/FP/FN from ``validate`` over the signatures tree; dismissals from the quarantine.
    """
    telemetry = _telemetry(workspace, url, hours)
    validation = None
    if validate and workspace.signatures.is_dir():
        from workbench.release.validate import validate as validate_tree

        validation = validate_tree(workspace.signatures, scan_corpus=corpus)
    copies, dismissed = quarantine_verdicts(_quarantine_rows(workspace))
    report = build_health(validation=validation, telemetry=telemetry, copies=copies,
                          dismissed=dismissed, corpus=validation is not None and corpus)
    if flagged:
        report = replace(report, rules=[h for h in report.rules if h.flag])
    return report


def _telemetry(workspace: Workspace, url: str | None, hours: int) -> FleetRules:
    if url:
        from workbench.distribute.client import fetch_rules

        return fetch_rules(url, hours=hours)
    from workbench.distribute.fleet import FleetStore

    path = workspace.state / "fleet.sqlite"
    if not path.exists():
        return FleetRules(generated_at=0.0, window_hours=hours, messages=0, scan_seconds=0.0,
                          errors=0, rules=[])
    with FleetStore(path) as store:
        return store.rules(window_hours=hours)


def _quarantine_rows(workspace: Workspace) -> list[tuple[str, str]]:
    """(reason, status) of every quarantined copy a tower sent for a rule match."""
    from workbench.quarantine.service import INDEX_NAME, Quarantine

    if not (workspace.quarantine / INDEX_NAME).exists():
        return []
    out: list[tuple[str, str]] = []
    page_size = 5000
    with Quarantine.open(workspace) as q:
        offset = 0
        while True:             # the reasons are free text: read them page by page
            page = q.index.list("", offset=offset, limit=page_size)
            out += [(r.reason, r.status) for r in page if str(r.reason).startswith(MATCH_REASON)]
            if len(page) < page_size:
                return out
            offset += page_size


def quarantine_verdicts(rows: list[tuple[str, str]]) -> tuple[Counter[str], Counter[str]]:
    """(reason, status) of quarantined messages -> copies and dismissed copies per rule."""
    copies: Counter[str] = Counter()
    dismissed: Counter[str] = Counter()
    for reason, status in rows:
        if not reason.startswith(MATCH_REASON):
            continue
        for rule in filter(None, (r.strip() for r in reason[len(MATCH_REASON):].split(","))):
            copies[rule] += 1
            if status == DISMISSED:
                dismissed[rule] += 1
    return copies, dismissed


def build_health(*, validation: ValidationReport | None, telemetry: FleetRules | None,
                 copies: Counter[str], dismissed: Counter[str], corpus: bool) -> HealthReport:
    names: dict[str, RuleHealth] = {}
    lint: dict[str, Counter[str]] = {}
    if validation is not None:
        for finding in validation.findings:
            if finding.rule:
                lint.setdefault(finding.rule, Counter())[finding.severity] += 1
        for r in validation.rules:
            names[r.name] = RuleHealth(
                rule=r.name, file=r.file, status=r.status, ms_per_mib=r.ms_per_mib,
                cost_at_most=r.cost_at_most,
                true_positives=len(r.matched) if corpus else None,
                false_negatives=len(set(r.positives) - set(r.matched)) if corpus else None,
                false_positives=len(r.clean_matches) if corpus else None)
    live: dict[str, RuleTelemetry] = {t.rule: t for t in telemetry.rules} if telemetry else {}
    out = []
    for name in sorted(set(names) | set(live) | set(copies)):
        base = names.get(name, RuleHealth(rule=name))
        t = live.get(name)
        flag, proposal, evidence = "", "", []
        if t is not None and t.storm:
            flag, proposal = "fp-storm", "NOISY"
            evidence.append(t.storm)
        n_copies, n_dismissed = copies.get(name, 0), dismissed.get(name, 0)
        if n_dismissed >= MIN_DISMISSED and n_dismissed >= DISMISSED_SHARE * n_copies:
            evidence.append(f"{n_dismissed} of {n_copies} quarantined copies dismissed as clean")
            flag = flag or "mostly-dismissed"
            proposal = "DISABLED" if flag == "fp-storm" else "NOISY"
        if base.false_positives:
            evidence.append(f"{base.false_positives} clean corpus files matched")
        counts = lint.get(name, Counter())
        out.append(RuleHealth(
            rule=name, file=base.file, status=base.status, lint_errors=counts.get("error", 0),
            lint_warnings=counts.get("warning", 0), ms_per_mib=base.ms_per_mib,
            cost_at_most=base.cost_at_most,
            true_positives=base.true_positives, false_negatives=base.false_negatives,
            false_positives=base.false_positives, hits=t.hits if t else 0,
            hits_per_hour=t.hits_per_hour if t else 0.0, towers=dict(t.towers) if t else {},
            last_hit=t.last_hit if t else None, copies=n_copies, dismissed=n_dismissed,
            flag=flag, proposal=proposal, evidence=evidence))
    out.sort(key=lambda h: (not h.flag, -h.hits, h.rule))
    return HealthReport(window_hours=telemetry.window_hours if telemetry else 0,
                        messages_scanned=telemetry.messages if telemetry else 0, corpus=corpus,
                        rules=out)
