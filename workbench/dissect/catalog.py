"""The catalog of extracted artifacts: what dissection pulled out of which message, for corpora and rules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.dissect.cache import DissectCache, cache_path
from workbench.dissect.model import Limits
from workbench.workspace import Workspace


@dataclass(frozen=True)
class ExtractedArtifact:
    sha256: str
    filename: str
    mime: str
    size: int
    message_sha256: str
    path: Path                    # the object in the quarantine store (read-only)
    tree_path: str = ""           # where it sat: message/part 2/invoice.zip/payload.exe
    depth: int = 0
    status: str = "ok"


def _object_path(workspace: Workspace, sha256: str) -> Path:
    return workspace.quarantine / "objects" / sha256[:2] / sha256[2:4] / sha256


def _open(workspace: Workspace) -> DissectCache | None:
    path = cache_path(workspace)
    return DissectCache(path, readonly=True) if path.exists() else None


def _rows(workspace: Workspace, sql: str, args: tuple[object, ...]) -> list[ExtractedArtifact]:
    cache = _open(workspace)
    if cache is None:
        return []
    try:
        rows = cache.query(sql, args)
    finally:
        cache.close()
    return [ExtractedArtifact(r["sha256"], r["filename"], r["mime"], r["size"], r["message_sha256"],
                              _object_path(workspace, r["sha256"]), r["path"], r["depth"], r["status"])
            for r in rows]


def iter_extracted(workspace: Workspace, *, unique: bool = True, batch: int = 1000) -> Iterator[ExtractedArtifact]:
    """Every extracted artifact of every dissected message (``unique``: each sha256 once, first seen)."""
    last = ("", "")
    seen: set[str] = set()
    while True:
        rows = _rows(workspace, "SELECT * FROM extracted WHERE (message_sha256, path) > (?, ?) "
                                "ORDER BY message_sha256, path LIMIT ?", (*last, batch))
        if not rows:
            return
        for row in rows:
            if unique:
                if row.sha256 in seen:
                    continue
                seen.add(row.sha256)
            yield row
        last = (rows[-1].message_sha256, rows[-1].tree_path)


def find_parents(workspace: Workspace, sha256: str) -> list[ExtractedArtifact]:
    """Where a file was found: one entry per (message, position) that held it."""
    return _rows(workspace, "SELECT * FROM extracted WHERE sha256 = ? ORDER BY message_sha256, path", (sha256,))


def undissected(workspace: Workspace, query: str = "", *, limit: int | None = None) -> list[str]:
    """Quarantined messages the catalog does not cover yet; ``query`` (the quarantine query
    language) chooses among them, newest first, and ``limit`` caps how many."""
    from workbench.quarantine.query import parse_query
    from workbench.quarantine.service import Quarantine

    cache = _open(workspace)
    done = cache.dissected_messages() if cache else set()
    if cache:
        cache.close()
    if not query and limit is None:
        with Quarantine.open(workspace) as q:
            messages = q.index.all_shas()
        return sorted(messages - done)
    parsed = parse_query(query)
    todo: list[str] = []
    with Quarantine.open(workspace) as q:
        offset = 0
        while limit is None or len(todo) < limit:
            rows = q.index.list(parsed, offset=offset, limit=1000)
            todo += [r.sha256 for r in rows if r.sha256 not in done]
            if len(rows) < 1000:
                break
            offset += len(rows)
    return todo if limit is None else todo[:limit]


@dataclass
class CatalogProgress:
    """Where ``catalog_all`` is: messages done of the total, and the time so far."""

    done: int
    total: int
    sha256: str
    elapsed: float
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None until one message is done)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


FLUSH_EVERY = 64            # messages between two syncs of the store (and catalog commits)
FLUSH_SECONDS = 5.0         # ... or seconds, whichever comes first


def catalog_all(workspace: Workspace, *, progress: Callable[[CatalogProgress], None] | None = None,
                jobs: int = 1, todo: list[str] | None = None, limits: Limits | None = None) -> int:
    """Dissect every message not yet in the catalog (or those of ``todo``), ``jobs`` at a
    time; returns how many were dissected.

    Each message goes through the same ``dissect_message`` as a single dissection, so
    every format still runs in the worker processes under their limits; running ``jobs``
    messages side by side keeps ``jobs`` workers busy instead of about one. What is left
    in this process is kept off the messages' way: one cache connection for all of them,
    and the store synced (then the catalog entries committed, in that order) once per
    ``FLUSH_EVERY`` messages by the thread that collects results, not once per message by
    the thread dissecting it (a sync waits for the whole disk).
    """
    import time
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from workbench.dissect.cache import CatalogEntry
    from workbench.dissect.walker import dissect_message
    from workbench.quarantine.service import Quarantine

    todo = undissected(workspace) if todo is None else todo
    jobs = max(1, min(jobs, len(todo) or 1))
    started = time.perf_counter()
    done = 0
    deferred: list[CatalogEntry] = []
    deferred_lock = threading.Lock()
    flushed = time.monotonic()

    with Quarantine.open(workspace) as q, DissectCache.open(workspace) as cache:

        def flush(force: bool = False) -> None:
            nonlocal flushed
            with deferred_lock:
                if not deferred or not (force or len(deferred) >= FLUSH_EVERY
                                        or time.monotonic() - flushed >= FLUSH_SECONDS):
                    return
                entries = deferred[:]
                del deferred[:]
            q.store.sync()                      # the children first, then the catalog naming them
            cache.record_messages(entries)
            flushed = time.monotonic()

        def finished(sha: str) -> None:
            nonlocal done
            done += 1
            flush()
            if progress is not None:
                progress(CatalogProgress(done, len(todo), sha, time.perf_counter() - started))

        def one(quarantine: Quarantine, sha: str) -> None:
            mine: list[CatalogEntry] = []
            dissect_message(quarantine, sha, limits=limits, cache=cache, deferred=mine)
            with deferred_lock:
                deferred.extend(mine)

        try:
            if jobs == 1:
                for sha in todo:
                    one(q, sha)
                    finished(sha)
                return done
            # one index connection per thread: a connection must not run two statements at once
            local = threading.local()
            opened: list[Quarantine] = []
            opened_lock = threading.Lock()

            def threaded(sha: str) -> None:
                mine = getattr(local, "quarantine", None)
                if mine is None:
                    mine = local.quarantine = Quarantine.open(workspace)
                    with opened_lock:
                        opened.append(mine)
                one(mine, sha)

            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dissect-all") as threads:
                futures = {threads.submit(threaded, sha): sha for sha in todo}
                try:
                    for future in as_completed(futures):
                        future.result()
                        finished(futures[future])
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
                finally:
                    threads.shutdown(wait=True)
                    for each in opened:
                        each.close()
        finally:
            flush(force=True)                   # what was dissected is kept, even when one failed
    return done
