"""Bringing the match results of a ruleset over a set of files up to date, scanning only what is new.

For every rule the cache knows the files it was already scanned over (under the
rule's key, see ``ruleset.py``). Rules missing the same files form a group; each
group is compiled once (with the rules it needs) and scanned over just those
files. A cold run is one group of every rule over every file; re-testing after
editing one rule is one group of that rule alone (and the rules naming it). With a gram index, a small
group reads only the files its rules could match (``prefilter.py``); the files
ruled out are recorded as scanned with no match, as a scan would have found.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workbench.corpus.cache import KnownKey, ScanCache
from workbench.corpus.ruleset import Ruleset
from workbench.corpus.scanner import (
    DEFAULT_TIMEOUT,
    RuleHit,
    ScanCancelled,
    ScanProgress,
    ScanTarget,
    scan_files,
)

if TYPE_CHECKING:    # the gram index needs numpy: imported only when a run asks the index
    from workbench.corpus.gramindex import GramIndex


@dataclass
class Resolution:
    """Every match of every rule over the targets, and how they were obtained."""

    hits: dict[tuple[int, str], RuleHit] = field(default_factory=dict)   # (rule index, sha256)
    compiled: dict[int, KnownKey] = field(default_factory=dict)        # libyara's warnings, per rule
    timeouts: dict[str, list[int]] = field(default_factory=dict)        # sha256 -> rules scanned
    errors: dict[str, str] = field(default_factory=dict)                # sha256 -> why unreadable
    rules_compiled: int = 0
    files_scanned: int = 0
    bytes_scanned: int = 0
    pairs_cached: int = 0          # (rule, file) results taken from the cache
    files_skipped: int = 0         # files the gram index ruled out (summed over groups)
    files_indexed: int = 0         # files added to the gram index on the way
    compile_seconds: float = 0.0
    index_seconds: float = 0.0     # indexing and prefilter queries
    scan_seconds: float = 0.0


_gc_lock = threading.Lock()
_gc_pausers = 0              # runs under way that paused the collector
_gc_was_enabled = False      # the collector's state before the first of them began


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while one or more test runs are under way.

    A run builds tens of thousands of small acyclic objects (parsed rules, targets,
    hits, the report); the collector's full passes over them cost a cached re-test
    about a third of its time. Reference counting still frees them all. Runs may
    overlap (the UI runs them in worker threads): the collector comes back when the
    last one ends, and only if it was on before the first began.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def resolve(ruleset: Ruleset, targets: Sequence[ScanTarget] | Mapping[str, ScanTarget], *,
            cache: ScanCache | None, threads: int | None = None, timeout: int = DEFAULT_TIMEOUT,
            progress: Callable[[ScanProgress], None] | None = None,
            cancel: threading.Event | None = None,
            index: GramIndex | None = None, rules: Iterable[int] | None = None) -> Resolution:
    """Match results of the rules of ``ruleset`` over ``targets``, from the cache where known.

    ``targets`` may be a mapping by sha256 (built lazily by the caller). ``rules``
    (default: all) are the rules whose results are wanted; the rules they need are
    compiled along, but their results are neither looked up nor returned.
    With ``index``, groups of few rules scan only the files they could match.

    Raises ``RulesetError`` when a rule that must be compiled does not compile and
    ``ScanCancelled`` when ``cancel`` is set (work finished before is cached).
    """
    res = Resolution()
    by_sha = targets if isinstance(targets, Mapping) else {t.sha256: t for t in targets}
    every = frozenset(by_sha)
    entries = ruleset.entries
    wanted = [entries[i] for i in sorted(set(rules))] if rules is not None else entries
    keys = [e.key for e in wanted]
    coverage = cache.coverage(keys) if cache is not None and keys else {}
    known = cache.known_keys(keys) if cache is not None and keys else {}
    for e in wanted:
        before = known.get(e.key)
        if before is not None and (not before.warnings or before.layout == e.summary.layout):
            res.compiled[e.index] = before
        else:                 # never compiled, or its warnings' lines moved: compile it again
            known.pop(e.key, None)

    # Which files each rule still lacks; rules sharing a coverage share the set difference.
    missing_by_cover: dict[int, frozenset[str]] = {}
    plan: dict[frozenset[str], list[int]] = {}
    for e in wanted:
        cover = coverage.get(e.key, frozenset())
        missing = missing_by_cover.get(id(cover))
        if missing is None:
            missing = missing_by_cover.setdefault(id(cover), every - cover)
        res.pairs_cached += len(every) - len(missing)
        if not missing and e.key in known:
            continue
        plan.setdefault(missing, []).append(e.index)

    state = ScanProgress("compiling", files_total=0, bytes_total=0)
    for to_scan in plan:
        state.files_total += len(to_scan)
        if progress is not None:
            state.bytes_total += sum(by_sha[s].size for s in to_scan)
    started = time.monotonic()
    scanned: set[str] = set()
    if index is not None:
        from workbench.corpus.prefilter import Prefilter
    prefilter = Prefilter(index, ruleset, threads=threads or 1, cancel=cancel,
                          progress=progress) if index is not None else None
    for to_scan, group in sorted(plan.items(), key=lambda kv: kv[1][0]):
        if cancel is not None and cancel.is_set():
            raise ScanCancelled()
        state.phase = "compiling"
        if progress is not None:
            progress(ScanProgress(**state.__dict__))
        t0 = time.monotonic()
        compiled = ruleset.compile(group)
        res.compile_seconds += time.monotonic() - t0
        res.rules_compiled += len(compiled.indices)
        in_group = set(group)
        found: dict[int, list[tuple[int, str]]] = {i: [] for i in compiled.indices}
        for w in compiled.warnings:
            owner = ruleset.rule_at(w.file, w.line)
            if owner is not None and owner.index in found:
                found[owner.index].append((w.line - owner.start_line, w.message))
        warnings = {entries[i].key: KnownKey(entries[i].summary.layout, tuple(ws))
                    for i, ws in found.items()}
        for i in compiled.indices:
            res.compiled[i] = warnings[entries[i].key]
        index_of = {entries[i].name: i for i in compiled.indices}
        read = to_scan
        if prefilter is not None:
            candidates = prefilter.candidates(group, to_scan, by_sha)
            if candidates is not None:
                read = to_scan & candidates
                state.files_total -= len(to_scan) - len(read)
                if progress is not None:
                    state.bytes_total -= sum(by_sha[s].size for s in to_scan - read)
        try:
            outcome = scan_files(compiled.rules, [by_sha[s] for s in sorted(read)],
                                 threads=threads, timeout=timeout, progress=progress,
                                 cancel=cancel, base=state, context=True)
        except ScanCancelled as exc:
            if cache is not None and exc.outcome is not None:     # keep what finished
                partial = exc.outcome.results
                cache.record([entries[i].key for i in group], set(partial) | (to_scan - read),
                             [(entries[index_of[hit.rule]].key, sha, hit)
                              for sha, hits in partial.items() for hit in hits
                              if index_of.get(hit.rule, -1) in in_group], compiled=warnings)
            raise
        new_hits: list[tuple[str, str, RuleHit]] = []
        for sha, hits in outcome.results.items():
            for hit in hits:
                j = index_of.get(hit.rule)
                if j is not None and j in in_group:
                    res.hits[(j, sha)] = hit
                    new_hits.append((entries[j].key, sha, hit))
        for sha in outcome.timeouts:
            res.timeouts.setdefault(sha, []).extend(sorted(in_group))
        res.errors.update(outcome.errors)
        scanned.update(read)
        res.bytes_scanned += sum(by_sha[s].size for s in read)
        failed = set(outcome.timeouts) | set(outcome.errors)
        if cache is not None:
            done = to_scan - failed
            # in the targets' order (deterministic), which spares the cache a sort
            ordered = list(by_sha) if len(done) == len(by_sha) else [s for s in by_sha if s in done]
            cache.record([entries[i].key for i in group], ordered, new_hits, compiled=warnings)
    res.files_scanned = len(scanned)
    if prefilter is not None:
        res.files_skipped = prefilter.stats.files_skipped
        res.files_indexed = prefilter.stats.files_indexed
        res.index_seconds = prefilter.stats.seconds
    res.scan_seconds = time.monotonic() - started - res.compile_seconds - res.index_seconds
    if cache is not None and keys:
        entry_of = {e.key: e for e in wanted}
        for (key, sha), hit in cache.matches(keys, every).items():
            e = entry_of[key]
            res.hits.setdefault((e.index, sha), hit)
    for (i, sha), hit in list(res.hits.items()):
        if not hit.rule:
            res.hits[(i, sha)] = RuleHit(entries[i].name, hit.hits, hit.total, hit.too_many)
    state.phase = "done"
    state.elapsed = time.monotonic() - started
    if progress is not None:
        progress(ScanProgress(**state.__dict__))
    return res

