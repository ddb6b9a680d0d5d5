"""Bring a rule file's house metadata (fingerprint, version, modified) in line with the policy after an edit.

One behaviour for every shell: ``workbench rule fmt --update-meta`` and the editor's save
both call ``refresh_metadata``. What the release policy requires (release/validate.py,
V201/V501/V502): a shipped rule's ``fingerprint`` is its true fingerprint; a rule whose
strings or condition changed since the last release has a higher ``version``; its
``modified`` is not before the released value and not in the future. A same-day edit
keeps ``modified`` (it is today already) and still bumps ``version``.

With ``previous`` (the rules as the last release shipped them) a rule is bumped once per
release, however often it is saved: version becomes released version + 1 and stays there.
Without it (no release yet, or a file outside git) a stale fingerprint bumps version by
one, as ``fmt --update-meta`` always did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from workbench.errors import Kind, WorkbenchError
from workbench.rules.parse import MetaEntry, RuleSource, parse_text
from workbench.rules.policy import Policy


class MetadataError(WorkbenchError, ValueError):
    """The text does not parse: its metadata cannot be refreshed (nothing was changed)."""

    kind = Kind.INPUT


@dataclass(frozen=True)
class MetaChange:
    """One metadata value the refresh rewrote."""

    rule: str
    key: str
    old: str
    new: str

    def describe(self) -> str:
        if self.key == "fingerprint":
            return f"fingerprint {self.old[:8]}…→{self.new[:8]}…"
        return f"{self.key} {self.old}→{self.new}"


@dataclass
class MetadataRefresh:
    """The refreshed text and what changed in it (empty when the metadata was current)."""

    text: str
    changes: list[MetaChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        """``RULE: version 1→2, modified …`` per rule, one line each; "" when nothing changed."""
        by_rule: dict[str, list[str]] = {}
        for c in self.changes:
            by_rule.setdefault(c.rule, []).append(c.describe())
        return "\n".join(f"{rule}: {', '.join(parts)}" for rule, parts in by_rule.items())


def _int(entry: MetaEntry | None) -> int | None:
    if entry is None or isinstance(entry.value, bool) or not isinstance(entry.value, int):
        return None
    return entry.value


def _date(value: object, date_format: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(value), date_format).date()
    except ValueError:
        return None


def _literal(text: str, entry: MetaEntry) -> str:
    return text[entry.value_start:entry.value_end].strip('"')


def refresh_metadata(text: str, *, today: dt.date | None = None, policy: Policy | None = None,
                     previous: Mapping[str, RuleSource] | None = None) -> MetadataRefresh:
    """``text`` with each edited rule's fingerprint, version and modified set as the policy requires.

    A rule is edited when its ``fingerprint`` metadata is stale, or (with ``previous``) when
    its strings or condition differ from the released rule of the same name. Metadata keys a
    rule does not have are not added; everything else stays byte-for-byte.
    """
    policy = policy or Policy()
    parsed = parse_text(text)
    if parsed.errors:
        raise MetadataError("; ".join(parsed.errors))
    today = today or dt.date.today()
    stamp = today.strftime(policy.date_format)
    edits: list[tuple[int, int, str]] = []
    changes: list[MetaChange] = []

    def edit(rule: RuleSource, entry: MetaEntry, new: str, shown: str) -> None:
        old = _literal(text, entry)
        if old == shown:
            return
        edits.append((entry.value_start, entry.value_end, new))
        changes.append(MetaChange(rule.name, entry.key, old, shown))

    for rule in parsed.rules:
        entries = {e.key: e for e in reversed(rule.meta_entries)}   # first entry of each key wins
        fp, version, modified = entries.get("fingerprint"), entries.get("version"), entries.get("modified")
        stale = fp is not None and str(fp.value).lower() != rule.fingerprint
        before = previous.get(rule.name) if previous is not None else None
        changed_since_release = before is not None and before.fingerprint != rule.fingerprint
        if not stale and not changed_since_release:
            continue
        if fp is not None and stale:
            edit(rule, fp, f'"{rule.fingerprint}"', rule.fingerprint)
        if version is not None and (current := _int(version)) is not None:
            if previous is None:
                wanted = current + 1 if stale else current
            elif changed_since_release:
                released = _int(next((e for e in before.meta_entries if e.key == "version"), None)) \
                    if before is not None else None
                wanted = max(current, (released or 0) + 1)
            else:
                wanted = current            # new since the release, or changed back to it
            edit(rule, version, str(wanted), str(wanted))
        if modified is not None:
            value = _date(modified.value, policy.date_format)
            floor = _date(before.meta_value("modified"), policy.date_format) if before is not None else None
            if stale or value is None or value > today or (floor is not None and value < floor):
                edit(rule, modified, f'"{stamp}"', stamp)
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return MetadataRefresh(text, changes)
