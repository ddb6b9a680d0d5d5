"""``workbench rule import``: bring a public ruleset in beside the house rules, as upstream wrote it.

The upstream files are copied byte-for-byte into ``signatures/vendor/NAME/upstream/``;
the record beside them (``workbench.rules.vendor``) says, per rule, whether it ships and
why not: files that do not compile in both engines (or need a module this build lacks,
or define a name a house rule already has) are held whole, and rules that match the
clean corpus are held with the files they matched. Nothing held blocks a release.
An update compares fingerprints with the record: changed, added and removed rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import git
import yara
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from workbench.corpus.scanner import ScanTarget, scan_files
from workbench.durable import atomic_write
from workbench.release.settings import ReleaseSettings
from workbench.release.validate import SCAN_TIMEOUT, Corpus, load_rule_tree
from workbench.rules.compilers import ExternalValue, libyara_findings, yarax_findings
from workbench.rules.parse import RuleFile, iter_rule_paths, parse_file
from workbench.rules.policy import Policy
from workbench.rules.vendor import (
    HELD_STATUS,
    UPSTREAM_DIR,
    VENDOR_DIR,
    VENDOR_STATUS,
    VendorError,
    VendorRule,
    VendorSet,
    VendorSource,
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LICENCE_FILES = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS|README)([.-].*)?$", re.I)
_COPYRIGHT = re.compile(r"^\s*(?:Copyright|\(c\)|©).*$", re.I | re.M)


@dataclass
class HeldFile:
    file: str
    reason: str


@dataclass
class HeldRule:
    rule: str
    file: str
    reason: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """What ``rule import`` did: the source, what ships, what is held and why, what changed upstream."""

    name: str
    origin: str
    kind: str
    commit: str
    licence: str
    licence_file: str
    attribution: str
    update: bool
    files: int = 0
    rules: int = 0
    shipping: int = 0
    held_files: list[HeldFile] = field(default_factory=list)
    held_rules: list[HeldRule] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    clean_files_scanned: int = 0
    notes: list[str] = field(default_factory=list)


def is_git_url(source: str) -> bool:
    return "://" in source or source.startswith("git@") or source.endswith(".git")


def import_source(signatures: Path | str, source: str | None, *, name: str | None = None,
                  commit: str | None = None, update: bool = False, threads: int | None = None,
                  now: dt.datetime | None = None) -> ImportReport:
    """Import ``source`` (a folder, a git repository path or URL) as vendor source ``name``.

    With ``update``, the source named ``name`` is fetched again (from ``source`` if given,
    else from where it came) and compared with its record. VendorError says why nothing
    was changed: a bad name, a source already imported (or, for an update, not yet), a
    revision that does not exist, a source without rule files.
    """
    root = Path(signatures).resolve()
    policy = Policy.load(root)
    settings = ReleaseSettings.from_policy(policy)
    vendors = VendorSet.load(root)
    previous: VendorSource | None = None
    if update:
        if not name:
            raise VendorError("--update needs the source's --name")
        previous = vendors.get(name)
        if previous is None:
            raise VendorError(f"no vendor source named {name!r} (see `workbench rule sources`)")
        source = source or previous.origin
        commit = commit if commit is not None else ("" if previous.kind == "git" else None)
    if not source:
        raise VendorError("name the source to import: a folder, or a git repository path or URL")
    name = name or _default_name(source)
    if not _NAME.match(name):
        raise VendorError(f"source name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if not update and vendors.get(name) is not None:
        raise VendorError(f"a vendor source named {name!r} is already imported: use --update")
    folder = root / VENDOR_DIR / name
    stamp = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    with tempfile.TemporaryDirectory(prefix="wb-import-") as tmp:
        tree, kind, origin, revision = _fetch(source, commit, Path(tmp))
        upstream_files = _upstream_files(tree)
        if not any(f.suffix.lower() in (".yar", ".yara") for f in upstream_files):
            raise VendorError(f"{source}: no *.yar or *.yara files")
        staging = folder.parent / f".{name}.importing"
        if staging.exists():
            shutil.rmtree(staging)
        staged = staging / UPSTREAM_DIR
        for f in upstream_files:
            target = staged / f.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)            # byte-for-byte
        try:
            record, report = _assess(root, settings, vendors, name, staged, previous, threads=threads,
                                     origin=origin, kind=kind, commit=revision, stamp=stamp, update=update)
            _licence(staged, record, report)
            atomic_write(staging / "source.json", json.dumps(record.to_data(), indent=1, sort_keys=False) + "\n")
            _swap(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return report


def _default_name(source: str) -> str:
    base = source.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-.") or "vendor"


def _fetch(source: str, commit: str | None, tmp: Path) -> tuple[Path, str, str, str]:
    """The source's files in a folder: (folder, kind, origin, commit). Git sources are cloned."""
    path = Path(source).expanduser()
    local = not is_git_url(source)
    if local and not path.exists():
        raise VendorError(f"{source}: no such folder")
    repo_root = None
    if local:
        try:
            repo_root = Path(git.Repo(path, search_parent_directories=False).working_tree_dir or path)
        except (InvalidGitRepositoryError, NoSuchPathError):
            repo_root = None
    if local and repo_root is None:
        if commit:
            raise VendorError(f"{source} is a folder, not a git repository: --commit needs git")
        return path.resolve(), "folder", str(path.resolve()), ""
    origin = str(path.resolve()) if local else source
    clone = tmp / "clone"
    try:
        repo = git.Repo.clone_from(origin, clone, no_checkout=True)
        repo.git.checkout(commit or "HEAD", "--quiet")
        revision = repo.head.commit.hexsha
    except GitCommandError as exc:
        detail = (exc.stderr or str(exc)).strip().splitlines()
        raise VendorError(f"{source}: git: {detail[-1] if detail else exc}") from None
    return clone, "git", origin, revision


