"""Validation of a signature repository: everything that decides whether a ruleset may be committed.

Each check is a small class with an id prefix, a title and ``run(ctx)`` returning
findings (the lint ``Finding`` type, so SARIF and the TUI treat both alike). A
validation fails when any finding is an error. ``--changed-since REV`` narrows the
per-rule checks to rules changed since REV; the whole-set compile always runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yara
import yara_x

from workbench.corpus.ruleset import RuleEntry, Ruleset
from workbench.corpus.scanner import (
    ScanRules,
    ScanTarget,
    compile_scanner,
    default_threads,
    scan_files,
)
from workbench.release.released import latest_release_tag
from workbench.release.settings import ReleaseSettings
from workbench.release.signature_repository import SignatureRepository, SignatureRepositoryError
from workbench.rules.compiler_messages import libyara_message, undefined_identifier, yarax_message
from workbench.rules.compilers import engine_versions
from workbench.rules.findings import Baseline, BaselineError, Finding, Severity
from workbench.rules.lint import check_catalog
from workbench.rules.parse import RuleFile, RuleSource, iter_rule_paths, parse_text
from workbench.rules.parse_cache import ParseCache
from workbench.rules.policy import Policy, PolicyError
from workbench.rules.vendor import VendorError, VendorSet, lint_by_source, status_of

SCAN_TIMEOUT = 20            # seconds per corpus file
BUDGET_RUNS = 5              # timing runs per rule (and its floor); the fastest counts
BUDGET_ROUNDS = 3            # measurements before a rule is called over its budget
FLOOR_RUNS = 3               # runs of an empty ruleset (the modules' own cost) for the quick look
_MIB = 1024 * 1024


# --- the report --------------------------------------------------------------------


@dataclass
class CheckResult:
    id: str
    title: str
    status: str                  # "passed", "failed", "skipped"
    seconds: float
    errors: int = 0
    warnings: int = 0
    note: str = ""


@dataclass
class RuleResult:
    """What the corpus checks saw for one rule."""

    name: str
    file: str
    status: str
    positives: list[str] = field(default_factory=list)       # sha256 of its samples in the corpus
    matched: list[str] = field(default_factory=list)         # of those, matched
    clean_matches: list[str] = field(default_factory=list)   # clean files matched (allowed ones too)
    ms_per_mib: float | None = None
    cost_at_most: bool = False     # ms_per_mib is the cost of a group holding it (under budget): at most that


@dataclass
class AllowedHit:
    rule: str
    sha256: str
    path: str
    reason: str


@dataclass
class ValidationReport:
    root: str
    mode: str                    # "full" or "changed"
    base: str                    # revision compared against for version bumps ("" for none)
    rules_total: int = 0
    rules_checked: list[str] = field(default_factory=list)
    files_checked: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)    # warnings the baseline accepts
    allowed: list[AllowedHit] = field(default_factory=list)  # clean matches the allow-list accepts
    rules: list[RuleResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)       # malicious files no rule claims
    engines: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return self.errors == 0


# --- what the checks work on --------------------------------------------------------


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    sha256: str
    md5: str
    sha1: str
    size: int


@dataclass
class Corpus:
    root: Path
    files: list[CorpusFile]

    def by_hash(self) -> dict[str, CorpusFile]:
        out: dict[str, CorpusFile] = {}
        for f in self.files:
            out[f.sha256] = out[f.md5] = out[f.sha1] = f
        return out

    @classmethod
    def load(cls, root: Path, *, by_hash: bool = True) -> Corpus:
        """The files under ``root``, hashed on every core (hashlib lets go of the GIL);
        without ``by_hash`` (a corpus only scanned, as the clean one is) the md5 and sha1
        that ``hash`` metadata may name are left empty."""
        paths = []
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).parts
            if any(p.startswith(".") for p in rel) or path.is_symlink() or not path.is_file():
                continue
            paths.append(path)

        def one(path: Path) -> CorpusFile:
            data = path.read_bytes()
            if not by_hash:
                return CorpusFile(path, hashlib.sha256(data).hexdigest(), "", "", len(data))
            return CorpusFile(path, hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(),
                              hashlib.sha1(data).hexdigest(), len(data))

        if len(paths) < 2:
            return cls(root, [one(p) for p in paths])
        with ThreadPoolExecutor(max_workers=default_threads()) as pool:
            return cls(root, list(pool.map(one, paths)))


@dataclass
class ValidationContext:
    root: Path
    policy: Policy
    settings: ReleaseSettings
    files: list[RuleFile]                 # every rule file, in compile order (includes first)
    targets: set[str]                     # names of the rules the per-rule checks look at
    repo: SignatureRepository
    base: str                             # revision for the version check, "" for none
    scan_corpus: bool
    threads: int | None
    report: ValidationReport
    include_findings: list[Finding] = field(default_factory=list)
    vendors: VendorSet | None = None      # imported vendor sources (rules/vendor.py)
    progress: Callable[[str], None] | None = None      # a line now and then for a long check
    today: dt.date | None = None          # the date a ``modified`` may not be later than (None: today)
    _corpora: dict[str, Corpus] = field(default_factory=dict)
    _all: Ruleset | None = None

    @property
    def rules(self) -> list[RuleSource]:
        return [r for rf in self.files for r in rf.rules]

    @property
    def target_files(self) -> list[RuleFile]:
        return [rf for rf in self.files if any(r.name in self.targets for r in rf.rules)
                or (not rf.rules and self.report.mode == "full")]

    def target_rules(self) -> list[RuleSource]:
        return [r for r in self.rules if r.name in self.targets]

    def corpus(self, which: str) -> Corpus:
        if which not in self._corpora:
            rel = self.settings.malicious if which == "malicious" else self.settings.clean
            self._corpora[which] = Corpus.load(self.root / rel, by_hash=which == "malicious")
        return self._corpora[which]

    def status(self, rule: RuleSource) -> str:
        return status_of(rule, self.vendors)

    def is_vendor(self, rule: RuleSource) -> bool:
        return self.vendors is not None and self.vendors.is_vendor(rule)

    def ruleset(self, rules: Sequence[RuleSource] | None = None) -> Ruleset:
        """The given rules (default: all, built once) as one namespace, in compile order."""
        if rules is None:
            if self._all is None:
                self._all = self.ruleset(self.rules)
            return self._all
        entries = [RuleEntry(index=i, source=r, encoding="utf-8") for i, r in enumerate(rules)]
        return Ruleset(entries, [rf.path for rf in self.files if rf.path])


def _finding(id: str, severity: Severity, file: str | Path | None, line: int, message: str, hint: str,
             rule: str = "", subject: str = "", column: int = 0) -> Finding:
    return Finding(id, severity, str(file or ""), line, column or (1 if line else 0), message, hint,
                   rule, subject or message)


# --- compiling a set of rules as one namespace --------------------------------------


@dataclass
class SetCompile:
    rules: yara.Rules | None
    findings: list[Finding]
    scanner: ScanRules | None = None       # with ``scanner=True``: what scans them fastest


def compile_set(ruleset: Ruleset, indices: Iterable[int], externals: Mapping[str, object], *,
                yarax: bool = False, check_id: str = "V101", what: str = "the ruleset",
                scanner: bool = False) -> SetCompile:
    """Compile rules together (libyara, or YARA-X), errors pointed back at their files and lines."""
    data, starts = ruleset.source_bytes(list(indices))

    def locate(line: int) -> tuple[str, int, str]:
        owner = None
        for start, entry in starts:
            if start <= line:
                owner = (start, entry)
        if owner is None:
            return "", 0, ""
        start, entry = owner
        return str(entry.source.file or ""), entry.source.start_line + line - start, entry.name

    findings: list[Finding] = []
    if not yarax:
        fd, name = tempfile.mkstemp(prefix="wb-validate-", suffix=".yar")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            try:
                compiled = yara.compile(filepath=name, externals=dict(externals), includes=False)
                return SetCompile(compiled, [], compile_scanner(name, compiled, externals) if scanner
                                  else None)
            except yara.Error as exc:
                text = str(exc)
        finally:
            os.unlink(name)
        said = libyara_message(text)
        file, line, rule = locate(said.line) if said.line else ("", 0, "")
        message = said.text
        findings.append(_explain(check_id, file, line, rule, f"libyara: {what} does not compile: {message}",
                                 message, ruleset))
        return SetCompile(None, findings)
    compiler = yara_x.Compiler()
    for key, value in externals.items():
        compiler.define_global(key, value)
    try:
        compiler.add_source(data.decode("utf-8", "replace"))
        compiler.build()
        return SetCompile(None, [])
    except yara_x.CompileError:
        pass
    for err in compiler.errors():
        x = yarax_message(err)
        file, fline, rule = locate(x.line) if x.line else ("", 0, "")
        message = x.summary
        findings.append(_explain(check_id, file, fline, rule, f"yara-x: {what} does not compile: {message}",
                                 message, ruleset))
    return SetCompile(None, findings)


def _explain(check_id: str, file: str, line: int, rule: str, message: str, raw: str,
             ruleset: Ruleset) -> Finding:
    """Name the likely cause: an undeclared external, or a rule the subset left out."""
    ident = undefined_identifier(raw)
    hint = "the rules compile alone but not together: look for clashing names or global rules"
    if ident:
        if check_id == "V103":
            hint = (f"{ident} does not ship (status not in [release] ship) but a shipped rule needs it: "
                    f"ship it too, or stop using it")
        elif ident not in ruleset.by_name:
            return _finding("V105", "error", file, line,
                            f"external variable {ident!r} is not declared in the policy",
                            f"declare it under [externals] in workbench.toml with its default value "
                            f"(e.g. {ident} = \"\")", rule, subject=f"external {ident}")
    return _finding(check_id, "error", file, line, message, hint, rule, subject=raw)


# --- the checks ------------------------------------------------------------------------


class ValidationCheck:
    id: ClassVar[str]
    title: ClassVar[str]
    needs_corpus: ClassVar[bool] = False

    def run(self, ctx: ValidationContext) -> list[Finding]:
        raise NotImplementedError


class LintCheck(ValidationCheck):
    """Both engines per file, metadata, names, performance: the rule linter with the baseline."""

    id = "LINT"
    title = "lint: compile each file alone (libyara and YARA-X), metadata, names, performance"

    def run(self, ctx: ValidationContext) -> list[Finding]:
        baseline = None
        path = ctx.root / ctx.settings.baseline
        if path.exists():
            try:
                baseline = Baseline.load(path)
            except BaselineError as exc:
                return [_finding("V003", "error", path, 0, str(exc), "fix or delete the baseline file")]
        files = ctx.target_files
        chosen = {id(rf) for rf in files}
        others = {r.name: str(rf.path) for rf in ctx.files if id(rf) not in chosen for r in rf.rules}
        # each vendor source is linted with its own profile (naming and metadata checks relaxed)
        report = lint_by_source(files, ctx.policy, ctx.vendors, baseline=baseline,
                                externals=ctx.settings.externals, known_rules=others)
        keep = ctx.targets if ctx.report.mode == "changed" else None
        ctx.report.accepted.extend(f for f in report.accepted if keep is None or f.rule in keep or not f.rule)
        return [f for f in report.findings if keep is None or f.rule in keep or not f.rule]


class SetCompileCheck(ValidationCheck):
    """The whole set together with both engines, includes resolved, externals declared."""

    id = "V1"
    title = "compile the whole set together (libyara and YARA-X); includes; externals"

    def run(self, ctx: ValidationContext) -> list[Finding]:
        findings = list(ctx.include_findings)
        rules = ctx.rules
        if not rules:
            return findings
        ruleset = ctx.ruleset()
        every = range(len(rules))
        ext = dict(ctx.settings.externals)
        findings += compile_set(ruleset, every, ext, check_id="V101").findings
        # YARA-X takes seconds over a large set: for a change, the changed rules and what they
        # need (libyara above still compiles everything, so clashes between files are found)
        checked = every if ctx.report.mode == "full" else \
            ruleset.closure(i for i, r in enumerate(rules) if r.name in ctx.targets)
        findings += compile_set(ruleset, checked, ext, yarax=True, check_id="V102").findings
        shipped = [r for r in rules if ctx.settings.ships(ctx.status(r))]
        # when every rule ships, "the shipped rules alone" is the set V101 just compiled
        if shipped and len(shipped) < len(rules) and not any(f.id in ("V101", "V105") for f in findings):
            findings += compile_set(ctx.ruleset(shipped), range(len(shipped)), ext, check_id="V103",
                                    what="the shipped rules alone").findings
        return findings


class ShippedFingerprintCheck(ValidationCheck):
    """Towers compare each loaded rule's ``fingerprint`` metadata with the manifest: it must be true."""

    id = "V2"
    title = "shipped rules carry their true fingerprint"

    def run(self, ctx: ValidationContext) -> list[Finding]:
        findings = []
        for rule in ctx.target_rules():
            # vendor files stay as upstream wrote them: their fingerprints are kept in the source's
            # record and written into the bundle's copy (rules/vendor.py)
            if not ctx.settings.ships(ctx.status(rule)) or ctx.is_vendor(rule):
                continue
            meta = str(rule.meta_value("fingerprint", "") or "").lower()
            if meta != rule.fingerprint:
                where = f" {rule.file}" if rule.file else ""
                hint = (f"run `workbench rule fmt --update-meta{where}` (it also bumps version and modified)"
                        if meta else f'add fingerprint = "{rule.fingerprint}" to its meta')
                findings.append(_finding(
                    "V201", "error", rule.file, rule.meta_line("fingerprint"),
                    f"rule {rule.name} ships but its fingerprint metadata is "
                    f"{'stale' if meta else 'missing'} (should be {rule.fingerprint})",
                    f"towers refuse a bundle whose rules' fingerprints differ from the manifest: {hint}",
                    rule.name, subject="fingerprint"))
        return findings


