"""Lint YARA rules: both engines' diagnostics plus the house checks, as one LintReport."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from workbench.rules.checks import PARSER_CHECK, Check, LintContext, all_checks, check_catalog
from workbench.rules.engines import (
    ExternalValue,
    engine_versions,
    libyara_findings,
    libyara_findings_together,
    yarax_findings,
)
from workbench.rules.findings import Baseline, Finding, LintReport
from workbench.rules.parse import RuleFile, iter_rule_paths, parse_file, parse_text
from workbench.rules.policy import Policy

__all__ = ["Baseline", "Finding", "LintReport", "all_checks", "check_catalog", "lint_files", "lint_paths",
           "lint_text"]

def _externals(policy: Policy, externals: Mapping[str, ExternalValue] | None) -> dict[str, ExternalValue]:
    """Explicit externals, else the policy's ``[externals]`` table (owned by release settings)."""
    if externals is not None:
        return dict(externals)
    table = policy.section("externals")
    return {k: v for k, v in table.items() if isinstance(v, bool | int | float | str)}


def _lint_one(rf: RuleFile, ctx: LintContext, checks: list[Check],
              externals: dict[str, ExternalValue], libyara: list[Finding] | None = None) -> list[Finding]:
    if libyara is None:
        libyara = libyara_findings(rf, externals=externals)
    findings = libyara + yarax_findings(rf, externals=externals)
    if rf.errors and not any(f.severity == "error" and f.id.startswith("C") for f in findings):
        file = str(rf.path) if rf.path else ""
        for err in rf.errors:
            line = int(err.split(":", 1)[0].removeprefix("line ") or 0) if err.startswith("line ") else 0
            findings.append(Finding(PARSER_CHECK, "warning", file, line, 1, f"workbench parser: {err}",
                                    "both engines accept this but the house checks skipped it; "
                                    "please report the construct", subject=err.split(":", 1)[-1].strip()))
    for rule in rf.rules:
        for check in checks:
            findings.extend(check.check(rule, rf, ctx))
    return findings


def _finish(findings: list[Finding], policy: Policy) -> list[Finding]:
    out = []
    for f in findings:
        if f.id in policy.disabled_checks:
            continue
        override = policy.severity_overrides.get(f.id)
        if override:
            f.severity = override  # type: ignore[assignment]
        out.append(f)
    out.sort(key=Finding.sort_key)
    return out


def lint_files(files: list[RuleFile], policy: Policy, *, baseline: Baseline | None = None,
               externals: Mapping[str, ExternalValue] | None = None,
               known_rules: Mapping[str, str] | None = None) -> LintReport:
    """Lint already-parsed files together (duplicate names are checked across all of them)."""
    ctx = LintContext(policy, known_rules=dict(known_rules or {}))
    ctx.add_files(files)
    checks = all_checks()
    ext = _externals(policy, externals)
    findings: list[Finding] = []
    # libyara compiles the files without includes together (the same findings, a seventh
    # of the time), each file alone only when that fails or it includes others
    alone = [rf for rf in files if not rf.includes]
    together = libyara_findings_together(alone, externals=ext) if len(alone) > 1 else None
    known = {id(rf): found for rf, found in zip(alone, together, strict=True)} if together else {}
    for rf in files:
        findings.extend(_lint_one(rf, ctx, checks, ext, known.get(id(rf))))
    report = LintReport(files=[str(rf.path) if rf.path else "" for rf in files],
                        rules=sum(len(rf.rules) for rf in files),
                        findings=_finish(findings, policy), engines=dict(engine_versions()))
    if baseline is not None:
        baseline.apply(report)
    return report


def lint_paths(paths: Iterable[Path], policy: Policy, *, baseline: Baseline | None = None,
               externals: Mapping[str, ExternalValue] | None = None) -> LintReport:
    """Lint files and folders (walked for *.yar / *.yara). OSError if a path cannot be read."""
    files = [parse_file(p) for p in iter_rule_paths(paths)]
    return lint_files(files, policy, baseline=baseline, externals=externals)


def lint_text(text: str, file: Path | None, policy: Policy, *, baseline: Baseline | None = None,
              externals: Mapping[str, ExternalValue] | None = None,
              known_rules: Mapping[str, str] | None = None) -> LintReport:
    """Lint an editor buffer. ``known_rules`` (name -> file) finds names taken by other files."""
    rf = parse_text(text, Path(file) if file else None)
    return lint_files([rf], policy, baseline=baseline, externals=externals, known_rules=known_rules)
