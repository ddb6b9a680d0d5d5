"""A validation report as text, SARIF 2.1.0 (code review) or JUnit XML (any CI's test view)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

from workbench.release.validate import CheckResult, ValidationReport, catalog
from workbench.rules.findings import Finding, LintReport
from workbench.rules.sarif import to_sarif

_CHECK_OF_ID = {"C": "LINT", "M": "LINT", "N": "LINT", "P": "LINT"}


def render_text(report: ValidationReport, *, verbose: bool = False) -> str:
    lines = []
    scope = (f"{len(report.rules_checked)} of {report.rules_total} rules (changed since {report.base})"
             if report.mode == "changed" else f"{report.rules_total} rules")
    lines.append(f"validate {relpath(report.root)}: {scope}, {report.files_checked} files")
    for note in report.notes:
        lines.append(f"  note: {note}")
    for f in report.findings:
        if f.severity == "info" and not verbose:
            continue
        where = relpath(f.file)
        if f.line:
            where += f":{f.line}" + (f":{f.column}" if f.column else "")
        rule = f" [{f.rule}]" if f.rule else ""
        lines.append(f"{where}: {f.severity} {f.id}{rule}: {f.message}")
        if f.hint and f.severity == "error":
            lines.append(f"    fix: {f.hint}")
    for hit in report.allowed:
        lines.append(f"allowed: {hit.rule} matches clean {hit.path} ({hit.sha256[:12]}): {hit.reason}")
    if report.accepted:
        lines.append(f"accepted by the baseline: {len(report.accepted)} warning(s)")
    if report.uncovered and verbose:
        lines.append(f"malicious files no rule claims or matches: {', '.join(report.uncovered)}")
    lines.append("")
    for c in report.checks:
        extra = f" ({c.note})" if c.note else ""
        counts = f"{c.errors} errors, {c.warnings} warnings" if c.status != "skipped" else ""
        lines.append(f"  {c.status.upper():7} {c.title} {counts}{extra} [{c.seconds:.2f}s]".rstrip())
    verdict = "OK" if report.ok else "FAILED"
    lines.append(f"{verdict}: {report.errors} errors, {report.warnings} warnings in {report.seconds:.2f}s")
    return "\n".join(lines)


def render_sarif(report: ValidationReport, *, root: Path | None = None) -> str:
    """SARIF with file URIs relative to ``root`` (the repository top, so review tools find the lines)."""
    as_lint = LintReport(files=[], rules=report.rules_total, findings=report.findings,
                         accepted=report.accepted, engines=report.engines)
    log = to_sarif(as_lint, root=root or Path(report.root), catalog=catalog())
    driver = log["runs"][0]["tool"]["driver"]
    driver["name"] = "workbench-validate"
    driver["informationUri"] = "https://example.invalid/workbench/docs/release.md"
    log["runs"][0]["properties"]["mode"] = report.mode
    log["runs"][0]["properties"]["base"] = report.base
    return json.dumps(log, indent=2)


def render_junit(report: ValidationReport) -> str:
    """One test suite per check, one test case per rule checked (plus one for the ruleset as a whole).

    Errors are failures; warnings are printed in the case's output; checks that did not
    run (``--no-corpus``) are skipped cases.
    """
    by_check: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_check.setdefault(_check_of(f), []).append(f)
    suites = ET.Element("testsuites", name="workbench validate", tests="0", failures="0",
                        time=f"{report.seconds:.3f}")
    total = failures = 0
    checks = list(report.checks)
    ran = {c.id for c in checks}
    if any(key not in ran for key in by_check):      # stopped before the checks (bad policy ...)
        leftover = [f for key, fs in by_check.items() if key not in ran for f in fs]
        by_check["SETUP"] = leftover
        checks.insert(0, CheckResult("SETUP", "read the policy and the rules folder", "failed", 0.0,
                                     errors=sum(1 for f in leftover if f.severity == "error")))
    for check in checks:
        found = by_check.get(check.id, [])
        suite = ET.SubElement(suites, "testsuite", name=f"{check.id}: {check.title}",
                              time=f"{check.seconds:.3f}")
        cases = ["(ruleset)", *report.rules_checked]
        s_fail = 0
        for name in cases:
            mine = [f for f in found if (f.rule or "(ruleset)") == name]
            case = ET.SubElement(suite, "testcase", classname=check.id, name=name)
            if check.status == "skipped":
                ET.SubElement(case, "skipped", message=check.note or "not run")
                continue
            errors = [f for f in mine if f.severity == "error"]
            if errors:
                s_fail += 1
                failure = ET.SubElement(case, "failure", message=errors[0].message, type=errors[0].id)
                failure.text = "\n".join(_line(f) for f in errors)
            others = [f for f in mine if f.severity != "error"]
            if others:
                ET.SubElement(case, "system-out").text = "\n".join(_line(f) for f in others)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(s_fail))
        suite.set("skipped", str(len(cases) if check.status == "skipped" else 0))
        total += len(cases)
        failures += s_fail
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


def _check_of(f: Finding) -> str:
    if f.id[:1] in _CHECK_OF_ID:
        return "LINT"
    if f.id.startswith("V0"):
        return "LINT" if f.id == "V003" else ("V3" if f.id == "V004" else "V1")
    return f.id[:2]


def _line(f: Finding) -> str:
    where = relpath(f.file) + (f":{f.line}" if f.line else "")
    return f"{where}: {f.severity} {f.id}: {f.message}" + (f" (fix: {f.hint})" if f.hint else "")


def relpath(file: str) -> str:
    """A path for people: relative to the current folder when that is shorter."""
    if not file:
        return "<ruleset>"
    try:
        rel = os.path.relpath(file)
    except ValueError:
        return file
    return rel if len(rel) < len(file) else file