class CorpusCheck(ValidationCheck):
    """Each rule matches its samples (``hash`` metadata) and nothing in the clean corpus."""

    id = "V3"
    title = "corpus: positive samples matched, clean corpus not matched"
    needs_corpus = True

    def run(self, ctx: ValidationContext) -> list[Finding]:
        findings: list[Finding] = []
        for which, rel in (("malicious", ctx.settings.malicious), ("clean", ctx.settings.clean)):
            if not (ctx.root / rel).is_dir():
                findings.append(_finding("V004", "error", ctx.root / rel, 0, f"{which} corpus folder {rel} is missing",
                                         f"create it, or set release.{which} in workbench.toml"))
        if findings:
            return findings
        malicious, clean = ctx.corpus("malicious"), ctx.corpus("clean")
        by_hash = malicious.by_hash()
        # private rules never match on their own: the rules using them are checked instead
        checked = [r for r in ctx.target_rules() if ctx.status(r) not in ctx.settings.exempt and not r.is_private]
        results: dict[str, RuleResult] = {}
        wanted: dict[str, CorpusFile] = {}
        for rule in checked:
            rr = RuleResult(rule.name, str(rule.file or ""), ctx.status(rule))
            results[rule.name] = rr
            for h in rule.meta_values("hash"):
                f = by_hash.get(str(h).strip().lower())
                if f is not None and f.sha256 not in rr.positives:
                    rr.positives.append(f.sha256)
                    wanted[f.sha256] = f
            if not rr.positives and not ctx.is_vendor(rule):      # vendor rules may ship without samples
                findings.append(_finding(
                    "V301", "error", rule.file, rule.meta_line("hash"),
                    f"rule {rule.name} has no positive sample in {ctx.settings.malicious}",
                    f"add the sample to {ctx.settings.malicious}/ and its sha256 as hash metadata",
                    rule.name, subject="no positive sample"))
        if not checked:
            return findings
        if ctx.report.mode == "full":      # the coverage listing needs every malicious file scanned
            wanted.update({f.sha256: f for f in malicious.files})
        all_rules = ctx.rules
        ruleset = ctx.ruleset()
        index = {r.name: i for i, r in enumerate(all_rules)}
        compiled = compile_set(ruleset, ruleset.closure(index[r.name] for r in checked),
                               dict(ctx.settings.externals), check_id="V101", scanner=True)
        if compiled.rules is None or compiled.scanner is None:
            return [*findings, _finding("V300", "warning", "", 0, "corpus checks skipped: the rules do not compile",
                                        "fix the compile errors first")]
        clean_files = {f.sha256: f for f in clean.files}
        targets = [ScanTarget(f.sha256, f.path, f.size) for f in {**wanted, **clean_files}.values()]
        # the same matches as libyara (the scanner's own test on a public ruleset), faster
        outcome = scan_files(compiled.scanner, targets, threads=ctx.threads, timeout=SCAN_TIMEOUT)
        for sha in outcome.timeouts:
            findings.append(_finding("V307", "error", _path_of(sha, wanted, clean_files), 0,
                                     f"scanning this corpus file timed out after {SCAN_TIMEOUT} s",
                                     "a rule is too slow on it; see the scan-time budget check"))
        for sha, problem in outcome.errors.items():
            findings.append(_finding("V307", "error", _path_of(sha, wanted, clean_files), 0,
                                     f"could not scan this corpus file: {problem}", "check the file"))
        matched_by: dict[str, set[str]] = {sha: {h.rule for h in hits} for sha, hits in outcome.results.items()}
        allow = {(a.rule, a.file): a for a in ctx.settings.allow}
        used: set[tuple[str, str]] = set()
        rules_by_name = {r.name: r for r in checked}
        for name, rr in results.items():
            rule = rules_by_name[name]
            for sha in rr.positives:
                if name in matched_by.get(sha, set()):
                    rr.matched.append(sha)
                elif sha in outcome.results:
                    findings.append(_finding(
                        "V302", "error", rule.file, rule.start_line,
                        f"rule {name} does not match its sample {wanted[sha].path.name} ({sha[:12]})",
                        "the rule or the sample changed: fix the rule, or drop the hash if the sample "
                        "is not of this family", name, subject=f"misses {sha}"))
            for sha, f in clean_files.items():
                if name not in matched_by.get(sha, set()):
                    continue
                rr.clean_matches.append(sha)
                rel = f.path.relative_to(clean.root).as_posix()
                key = next((k for k in ((name, sha), (name, rel)) if k in allow), None)
                if key is not None:
                    used.add(key)
                    ctx.report.allowed.append(AllowedHit(name, sha, rel, allow[key].reason))
                    findings.append(_finding("V305", "info", rule.file, rule.start_line,
                                             f"rule {name} matches clean file {rel}, allowed: {allow[key].reason}",
                                             "the allow-list entry in workbench.toml accepts it", name,
                                             subject=f"allowed {sha}"))
                    continue
                severity: Severity = "warning" if rr.status in ctx.settings.noisy else "error"
                source = ctx.vendors.source_of(rule.file) if ctx.vendors else None
                fix = (f"`workbench rule import --update --name {source.name}` checks the clean corpora "
                       f"again and holds it back; or, after review, add " if source is not None
                       else "make the rule more specific; if the match is accepted after review, add ")
                findings.append(_finding(
                    "V303" if severity == "error" else "V304", severity, rule.file, rule.start_line,
                    f"rule {name} matches clean file {rel} ({sha[:12]})",
                    fix + f'[[release.allow]] rule = "{name}", file = "{sha}", reason = "..."',
                    name, subject=f"clean {sha}"))
        if ctx.report.mode == "full":
            known_rules = {r.name for r in all_rules}
            for rule_name, file in allow:
                if (rule_name, file) not in used:
                    why = "names no rule" if rule_name not in known_rules else "matched nothing"
                    findings.append(_finding("V306", "warning", ctx.policy.path, 0,
                                             f"allow-list entry {rule_name} / {file} {why}",
                                             "remove the stale [[release.allow]] entry", rule_name,
                                             subject=f"stale allow {file}"))
            claimed = {sha for rr in results.values() for sha in rr.positives}
            ctx.report.uncovered = sorted(f.path.relative_to(malicious.root).as_posix()
                                          for f in malicious.files if f.sha256 not in claimed
                                          and not matched_by.get(f.sha256))
        ctx.report.rules = sorted(results.values(), key=lambda r: r.name)
        return findings


