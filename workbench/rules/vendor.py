"""Vendor rule sources beside house rules: upstream files kept byte-for-byte, the house's record beside them.

A source imported as NAME lives in ``signatures/vendor/NAME/``::

    upstream/          the upstream files exactly as fetched (rule files, licence, readme)
    source.json        what the house keeps: origin, commit, licence and attribution, the
                       policy profile, and per rule its status, fingerprint, why it is held
                       back (with evidence) and its version history

Nothing in ``upstream/`` is ever rewritten, so a later ``rule import --update`` replaces it
wholesale and the record says exactly which rules changed, were added or removed.
A held rule (``held`` set) does not ship; a held file (it does not compile in both
engines, needs a module this build lacks, or clashes with a house rule name) is not
compiled at all. Validation, ``test`` and release read vendor rules through this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import Kind, WorkbenchError
from workbench.rules.findings import Baseline, Finding, LintReport
from workbench.rules.parse import RuleFile, RuleSource, iter_rule_paths
from workbench.rules.policy import Policy

if TYPE_CHECKING:
    from workbench.rules.compilers import ExternalValue
    from workbench.rules.lint import YaraxAhead

VENDOR_DIR = "vendor"
UPSTREAM_DIR = "upstream"
RECORD_FILE = "source.json"
RECORD_FORMAT = 1
VENDOR_STATUS = "RELEASED"        # a vendor rule that compiles and stays off the clean corpora ships
HELD_STATUS = "DISABLED"

# The vendor profile: house naming and metadata conventions do not apply to rules the house
# did not write; performance and correctness checks (P*, C*, N304 duplicate names) stay on.
VENDOR_DISABLED_CHECKS = ("M201", "M202", "M203", "M204", "M205", "M206", "N301", "N302", "N303")


class VendorError(WorkbenchError, ValueError):
    """A vendor record that cannot be read, or an import that cannot be done (nothing was changed)."""

    kind = Kind.INPUT
    topic = "vendor source"


@dataclass
class VendorRule:
    name: str
    file: str                       # path under upstream/
    fingerprint: str
    status: str = VENDOR_STATUS
    held: str = ""                  # why it is kept out of releases ("" when it ships)
    evidence: list[str] = field(default_factory=list)      # e.g. clean files it matched
    history: list[dict[str, str]] = field(default_factory=list)   # {"change", "fingerprint", "commit", "date"}

    @property
    def ships_from_source(self) -> bool:
        return not self.held


@dataclass
class VendorSource:
    """One imported source: its folder and its record."""

    name: str
    folder: Path                                  # signatures/vendor/NAME
    origin: str = ""
    kind: str = "folder"                          # "folder" or "git"
    commit: str = ""
    imported: str = ""
    licence_file: str = ""
    licence: str = ""                             # e.g. "MIT"
    attribution: str = ""                         # the copyright line(s)
    disabled_checks: tuple[str, ...] = VENDOR_DISABLED_CHECKS
    severity_overrides: dict[str, str] = field(default_factory=dict)
    held_files: dict[str, str] = field(default_factory=dict)   # path under upstream/ -> reason
    rules: dict[str, VendorRule] = field(default_factory=dict)

    @property
    def upstream(self) -> Path:
        return self.folder / UPSTREAM_DIR

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD_FILE

    def rule_paths(self) -> list[Path]:
        """The upstream rule files that are compiled (held files left out), in a stable order."""
        if not self.upstream.is_dir():
            return []
        return [p for p in iter_rule_paths([self.upstream])
                if p.relative_to(self.upstream).as_posix() not in self.held_files]

    def policy(self, house: Policy) -> Policy:
        """The house policy with this source's profile: naming and metadata checks off."""
        return replace(house, disabled_checks=tuple(dict.fromkeys((*house.disabled_checks,
                                                                   *self.disabled_checks))),
                       severity_overrides={**house.severity_overrides, **self.severity_overrides})

    # -- the record -------------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path) -> VendorSource:
        path = folder / RECORD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VendorError(f"{path}: no record (import the source with `workbench rule import`)") from None
        except (OSError, ValueError) as exc:
            raise VendorError(f"{path}: unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise VendorError(f"{path}: not a vendor record of format {RECORD_FORMAT}")
        try:
            profile = data.get("profile", {})
            source = cls(name=folder.name, folder=folder, origin=str(data.get("origin", "")),
                         kind=str(data.get("kind", "folder")), commit=str(data.get("commit", "")),
                         imported=str(data.get("imported", "")),
                         licence_file=str(data.get("licence_file", "")), licence=str(data.get("licence", "")),
                         attribution=str(data.get("attribution", "")),
                         disabled_checks=tuple(str(x) for x in profile.get("disabled", VENDOR_DISABLED_CHECKS)),
                         severity_overrides={str(k): str(v) for k, v in profile.get("severity", {}).items()},
                         held_files={str(k): str(v) for k, v in data.get("held_files", {}).items()})
            for name, raw in data.get("rules", {}).items():
                source.rules[name] = VendorRule(
                    name=name, file=str(raw["file"]), fingerprint=str(raw.get("fingerprint", "")),
                    status=str(raw.get("status", VENDOR_STATUS)), held=str(raw.get("held", "")),
                    evidence=[str(e) for e in raw.get("evidence", [])],
                    history=[{str(k): str(v) for k, v in h.items()} for h in raw.get("history", [])])
        except (AttributeError, KeyError, TypeError) as exc:
            raise VendorError(f"{path}: malformed record: {exc!r}") from None
        return source

    def to_data(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT, "name": self.name, "origin": self.origin, "kind": self.kind,
            "commit": self.commit, "imported": self.imported, "licence_file": self.licence_file,
            "licence": self.licence, "attribution": self.attribution,
            "profile": {"disabled": list(self.disabled_checks), "severity": dict(self.severity_overrides)},
            "held_files": dict(sorted(self.held_files.items())),
            "rules": {name: {"file": r.file, "fingerprint": r.fingerprint, "status": r.status,
                             **({"held": r.held} if r.held else {}),
                             **({"evidence": r.evidence} if r.evidence else {}),
                             "history": r.history}
                      for name, r in sorted(self.rules.items())},
        }


@dataclass
class VendorSet:
    """Every vendor source of a signatures folder, and which rule file belongs to which."""

    root: Path
    sources: list[VendorSource] = field(default_factory=list)
    _by_file: dict[Path, VendorSource] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path | str) -> VendorSet:
        """The sources under ``root/vendor/``; VendorError for a record that cannot be read."""
        root = Path(root)
        found = cls(root)
        folder = root / VENDOR_DIR
        if not folder.is_dir():
            return found
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                found.sources.append(VendorSource.load(child))
        for source in found.sources:
            if source.upstream.is_dir():
                for p in iter_rule_paths([source.upstream]):
                    found._by_file[p.resolve()] = source
        return found

    def __iter__(self) -> Iterator[VendorSource]:
        return iter(self.sources)

    def __bool__(self) -> bool:
        return bool(self.sources)

    def get(self, name: str) -> VendorSource | None:
        return next((s for s in self.sources if s.name == name), None)

    def rule_paths(self) -> list[Path]:
        """The vendor rule files that are compiled, source by source."""
        return [p for s in self.sources for p in s.rule_paths()]

    def source_of(self, path: Path | str | None) -> VendorSource | None:
        if path is None:
            return None
        return self._by_file.get(Path(path).resolve())

    def is_vendor(self, rule: RuleSource) -> bool:
        return self.source_of(rule.file) is not None

    def status(self, rule: RuleSource) -> str | None:
        """A vendor rule's status from its record (held rules do not ship); None for house rules."""
        source = self.source_of(rule.file)
        if source is None:
            return None
        record = source.rules.get(rule.name)
        if record is None:
            return HELD_STATUS          # in the files but not in the record: never imported properly
        return HELD_STATUS if record.held else record.status


