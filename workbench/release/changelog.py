"""What changed between two releases: rules added, modified, removed and status changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuleState:
    """One rule of the repository at a release, shipped or not (the changelog's unit)."""

    name: str
    file: str                  # path inside the signatures tree, e.g. rules/malware/emotet.yar
    status: str
    version: str
    fingerprint: str
    shipped: bool

    @classmethod
    def from_data(cls, raw: dict[str, Any]) -> RuleState:
        return cls(name=str(raw["name"]), file=str(raw["file"]), status=str(raw["status"]),
                   version=str(raw["version"]), fingerprint=str(raw["fingerprint"]),
                   shipped=bool(raw["shipped"]))


@dataclass(frozen=True)
class RuleChange:
    name: str
    file: str
    status: str
    version: str
    previous_status: str = ""
    previous_version: str = ""
    ships: bool = True          # in the bundle (its status ships); else it stays in testing


@dataclass(frozen=True)
class Changelog:
    previous_serial: int | None
    added: list[RuleChange] = field(default_factory=list)
    modified: list[RuleChange] = field(default_factory=list)
    removed: list[RuleChange] = field(default_factory=list)
    status_changed: list[RuleChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed or self.status_changed)

    def summary(self) -> str:
        testing = sum(1 for c in self.added if not c.ships)
        added = (f"{len(self.added)} added ({len(self.added) - testing} ship, {testing} "
                 f"{'stays' if testing == 1 else 'stay'} in testing)" if testing
                 else f"{len(self.added)} added")
        return (f"{added}, {len(self.modified)} modified, "
                f"{len(self.removed)} removed, {len(self.status_changed)} status changes")

    def lines(self) -> list[str]:
        """The changelog as Markdown list lines (used for CHANGELOG.md and the tag message)."""
        out: list[str] = []
        # a rule added in a status that does not ship is in the repository, not in the bundle
        added = [c for c in self.added if c.ships]
        testing = [c for c in self.added if not c.ships]
        for label, changes in (("Added", added), ("Added, stays in testing (not shipped)", testing),
                               ("Modified", self.modified),
                               ("Removed", self.removed), ("Status changed", self.status_changed)):
            if not changes:
                continue
            out.append(f"### {label}")
            for c in changes:
                if label == "Status changed":
                    detail = f"{c.previous_status} -> {c.status}"
                elif label == "Modified":
                    detail = f"version {c.previous_version or '?'} -> {c.version or '?'}, {c.status}"
                elif label == "Removed":
                    detail = f"was {c.previous_status}"
                else:
                    detail = f"version {c.version or '?'}, {c.status}"
                if label in ("Modified", "Status changed") and not c.ships:
                    detail += ", not shipped"
                out.append(f"- `{c.name}` ({c.file}): {detail}")
            out.append("")
        return out or ["No rule changes.", ""]

    @classmethod
    def from_data(cls, raw: dict[str, Any]) -> Changelog:
        def changes(key: str) -> list[RuleChange]:
            out = []
            for item in raw.get(key, []):
                fields: dict[str, Any] = {k: (bool(v) if k == "ships" else str(v)) for k, v in item.items()}
                out.append(RuleChange(**fields))
            return out
        prev = raw.get("previous_serial")
        return cls(previous_serial=int(prev) if prev is not None else None,
                   added=changes("added"), modified=changes("modified"),
                   removed=changes("removed"), status_changed=changes("status_changed"))


def diff_rulesets(previous: list[RuleState], current: list[RuleState],
                  previous_serial: int | None) -> Changelog:
    """Compare two rulesets by rule name; a rule is modified when its fingerprint changed."""
    old = {r.name: r for r in previous}
    new = {r.name: r for r in current}
    added = [RuleChange(r.name, r.file, r.status, r.version, ships=r.shipped)
             for n, r in sorted(new.items()) if n not in old]
    removed = [RuleChange(r.name, r.file, "", "", previous_status=r.status, previous_version=r.version,
                          ships=False)
               for n, r in sorted(old.items()) if n not in new]
    modified, status_changed = [], []
    for name in sorted(set(old) & set(new)):
        before, after = old[name], new[name]
        change = RuleChange(after.name, after.file, after.status, after.version,
                            previous_status=before.status, previous_version=before.version,
                            ships=after.shipped)
        if before.fingerprint != after.fingerprint:
            modified.append(change)
        if before.status != after.status:
            status_changed.append(change)
    return Changelog(previous_serial=previous_serial, added=added, modified=modified,
                     removed=removed, status_changed=status_changed)