def _path_of(sha: str, *maps: dict[str, CorpusFile]) -> str:
    for m in maps:
        if sha in m:
            return str(m[sha].path)
    return sha


# Findings that already fail a rule on the corpus (or its compile): its scan cost changes nothing.
_FAILED_ALREADY = frozenset({"V101", "V102", "V103", "V105", "V302", "V303", "C101", "C103", "C105"})


class BudgetCheck(ValidationCheck):
    """Each rule alone over the corpora must stay within its scan-time budget (ms per MiB).

    The cost is the rule's own: CPU time of the scanning thread (so a busy machine does
    not inflate it), minus an empty ruleset importing the same modules (a module parses
    each file once however many rules use it), fastest of a few runs.

    Rules are first measured in groups (BUDGET_GROUP), one quick run each, on every core: a group that
    costs less than the smallest budget among its rules clears them all (a rule costs no
    more than a group holding it: the group scans its atoms and evaluates its condition
    too). A group over budget is split in two until single rules are left, and only those
    are measured at length. Rules that already fail (do not compile, miss a sample, match
    a clean file) are not measured.
    """

    id = "V4"
    title = "scan-time budget per rule"
    needs_corpus = True

    def run(self, ctx: ValidationContext) -> list[Finding]:
        data = [f.path.read_bytes() for which in ("malicious", "clean")
                if (ctx.root / getattr(ctx.settings, which)).is_dir() for f in ctx.corpus(which).files]
        total = sum(len(d) for d in data)
        if not total:
            return []
        failed = {f.rule for f in ctx.report.findings
                  if f.severity == "error" and f.rule and f.id in _FAILED_ALREADY}
        all_rules = ctx.rules
        ruleset = ctx.ruleset()
        index = {r.name: i for i, r in enumerate(all_rules)}
        measured = [r for r in ctx.target_rules() if ctx.status(r) not in ctx.settings.exempt
                    and not r.is_private and r.name not in failed]
        if not measured:
            return []
        budget = BudgetRun(ctx, ruleset, data, index)
        work = [measured[k:k + BUDGET_GROUP] for k in range(0, len(measured), BUDGET_GROUP)]
        findings = budget.run(work, len(measured))
        results = {rr.name: rr for rr in ctx.report.rules}
        for name, cost in budget.costs.items():
            if name in results:
                results[name].ms_per_mib = round(cost, 3)
                results[name].cost_at_most = name in budget.bounded
        return findings


