"""Bringing mail into the quarantine: files, folders, Maildirs, mboxes, the tower spool, HTTP.

Order of durability in every batch: objects written and synced, then the journal
line fsynced, then the index rows committed, and only then a spool file removed.
A crash at any point loses nothing that was accepted; at worst a spool file is
ingested again, which the sighting id makes a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import mailbox
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from workbench.durable import crash_point, file_lock
from workbench.humanize import stamp, utc_day
from workbench.quarantine.headers import HeaderSummary, looks_like_mail, summarize_headers
from workbench.quarantine.index import FailedInput, NewMessage, Sighting
from workbench.quarantine.object_store import ObjectStore, PutResult, sha256_file
from workbench.quarantine.service import Quarantine, storage_errors

DEFAULT_MAX_MESSAGE = 100 * 1024 * 1024
BATCH = 500
SIDECAR_SUFFIX = ".json"
SPOOL_SKIP_SUFFIXES = (".tmp", ".part", SIDECAR_SUFFIX)
SPOOL_LOCK = "spool.lock"


@dataclass
class IngestItem:
    """One candidate message, not yet read."""

    source: str                               # where it came from, for the record
    read: Callable[[], bytes]
    size: int
    tower: str = ""
    server: str = ""
    reason: str = ""
    received_at: dt.datetime | None = None
    identity: str = ""                        # what makes this copy one sighting
    spool_files: list[Path] = field(default_factory=list)   # removed once durable
    original: Path | None = None              # a file that can be moved or copied to failed/


@dataclass
class IngestedMessage:
    sha256: str
    source: str
    new: bool
    subject: str
    defects: list[str]


@dataclass
class FailedItem:
    source: str
    reason: str
    stored_as: str


@dataclass
class IngestSummary:
    """The ``quarantine ingest --json`` document."""

    accepted: int = 0          # messages stored for the first time
    duplicates: int = 0        # already stored: counted as another sighting
    repeated: int = 0          # the same copy seen again (e.g. a spool file re-read): no-op
    failed: int = 0            # not mail, kept in quarantine/failed/
    flagged: int = 0           # stored, but with header defects
    messages: list[IngestedMessage] = field(default_factory=list)
    failures: list[FailedItem] = field(default_factory=list)

    def merge(self, other: IngestSummary, *, counts_only: bool = False) -> None:
        """Add ``other`` in; ``counts_only`` keeps no message list (a long-running total)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.repeated += other.repeated
        self.failed += other.failed
        self.flagged += other.flagged
        if not counts_only:
            self.messages += other.messages
            self.failures += other.failures


def _sidecar(path: Path) -> dict[str, object]:
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {"_sidecar_error": f"unreadable sidecar {side.name}"}


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _file_item(path: Path, *, tower: str, server: str, reason: str, spool: bool,
               resolved: Path | None = None, sidecar: bool | None = None) -> IngestItem:
    """``resolved``: ``path.resolve()`` when the caller knows it (the spool resolves its folder
    once, not every file); ``sidecar``: whether ``<file>.json`` exists, when the caller listed
    the folder already."""
    st = path.stat()
    side_path = path.with_name(path.name + SIDECAR_SUFFIX)
    has_side = side_path.is_file() if sidecar is None else sidecar
    side = _sidecar(path) if has_side else {}
    item = IngestItem(
        source=str(path),
        read=path.read_bytes,
        size=st.st_size,
        tower=str(side.get("tower") or tower),
        server=str(side.get("server") or server),
        reason=str(side.get("reason") or reason),
        received_at=_parse_time(side.get("received_at"))
        or dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
        identity=f"{resolved or path.resolve()}|{st.st_ino}|{st.st_mtime_ns}|{st.st_size}",
        original=path,
    )
    if spool:
        item.spool_files = [path]
        if has_side:
            item.spool_files.append(side_path)
    return item


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _mbox_items(path: Path, *, tower: str, server: str, reason: str) -> Iterator[IngestItem]:
    st = path.stat()
    box = mailbox.mbox(path, create=False)
    try:
        for n, key in enumerate(box.iterkeys()):
            data = box.get_bytes(key)
            yield IngestItem(
                source=f"{path}#{n + 1}", read=_constant(data), size=len(data),
                tower=tower, server=server, reason=reason,
                received_at=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
                identity=f"{path.resolve()}|{st.st_ino}|{st.st_mtime_ns}|{n}")
    finally:
        box.close()


