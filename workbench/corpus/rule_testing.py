"""``workbench test``: scan labelled corpora with a ruleset and say, per rule, what it caught and missed."""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yara

from workbench.corpus.cache import CACHE_NAME, KnownKey, SavedResult, ScanCache
from workbench.corpus.corpus_registry import (
    QUARANTINE_CORPUS,
    QUARANTINE_LABEL,
    CorpusRegistry,
    HashMatch,
    MemberList,
    UnknownCorpus,
)
from workbench.corpus.ruleset import (
    KEY_VERSION,
    PARSE_CACHE,
    ExternalValue,
    RuleEntry,
    Ruleset,
    load_ruleset,
    rule_file_names,
)
from workbench.corpus.scanner import (
    CONTEXT_BYTES,
    CONTEXT_HITS,
    DEFAULT_TIMEOUT,
    SCAN_ENGINE,
    RuleHit,
    ScanProgress,
    ScanTarget,
    default_threads,
    with_context,
)
from workbench.rules.policy import Policy
from workbench.workspace import Workspace

if TYPE_CHECKING:     # the scan engine (and vendor sources) are imported when a run needs them:
    # a re-test that finds its report remembered does not pay for them
    from workbench.corpus.incremental import Resolution

CONTEXT = CONTEXT_BYTES      # bytes of context either side of a match
MAX_FILES_LISTED = 25        # files listed per rule and category (all are counted)
MAX_HITS_LISTED = CONTEXT_HITS   # match instances shown per file
NOISY_MIN_FILES = 20         # a rule matching more files than this ...
NOISY_FRACTION = 0.10        # ... and more than this share of the files is "too broad"
HEAVY_INSTANCES = 10_000     # match instances in one file that make a rule slow
PRIVATE_WARNING = "private rule: libyara does not report it, so it has no results of its own"


def policy_externals(workspace: Workspace) -> dict[str, ExternalValue]:
    """The signature repository's ``[externals]``: ``test`` and ``retrohunt`` compile with them,
    as validation and release do. PolicyError if the policy cannot be read."""
    return Policy.load(workspace.signatures).externals


def default_rule_paths(workspace: Workspace) -> list[Path]:
    """``signatures/rules`` when the repository has it (plus the vendor sources' rule files that
    compile, as validation and release take them), else the whole signature folder."""
    from workbench.rules.vendor import VendorSet

    rules = workspace.signatures / "rules"
    if not rules.is_dir():
        return [workspace.signatures]
    return [rules, *VendorSet.load(workspace.signatures).rule_paths()]


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
class RuleTestStats:
    """How the results were obtained; differs between a cold and a cached run, the results do not."""

    rules: int
    rules_compiled: int
    files: int
    bytes: int
    files_scanned: int
    bytes_scanned: int
    pairs_cached: int          # (rule, file) results not scanned in this run
    rules_reused: int          # rules whose finished result was saved by an earlier run
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
class RuleTestReport:
    passed: bool
    rules: list[RuleResult]
    corpora: list[CorpusTotals]
    true_positives: int
    false_positives: int
    false_negatives: int
    timeouts: list[FileProblem]
    errors: list[FileProblem]
    stats: RuleTestStats


class _Member(NamedTuple):
    corpus: str
    label: str
    name: str