def status_of(rule: RuleSource, vendors: VendorSet | None) -> str:
    """A rule's status: the vendor record's for vendor rules, the ``status`` metadata otherwise."""
    if vendors:
        found = vendors.status(rule)
        if found is not None:
            return found
    return str(rule.meta_value("status", "") or "")


def with_fingerprint_meta(text: str, rules: list[RuleSource]) -> str:
    """``text`` with ``fingerprint`` metadata added to each of ``rules``, on lines they already use.

    Towers compare each loaded rule's ``fingerprint`` metadata with the bundle manifest;
    vendor rules do not carry it, so the bundle's copy gets it (the repository's copy
    stays as upstream wrote it). Line numbers do not move: the metadata goes after the
    last metadata value, or right after the rule's opening brace.
    """
    edits: list[tuple[int, str]] = []
    for rule in rules:
        entry = f'fingerprint = "{rule.fingerprint}"'
        if rule.meta_entries:
            edits.append((max(e.value_end for e in rule.meta_entries), f" {entry}"))
        else:
            brace = text.index("{", rule.start_offset, rule.end_offset)
            edits.append((brace + 1, f" meta: {entry} "))
    for at, insert in sorted(edits, reverse=True):
        text = text[:at] + insert + text[at:]
    return text


def lint_by_source(files: list[RuleFile], policy: Policy, vendors: VendorSet | None, *,
                   baseline: Baseline | None = None, externals: Mapping[str, ExternalValue] | None = None,
                   known_rules: Mapping[str, str] | None = None, memo: Path | None = None,
                   ahead: YaraxAhead | None = None) -> LintReport:
    """Lint house files with the house policy and each vendor source's files with its profile.

    Names are checked for duplicates across all of them (and ``known_rules``) either way.
    ``memo``: where YARA-X's findings are kept by file content (``lint.YaraxMemo``);
    ``ahead``: YARA-X started on the files before they were parsed (``lint.YaraxAhead``).
    """
    from workbench.rules.lint import lint_files  # the engines: only when linting, not for `test`

    groups: dict[str, list[RuleFile]] = {}
    for rf in files:
        source = vendors.source_of(rf.path) if vendors else None
        groups.setdefault(source.name if source is not None else "", []).append(rf)
    if list(groups) in ([], [""]):
        return lint_files(files, policy, baseline=baseline, externals=externals, known_rules=known_rules,
                          memo=memo, ahead=ahead)
    merged: LintReport | None = None
    for name, group in groups.items():
        source = vendors.get(name) if vendors is not None and name else None
        chosen = {id(rf) for rf in group}
        others = dict(known_rules or {})
        others.update({r.name: str(rf.path) for rf in files if id(rf) not in chosen for r in rf.rules})
        report = lint_files(group, source.policy(policy) if source is not None else policy, baseline=baseline,
                            externals=externals, known_rules=others, memo=memo, ahead=ahead)
        if merged is None:
            merged = report
        else:
            merged.files += report.files
            merged.rules += report.rules
            merged.findings += report.findings
            merged.accepted += report.accepted
    assert merged is not None
    merged.findings.sort(key=Finding.sort_key)
    return merged


def source_summary(source: VendorSource) -> dict[str, Any]:
    """One line of ``rule sources``: where it came from, its licence, how many rules ship or are held."""
    held = sum(1 for r in source.rules.values() if r.held)
    shipping = sum(1 for r in source.rules.values() if not r.held and r.status == VENDOR_STATUS)
    return {"name": source.name, "origin": source.origin, "kind": source.kind, "commit": source.commit,
            "imported": source.imported, "licence": source.licence, "licence_file": source.licence_file,
            "attribution": source.attribution, "rules": len(source.rules), "shipping": shipping, "held": held,
            "held_files": dict(source.held_files)}