def discover(paths: Iterable[Path], *, tower: str = "", server: str = "",
             reason: str = "") -> Iterator[IngestItem]:
    """Ingest items for files, folders (recursively), Maildirs and mbox files."""
    for path in map(Path, paths):
        if path.is_dir():
            if _is_maildir(path):
                for sub in ("new", "cur"):
                    for f in sorted((path / sub).iterdir()):
                        if f.is_file():
                            yield _file_item(f, tower=tower, server=server, reason=reason,
                                             spool=False)
                continue
            for root, dirs, files in os.walk(path):
                dirs.sort()
                root_path = Path(root)
                if _is_maildir(root_path):
                    dirs[:] = []
                    yield from discover([root_path], tower=tower, server=server, reason=reason)
                    continue
                for name in sorted(files):
                    f = root_path / name
                    if name.endswith(SIDECAR_SUFFIX) and f.with_name(name[: -len(SIDECAR_SUFFIX)]).exists():
                        continue
                    yield from discover([f], tower=tower, server=server, reason=reason)
        elif path.is_file():
            if _is_mbox(path) and path.stat().st_size > 0 and _mbox_count(path) > 1:
                yield from _mbox_items(path, tower=tower, server=server, reason=reason)
            else:
                yield _file_item(path, tower=tower, server=server, reason=reason, spool=False)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


def _mbox_count(path: Path) -> int:
    count = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"From "):
                count += 1
                if count > 1:
                    break
    return count


def spool_items(incoming: Path, *, settle: float = 0.0) -> Iterator[IngestItem]:
    """``incoming/<tower>/<server>/<file>``: what towers copy in.

    Towers write ``name.tmp`` (or a dot-file) and rename it when complete; those
    and ``<file>.json`` sidecars are not messages themselves. ``settle`` leaves alone
    files modified less than that many seconds ago, for a tower that copies in place
    instead of renaming: taking a file while it is still being written would store
    a truncated message and then delete the file the tower is still writing to.
    """
    if not incoming.is_dir():
        return
    newest = time.time() - settle
    for tower_dir in sorted(p for p in incoming.iterdir() if p.is_dir()):
        for server_dir in sorted(p for p in tower_dir.iterdir() if p.is_dir()):
            # one listing per folder: file types and sidecars from it, the folder resolved once
            # (a stat and a realpath per file were a tenth of the ingest time at 100k)
            try:
                entries = {e.name: e for e in os.scandir(server_dir)}
            except FileNotFoundError:
                continue
            real = server_dir.resolve()
            for name in sorted(entries):
                entry = entries[name]
                if name.startswith(".") or name.endswith(SPOOL_SKIP_SUFFIXES):
                    continue
                f = server_dir / name
                try:
                    if not entry.is_file():
                        continue
                    item = _file_item(f, tower=tower_dir.name, server=server_dir.name, reason="",
                                      spool=True, resolved=None if entry.is_symlink() else real / name,
                                      sidecar=_is_file(entries.get(name + SIDECAR_SUFFIX)))
                    if settle and max(os.stat(p).st_mtime for p in item.spool_files) > newest:
                        continue
                except FileNotFoundError:      # taken meanwhile by the tower or an operator
                    continue
                yield item


def _is_file(entry: os.DirEntry[str] | None) -> bool:
    return entry is not None and entry.is_file()


