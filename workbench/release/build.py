"""Turning a signatures tree (a folder, or a commit) into a prepared release bundle.

Only rules whose status ships go into the bundle. Each source file keeps its path and
its line numbers: a rule that does not ship is replaced by as many empty lines, and an
``include`` line by a comment, because the bundle compiles every file in include order
in one namespace (as validation does) rather than following includes.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.release.bundle import (
    RULES_DIR,
    BundleError,
    ManifestRule,
    PreparedBundle,
    SourceEntry,
    prepare_bundle,
)
from workbench.release.changelog import RuleState
from workbench.release.settings import ReleaseSettings
from workbench.release.signature_repository import SignatureRepository
from workbench.release.validate import Corpus, load_rule_tree
from workbench.rules.parse import RuleFile, RuleSource, parse_file
from workbench.rules.policy import Policy, PolicyError
from workbench.rules.vendor import (
    VENDOR_DIR,
    VendorError,
    VendorSet,
    status_of,
    with_fingerprint_meta,
)

NAMESPACE = "default"
_INCLUDE_LINE = re.compile(r'^([ \t]*)include[ \t]+"([^"\n]*)"', re.M)
_NOT_UTF8 = "file is not UTF-8"


@dataclass
class BuiltRuleset:
    prepared: PreparedBundle
    ruleset: list[RuleState]          # every rule of the tree, shipped or not (for the changelog)

    @property
    def shipped(self) -> int:
        return len(self.prepared.rules)


def prepare_tree(root: Path) -> BuiltRuleset:
    """Prepare the bundle of the signatures folder ``root``; ``BundleError`` says why it cannot be built."""
    root = Path(root).resolve()
    try:
        policy = Policy.load(root)
        settings = ReleaseSettings.from_policy(policy)
    except PolicyError as exc:
        raise BundleError(f"policy: {exc}") from None
    rules_dir = (root / settings.rules).resolve()
    if not rules_dir.is_dir():
        raise BundleError(f"no rules folder {settings.rules}/")
    files, include_problems = load_rule_tree(rules_dir)
    try:
        vendors = VendorSet.load(root)
    except VendorError as exc:
        raise BundleError(str(exc)) from None
    files += [parse_file(p) for p in vendors.rule_paths()]     # held files are never compiled
    if include_problems:
        raise BundleError(f"{include_problems[0].file}: {include_problems[0].message}")
    broken = [rf for rf in files if any(_NOT_UTF8 not in e for e in rf.errors)]
    if broken:
        raise BundleError(f"{broken[0].path}: {broken[0].errors[0]}")

    def status(rule: RuleSource) -> str:
        return status_of(rule, vendors)

    sources: dict[str, bytes] = {}
    entries: list[SourceEntry] = []
    manifest_rules: list[ManifestRule] = []
    states: list[RuleState] = []
    shipped_rules: list[RuleSource] = []
    for rf in files:
        assert rf.path is not None
        rel_in_tree = rf.path.relative_to(root).as_posix()
        source = vendors.source_of(rf.path)
        member = (f"{RULES_DIR}/{VENDOR_DIR}/{source.name}/{rf.path.relative_to(source.upstream).as_posix()}"
                  if source is not None else f"{RULES_DIR}/{rf.path.relative_to(rules_dir).as_posix()}")
        ships = [r for r in rf.rules if settings.ships(status(r))]
        for r in rf.rules:
            states.append(RuleState(r.name, rel_in_tree, status(r), str(r.meta_value("version", "") or ""),
                                    r.fingerprint, settings.ships(status(r))))
        if not ships:
            continue
        encoding = "latin-1" if any(_NOT_UTF8 in e for e in rf.errors) else "utf-8"
        sources[member] = _shipped_text(rf, ships, fingerprints=source is not None).encode(encoding,
                                                                                         "surrogateescape")
        entries.append(SourceEntry(member, NAMESPACE))
        shipped_rules.extend(ships)
        manifest_rules += [ManifestRule(r.name, NAMESPACE, r.fingerprint, status(r), member) for r in ships]
    if not manifest_rules:
        raise BundleError(f"no rule has a status that ships ({', '.join(settings.ship)})")
    samples, expected = _selftest_samples(root, settings, shipped_rules)
    try:
        prepared = prepare_bundle(sources=sources, entrypoints=entries, rules=manifest_rules,
                                  externals=settings.externals, samples=samples, expected=expected)
    except BundleError as exc:
        raise BundleError(f"the release bundle cannot be built: {exc.reason}") from None
    return BuiltRuleset(prepared, sorted(states, key=lambda s: s.name))


def prepare_commit(repo: SignatureRepository, rev: str) -> BuiltRuleset:
    """Prepare the bundle of the signatures folder as committed at ``rev`` (the working tree is ignored)."""
    with tempfile.TemporaryDirectory(prefix="wb-release-") as tmp:
        return prepare_tree(repo.export(rev, Path(tmp) / "signatures"))


def _shipped_text(rf: RuleFile, ships: list[RuleSource], *, fingerprints: bool = False) -> str:
    """The file with rules that do not ship blanked out and includes commented, lines kept in place.

    With ``fingerprints`` (vendor files), shipped rules get their fingerprint metadata.
    Rules are edited last to first, so each edit leaves the offsets of the rest valid.
    """
    keep = {id(r) for r in ships}
    text = rf.text
    for rule in sorted(rf.rules, key=lambda r: r.start_offset, reverse=True):
        if id(rule) in keep and fingerprints:
            text = with_fingerprint_meta(text, [rule])
        elif id(rule) not in keep:
            span = text[rule.start_offset:rule.end_offset]
            text = text[:rule.start_offset] + "\n" * span.count("\n") + text[rule.end_offset:]
    return _INCLUDE_LINE.sub(lambda m: f'{m.group(1)}// include "{m.group(2)}" (compiled in order by the bundle)',
                             text)


def _selftest_samples(root: Path, settings: ReleaseSettings,
                      rules: list[RuleSource]) -> tuple[dict[str, bytes], dict[str, list[str]]]:
    """One positive sample per shipped rule (its smallest), within the self-test size budget."""
    folder = root / settings.malicious
    if not folder.is_dir():
        return {}, {}
    by_hash = Corpus.load(folder).by_hash()
    samples: dict[str, bytes] = {}
    expected: dict[str, list[str]] = {}
    budget = settings.selftest_max_bytes
    for rule in sorted(rules, key=lambda r: r.name):
        if rule.is_private:
            continue
        found = {by_hash[h].sha256: by_hash[h] for h in
                 (str(v).strip().lower() for v in rule.meta_values("hash")) if h in by_hash}
        if not found:
            continue
        chosen = next((f for f in found.values() if f.sha256 in samples), None)
        if chosen is None:
            chosen = min(found.values(), key=lambda f: (f.size, f.sha256))
            if chosen.size > budget:
                continue
            budget -= chosen.size
            samples[chosen.sha256] = chosen.path.read_bytes()
        expected.setdefault(chosen.sha256, []).append(rule.name)
    return samples, expected
