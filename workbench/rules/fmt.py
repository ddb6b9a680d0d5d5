"""Canonical layout of rule files (YARA-X's formatter) and refreshing the house fingerprint metadata."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yara_x

from workbench.errors import Kind, WorkbenchError
from workbench.rules.parse import RuleSource, iter_rule_paths, parse_text, read_rule_text
from workbench.rules.policy import Policy
from workbench.rules.refresh import MetadataError, refresh_metadata
from workbench.rules.rulefile import write_rule_file


class FormatError(WorkbenchError, ValueError):
    """Text that cannot be formatted safely (syntax errors); nothing was changed."""

    kind = Kind.INPUT


def _formatter() -> yara_x.Formatter:
    # YARA-X's defaults are the house layout: 2-space indents, aligned meta and strings.
    return yara_x.Formatter()


_BLANK_WITH_INDENT = re.compile(r"^[ \t]+$", re.M)


def _layout(text: str) -> str:
    """One pass of YARA-X's formatter, whitespace-only lines emptied.

    YARA-X re-indents the blank lines of a block comment on each pass, so formatting
    would never settle (``fmt(fmt(x)) != fmt(x)``). An empty line means the same
    everywhere in a rule file: in comments, between rules, inside hex strings.
    """
    out = io.StringIO()
    _formatter().format(io.StringIO(text), out)
    return _BLANK_WITH_INDENT.sub("", out.getvalue())


def format_text(text: str) -> str:
    """The canonical layout of ``text``. FormatError if it does not parse or if
    formatting would change what any rule matches (its fingerprint)."""
    before = parse_text(text)
    if before.errors:
        raise FormatError("; ".join(before.errors))
    formatted = _layout(text)
    again = _layout(formatted)
    if again != formatted:
        # YARA-X indents whitespace-only lines inside /* */ once more on every pass; the
        # canonical layout is the one that no longer moves
        formatted = again
    after = parse_text(formatted)
    if after.errors or [r.fingerprint for r in after.rules] != [r.fingerprint for r in before.rules]:
        raise FormatError("the formatter would change the rules' strings or condition; left as it is")
    return formatted


def update_meta(text: str, *, today: dt.date | None = None, policy: Policy | None = None,
                previous: Mapping[str, RuleSource] | None = None) -> str:
    """Refresh each rule whose ``fingerprint`` metadata is stale: new fingerprint, ``modified``
    set to today and an integer ``version`` raised by one. Other rules are left byte-for-byte.
    With ``previous`` (the released rules) version goes one above the released one, once
    (rules/refresh.py, which the editor's save calls too)."""
    try:
        return refresh_metadata(text, today=today, policy=policy, previous=previous).text
    except MetadataError as exc:
        raise FormatError(str(exc)) from None


@dataclass
class FormatReport:
    """What ``workbench rule fmt`` did (or, with --check, would do)."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)     # files that were (or would be) rewritten
    errors: dict[str, str] = field(default_factory=dict)  # file -> why it was left alone
    vendor: list[str] = field(default_factory=list)      # vendor files: kept byte-for-byte as upstream

    @property
    def ok(self) -> bool:
        return not self.changed and not self.errors


def format_paths(paths: Iterable[Path], *, check: bool = False, meta: bool = False,
                 today: dt.date | None = None, policy: Policy | None = None,
                 vendor: Callable[[Path], bool] | None = None,
                 released: Callable[[Path], Mapping[str, RuleSource] | None] | None = None) -> FormatReport:
    """Format files in place (atomically); with ``check`` only report what would change.

    ``released`` gives a file's rules as the last release shipped them, for ``meta``.

    Files ``vendor`` says are vendor files are never touched (listed in ``report.vendor``).
    """
    report = FormatReport()
    for path in iter_rule_paths(paths):
        if vendor is not None and vendor(path):
            report.vendor.append(str(path))
            continue
        report.checked += 1
        try:
            text, problems = read_rule_text(path)
            if problems:
                raise FormatError(problems[0])
            previous = released(path) if meta and released is not None else None
            new = update_meta(text, today=today, policy=policy, previous=previous) if meta else text
            new = format_text(new)
        except FormatError as exc:
            report.errors[str(path)] = str(exc)
            continue
        except OSError as exc:
            report.errors[str(path)] = exc.strerror or str(exc)
            continue
        if new == text:
            continue
        report.changed.append(str(path))
        if not check:
            write_rule_file(path, new)
    return report