def _upstream_files(tree: Path) -> list[Path]:
    rules = list(iter_rule_paths([tree]))
    extra = [p for p in sorted(tree.iterdir()) if p.is_file() and _LICENCE_FILES.match(p.name)]
    return sorted({*rules, *extra})


def _licence(staged: Path, record: VendorSource, report: ImportReport) -> None:
    for p in sorted(staged.iterdir()):
        if p.is_file() and re.match(r"^(LICEN[CS]E|COPYING)", p.name, re.I):
            text = p.read_text(encoding="utf-8", errors="replace")
            record.licence_file = p.name
            head = text[:2000]
            for spdx, marker in (("MIT", "Permission is hereby granted, free of charge"),
                                 ("Apache-2.0", "Apache License"), ("GPL", "GNU GENERAL PUBLIC LICENSE"),
                                 ("BSD", "Redistribution and use in source and binary forms"),
                                 ("DRL-1.1", "Detection Rule License")):
                if marker.lower() in head.lower():
                    record.licence = spdx
                    break
            record.attribution = "; ".join(m.group().strip() for m in _COPYRIGHT.finditer(text))[:500]
            break
    if not record.licence_file:
        report.notes.append("no licence file upstream: check the terms before shipping these rules")
    report.licence, report.licence_file, report.attribution = \
        record.licence, record.licence_file, record.attribution


def _swap(staging: Path, folder: Path) -> None:
    """Replace the source's folder with the staged one (the old one kept until the new is in place)."""
    old = folder.parent / f".{folder.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    if old.exists():
        shutil.rmtree(old)


