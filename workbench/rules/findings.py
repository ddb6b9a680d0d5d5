"""Lint findings, the lint report document, and the baseline of findings a team has accepted."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.document import utcnow
from workbench.durable import KEEP_MODE, atomic_write
from workbench.errors import Kind, WorkbenchError

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
BASELINE_VERSION = 1

_LINE_REFS = re.compile(r"\bline \d+\b|\(\d+\)|:\d+:\d+")


@dataclass
class Finding:
    id: str                     # check id, e.g. "P401"
    severity: Severity
    file: str                   # as given on the command line ("" for text with no file)
    line: int                   # 1-based; 0 when the finding has no position
    column: int                 # 1-based; 0 when unknown
    message: str
    hint: str
    rule: str = ""              # rule name, "" for file-level findings
    subject: str = ""           # what inside the rule: "$a", "hash", a message without line numbers

    @property
    def key(self) -> str:
        """Identity for baselines: stable when lines move or the file is renamed.

        Rule names are unique across a house ruleset, so (check, rule, subject) names a
        finding; file-level findings use the file's base name instead of a rule.
        """
        where = self.rule or os.path.basename(self.file)
        subject = self.subject or _LINE_REFS.sub("", self.message)
        return f"{self.id}|{where}|{subject}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.id)


@dataclass
class LintReport:
    """What ``workbench rule lint`` found: one document for text, JSON, SARIF and the TUI."""

    files: list[str] = field(default_factory=list)
    rules: int = 0
    findings: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)   # matched by the baseline
    engines: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def warnings(self) -> int:
        return self.count("warning")

    @property
    def ok(self) -> bool:
        """No errors (warnings and infos do not fail a lint)."""
        return self.errors == 0

    def for_rule(self, name: str) -> list[Finding]:
        return [f for f in self.findings if f.rule == name]

    def extend(self, other: LintReport) -> None:
        self.files.extend(other.files)
        self.rules += other.rules
        self.findings.extend(other.findings)
        self.accepted.extend(other.accepted)
        self.engines.update(other.engines)
        self.notes.extend(n for n in other.notes if n not in self.notes)


class BaselineError(WorkbenchError, ValueError):
    """A baseline file that cannot be read."""

    kind = Kind.INPUT


@dataclass
class BaselineEntry:
    key: str
    id: str
    rule: str
    message: str
    reason: str = ""


@dataclass
class Baseline:
    """Findings a team reviewed and accepted; errors can never be accepted.

    Stored as JSON (docs/formats.md ``## rules``). Matching is by ``Finding.key``, so a
    finding stays accepted when lines move; editing the offending string or rule makes it new.
    """

    entries: list[BaselineEntry] = field(default_factory=list)
    path: Path | None = None

    @property
    def keys(self) -> set[str]:
        return {e.key for e in self.entries}

    def accepts(self, finding: Finding) -> bool:
        return finding.severity != "error" and finding.key in self.keys

    def split(self, findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
        """(new findings, accepted findings)."""
        keys = self.keys
        new: list[Finding] = []
        accepted: list[Finding] = []
        for f in findings:
            (accepted if f.severity != "error" and f.key in keys else new).append(f)
        return new, accepted

    def apply(self, report: LintReport) -> LintReport:
        """Move accepted findings of ``report`` into ``report.accepted``; returns the report."""
        report.findings, accepted = self.split(report.findings)
        report.accepted.extend(accepted)
        return report

    @classmethod
    def from_findings(cls, findings: Iterable[Finding], *, reason: str = "") -> Baseline:
        """A baseline accepting every non-error finding given (errors are left out)."""
        seen: dict[str, BaselineEntry] = {}
        for f in findings:
            if f.severity != "error" and f.key not in seen:
                seen[f.key] = BaselineEntry(f.key, f.id, f.rule, f.message, reason)
        return cls(sorted(seen.values(), key=lambda e: e.key))

    @classmethod
    def load(cls, path: Path | str) -> Baseline:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BaselineError(f"{path}: baseline not found") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BaselineError(f"{path}: not a JSON baseline: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION \
                or not isinstance(data.get("accepted"), list):
            raise BaselineError(f"{path}: not a workbench lint baseline (version {BASELINE_VERSION})")
        entries = []
        for i, item in enumerate(data["accepted"]):
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise BaselineError(f"{path}: entry {i} has no key")
            entries.append(BaselineEntry(
                key=item["key"], id=str(item.get("id", "")), rule=str(item.get("rule", "")),
                message=str(item.get("message", "")), reason=str(item.get("reason", ""))))
        return cls(entries, path)

    def to_data(self) -> dict[str, Any]:
        return {
            "version": BASELINE_VERSION,
            "generated": utcnow().isoformat().replace("+00:00", "Z"),
            "accepted": [e.__dict__ for e in sorted(self.entries, key=lambda e: e.key)],
        }

    def save(self, path: Path | str) -> None:
        atomic_write(path, json.dumps(self.to_data(), indent=2, ensure_ascii=False) + "\n",
                     mode=KEEP_MODE)