class CorpusFiles(Mapping[str, ScanTarget]):
    """The distinct files of the tested corpora, by sha256, and which corpora hold each.

    Built from each corpus's :class:`MemberList` without an object per file: a
    re-test asks for the few files its edited rule matched or must read.
    """

    def __init__(self, lists: Sequence[tuple[str, str, str, MemberList]], objects: Callable[[], str]):
        self.lists = list(lists)               # (name, label, state, members), in the order asked
        self._objects_of = objects             # the object store's folder, asked when a file is
        self._objects = ""
        self._where: dict[str, int] = {}       # sha -> corpus number << 32 | position
        self.bytes = 0
        for c, (_, _, _, listed) in enumerate(self.lists):
            if c == 0:
                self._where = _positions(listed)
                self.bytes = sum(listed.sizes)
                continue
            base = c << 32
            new = {sha: base | i for i, sha in enumerate(listed.shas) if sha not in self._where}
            self._where.update(new)
            self.bytes += sum(listed.sizes[v & 0xFFFFFFFF] for v in new.values())
        self._positions: dict[int, dict[str, int]] = {}

    @property
    def names(self) -> list[str]:
        return [name for name, _, _, _ in self.lists]

    @property
    def totals(self) -> list[CorpusTotals]:
        return [CorpusTotals(name, label, len(listed.shas), sum(listed.sizes))
                for name, label, _, listed in self.lists]

    def state(self) -> str:
        """A digest of the corpora asked for (in order), their labels and their states."""
        return _digest([_RESULTS_ID, *(f"{name}\0{label}\0{state}"
                                       for name, label, state, _ in self.lists)])

    def quarantine(self) -> dict[str, str] | None:
        """The built-in corpus's files as sha256 -> name, if it is tested."""
        for name, _, _, listed in self.lists:
            if name == QUARANTINE_CORPUS:
                return dict(zip(listed.shas, listed.names, strict=True))
        return None

    def unchanged(self, registry: CorpusRegistry) -> bool:
        """Whether the registered corpora are still in the state they were read in."""
        return all(registry.state(name) == state for name, _, state, _ in self.lists
                   if name != QUARANTINE_CORPUS)

    def __getitem__(self, sha: str) -> ScanTarget:
        where = self._where[sha]
        listed = self.lists[where >> 32][3]
        i = where & 0xFFFFFFFF
        if listed.paths is not None:
            path = listed.paths[i]
        else:
            self._objects = self._objects or self._objects_of()
            path = f"{self._objects}/{sha[:2]}/{sha[2:4]}/{sha}"
        return ScanTarget(sha, path, listed.sizes[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, sha: object) -> bool:
        return sha in self._where

    def members(self, sha: str) -> list[_Member]:
        """Every corpus holding the file, in the order asked, with its name there."""
        out = []
        for c, (name, label, _, listed) in enumerate(self.lists):
            positions = self._positions.get(c)
            if positions is None:
                positions = self._positions[c] = self._where if len(self.lists) == 1 else \
                    _positions(listed)
            i = positions.get(sha)
            if i is not None:
                out.append(_Member(name, label, listed.names[i]))
        return out


def _positions(listed: MemberList) -> dict[str, int]:
    return dict(zip(listed.shas, range(len(listed.shas)), strict=True))


def gather_files(registry: CorpusRegistry, corpora: Sequence[str] | None) -> CorpusFiles:
    """The files of the chosen corpora (default: all, quarantine included). Raises UnknownCorpus."""
    labels = {name: label for name, label in registry.db.execute("SELECT name, label FROM corpora")}
    labels[QUARANTINE_CORPUS] = QUARANTINE_LABEL
    names = list(corpora) if corpora else [*sorted(labels.keys() - {QUARANTINE_CORPUS}),
                                           QUARANTINE_CORPUS]
    for name in names:
        if name not in labels:
            raise UnknownCorpus(name)
    lists = []
    for name in dict.fromkeys(names):
        state, listed = registry.snapshot(name)
        lists.append((name, labels[name], state, listed))
    # the store is not opened (nor its module imported) here: a remembered run reads no file
    return CorpusFiles(lists, lambda: str(registry.store.objects))


def run_rule_tests(workspace: Workspace, rule_paths: Iterable[Path | str] | None,
               corpora: list[str] | None = None, *, threads: int | None = None,
               progress: Callable[[ScanProgress], None] | None = None,
               cancel: threading.Event | None = None, use_cache: bool = True,
               use_index: bool = True, timeout: int = DEFAULT_TIMEOUT,
               externals: Mapping[str, ExternalValue] | None = None,
               inputs: list[str] | None = None) -> RuleTestReport:
    """Test rules against corpora: true positives, false positives and false negatives per rule.

    ``rule_paths`` default to the workspace's ``signatures/rules``. ``corpora``
    default to every registered corpus plus the built-in ``quarantine`` one.
    ``progress`` is called from this thread at least every 200 ms while scanning;
    ``cancel`` stops the scan within a second (raising ``ScanCancelled``).
    ``use_index`` lets a re-test of a few rules read only the files the gram index
    says they could match (the results are the same either way).
    ``externals`` default to the signature repository's ``[externals]``.
    ``inputs``, when given, gets the paths whose ``stat`` the report depends on (the rule
    files, the folders they were found in, the included files, the corpora registry and
    the dissect catalog) when the report was remembered (``cli/replay.py``: a run that
    did work keeps no text, which would cost an edit's re-test a second rendering).
    Raises ``RulesetError`` for rules that do not compile, ``UnknownCorpus``, and
    ``PolicyError`` for a policy that cannot be read.
    """
    from workbench.corpus.incremental import paused_gc

    if externals is None:
        externals = policy_externals(workspace)
    with paused_gc():
        return _run_rule_tests(workspace, rule_paths, corpora, threads=threads, progress=progress,
                           cancel=cancel, use_cache=use_cache, use_index=use_index,
                           timeout=timeout, externals=externals, inputs=inputs)



def _run_rule_tests(workspace: Workspace, rule_paths: Iterable[Path | str] | None,
                corpora: list[str] | None, *, threads: int | None,
                progress: Callable[[ScanProgress], None] | None,
                cancel: threading.Event | None, use_cache: bool, use_index: bool,
                timeout: int, externals: Mapping[str, ExternalValue],
                inputs: list[str] | None = None) -> RuleTestReport:
    started, wall = time.monotonic(), time.time()
    threads = threads or default_threads()
    paths = list(rule_paths) if rule_paths else default_rule_paths(workspace)
    listed = rule_file_names(paths)     # what the run memo's stamp covers
    with CorpusRegistry(workspace) as registry:
        files = gather_files(registry, corpora)
        cache = ScanCache(workspace.state / CACHE_NAME) if use_cache else None
        try:
            state = files.state()
            # a remembered run counts only for the same engines and externals: both change matches
            memo = (f"{state}\0{KEY_VERSION}\0libyara {yara.YARA_VERSION}\0{SCAN_ENGINE}\0"
                    f"externals={sorted(externals.items())!r}")
            if cache is not None:     # nothing changed since a finished run: its report
                stamped: list[str] = []
                remembered = cache.saved_run(memo, listed, stamped)
                if isinstance(remembered, RuleTestReport):
                    if inputs is not None:
                        inputs.extend(_inputs(workspace, paths, stamped, files))
                    return _remembered(remembered, len(files), threads, use_index,
                                       time.monotonic() - started)
            from workbench.corpus.incremental import resolve

            ruleset = load_ruleset(paths, parse_cache=workspace.state / PARSE_CACHE, externals=externals)
            saved = _saved_results(cache, state, ruleset, files) if cache is not None else {}
            if use_index:        # numpy and the index: only for a run that asks them
                from workbench.corpus.prefilter import open_index
            index = open_index(workspace) if use_index else None
            try:
                def run(rules: list[int] | None) -> Resolution:
                    return resolve(ruleset, files, cache=cache, threads=threads, timeout=timeout,
                                   progress=progress, cancel=cancel, index=index, rules=rules)

                res = run([i for i in range(len(ruleset)) if i not in saved] if saved else None)
                if saved and (res.timeouts or res.errors):
                    # a file not scanned now makes other rules' false negatives say so: rebuild them all
                    _merge(res, run(sorted(saved)))
                    saved = {}
            finally:
                if index is not None:
                    index.close()
            rebuilt = [e for e in ruleset.entries if e.index not in saved]
            found = registry.find_hashes({h for e in rebuilt for h in e.hashes}, files.names,
                                         quarantine=files.quarantine())
            results = _results(ruleset, files, found, res, saved)
            # saved only from a run that scanned or had cached every file, over corpora that
            # did not change while it ran (the hash lookups above read them again)
            report = _report(ruleset, files, results, res, len(saved), threads, use_cache,
                             use_index=index is not None, seconds=time.monotonic() - started)
            if cache is not None and not res.timeouts and not res.errors and \
                    files.unchanged(registry):
                cache.save_results(state, {e.name: SavedResult(e.key, _variant(e), _encode(
                    results[e.index], res.compiled.get(e.index), e)) for e in rebuilt})
                cache.save_run(memo, listed, ruleset.files, report, started=wall)
        finally:
            if cache is not None:
                cache.close()
    return report


def _inputs(workspace: Workspace, paths: Sequence[Path | str], stamped: list[str],
            files: CorpusFiles) -> list[str]:
    """What a run's report depends on, by path (see ``run_rule_tests``'s ``inputs``)."""
    from workbench.corpus.corpus_registry import REGISTRY_NAME
    from workbench.corpus.stamps import folders_under

    out = [p for given in paths for p in folders_under(os.fspath(given))]
    out += stamped
    registry = str(workspace.state / REGISTRY_NAME)
    out += [registry, registry + "-wal"]
    if QUARANTINE_CORPUS in files.names:
        from workbench.dissect.cache import cache_path

        catalog = str(cache_path(workspace))
        out += [catalog, catalog + "-wal"]
    return out


def _remembered(report: RuleTestReport, files: int, threads: int, use_index: bool,
                seconds: float) -> RuleTestReport:
    """A remembered run's report, its stats saying so: nothing compiled, scanned or looked up."""
    rules = len(report.rules)
    report.stats = RuleTestStats(
        rules=rules, rules_compiled=0, files=files, bytes=report.stats.bytes, files_scanned=0,
        bytes_scanned=0, pairs_cached=rules * files, rules_reused=rules, files_skipped=0,
        files_indexed=0, threads=threads, cache=True, index=use_index, compile_seconds=0.0,
        index_seconds=0.0, scan_seconds=0.0, seconds=round(seconds, 3))
    return report


def _merge(res: Resolution, more: Resolution) -> None:
    from workbench.corpus.incremental import Resolution

    res.hits.update(more.hits)
    res.compiled.update(more.compiled)
    for sha, rules in more.timeouts.items():
        res.timeouts.setdefault(sha, []).extend(rules)
    res.errors.update(more.errors)
    for f in fields(Resolution):              # the counts and seconds add up
        value = getattr(more, f.name)
        if isinstance(value, int | float):
            setattr(res, f.name, getattr(res, f.name) + value)


def _results(ruleset: Ruleset, files: CorpusFiles, found: dict[str, list[HashMatch]],
             res: Resolution, saved: dict[int, RuleResult]) -> list[RuleResult]:
    """Every rule's result: saved ones as they are, the others built from the resolution."""
    hits_of: dict[int, dict[str, RuleHit]] = {}
    for (i, sha), hit in res.hits.items():
        hits_of.setdefault(i, {})[sha] = hit
    reader = _ContextReader(files)
    members: dict[str, list[_Member]] = {}
    return [saved.get(e.index) or _rule_result(e, hits_of.get(e.index, {}), files, members, found,
                                               res, reader)
            for e in ruleset.entries]


def _report(ruleset: Ruleset, files: CorpusFiles, results: list[RuleResult], res: Resolution,
            reused: int, threads: int, use_cache: bool, *, use_index: bool,
            seconds: float) -> RuleTestReport:
    timeouts = [_problem(sha, files, "scan timed out", [ruleset.entries[i].name for i in rules])
                for sha, rules in sorted(res.timeouts.items())]
    errors = [_problem(sha, files, reason, []) for sha, reason in sorted(res.errors.items())]
    stats = RuleTestStats(
        rules=len(ruleset), rules_compiled=res.rules_compiled, files=len(files),
        bytes=files.bytes, files_scanned=res.files_scanned,
        bytes_scanned=res.bytes_scanned, pairs_cached=res.pairs_cached + reused * len(files),
        rules_reused=reused, files_skipped=res.files_skipped, files_indexed=res.files_indexed,
        threads=threads, cache=use_cache, index=use_index,
        compile_seconds=round(res.compile_seconds, 3), index_seconds=round(res.index_seconds, 3),
        scan_seconds=round(res.scan_seconds, 3), seconds=round(seconds, 3))
    return RuleTestReport(
        passed=all(r.passed for r in results), rules=results, corpora=files.totals,
        true_positives=sum(r.tp_count for r in results),
        false_positives=sum(r.fp_count for r in results),
        false_negatives=sum(len(r.false_negatives) for r in results),
        timeouts=timeouts, errors=errors, stats=stats)


def _problem(sha: str, files: CorpusFiles, reason: str, rules: list[str]) -> FileProblem:
    ms = files.members(sha) if sha in files else []
    if len(rules) > 10:
        rules = [*rules[:10], f"... and {len(rules) - 10} more (test fewer rules to find the slow one)"]
    return FileProblem(sha, ms[0].name if ms else "", [m.corpus for m in ms], reason, rules)


def _rule_result(e: RuleEntry, hits: dict[str, RuleHit], files: CorpusFiles,
                 members: dict[str, list[_Member]], found: dict[str, list[HashMatch]],
                 res: Resolution, reader: _ContextReader) -> RuleResult:
    compiled = res.compiled.get(e.index)
    out = RuleResult(rule=e.name, file=e.file, line=e.start_line, key=e.key,
                     fingerprint=e.summary.fingerprint, private=e.is_private,
                     warnings=compiled.messages(e.start_line) if compiled is not None else [])
    if e.is_private:
        out.warnings.append(PRIVATE_WARNING)
    for sha in hits:
        if sha not in members:
            members[sha] = files.members(sha)
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
    matched, total_files = len(hits), len(files)
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

    def __init__(self, files: Mapping[str, ScanTarget]):
        self.files = files

    def file_match(self, sha: str, hit: RuleHit, members: list[_Member]) -> FileMatch:
        target = self.files[sha]
        fm = FileMatch(sha, members[0].name, [m.corpus for m in members], target.size, hit.total)
        shown = hit.hits[:MAX_HITS_LISTED]
        if any(h.before is None or h.after is None for h in shown):
            shown = tuple(with_context(target.path, [hit], MAX_HITS_LISTED)[0].hits[:MAX_HITS_LISTED])
        fm.strings = [MatchDetail(h.identifier, h.offset, h.length, h.data, h.before or b"",
                                  h.after or b"") for h in shown]
        return fm


# -- saved results ------------------------------------------------------------------------
#
# A rule's finished result depends on its key (what it matches), its ``hash`` metadata
# (its false negatives), the corpora tested and their states (``CorpusFiles.state``, which
# also covers this module's code), and, for libyara's warnings, where its lines are.
# ``file`` and ``line`` are taken from the rule as it is now. Results are saved only by
# runs in which every file was scanned or cached (no timeout, no unreadable file).


def _variant(e: RuleEntry) -> str:
    return "\0".join(e.hashes)


def _encode(r: RuleResult, compiled: KnownKey | None, e: RuleEntry) -> bytes:
    """A result as nested tuples for ``marshal``: a thousand decode in about a millisecond."""
    positional = compiled is not None and bool(compiled.warnings)
    own = len(compiled.warnings) if compiled is not None else 0
    return marshal.dumps((
        e.summary.layout if positional else "",
        compiled.warnings if compiled is not None else (),
        tuple(r.warnings[own:]), r.tp_count, r.fp_count, r.other_count,
        *(tuple((f.sha256, f.name, tuple(f.corpora), f.size, f.matches_total,
                 tuple((m.identifier, m.offset, m.length, m.data, m.before, m.after)
                       for m in f.strings)) for f in found)
          for found in (r.true_positives, r.false_positives, r.other_hits)),
        tuple((n.hash, n.reason, n.sha256, tuple(n.corpora), n.name, n.detail)
              for n in r.false_negatives)))


def _decode(blob: bytes, e: RuleEntry) -> RuleResult | None:
    """The saved result for the rule as it is now; None when its warnings' lines moved or the
    blob is not one (written by another Python, damaged)."""
    try:
        layout, compiled, rest, tp, fp, other, tps, fps, others, fns = marshal.loads(blob)
        if compiled and layout != e.summary.layout:
            return None
        # most lists are empty, and a thousand rules' worth of calls is most of the cost
        return RuleResult(
            e.name, e.file, e.start_line, e.key, e.summary.fingerprint, e.is_private, tp, fp, other,
            _file_matches(tps) if tps else [], _file_matches(fps) if fps else [],
            _file_matches(others) if others else [],
            [FalseNegative(h, reason, sha, list(corpora), name, detail)
             for h, reason, sha, corpora, name, detail in fns] if fns else [],
            [f"line {e.start_line + line}: {text}" for line, text in compiled] + list(rest)
            if compiled else list(rest))
    except (ValueError, EOFError, TypeError):
        return None


def _file_matches(stored: tuple[tuple[Any, ...], ...]) -> list[FileMatch]:
    return [FileMatch(sha, name, list(corpora), size, total, [MatchDetail(*m) for m in strings])
            for sha, name, corpora, size, total, strings in stored]


def _saved_results(cache: ScanCache, state: str, ruleset: Ruleset,
                   files: CorpusFiles) -> dict[int, RuleResult]:
    """Results an earlier run saved for rules unchanged since, over the same corpora."""
    saved = cache.saved_results(state, [e.name for e in ruleset.entries])
    out: dict[int, RuleResult] = {}
    for e in ruleset.entries:
        kept = saved.get(e.name)
        if kept is not None and kept[1] == e.key and kept[2] == _variant(e):
            result = _decode(kept[3], e)
            if result is not None:
                out[e.index] = result
    return out


def _results_id() -> str:
    """Changes with the code that could shape a result (this package's), so saved results
    never outlive it, and with the Python that wrote them."""
    code = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        code.update(source.name.encode() + b"\0" + source.read_bytes())
    return _digest([code.hexdigest(), sys.version, str(marshal.version)])


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


_RESULTS_ID = _results_id()