class _SpoolRemover:
    """Removes spool files that are durable in the quarantine, on a few threads beside the
    next batch: removing a file frees its blocks, which costs 0.5-3 ms on this kind of disk
    (more than reading, hashing and indexing the message), and several run at once.

    Only files of a committed batch are handed over, so a crash before their removal leaves
    files that a later sweep takes again as no-ops (their sighting ids are known)."""

    THREADS = 4

    def __init__(self) -> None:
        self._threads: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def remove(self, paths: list[Path]) -> None:
        if not paths:
            return
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="spool-remove")
        step = max(1, len(paths) // self.THREADS + 1)
        self._pending += [self._threads.submit(_unlink_all, paths[i:i + step])
                          for i in range(0, len(paths), step)]

    def finish(self) -> None:
        """Wait for every removal; the first error (not "already gone") is raised."""
        if self._threads is None:
            return
        try:
            for future in self._pending:
                future.result()
        finally:
            self._threads.shutdown(wait=True)
            self._threads, self._pending = None, []


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@dataclass
class _Prepared:
    """An item read and stored (``put``, ``header``), or why it is not mail (``why``).

    ``seen_at`` and ``date`` are the stamps of its arrival and its Date header, made where
    it was prepared (a worker process) so the serial part of the batch does not."""

    put: PutResult | None = None
    header: HeaderSummary | None = None
    why: str = ""
    data: bytes | None = None
    seen_at: str = ""
    date: str | None = None


# One job for a worker: the file to read (or the bytes, for an item held in memory), its
# size as listed and when it arrived.
_Job = tuple[str | None, bytes | None, int, dt.datetime | None]
_worker_store: ObjectStore | None = None
_PR_SET_PDEATHSIG = 1


def _start_worker(root: Path, access: object, parent: int | None) -> None:
    """A worker dies with the ingest that started it: a forked worker holds copies of the
    ingest's descriptors, the spool lock among them, and an orphan would keep the spool
    locked (and wait on its queue for ever) after the ingest was killed."""
    global _worker_store
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:     # died before the line above
        os._exit(1)
    _worker_store = ObjectStore(root, access)  # type: ignore[arg-type]


def _prepare_jobs(max_message: int, jobs: list[_Job]) -> list[_Prepared]:
    """A worker process's share of a batch, in order (see :meth:`Ingester._prepare`)."""
    assert _worker_store is not None
    return [_prepare_one(_worker_store, max_message, job) for job in jobs]


def _prepare_one(store: ObjectStore, max_message: int, job: _Job) -> _Prepared:
    path, data, size, received_at = job
    if size > max_message:
        return _Prepared(why=f"larger than the {max_message}-byte message limit")
    if data is None:
        try:
            with open(path, "rb") as fh:  # type: ignore[arg-type]
                data = fh.read()
        except OSError as exc:
            return _Prepared(why=f"unreadable: {exc}")
    why = looks_like_mail(data)
    if why is not None:
        # a file is hashed again from disk by _fail: a batch does not hold its junk in memory
        return _Prepared(why=why, data=data if path is None else None)
    header = summarize_headers(data)
    return _Prepared(put=store.put_bytes(data, durable=False), header=header, seen_at=stamp(received_at),
                     date=stamp(header.date) if header.date else None)


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` when this is the process's only thread (fast: nothing to import; and
    ProcessPoolExecutor forks every worker before it starts its own thread); a fork server
    otherwise (the UI runs the spool watch beside other threads, whose locks a fork could copy
    held)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Ingester:
    """Takes items in batches and makes them durable in the quarantine.

    A batch's items are read, checked, hashed, stored (not yet synced) and summarised by
    worker processes (``WORKERS``; the header summary is Python that holds the interpreter,
    so threads could not run two at once), while this process commits the batch before.
    The serial part left here is the batch's bookkeeping: the journal lines, one
    ``executemany`` per kind of index row, and the removal of the spool files."""

    WORKERS = max(1, min(4, os.cpu_count() or 1))
    POOL_MIN = 64         # a batch smaller than this is prepared here: no processes to start
    CHUNK = 25            # items per job sent to a worker

    def __init__(self, quarantine: Quarantine, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 batch: int = BATCH, actor: str = "ingest", override_reason: str = ""):
        self.q = quarantine
        self.max_message = max_message
        self.batch = batch
        self.actor = actor
        self.override_reason = override_reason
        self._remover = _SpoolRemover()
        self._workers: Executor | None = None
        self.prepared_by_workers = 0        # items handed to worker processes (for the record)

    def run(self, items: Iterable[IngestItem]) -> IngestSummary:
        """Batches in order; the next batch is prepared while the one before commits."""
        summary = IngestSummary()
        waiting: tuple[list[IngestItem], Iterable[_Prepared]] | None = None
        try:
            for batch in self._batches(items):
                with storage_errors():
                    started = (batch, self._start(batch))
                if waiting is not None:
                    summary.merge(self._batch(*waiting))
                waiting = started
            if waiting is not None:
                summary.merge(self._batch(*waiting))
        finally:
            if self._workers is not None:
                self._workers.shutdown(wait=True, cancel_futures=True)
                self._workers = None
            self._remover.finish()          # nothing is left to remove once run returns
        return summary

    def _batches(self, items: Iterable[IngestItem]) -> Iterator[list[IngestItem]]:
        pending: list[IngestItem] = []
        for item in items:
            pending.append(item)
            if len(pending) >= self.batch:
                yield pending
                pending = []
        if pending:
            yield pending

    def _start(self, items: list[IngestItem]) -> Iterable[_Prepared]:
        """Hand a batch to the workers; its results come back in the items' order."""
        if len(items) < self.POOL_MIN:      # e.g. one message (the HTTP ingest): prepared here,
            return map(self._prepare, items)  # as the batch is taken (its errors are the batch's)
        if self._workers is None:
            context = _pool_context()
            parent = os.getpid() if context.get_start_method() == "fork" else None
            self._workers = ProcessPoolExecutor(
                max_workers=self.WORKERS, mp_context=context, initializer=_start_worker,
                initargs=(self.q.store.root, self.q.store.access, parent))
        # files are read by the workers; an item held in memory (an mbox message) is prepared here
        jobs: list[_Job] = []
        here: set[int] = set()
        for n, item in enumerate(items):
            if item.original is not None and item.read == item.original.read_bytes:
                jobs.append((str(item.original), None, item.size, item.received_at))
            else:
                here.add(n)
        self.prepared_by_workers += len(jobs)
        futures = [self._workers.submit(_prepare_jobs, self.max_message, jobs[i:i + self.CHUNK])
                   for i in range(0, len(jobs), self.CHUNK)]

        def in_order() -> Iterator[_Prepared]:
            done = (prepared for future in futures for prepared in future.result())
            for n in range(len(items)):
                yield self._prepare(items[n]) if n in here else next(done)

        return in_order()

    def _batch(self, items: list[IngestItem], ready: Iterable[_Prepared]) -> IngestSummary:
        """One batch, all or nothing acknowledged: a full disk raises ``QuarantineUnavailable``
        before anything is reported as taken, and leaves the spool files in place."""
        with storage_errors():
            return self._store_batch(items, ready)

    def _store_batch(self, items: list[IngestItem], ready: Iterable[_Prepared]) -> IngestSummary:
        summary = IngestSummary()
        messages: dict[str, NewMessage] = {}
        sightings: list[Sighting] = []
        failures: list[FailedInput] = []
        events: list[dict[str, object]] = []
        done: list[IngestItem] = []
        for item, prepared in zip(items, ready, strict=True):
            failure = self._accept(item, prepared, messages, sightings, events, summary)
            if failure is not None:
                failures.append(failure)
                events.append({"event": "failed", **failure.__dict__, "actor": self.actor})
                summary.failed += 1
                summary.failures.append(FailedItem(item.source, failure.reason, failure.stored_as))
            done.append(item)
        self.q.store.sync()
        crash_point("ingest.objects")
        with self.q.writing():
            self.q.journal.append(events)
            crash_point("ingest.journaled")
            known = self.q.index.known(messages)
            before = self.q.index.known_sightings(s.id for s in sightings)
            added = self.q.index.record(messages.values(), sightings, actor=self.actor)
            if failures:
                self.q.index.record_failed(failures, actor=self.actor)
        crash_point("ingest.indexed")
        first: set[str] = set()
        for msg in summary.messages:          # a second copy in the same batch is not new
            msg.new = msg.sha256 not in known and msg.sha256 not in first
            first.add(msg.sha256)
        summary.repeated = len(before)
        summary.accepted = len({m.sha256 for m in summary.messages if m.new})
        summary.duplicates = added - summary.accepted
        self._remover.remove([path for item in done for path in item.spool_files])
        return summary

    def _prepare(self, item: IngestItem) -> _Prepared:
        """Read, check, store (not yet synced) and summarise one item, in this process."""
        if item.size > self.max_message:
            return _Prepared(why=f"larger than the {self.max_message}-byte message limit")
        try:
            data = item.read()
        except OSError as exc:
            return _Prepared(why=f"unreadable: {exc}")
        return _prepare_one(self.q.store, self.max_message,
                            (None if item.original is None else str(item.original), data, item.size,
                             item.received_at))

    def _accept(self, item: IngestItem, prepared: _Prepared, messages: dict[str, NewMessage],
                sightings: list[Sighting], events: list[dict[str, object]],
                summary: IngestSummary) -> FailedInput | None:
        """One prepared item into the batch, in the items' order."""
        if prepared.put is None or prepared.header is None:
            return self._fail(item, prepared.why, prepared.data)
        put, header = prepared.put, prepared.header
        reason = self.override_reason or item.reason or header.reason or "unspecified"
        seen_at = prepared.seen_at
        identity = item.identity or str(uuid.uuid4())
        sighting_id = hashlib.sha256(f"{identity}|{put.sha256}".encode()).hexdigest()[:32]
        if put.sha256 not in messages:
            messages[put.sha256] = NewMessage(
                sha256=put.sha256, size=put.size, message_id=header.message_id,
                from_addr=header.from_addr, to_addrs=header.to_addrs, subject=header.subject,
                date=prepared.date, attachment_names=header.attachment_names,
                defects=header.defects)
        sighting = Sighting(id=sighting_id, sha256=put.sha256, tower=item.tower,
                            server=item.server, reason=reason, seen_at=seen_at, source=item.source)
        sightings.append(sighting)
        events.append({"event": "sighting", **sighting.__dict__, "actor": self.actor})
        if header.defects:
            summary.flagged += 1
        summary.messages.append(IngestedMessage(put.sha256, item.source, True, header.subject,
                                                header.defects))
        return None

    def _fail(self, item: IngestItem, reason: str, data: bytes | None = None) -> FailedInput:
        """Keep what is not mail in ``failed/`` with a reason file; never drop it."""
        day = utc_day()
        folder = self.q.failed_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        if data is not None:
            content_id = hashlib.sha256(data).hexdigest()
        elif item.original is not None:
            content_id = sha256_file(item.original)
        else:
            content_id = uuid.uuid4().hex
        failure_id = hashlib.sha256(f"{item.identity or uuid.uuid4()}|{content_id}".encode()).hexdigest()[:32]
        target = folder / f"{content_id[:16]}-{failure_id[:8]}"
        if item.spool_files and item.original is not None:
            os.replace(item.original, target)
            item.spool_files = [p for p in item.spool_files if p != item.original]
        elif item.original is not None:
            shutil.copyfile(item.original, target)
        else:
            target.write_bytes(data or b"")
        failure = FailedInput(
            id=failure_id, at=stamp(), reason=reason, size=item.size, source=item.source,
            stored_as=str(target.relative_to(self.q.root)), tower=item.tower, server=item.server)
        reason_file = target.with_name(target.name + ".reason.json")
        reason_file.write_text(json.dumps({**failure.__dict__, "sha256": content_id}, indent=2) + "\n",
                               encoding="utf-8")
        return failure


def ingest_paths(q: Quarantine, paths: Iterable[Path], *, tower: str = "", server: str = "",
                 reason: str = "", max_message: int = DEFAULT_MAX_MESSAGE,
                 actor: str = "ingest") -> IngestSummary:
    """Ingest files, folders, Maildirs and mboxes; the spool folder is read as a spool."""
    paths = [Path(p) for p in paths]
    ingester = Ingester(q, max_message=max_message, actor=actor, override_reason=reason)
    spool = [p for p in paths if p.resolve() == q.incoming.resolve()]
    items: list[IngestItem] = []
    for path in paths:
        if path not in spool:
            items.extend(discover([path], tower=tower, server=server))
    summary = ingester.run(items)
    if spool:
        with spool_lock(q):
            summary.merge(ingester.run(spool_items(q.incoming)))
    return summary


def spool_lock(q: Quarantine, *, wait: bool = True) -> contextlib.AbstractContextManager[None]:
    """One reader of the spool at a time (``quarantine/spool.lock``): two readers could
    both take a file, and the second would find it gone half-way."""
    return file_lock(q.root / SPOOL_LOCK, wait=wait)


def ingest_spool(q: Quarantine, *, max_message: int = DEFAULT_MAX_MESSAGE, settle: float = 0.0,
                 actor: str = "ingest", wait: bool = True) -> IngestSummary:
    """Everything that has settled in ``incoming/`` now, under the spool lock (``wait=False``:
    raise ``LockBusy`` at once when another reader holds it)."""
    with spool_lock(q, wait=wait):
        return Ingester(q, max_message=max_message, actor=actor).run(
            spool_items(q.incoming, settle=settle))


def ingest_bytes(q: Quarantine, data: bytes, *, tower: str, server: str, reason: str,
                 source: str, received_at: dt.datetime | None = None,
                 max_message: int = DEFAULT_MAX_MESSAGE, actor: str = "ingest") -> IngestSummary:
    """One message from memory (the HTTP ingest): the same checks and durability as the spool."""
    item = IngestItem(source=source, read=lambda: data, size=len(data), tower=tower,
                      server=server, reason=reason, received_at=received_at,
                      identity=str(uuid.uuid4()))
    return Ingester(q, max_message=max_message, actor=actor).run([item])