def _assess(root: Path, settings: ReleaseSettings, vendors: VendorSet, name: str, staged: Path,
            previous: VendorSource | None, *, threads: int | None, origin: str, kind: str, commit: str,
            stamp: str, update: bool) -> tuple[VendorSource, ImportReport]:
    """Compile, clash and clean-corpus checks of the staged files, and the record they give."""
    record = VendorSource(name=name, folder=root / VENDOR_DIR / name, origin=origin, kind=kind, commit=commit,
                          imported=stamp)
    if previous is not None:
        record.disabled_checks, record.severity_overrides = previous.disabled_checks, previous.severity_overrides
    report = ImportReport(name=name, origin=origin, kind=kind, commit=commit, licence="", licence_file="",
                          attribution="", update=update)
    externals: dict[str, ExternalValue] = dict(settings.externals)
    taken: dict[str, str] = {}          # rule name -> where it is defined already
    rules_dir = root / settings.rules
    if rules_dir.is_dir():
        house, _ = load_rule_tree(rules_dir)
        taken.update({r.name: str(rf.path.relative_to(root)) if rf.path else "" for rf in house for r in rf.rules})
    for other in vendors:
        if other.name != name:
            for p in other.rule_paths():
                taken.update({r.name: f"vendor source {other.name}" for r in parse_file(p).rules})
    parsed: list[tuple[str, RuleFile]] = []
    for path in iter_rule_paths([staged]):
        rel = path.relative_to(staged).as_posix()
        rf = parse_file(path)
        report.files += 1
        report.rules += len(rf.rules)
        reason = _compile_problem(rf, externals)
        if reason is None:
            clash = next((r.name for r in rf.rules if r.name in taken), None)
            if clash is not None:
                reason = f"rule {clash} is already defined in {taken[clash]}"
        if reason is not None:
            record.held_files[rel] = reason
            report.held_files.append(HeldFile(rel, reason))
        else:
            taken.update({r.name: f"{name}/{rel}" for r in rf.rules})
        parsed.append((rel, rf))
    kept = [(rel, rf) for rel, rf in parsed if rel not in record.held_files]
    hits, scanned = _clean_hits(root, settings, [rf for _, rf in kept], externals, threads)
    report.clean_files_scanned = scanned
    if scanned == 0:
        report.notes.append(f"no clean corpus at {settings.clean}/: no false-positive check was run")
    old_rules = previous.rules if previous is not None else {}
    for rel, rf in parsed:
        for rule in rf.rules:
            before = old_rules.get(rule.name)
            entry = VendorRule(rule.name, rel, rule.fingerprint)
            entry.history = list(before.history) if before is not None else []
            if before is not None and before.status not in (VENDOR_STATUS, HELD_STATUS):
                entry.status = before.status            # the house's choice (e.g. TESTING) stays
            if rel in record.held_files:
                entry.held = f"file held: {record.held_files[rel]}"
            elif rule.name in hits:
                entry.held = f"matches {len(hits[rule.name])} clean file(s)"
                entry.evidence = hits[rule.name]
                report.held_rules.append(HeldRule(rule.name, rel, entry.held, hits[rule.name]))
            if before is None:
                if update:
                    report.added.append(rule.name)
                entry.history.append({"change": "added", "fingerprint": rule.fingerprint, "commit": commit,
                                      "date": stamp})
            elif before.fingerprint != rule.fingerprint:
                report.changed.append(rule.name)
                entry.history.append({"change": "changed", "fingerprint": rule.fingerprint, "commit": commit,
                                      "date": stamp})
            else:
                report.unchanged += 1
            if not entry.held and entry.status == VENDOR_STATUS:
                report.shipping += 1
            record.rules[rule.name] = entry
    report.removed = sorted(set(old_rules) - set(record.rules))
    report.added.sort()
    report.changed.sort()
    return record, report


def _compile_problem(rf: RuleFile, externals: dict[str, ExternalValue]) -> str | None:
    """Why the file does not compile alone in both engines (first error), or None."""
    if rf.errors and any("not UTF-8" in e for e in rf.errors):
        return "not UTF-8"
    errors = [f for f in libyara_findings(rf, externals=externals) + yarax_findings(rf, externals=externals)
              if f.severity == "error"]
    # a missing module is the cause even when one engine reports what follows from it first
    errors.sort(key=lambda f: f.id != "C105")
    for finding in errors[:1]:
        where = f"line {finding.line}: " if finding.line else ""
        if finding.id == "C105":
            return f"{where}needs a module this build lacks: {finding.message}"
        return f"{where}{finding.message}"
    return None


def _clean_hits(root: Path, settings: ReleaseSettings, files: list[RuleFile],
                externals: dict[str, ExternalValue], threads: int | None) -> tuple[dict[str, list[str]], int]:
    """Rule name -> the clean files it matches (``path (sha256)``), and how many clean files were scanned."""
    clean_root = root / settings.clean
    if not clean_root.is_dir() or not files:
        return {}, 0
    clean = Corpus.load(clean_root)
    if not clean.files:
        return {}, 0
    sources = {f"f{i}": rf.text for i, rf in enumerate(files)}
    try:
        compiled = yara.compile(sources=sources, externals=externals)
    except yara.Error as exc:
        raise VendorError(f"the vendor files compile alone but not together: {exc}") from None
    targets = [ScanTarget(f.sha256, f.path, f.size) for f in clean.files]
    outcome = scan_files(compiled, targets, threads=threads, timeout=SCAN_TIMEOUT)
    by_sha = {f.sha256: f for f in clean.files}
    allowed = {(a.rule, a.file) for a in settings.allow}       # reviewed matches, as validation takes them
    hits: dict[str, list[str]] = {}
    for sha, found in outcome.results.items():
        rel = by_sha[sha].path.relative_to(clean_root).as_posix()
        for hit in found:
            if (hit.rule, sha) not in allowed and (hit.rule, rel) not in allowed:
                hits.setdefault(hit.rule, []).append(f"{rel} ({sha})")
    return {k: sorted(set(v)) for k, v in hits.items()}, len(targets)


def digest_tree(folder: Path) -> str:
    """A digest of every file under ``folder`` (paths and bytes), for tests and reports."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
