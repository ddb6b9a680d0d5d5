"""The threaded scanner: many files, one compiled ruleset, a per-file timeout.

boreal (a YARA engine in Rust, in its YARA-compatible mode) scans first when it accepts
the rules: it finds which files match at all two to three times faster than libyara on
real rulesets; libyara scans the files that match again, so reports are libyara's
(``CheckedScanner``; docs/benchmarks.md; a test compares both on a public ruleset). Both release the GIL while they scan, so plain threads over
one compiled ruleset use every core. The calling thread only waits, reports progress at
least every ``PROGRESS_INTERVAL`` seconds and honours a cancel event: on cancel
it returns at once, and files still being scanned finish in daemon threads
whose results are dropped (each bounded by the per-file timeout).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import boreal
import yara

# Compatibility mode: libyara's string identifiers (``$a``), match details for every
# string, no "fast" evaluation that skips strings; process-wide, set once here.
boreal.set_config(yara_compatibility=True)
SCAN_ENGINE = f"boreal {boreal.__version__}"
_TIMEOUTS = (yara.TimeoutError, boreal.TimeoutError)
_SCAN_ERRORS = (yara.Error, boreal.Error)
ScanRules: TypeAlias = "yara.Rules | CheckedScanner"

PROGRESS_INTERVAL = 0.1          # seconds between progress calls (the promise is 200 ms)
DEFAULT_TIMEOUT = 60             # seconds per file
MAX_INSTANCES_PER_STRING = 16    # match instances kept per string (the total is counted)
CONTEXT_BYTES = 32               # bytes of context kept either side of a match ...
CONTEXT_HITS = 8                 # ... for this many matches per rule and file (what a report lists)


class ScanCancelled(Exception):
    """The cancel event was set; ``outcome`` holds the files finished before (the engine caches them)."""

    def __init__(self, outcome: ScanOutcome | None = None):
        super().__init__("scan cancelled")
        self.outcome = outcome


# Named tuples, not dataclasses: a run makes one per file and per match, and a cached
# re-test has little else to do, so their construction cost shows.
class ScanTarget(NamedTuple):
    sha256: str
    path: str | Path
    size: int


class StringHit(NamedTuple):
    """One match instance: where a string matched and the bytes it matched (libyara keeps 512).

    ``before``/``after`` hold up to 32 bytes of the file either side when known
    (the cache keeps them for the first matches), else None.
    """

    identifier: str
    offset: int
    length: int
    data: bytes
    before: bytes | None = None
    after: bytes | None = None


class RuleHit(NamedTuple):
    rule: str
    hits: tuple[StringHit, ...]
    total: int                    # instances before the per-string cap
    too_many: bool = False        # libyara stopped counting a string of this rule


@dataclass
class ScanProgress:
    """Where a scan is; passed to the progress callback from the calling thread."""

    phase: str                    # "compiling", "scanning" or "done" ("dissecting" in a retro-hunt)
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    matches: int = 0
    timeouts: int = 0
    errors: int = 0
    elapsed: float = 0.0

    @property
    def fraction(self) -> float:
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        return 1.0 if self.files_done >= self.files_total else 0.0


@dataclass
class ScanOutcome:
    results: dict[str, list[RuleHit]] = field(default_factory=dict)   # sha256 -> hits
    timeouts: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)           # per file
    elapsed: float = 0.0


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


class CheckedScanner:
    """boreal says which files match at all; libyara scans those again and its answer is kept.

    On real rulesets most files match nothing, and boreal finds that two to three times
    faster (``fast`` mode: it may skip strings a condition does not need). Where it finds
    a match, libyara's own scan gives the report: the same rules, strings, offsets and
    counts as libyara alone (boreal's string details differ in rare cases, e.g. one more
    instance of a long hex string with jumps). A file libyara would match and boreal not
    would be missed: tests/corpus/test_engine_choice.py compares both on a real ruleset.
    """

    def __init__(self, fast: boreal.Scanner, reference: yara.Rules):
        self.fast = fast
        self.reference = reference

    def match(self, filepath: str, *, timeout: int = DEFAULT_TIMEOUT,
              warnings_callback: Callable[[int, object], int] | None = None) -> list[yara.Match]:
        if not self.fast.match(filepath, timeout=timeout, fast=True):
            return []
        return self.reference.match(filepath, timeout=timeout, warnings_callback=warnings_callback)


def compile_scanner(filepath: str, reference: yara.Rules,
                    externals: Mapping[str, Any] | None = None) -> ScanRules:
    """What scans the rules of ``filepath``, which libyara compiled as ``reference`` (with
    ``externals``): boreal's compile of the same file, or ``reference`` itself when boreal
    does not accept it."""
    try:
        return CheckedScanner(boreal.compile(filepath=filepath, includes=False,
                                             externals=dict(externals or {})), reference)
    except boreal.Error:
        return reference


def convert_matches(matches: Sequence[yara.Match], too_many: set[str]) -> list[RuleHit]:
    hits = []
    for m in matches:
        instances: list[StringHit] = []
        total = 0
        for s in m.strings:
            total += len(s.instances)
            for inst in s.instances[:MAX_INSTANCES_PER_STRING]:
                instances.append(StringHit(s.identifier, inst.offset, inst.matched_length,
                                           bytes(inst.matched_data)))
        instances.sort(key=lambda h: (h.offset, h.identifier))
        hits.append(RuleHit(m.rule, tuple(instances), total, m.rule in too_many))
    return hits


def with_context(path: str | Path, hits: list[RuleHit], count: int = CONTEXT_HITS) -> list[RuleHit]:
    """``hits`` with the bytes around their first ``count`` matches read from the file.

    Read right after the scan, while the file is in the page cache, so a report
    (even one from the cache) never has to open the file again. An unreadable
    file leaves the context unknown.
    """
    try:
        with open(path, "rb") as fh:
            out = []
            for hit in hits:
                shown = []
                for h in hit.hits[:count]:
                    start = max(0, h.offset - CONTEXT_BYTES)
                    fh.seek(start)
                    window = fh.read(h.offset - start + h.length + CONTEXT_BYTES)
                    shown.append(h._replace(before=window[:h.offset - start],
                                            after=window[h.offset - start + h.length:]))
                out.append(hit._replace(hits=(*shown, *hit.hits[count:])))
            return out
    except OSError:
        return hits


def scan_files(rules: ScanRules, targets: Sequence[ScanTarget], *, threads: int | None = None,
               timeout: int = DEFAULT_TIMEOUT,
               progress: Callable[[ScanProgress], None] | None = None,
               cancel: threading.Event | None = None,
               base: ScanProgress | None = None, context: bool = False,
               cluster: str | None = None) -> ScanOutcome:
    """Scan files by path on ``threads`` threads; raises :class:`ScanCancelled` on cancel.

    ``base`` carries counts from earlier passes so one progress bar can span several.
    With ``context``, matches carry the bytes around them (see :func:`with_context`).
    ``cluster`` (default ``$WORKBENCH_CLUSTER``; ``""``: here) is a Dask scheduler's
    address: the scan runs there instead, with the same outcome (corpus/cluster.py).
    """
    if cluster is None:
        from workbench.corpus.cluster_address import CLUSTER_ENV

        cluster = os.environ.get(CLUSTER_ENV, "")
    if cluster and targets:
        from workbench.corpus.cluster import scan_on_cluster

        return scan_on_cluster(cluster, rules, targets, timeout=timeout, progress=progress,
                               cancel=cancel, base=base, context=context)
    threads = max(1, threads or default_threads())
    outcome = ScanOutcome()
    state = base or ScanProgress("scanning")
    state.phase = "scanning"
    order = sorted(targets, key=lambda t: -t.size)      # big files first balances the threads
    cursor = iter(order)
    lock = threading.Lock()
    stop = threading.Event()
    started = time.monotonic()

    def worker() -> None:
        while not stop.is_set():
            with lock:
                target = next(cursor, None)
            if target is None:
                return
            too_many: set[str] = set()

            def on_warning(kind: int, rule: object, noted: set[str] = too_many) -> int:
                if kind == yara.CALLBACK_TOO_MANY_MATCHES:
                    noted.add(getattr(rule, "rule", str(rule)))
                return yara.CALLBACK_CONTINUE

            t0 = time.monotonic()
            hits: list[RuleHit] | None = None
            problem = ""
            timed_out = False
            try:
                hits = convert_matches(rules.match(str(target.path), timeout=timeout,
                                                   warnings_callback=on_warning), too_many)
                if context and any(hit.hits for hit in hits):
                    hits = with_context(target.path, hits)
            except _TIMEOUTS:
                timed_out = True
            except _SCAN_ERRORS as exc:
                problem = str(exc)
            took = time.monotonic() - t0
            with lock:
                if stop.is_set():
                    return
                outcome.seconds[target.sha256] = took
                if hits is not None:
                    outcome.results[target.sha256] = hits
                    state.matches += len(hits)
                elif timed_out:
                    outcome.timeouts.append(target.sha256)
                    state.timeouts += 1
                else:
                    outcome.errors[target.sha256] = problem
                    state.errors += 1
                state.files_done += 1
                state.bytes_done += target.size

    if not order:               # a re-test whose rules the index ruled out everywhere
        return outcome
    workers = [threading.Thread(target=worker, name=f"yara-scan-{i}", daemon=True)
               for i in range(min(threads, max(1, len(order))))]
    for w in workers:
        w.start()
    try:
        while any(w.is_alive() for w in workers):
            if cancel is not None and cancel.is_set():
                with lock:
                    stop.set()
                    partial = ScanOutcome(dict(outcome.results), list(outcome.timeouts),
                                          dict(outcome.errors), dict(outcome.seconds))
                raise ScanCancelled(partial)
            alive = [w for w in workers if w.is_alive()]
            if alive:
                alive[0].join(PROGRESS_INTERVAL)
            if progress is not None:
                with lock:
                    state.elapsed = time.monotonic() - started
                    snapshot = ScanProgress(**state.__dict__)
                progress(snapshot)
    except BaseException:
        stop.set()
        raise
    outcome.elapsed = time.monotonic() - started
    return outcome