BUDGET_GROUP = 128           # rules measured together at first (each group pass scans every file)
BUDGET_PROGRESS = 5.0        # seconds between progress lines


class BudgetRun:
    """The budget check's work list, shared by its threads."""

    def __init__(self, ctx: ValidationContext, ruleset: Ruleset, data: list[bytes], index: dict[str, int]):
        self.ctx = ctx
        self.ruleset = ruleset
        self.data = data
        self.index = index
        self.mib = sum(len(d) for d in data) / _MIB
        self.lock = threading.Lock()
        self.floors: dict[tuple[str, ...], Future[tuple[yara.Rules, float]]] = {}
        self.costs: dict[str, float] = {}      # per rule: measured alone, or its group's (at most)
        self.bounded: set[str] = set()         # the rules whose cost is their group's
        self.findings: list[Finding] = []
        self.done = 0

    def run(self, groups: list[list[RuleSource]], total: int) -> list[Finding]:
        queue = list(reversed(groups))
        started = last = time.monotonic()
        say = self.ctx.progress
        busy = 0

        def worker() -> None:
            nonlocal busy, last
            while True:
                with self.lock:
                    if not queue:
                        if busy == 0:
                            return
                        group = None
                    else:
                        group = queue.pop()
                        busy += 1
                if group is None:
                    time.sleep(0.02)           # another thread may still split its group
                    continue
                try:
                    halves = self.measure(group)
                finally:
                    with self.lock:
                        busy -= 1
                        queue.extend(halves)
                        if say is not None and time.monotonic() - last >= BUDGET_PROGRESS:
                            last = time.monotonic()
                            say(f"scan-time budget: {self.done} of {total} rules cleared, "
                                f"{time.monotonic() - started:.0f} s")

        count = max(1, self.ctx.threads or default_threads())
        threads = [threading.Thread(target=worker, name=f"budget-{k}", daemon=True) for k in range(count)]
        if len(groups) < count:
            # a core would wait (a change of a rule or two): it times the floors meanwhile,
            # while the worker compiles and takes its quick look
            wanted = list(dict.fromkeys(self.imports(g) for g in groups))
            threads.append(threading.Thread(target=lambda: [self.floor(i) for i in wanted],
                                            name="budget-floors", daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.findings.sort(key=Finding.sort_key)
        return self.findings

    def imports(self, group: list[RuleSource]) -> tuple[str, ...]:
        closure = self.ruleset.closure(self.index[r.name] for r in group)
        return tuple(sorted({m for i in closure for m in self.ruleset.entries[i].source.imports}))

    def floor(self, imports: tuple[str, ...]) -> tuple[yara.Rules, float]:
        """An empty ruleset with these imports and its CPU time over the data, measured once
        (another thread asking meanwhile waits for it)."""
        with self.lock:
            known = self.floors.get(imports)
            mine = known is None
            if known is None:
                known = self.floors[imports] = Future()
        if mine:
            try:
                empty = yara.compile(source="".join(f'import "{m}"\n' for m in imports)
                                     + "rule wb_budget_empty { condition: false }")
                # fewer runs than a rule's full measurement: that one times its floor again, in turns
                known.set_result((empty, _cpu_time(empty, self.data, FLOOR_RUNS)))
            except BaseException as exc:
                known.set_exception(exc)
                raise
        return known.result()

    def measure(self, group: list[RuleSource]) -> list[list[RuleSource]]:
        """Measure a group; returns the halves still to measure (none when it is settled)."""
        closure = self.ruleset.closure(self.index[r.name] for r in group)
        compiled = compile_set(self.ruleset, closure, dict(self.ctx.settings.externals))
        if compiled.rules is None:
            if len(group) == 1:
                with self.lock:
                    self.done += 1
                return []                      # does not compile alone: V1 says why
            return [group[:len(group) // 2], group[len(group) // 2:]]
        imports = tuple(sorted({m for i in closure for m in self.ruleset.entries[i].source.imports}))
        budgets = [self.ctx.settings.budget_for(r.name) for r in group]
        if len(group) > 1:
            scanned = _cpu_time(compiled.rules, self.data, 1)
            empty, floor = self.floor(imports)
            cost = max(0.0, scanned - floor) * 1000 / self.mib
            if cost <= min(budgets):
                with self.lock:
                    self.costs.update((r.name, cost) for r in group)
                    self.bounded.update(r.name for r in group)
                    self.done += len(group)
                return []
            return [group[:len(group) // 2], group[len(group) // 2:]]
        rule, budget = group[0], budgets[0]
        # a quick look first; a rule that seems over budget is measured properly, in turns
        # with its floor, up to BUDGET_ROUNDS times: a slow rule is slow every time, noise is not
        scanned = _cpu_time(compiled.rules, self.data, 2)      # the floor's own runs, meanwhile
        empty, floor = self.floor(imports)
        cost = max(0.0, scanned - floor) * 1000 / self.mib
        rounds = 0
        while cost > budget and rounds < BUDGET_ROUNDS:
            rounds += 1
            elapsed, base = _time_scan(compiled.rules, empty, self.data)
            cost = min(cost, max(0.0, elapsed - base) * 1000 / self.mib)
        with self.lock:
            self.costs[rule.name] = cost
            self.bounded.discard(rule.name)
            self.done += 1
            if cost > budget:
                self.findings.append(_finding(
                    "V401", "error", rule.file, rule.start_line,
                    f"rule {rule.name} costs {cost:.1f} ms per MiB scanned, over its budget of {budget:g}",
                    "use longer fixed strings (atoms), bound regexes, check a cheap header first; "
                    f"or raise it with [release.budgets] {rule.name} = N", rule.name, subject="budget"))
        return []


def _cpu_time(rules: yara.Rules, data: list[bytes], runs: int) -> float:
    """The least CPU time (seconds) of ``runs`` scans over every input (see ``_time_scan``)."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.thread_time()
        try:
            for d in data:
                rules.match(data=d, timeout=SCAN_TIMEOUT)
        except yara.TimeoutError:
            return float(SCAN_TIMEOUT)
        best = min(best, time.thread_time() - t0)
    return best


def _time_scan(rules: yara.Rules, floor: yara.Rules, data: list[bytes]) -> tuple[float, float]:
    """The least CPU time (seconds) of a few runs over every input, of ``rules`` and of ``floor``.

    libyara scans in the calling thread, so the thread's CPU clock measures the scan alone.
    The two are timed in turns so both minimums see the same machine (caches, frequency,
    neighbours). libyara's timeout is wall-clock time, which a loaded machine stretches:
    it only guards against a runaway rule (which then counts as SCAN_TIMEOUT seconds).
    """
    best = [float("inf"), float("inf")]
    for _ in range(BUDGET_RUNS):
        for k, compiled in enumerate((rules, floor)):
            t0 = time.thread_time()
            try:
                for d in data:
                    compiled.match(data=d, timeout=SCAN_TIMEOUT)
            except yara.TimeoutError:
                return float(SCAN_TIMEOUT), 0.0
            best[k] = min(best[k], time.thread_time() - t0)
    return best[0], best[1]


class VersionCheck(ValidationCheck):
    """A rule whose strings or condition changed since the base must bump version; its
    ``modified`` may not go back; no rule's ``modified`` may lie in the future.

    A same-day edit keeps ``modified`` (today is still the date it was modified on): the
    version bump is what tells a tower the rule changed.
    """

    id = "V5"
    title = "changed rules bump version; modified neither goes back nor lies ahead"

    def run(self, ctx: ValidationContext) -> list[Finding]:
        today = ctx.today or dt.date.today()
        findings = [f for rule in ctx.target_rules() if not ctx.is_vendor(rule)
                    for f in _future_modified(rule, today, ctx.policy.date_format)]
        if not ctx.base:
            return findings
        # a rule in a file git says is unchanged is unchanged: read only the changed files at base
        prefix = ctx.settings.rules.rstrip("/") + "/"
        old: dict[str, RuleSource] = {}
        for rel in ctx.repo.changed_since(ctx.base):
            if not rel.startswith(prefix) or not rel.lower().endswith((".yar", ".yara")):
                continue
            for f in ctx.repo.files_at(ctx.base, rel):
                parsed = parse_text(f.data.decode("utf-8", "replace"), Path(f.path))
                old.update({r.name: r for r in parsed.rules})
        for rule in ctx.target_rules():
            before = old.get(rule.name)
            if before is None or before.fingerprint == rule.fingerprint or ctx.is_vendor(rule):
                continue
            v_old, v_new = _version(before), _version(rule)
            if v_new is None or v_old is None or v_new <= v_old:
                findings.append(_finding(
                    "V501", "error", rule.file, rule.meta_line("version"),
                    f"rule {rule.name} changed since {ctx.base} but version is "
                    f"{rule.meta_value('version', '(none)')} (was {before.meta_value('version', '(none)')})",
                    f"set version = {(v_old or 0) + 1}", rule.name, subject="version not bumped"))
            findings += _modified_went_back(rule, before, ctx.base, today, ctx.policy.date_format)
        return findings


def _meta_date(rule: RuleSource, key: str, date_format: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(rule.meta_value(key, "")), date_format).date()
    except ValueError:
        return None


def _future_modified(rule: RuleSource, today: dt.date, date_format: str) -> list[Finding]:
    modified = _meta_date(rule, "modified", date_format)
    if modified is None or modified <= today:
        return []
    stamp = today.strftime(date_format)
    return [_finding("V502", "error", rule.file, rule.meta_line("modified"),
                     f"rule {rule.name}: modified {rule.meta_value('modified')} is in the future "
                     f"(today is {stamp})", f'set modified = "{stamp}"', rule.name,
                     subject="modified in the future")]


def _modified_went_back(rule: RuleSource, before: RuleSource, base: str, today: dt.date,
                        date_format: str) -> list[Finding]:
    """V502 for a changed rule whose ``modified`` is missing, not a date, or before its value at base."""
    new = _meta_date(rule, "modified", date_format)
    old = _meta_date(before, "modified", date_format)
    stamp = today.strftime(date_format)
    if new is None:
        what = "has no modified date" if rule.meta_value("modified") is None else \
            f"has modified {rule.meta_value('modified')!r}, not a date ({date_format})"
        message = f"rule {rule.name} changed since {base} but {what}"
    elif old is not None and new < old:
        message = (f"rule {rule.name} changed since {base} but modified {rule.meta_value('modified')} "
                   f"is before its previous value {before.meta_value('modified')}")
    else:
        return []
    return [_finding("V502", "error", rule.file, rule.meta_line("modified"), message,
                     f'set modified = "{stamp}"', rule.name, subject="modified went back")]


def _version(rule: RuleSource) -> int | None:
    value = rule.meta_value("version")
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


CHECKS: tuple[type[ValidationCheck], ...] = (LintCheck, SetCompileCheck, ShippedFingerprintCheck, CorpusCheck,
                                              BudgetCheck, VersionCheck)

VALIDATION_CATALOG = [
    ("V001", "error", "policy file invalid", "fix workbench.toml"),
    ("V002", "error", "rules folder missing", "create it or set release.rules"),
    ("V003", "error", "lint baseline unreadable", "fix or delete the baseline file"),
    ("V004", "error", "corpus folder missing", "create it or set release.malicious / release.clean"),
    ("V006", "error", "vendor source record unreadable", "fix it or import the source again"),
    ("V101", "error", "the whole ruleset does not compile together (libyara)", "fix clashing names or globals"),
    ("V102", "error", "the whole ruleset does not compile together (YARA-X)", "keep rules valid for both engines"),
    ("V103", "error", "shipped rules need a rule that does not ship", "ship it too or stop using it"),
    ("V104", "error", "include not resolved", "include a file inside the rules folder"),
    ("V105", "error", "external variable not declared", "declare it under [externals] in workbench.toml"),
    ("V201", "error", "shipped rule's fingerprint metadata is stale", "refresh it (rule fmt --update-meta)"),
    ("V300", "warning", "corpus checks skipped", "fix the compile errors first"),
    ("V301", "error", "no positive sample in the malicious corpus", "add the sample and its hash"),
    ("V302", "error", "rule misses its positive sample", "fix the rule or the hash"),
    ("V303", "error", "rule matches a clean file", "make the rule specific or allow the match"),
    ("V304", "warning", "NOISY rule matches a clean file", "make the rule specific or allow the match"),
    ("V305", "info", "clean match allowed by the allow-list", "reviewed; shown for the record"),
    ("V306", "warning", "stale allow-list entry", "remove it"),
    ("V307", "error", "corpus file could not be scanned", "a rule is too slow on it, or the file is unreadable"),
    ("V401", "error", "rule over its scan-time budget", "improve atoms or raise the budget"),
    ("V501", "error", "changed rule without a version bump", "increase version"),
    ("V502", "error", "modified goes back, is missing, or lies in the future", "set modified to today"),
]


def catalog() -> list[dict[str, str]]:
    """Every finding id validation can report (lint's included), for SARIF."""
    own = [{"id": i, "severity": s, "title": t, "hint": h} for i, s, t, h in VALIDATION_CATALOG]
    return check_catalog() + own


# --- running ----------------------------------------------------------------------------


NON_RULE_CHANGES_ALLOWED = ("CHANGELOG.md", "README.md")


def validate(root: str | os.PathLike[str], *, changed_since: str | None = None, base: str | None = None,
             scan_corpus: bool = True, threads: int | None = None,
             progress: Callable[[str], None] | None = None,
             today: dt.date | None = None, parse_cache: Path | None = None) -> ValidationReport:
    """Validate the signatures folder ``root`` (see the module docstring).

    ``parse_cache``: a folder where whole parses are kept by file content
    (``rules/parse_cache.py``): a run after a one-rule change parses one file.

    ``today`` is the latest date a rule's ``modified`` may carry (default: the real today).

    ``base`` is the revision changed rules are compared with for version bumps: by
    default ``changed_since``, else the newest ``signatures-N`` release tag, else none.
    Raises ``SignatureRepositoryError`` for an unknown revision or ``--changed-since`` outside git.
    """
    started = time.perf_counter()
    root = Path(root).resolve()
    report = ValidationReport(root=str(root), mode="full", base="", engines=dict(engine_versions()))
    say = progress or (lambda _text: None)
    try:
        policy = Policy.load(root)
        settings = ReleaseSettings.from_policy(policy)
    except PolicyError as exc:
        report.findings.append(_finding("V001", "error", root / "workbench.toml", 0, str(exc), "fix workbench.toml"))
        return _finish(report, started)
    rules_dir = root / settings.rules
    if not rules_dir.is_dir():
        report.findings.append(_finding("V002", "error", rules_dir, 0, f"no rules folder {settings.rules}/ in {root}",
                                        "create it, or set release.rules in workbench.toml"))
        return _finish(report, started)
    repo = SignatureRepository(root)
    parses = ParseCache(parse_cache)
    files, include_findings = load_rule_tree(rules_dir, parses)
    try:
        vendors = VendorSet.load(root)
    except VendorError as exc:
        report.findings.append(_finding("V006", "error", root / "vendor", 0, str(exc),
                                        "fix the record, or import the source again (rule import --update)"))
        return _finish(report, started)
    files += [parses.parse(p) for p in vendors.rule_paths()]
    names = {r.name for rf in files for r in rf.rules}
    targets = set(names)
    if changed_since:
        report.mode = "changed"
        changed = repo.changed_since(changed_since)
        rule_prefix = settings.rules.rstrip("/") + "/"
        other = [p for p in changed if not p.startswith(rule_prefix) and p not in NON_RULE_CHANGES_ALLOWED
                 and p != settings.changelog]
        if other:
            report.mode = "full"
            report.notes.append(f"{other[0]} changed since {changed_since}: validating every rule")
        else:
            targets = _changed_rules(repo, changed_since, files, [p for p in changed if p.startswith(rule_prefix)])
    if base is None:
        base = changed_since or latest_release_tag(repo)
    if base:
        repo.commit(base)       # an unknown revision is the caller's mistake: say so now
    report.base = base or ""
    report.rules_total = len(names)
    report.rules_checked = sorted(targets)
    ctx = ValidationContext(root=root, policy=policy, settings=settings, files=files, targets=targets,
                            repo=repo, base=base or "", scan_corpus=scan_corpus, threads=threads,
                            report=report, include_findings=include_findings, vendors=vendors,
                            progress=progress, today=today)
    report.files_checked = len(ctx.target_files)
    if not base:
        report.notes.append("no base revision (no release tag yet): version bumps not checked")
    for cls in CHECKS:
        check = cls()
        t0 = time.perf_counter()
        if check.needs_corpus and not scan_corpus:
            report.checks.append(CheckResult(check.id, check.title, "skipped", 0.0, note="--no-corpus"))
            continue
        say(check.title)
        found = check.run(ctx)
        report.findings.extend(found)
        errors = sum(1 for f in found if f.severity == "error")
        warnings = sum(1 for f in found if f.severity == "warning")
        report.checks.append(CheckResult(check.id, check.title, "failed" if errors else "passed",
                                         round(time.perf_counter() - t0, 3), errors, warnings))
    return _finish(report, started)


def _finish(report: ValidationReport, started: float) -> ValidationReport:
    seen: set[tuple[str, str, int, str]] = set()
    unique = []
    for f in report.findings:
        key = (f.id, f.file, f.line, f.message)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    report.findings = sorted(unique, key=Finding.sort_key)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _changed_rules(repo: SignatureRepository, rev: str, files: list[RuleFile], changed: list[str]) -> set[str]:
    """Rules in changed files whose text differs from ``rev`` (new rules included)."""
    old_text: dict[str, str] = {}
    for rel in changed:
        try:
            data = next((f.data for f in repo.files_at(rev, rel)), None)
        except SignatureRepositoryError:
            data = None
        if data is not None:
            old_text.update({r.name: r.text for r in parse_text(data.decode("utf-8", "replace")).rules})
    changed_paths = {(repo.root / rel).resolve() for rel in changed}
    out: set[str] = set()
    for rf in files:
        if rf.path is not None and rf.path.resolve() in changed_paths:
            out.update(r.name for r in rf.rules if old_text.get(r.name) != r.text)
    return out


def load_rule_tree(rules_dir: Path, parses: ParseCache | None = None) -> tuple[list[RuleFile], list[Finding]]:
    """Every rule file under ``rules_dir``, included files first (each once), as YARA reads them.

    Includes must stay inside the rules folder: a bundle carries nothing else. ``parses``
    keeps whole parses by content (default: none kept).
    """
    parse = (parses or ParseCache(None)).parse
    rules_dir = rules_dir.resolve()
    order: list[RuleFile] = []
    done: set[Path] = set()
    active: set[Path] = set()
    findings: list[Finding] = []

    def visit(path: Path, parsed: RuleFile | None = None) -> None:
        if path in done:
            return
        if path in active:
            findings.append(_finding("V104", "error", path, 0, f"include cycle through {path.name}",
                                     "remove the circular include"))
            return
        active.add(path)
        rf = parsed or parse(path)
        for inc in rf.includes:
            target = (path.parent / inc).resolve()
            line = _include_line(rf, inc)
            if not target.is_relative_to(rules_dir):
                findings.append(_finding("V104", "error", path, line,
                                         f"include {inc!r} points outside the rules folder",
                                         "bundles carry only the rules folder: move the file inside it",
                                         subject=f"include {inc}"))
            elif not target.is_file():
                findings.append(_finding("V104", "error", path, line, f"include {inc!r}: no such file",
                                         "fix the path (relative to the including file)", subject=f"include {inc}"))
            else:
                visit(target)
        active.discard(path)
        done.add(path)
        order.append(rf)

    for p in iter_rule_paths([rules_dir]):
        visit(p.resolve())
    return order, findings


def _include_line(rf: RuleFile, inc: str) -> int:
    for i, line in enumerate(rf.text.splitlines(), 1):
        if line.strip().startswith("include") and inc in line:
            return i
    return 0
