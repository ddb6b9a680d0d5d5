"""Corpus scans on a Dask cluster: one compiled ruleset per worker, files partitioned by size.

``scan_files`` hands a scan here when a cluster address is given (``--cluster
tcp://host:8786`` on ``test`` and ``retrohunt``, or ``$WORKBENCH_CLUSTER``). The libyara
ruleset is serialised once and broadcast to every worker (``Client.scatter(...,
broadcast=True)``); each worker process loads it once and keeps it. Files go out in
partitions of about equal bytes (biggest first, each to the lightest partition), so one
huge file does not leave the other workers idle; each partition is one task, scanned by
the worker's threads with the local scanner, and the workers read the files by path, so
they need the same store at the same path (a shared file system). A worker that dies
mid-scan loses only its tasks, which the scheduler runs again elsewhere: the scan is
deterministic, so the results are those of a local run. Everything after the scan
(cache, prefilter, reports) stays in the calling process, unchanged.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Sequence

import yara

from workbench.corpus.scanner import (
    PROGRESS_INTERVAL,
    CheckedScanner,
    ScanCancelled,
    ScanOutcome,
    ScanProgress,
    ScanRules,
    ScanTarget,
    scan_files,
)

PARTITIONS_PER_THREAD = 4          # enough tasks that a lost worker costs little to redo
_loaded: dict[str, yara.Rules] = {}    # in a worker process: rulesets by digest, loaded once
_loaded_lock = threading.Lock()


def partition(targets: Sequence[ScanTarget], count: int) -> list[list[ScanTarget]]:
    """``targets`` in at most ``count`` groups of about equal bytes (longest first)."""
    count = max(1, min(count, len(targets)))
    groups: list[list[ScanTarget]] = [[] for _ in range(count)]
    weights = [0] * count
    for target in sorted(targets, key=lambda t: (-t.size, t.sha256)):
        lightest = min(range(count), key=weights.__getitem__)
        groups[lightest].append(target)
        weights[lightest] += max(target.size, 1)
    return [g for g in groups if g]


def _rules_on_worker(blob: bytes, digest: str) -> yara.Rules:
    with _loaded_lock:
        rules = _loaded.get(digest)
        if rules is None:
            rules = _loaded[digest] = yara.load(file=io.BytesIO(blob))
        return rules


def scan_partition(blob: bytes, digest: str, targets: list[ScanTarget], timeout: int,
                   context: bool) -> ScanOutcome:
    """Run on a worker: scan one partition with the worker's threads."""
    from distributed import get_worker

    threads = get_worker().state.nthreads
    return scan_files(_rules_on_worker(blob, digest), targets, threads=threads,
                      timeout=timeout, context=context, cluster="")


def reference_rules(rules: ScanRules) -> yara.Rules:
    """The libyara ruleset whose answers a local scan reports (``CheckedScanner`` keeps
    libyara's report for every file its fast engine says matches)."""
    return rules.reference if isinstance(rules, CheckedScanner) else rules


def scan_on_cluster(address: str, rules: ScanRules, targets: Sequence[ScanTarget], *,
                    timeout: int, progress: Callable[[ScanProgress], None] | None = None,
                    cancel: threading.Event | None = None, base: ScanProgress | None = None,
                    context: bool = False) -> ScanOutcome:
    """``scan_files`` on the Dask cluster at ``address``; the same outcome, the same
    progress calls and cancel (:class:`ScanCancelled` with what finished)."""
    from distributed import Client, as_completed

    state = base or ScanProgress("scanning")
    state.phase = "scanning"
    outcome = ScanOutcome()
    if not targets:
        return outcome
    buffer = io.BytesIO()
    reference_rules(rules).save(file=buffer)
    blob = buffer.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    started = reported = time.monotonic()
    with Client(address, timeout="30s") as client:
        workers = client.scheduler_info().get("workers", {})
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1
        shared = client.scatter(blob, broadcast=True, hash=False)   # once per worker
        groups = partition(targets, threads * PARTITIONS_PER_THREAD)
        futures = [client.submit(scan_partition, shared, digest, group, timeout, context,
                                 pure=False, retries=2) for group in groups]
        sizes = {f.key: sum(t.size for t in g) for f, g in zip(futures, groups, strict=True)}
        pending = as_completed(futures)
        remaining = len(futures)
        try:
            while remaining:
                if cancel is not None and cancel.is_set():
                    raise ScanCancelled(_copy(outcome))
                if pending.has_ready():
                    for done in pending.next_batch(block=False):
                        _merge(outcome, done.result(), state)
                        state.bytes_done += sizes[done.key]
                        remaining -= 1
                else:
                    time.sleep(0.02)
                if progress is not None and time.monotonic() - reported >= PROGRESS_INTERVAL:
                    _report(progress, state, started)
                    reported = time.monotonic()
        except BaseException:
            client.cancel(futures)
            raise
    outcome.elapsed = time.monotonic() - started
    return outcome


def _merge(outcome: ScanOutcome, part: ScanOutcome, state: ScanProgress) -> None:
    outcome.results.update(part.results)
    outcome.timeouts.extend(part.timeouts)
    outcome.errors.update(part.errors)
    outcome.seconds.update(part.seconds)
    state.files_done += len(part.seconds)
    state.matches += sum(len(h) for h in part.results.values())
    state.timeouts += len(part.timeouts)
    state.errors += len(part.errors)


def _report(progress: Callable[[ScanProgress], None] | None, state: ScanProgress,
            started: float) -> None:
    if progress is not None:
        state.elapsed = time.monotonic() - started
        progress(ScanProgress(**state.__dict__))


def _copy(outcome: ScanOutcome) -> ScanOutcome:
    return ScanOutcome(dict(outcome.results), list(outcome.timeouts), dict(outcome.errors),
                       dict(outcome.seconds))
