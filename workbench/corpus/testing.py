"""``workbench test``: scan labelled corpora with a ruleset and say, per rule, what it caught and missed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from workbench.corpus.cache import CACHE_NAME, ScanCache
from workbench.corpus.engine import Resolution, paused_gc, resolve
from workbench.corpus.prefilter import open_index
from workbench.corpus.registry import (
    QUARANTINE_CORPUS,
    CorpusRegistry,
    HashMatch,
    UnknownCorpus,
)
from workbench.corpus.ruleset import PARSE_CACHE, RuleEntry, Ruleset, load_ruleset
from workbench.corpus.scanner import (
    CONTEXT_BYTES,
    CONTEXT_HITS,
    DEFAULT_TIMEOUT,
    RuleHit,
    ScanProgress,
    ScanTarget,
    default_threads,
    with_context,
)
from workbench.workspace import Workspace

CONTEXT = CONTEXT_BYTES      # bytes of context either side of a match
MAX_FILES_LISTED = 25        # files listed per rule and category (all are counted)
MAX_HITS_LISTED = CONTEXT_HITS   # match instances shown per file
NOISY_MIN_FILES = 20         # a rule matching more files than this ...
NOISY_FRACTION = 0.10        # ... and more than this share of the files is "too broad"
HEAVY_INSTANCES = 10_000     # match instances in one file that make a rule slow


def default_rule_paths(workspace: Workspace) -> list[Path]:
    """``signatures/rules`` when the repository has it, else the whole signature folder."""
    rules = workspace.signatures / "rules"
    return [rules if rules.is_dir() else workspace.signatures]


@dataclass
class MatchDetail:
    """One match instance: the bytes matched and up to 32 bytes of context either side."""

    identifier: str
    offset: int
    length: int
    data: bytes
    before: bytes
    after: bytes


@dataclass
class FileMatch:
    sha256: str
    name: str                  # the name it had in its (first) corpus
    corpora: list[str]
    size: int
    matches_total: int         # match instances, all strings
    strings: list[MatchDetail] = field(default_factory=list)


@dataclass
class FalseNegative:
    """A sample named in the rule's ``hash`` metadata that the rule did not catch.

    ``reason``: ``missed`` (scanned, no match), ``timeout`` (the scan of it timed
    out) or ``absent`` (in no tested malicious corpus, nor in the quarantine).
    """

    hash: str
    reason: str
    sha256: str = ""
    corpora: list[str] = field(default_factory=list)
    name: str = ""
    detail: str = ""


@dataclass
class RuleResult:
    rule: str
    file: str
    line: int
    key: str                   # cache key (effective fingerprint)
    fingerprint: str           # normalised strings + condition
    private: bool
    tp_count: int = 0
    fp_count: int = 0
    other_count: int = 0       # hits in unlabelled (quarantine) files
    true_positives: list[FileMatch] = field(default_factory=list)
    false_positives: list[FileMatch] = field(default_factory=list)
    other_hits: list[FileMatch] = field(default_factory=list)
    false_negatives: list[FalseNegative] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.fp_count and not self.false_negatives


@dataclass
class CorpusTotals:
    name: str
    label: str
    files: int
    bytes: int


@dataclass
class FileProblem:
    sha256: str
    name: str
    corpora: list[str]
    reason: str
    rules: list[str] = field(default_factory=list)      # for timeouts: the rules scanned


@dataclass
class TestStats:
    """How the results were obtained; differs between a cold and a cached run, the results do not."""

    __test__ = False          # not a pytest test class, whatever its name

    rules: int
    rules_compiled: int
    files: int
    bytes: int
    files_scanned: int
    bytes_scanned: int
    pairs_cached: int
    files_skipped: int         # ruled out by the gram index, not read (summed over rule groups)
    files_indexed: int         # added to the gram index during this run
    threads: int
    cache: bool
    index: bool
    compile_seconds: float
    index_seconds: float
    scan_seconds: float
    seconds: float


@dataclass
class TestReport:
    __test__ = False
    passed: bool
    rules: list[RuleResult]
    corpora: list[CorpusTotals]
    true_positives: int
    false_positives: int
    false_negatives: int
    timeouts: list[FileProblem]
    errors: list[FileProblem]
    stats: TestStats


class _Member(NamedTuple):
    corpus: str
    label: str
    name: str


def gather_targets(registry: CorpusRegistry, corpora: Sequence[str] | None
                   ) -> tuple[list[ScanTarget], dict[str, list[_Member]], list[CorpusTotals]]:
    """The distinct files of the chosen corpora (default: all, quarantine included)."""
    names = list(corpora) if corpora else [*registry.names(), QUARANTINE_CORPUS]
    for name in names:
        if not registry.exists(name):
            raise UnknownCorpus(name)
    targets: dict[str, ScanTarget] = {}
    members: dict[str, list[_Member]] = {}
    totals = []
    for name in dict.fromkeys(names):
        label = registry.label(name)
        files = registry.members(name)
        totals.append(CorpusTotals(name, label, len(files), sum(f[3] for f in files)))
        for sha, path, original, size in files:
            if sha not in targets:
                targets[sha] = ScanTarget(sha, path, size)
                members[sha] = [_Member(name, label, original)]
            else:
                members[sha].append(_Member(name, label, original))
    return list(targets.values()), members, totals


def test_rules(workspace: Workspace, rule_paths: Iterable[Path | str] | None,
               corpora: list[str] | None = None, *, threads: int | None = None,
               progress: Callable[[ScanProgress], None] | None = None,
               cancel: threading.Event | None = None, use_cache: bool = True,
               use_index: bool = True, timeout: int = DEFAULT_TIMEOUT) -> TestReport:
    """Test rules against corpora: true positives, false positives and false negatives per rule.

    ``rule_paths`` default to the workspace's ``signatures/rules``. ``corpora``
    default to every registered corpus plus the built-in ``quarantine`` one.
    ``progress`` is called from this thread at least every 200 ms while scanning;
    ``cancel`` stops the scan within a second (raising ``ScanCancelled``).
    ``use_index`` lets a re-test of a few rules read only the files the gram index
    says they could match (the results are the same either way).
    Raises ``RulesetError`` for rules that do not compile and ``UnknownCorpus``.
    """
    with paused_gc():
        return _test_rules(workspace, rule_paths, corpora, threads=threads, progress=progress,
                           cancel=cancel, use_cache=use_cache, use_index=use_index,
                           timeout=timeout)


test_rules.__test__ = False     # type: ignore[attr-defined]  # a library function, not a test


def _test_rules(workspace: Workspace, rule_paths: Iterable[Path | str] | None,
                corpora: list[str] | None, *, threads: int | None,
                progress: Callable[[ScanProgress], None] | None,
                cancel: threading.Event | None, use_cache: bool, use_index: bool,
                timeout: int) -> TestReport:
    started = time.monotonic()
    threads = threads or default_threads()
    ruleset = load_ruleset(list(rule_paths) if rule_paths else default_rule_paths(workspace),
                           parse_cache=workspace.state / PARSE_CACHE)
    with CorpusRegistry(workspace) as registry:
        targets, members, totals = gather_targets(registry, corpora)
        hashes = {h for e in ruleset.entries for h in e.hashes}
        found = registry.find_hashes(hashes, [t.name for t in totals])
    cache = ScanCache(workspace.state / CACHE_NAME) if use_cache else None
    index = open_index(workspace) if use_index else None
    try:
        res = resolve(ruleset, targets, cache=cache, threads=threads, timeout=timeout,
                      progress=progress, cancel=cancel, index=index)
    finally:
        if cache is not None:
            cache.close()
        if index is not None:
            index.close()
    return _report(ruleset, targets, members, totals, found, res, threads, use_cache,
                   index is not None, time.monotonic() - started)


def _report(ruleset: Ruleset, targets: list[ScanTarget], members: dict[str, list[_Member]],
            totals: list[CorpusTotals], found: dict[str, list[HashMatch]], res: Resolution,
            threads: int, use_cache: bool, use_index: bool, seconds: float) -> TestReport:
    by_sha = {t.sha256: t for t in targets}
    hits_of: dict[int, dict[str, RuleHit]] = {}
    for (i, sha), hit in res.hits.items():
        hits_of.setdefault(i, {})[sha] = hit
    reader = _ContextReader(by_sha)
    results = []
    for e in ruleset.entries:
        results.append(_rule_result(e, hits_of.get(e.index, {}), members, found, res, reader,
                                    len(targets)))
    timeouts = [_problem(sha, members, "scan timed out",
                         [ruleset.entries[i].name for i in rules])
                for sha, rules in sorted(res.timeouts.items())]
    errors = [_problem(sha, members, reason, []) for sha, reason in sorted(res.errors.items())]
    stats = TestStats(
        rules=len(ruleset), rules_compiled=res.rules_compiled, files=len(targets),
        bytes=sum(t.size for t in targets), files_scanned=res.files_scanned,
        bytes_scanned=res.bytes_scanned, pairs_cached=res.pairs_cached,
        files_skipped=res.files_skipped, files_indexed=res.files_indexed,
        threads=threads, cache=use_cache, index=use_index,
        compile_seconds=round(res.compile_seconds, 3), index_seconds=round(res.index_seconds, 3),
        scan_seconds=round(res.scan_seconds, 3), seconds=round(seconds, 3))
    return TestReport(
        passed=all(r.passed for r in results), rules=results, corpora=totals,
        true_positives=sum(r.tp_count for r in results),
        false_positives=sum(r.fp_count for r in results),
        false_negatives=sum(len(r.false_negatives) for r in results),
        timeouts=timeouts, errors=errors, stats=stats)


def _problem(sha: str, members: dict[str, list[_Member]], reason: str, rules: list[str]) -> FileProblem:
    ms = members.get(sha, [])
    if len(rules) > 10:
        rules = [*rules[:10], f"... and {len(rules) - 10} more (test fewer rules to find the slow one)"]
    return FileProblem(sha, ms[0].name if ms else "", [m.corpus for m in ms], reason, rules)


def _rule_result(e: RuleEntry, hits: dict[str, RuleHit], members: dict[str, list[_Member]],
                 found: dict[str, list[HashMatch]], res: Resolution, reader: _ContextReader,
                 total_files: int) -> RuleResult:
    out = RuleResult(rule=e.name, file=e.file, line=e.start_line, key=e.key,
                     fingerprint=e.summary.fingerprint, private=e.is_private,
                     warnings=list(res.warnings.get(e.index, [])))
    if e.is_private:
        out.warnings.append("private rule: libyara does not report it, so it has no results "
                            "of its own")
    for sha in sorted(hits, key=lambda x: (members[x][0].name, x)):
        hit = hits[sha]
        labels = {m.label for m in members[sha]}
        lists = []
        if "malicious" in labels:
            out.tp_count += 1
            lists.append(out.true_positives)
        if "clean" in labels:
            out.fp_count += 1
            lists.append(out.false_positives)
        if not lists:
            out.other_count += 1
            lists.append(out.other_hits)
        for target in lists:
            if len(target) < MAX_FILES_LISTED:
                target.append(reader.file_match(sha, hit, members[sha]))
        if hit.too_many:
            out.warnings.append(f"a string matched too many times in {members[sha][0].name} "
                                "(libyara stopped counting): slow and too broad")
        elif hit.total >= HEAVY_INSTANCES:
            out.warnings.append(f"{hit.total} matches in {members[sha][0].name}: slow")
    matched = len(hits)
    if matched > NOISY_MIN_FILES and matched > NOISY_FRACTION * total_files:
        out.warnings.append(f"matches {matched} of {total_files} files "
                            f"({100 * matched / total_files:.0f}%): too broad")
    for h in e.hashes:
        out.false_negatives.extend(_false_negatives(e, h, hits, found.get(h, []), res))
    return out


def _false_negatives(e: RuleEntry, value: str, hits: dict[str, RuleHit], places: list[HashMatch],
                     res: Resolution) -> list[FalseNegative]:
    if len(value) not in (32, 40, 64) or any(c not in "0123456789abcdef" for c in value):
        return [FalseNegative(value, "absent", detail="not an md5, sha1 or sha256 hex value")]
    relevant = [p for p in places if p.label != "clean"]
    if not relevant:
        clean = sorted({p.corpus for p in places})
        detail = "in no tested malicious corpus or the quarantine"
        if clean:
            detail += f" (only in clean corpus {', '.join(clean)})"
        return [FalseNegative(value, "absent", detail=detail)]
    out = []
    for sha in dict.fromkeys(p.sha256 for p in relevant):
        if sha in hits:
            continue
        where = [p for p in relevant if p.sha256 == sha]
        reason = "timeout" if sha in res.timeouts else ("unreadable" if sha in res.errors
                                                        else "missed")
        out.append(FalseNegative(value, reason, sha, [p.corpus for p in where], where[0].original_name,
                                 res.errors.get(sha, "")))
    return out


class _ContextReader:
    """The bytes around matches: from the hits when the scan kept them, else read from the file."""

    def __init__(self, by_sha: dict[str, ScanTarget]):
        self.by_sha = by_sha

    def file_match(self, sha: str, hit: RuleHit, members: list[_Member]) -> FileMatch:
        target = self.by_sha[sha]
        fm = FileMatch(sha, members[0].name, [m.corpus for m in members], target.size, hit.total)
        shown = hit.hits[:MAX_HITS_LISTED]
        if any(h.before is None or h.after is None for h in shown):
            shown = tuple(with_context(target.path, [hit], MAX_HITS_LISTED)[0].hits[:MAX_HITS_LISTED])
        fm.strings = [MatchDetail(h.identifier, h.offset, h.length, h.data, h.before or b"",
                                  h.after or b"") for h in shown]
        return fm
