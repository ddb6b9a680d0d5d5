"""Lint reports as SARIF 2.1.0, the format code-review tools (GitHub code scanning, IDEs) read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import __version__
from workbench.rules.checks import check_catalog
from workbench.rules.findings import Finding, LintReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _uri(file: str, root: Path) -> tuple[str, bool]:
    """(uri, relative-to-root?) for a finding's file: relative when under root, as SARIF prefers."""
    if not file:
        return "<text>", False
    path = Path(file)
    absolute = path if path.is_absolute() else (Path.cwd() / path)
    try:
        return absolute.resolve().relative_to(root).as_posix(), True
    except ValueError:
        return absolute.resolve().as_uri(), False


def to_sarif(report: LintReport, *, root: Path | None = None,
             catalog: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A SARIF log with one run; file URIs relative to ``root`` (default: the current folder)."""
    root = (root or Path.cwd()).resolve()
    rules = catalog or check_catalog()
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [_result(f, root, index) for f in report.findings]
    results += [_result(f, root, index, suppressed=True) for f in report.accepted]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "workbench-rule-lint",
                "version": __version__,
                "rules": [{
                    "id": r["id"],
                    "name": _camel(r["title"]),
                    "shortDescription": {"text": r["title"]},
                    "help": {"text": r["hint"]},
                    "defaultConfiguration": {"level": _LEVEL[r["severity"]]},
                } for r in rules],
            }},
            "originalUriBaseIds": {"SRCROOT": {"uri": root.as_uri() + "/"}},
            "columnKind": "unicodeCodePoints",
            "properties": {"engines": report.engines},
            "results": results,
        }],
    }


def _result(f: Finding, root: Path, index: dict[str, int], *, suppressed: bool = False) -> dict[str, Any]:
    uri, relative = _uri(f.file, root)
    artifact: dict[str, Any] = {"uri": uri}
    if relative:
        artifact["uriBaseId"] = "SRCROOT"
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if f.line > 0:
        region: dict[str, Any] = {"startLine": f.line}
        if f.column > 0:
            region["startColumn"] = f.column
        physical["region"] = region
    location: dict[str, Any] = {"physicalLocation": physical}
    if f.rule:
        location["logicalLocations"] = [{"name": f.rule, "kind": "member"}]
    result: dict[str, Any] = {
        "ruleId": f.id,
        "level": _LEVEL[f.severity],
        "message": {"text": f"{f.message}. Fix: {f.hint}" if f.hint else f.message},
        "locations": [location],
        "partialFingerprints": {"workbenchFindingKey/v1": f.key},
    }
    if f.id in index:
        result["ruleIndex"] = index[f.id]
    if suppressed:
        result["suppressions"] = [{"kind": "external", "justification": "accepted in the lint baseline"}]
    return result


def _camel(title: str) -> str:
    words = [w for w in "".join(c if c.isalnum() else " " for c in title).split() if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Check"
