"""The append-only journal of what only the index knows: sightings, status, tags.

One JSON object a line. Every ingest host appends only to files of its own,
``quarantine/journal/<YYYY-MM>.<host>.jsonl`` (``host_name.py`` says which name a process
writes as), so appends from several hosts behind a load balancer never meet in one file
and need no lock across hosts. On one host, the writers (threads, processes) take that
host's lock, ``journal/<host>.lock``, so the flock is only ever local. An append writes its
lines whole (a short write, e.g. a full disk, is retried and otherwise rolled back by
truncating to where the append began) and fsyncs before the index is told. A line is
therefore in the journal whole or not at all, and a caller that got no exception may
acknowledge it. ``quarantine reindex`` rebuilds the index from the objects plus this journal.

Each line carries its writer (``host``), that host's sequence number (``seq``: one more
than the host's previous line) and when it was written (``written_at``, never earlier than
the host's previous line, and later than the newest line of any other host's journal the
writer can see: a logical clock, so an event that follows another host's acknowledged
event sorts after it whatever the clocks say). Readers merge all hosts' files in the order
(``written_at``, ``host``, ``seq``): total and the same on every reader. Files of the
single-file layout before per-host journals (``<YYYY-MM>.jsonl``, no ``host``) are read
first, in their own line order, so a quarantine written by older versions replays as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.document import to_data
from workbench.durable import atomic_write, crash_point
from workbench.humanize import stamp

TORN_NAME = "torn-fragments.txt"     # what a repair took out of a single-file journal, kept for the record
ORDER_KEYS = ("host", "seq", "written_at")   # what an append adds to every event
_HOST_FILE = re.compile(r"^(\d{4}-\d{2})\.([a-z0-9._-]+)\.jsonl$")
_TAIL = 8192                          # bytes read back at first when looking for a file's last line

OrderKey = tuple[int, str, str, int, int]


def file_host(path: Path) -> str:
    """The host whose journal ``path`` is, ``""`` for a file of the single-file layout."""
    match = _HOST_FILE.match(path.name)
    return match.group(2) if match else ""


def fragments_name(host: str) -> str:
    """Where torn fragments cut out of ``host``'s files are kept (``""``: single-file layout)."""
    return f"torn-fragments.{host}.txt" if host else TORN_NAME


@dataclass
class TornLine:
    """A journal line that does not parse (the remains of a write that did not finish)."""

    file: str
    line: int
    text: str


class Journal:
    """``quarantine/journal/``: this host (``host``) appends; every host's files are read."""

    def __init__(self, folder: Path, *, host: str, mode: int = 0o640):
        if not host or _HOST_FILE.match(f"2000-01.{host}.jsonl") is None:
            raise ValueError(f"journal host name {host!r}: see quarantine/host_name.py")
        self.folder = Path(folder)
        self.host = host
        self.mode = mode
        self._tails: dict[str, tuple[int, int, dict[str, Any] | None]] = {}   # name: (inode, size, last)

    @property
    def torn_fragments(self) -> Path:
        """Where this host's writers keep the torn tails they cut off."""
        return self.folder / fragments_name(self.host)

    @contextlib.contextmanager
    def _host_lock(self, host: str) -> Iterator[None]:
        """Held by every writer of ``host``'s files on that host (and by a repair of them).
        Opened for each hold: two opens exclude each other, in one process as in two."""
        fd = os.open(os.path.join(self.folder, f"{host}.lock"), os.O_RDWR | os.O_CREAT, self.mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)           # which lets go of the lock

    def _open_locked(self, path: Path) -> int:
        """A single-file-layout journal opened under an exclusive lock (what writers of
        that layout held); reopened if a repair replaced the file while we waited."""
        while True:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, self.mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def append(self, events: Iterable[dict[str, Any]], *, durable: bool = True) -> int:
        data = [to_data(e) for e in events]
        if not data:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._host_lock(self.host):
            seq, written_at = self._next_order()
            for n, event in enumerate(data):
                event.update(host=self.host, seq=seq + n, written_at=written_at)
            lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in data]
            # the month of written_at, which never goes back on one host: the host's last
            # file by name always holds its last line
            name = f"{written_at[:7]}.{self.host}.jsonl"
            path = self.folder / name
            payload = "".join(lines).encode("utf-8")
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, self.mode)
            try:
                self._write_whole(fd, path, payload, durable=durable)
                info = os.fstat(fd)
                self._tails[name] = (info.st_ino, info.st_size, data[-1])
            finally:
                os.close(fd)
        return len(lines)

    def _write_whole(self, fd: int, path: Path, payload: bytes, *, durable: bool) -> None:
        start = self._line_boundary(fd)
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                view = view[written:]
                if view:
                    crash_point("journal.partial")
            if durable:
                os.fsync(fd)
        except BaseException:
            # Roll back to the last whole line: no fragment stays for the next line
            # to be glued onto, and the caller, seeing the error, acknowledges nothing.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
                os.fsync(fd)
            raise

    def _next_order(self) -> tuple[int, str]:
        """This host's next sequence number and the ``written_at`` of the lines about to be
        appended (call holding the host lock): after this host's last line and after the
        newest line of every other host's last file."""
        latest: dict[str, str] = {}
        for name in os.listdir(self.folder):
            match = _HOST_FILE.match(name)
            if match and name > latest.get(match.group(2), ""):
                latest[match.group(2)] = name
        seq, mine, theirs = 0, "", ""
        for host, name in latest.items():
            last = self._last_event(name)
            if last is None:
                continue
            at = str(last.get("written_at", ""))
            if host == self.host:
                seq, mine = _int(last.get("seq")), at
            else:
                theirs = max(theirs, at)
        at = max(stamp(), mine)              # the clock went back: stay on this host's order
        if theirs >= at:
            at = _just_after(theirs) or at
        return seq + 1, at

    def _last_event(self, name: str) -> dict[str, Any] | None:
        """The last whole event in the journal file ``name``. Opened every time (on NFS an
        open is what shows another client's latest writes); read again only when its inode
        or size changed since the last look."""
        try:
            fd = os.open(os.path.join(self.folder, name), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            seen = self._tails.get(name)
            if seen is not None and seen[:2] == (info.st_ino, info.st_size):
                return seen[2]
            event = _last_event(fd, info.st_size)
        finally:
            os.close(fd)
        self._tails[name] = (info.st_ino, info.st_size, event)
        return event

    def _line_boundary(self, fd: int) -> int:
        """The file's size, after cutting a torn tail (a writer that died mid-line before
        this journal rolled back) into the host's fragments file so nothing is glued onto it."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        if os.pread(fd, 1, size - 1) == b"\n":
            return size
        back = min(size, 1 << 20)
        tail = os.pread(fd, back, size - back)
        cut = tail.rfind(b"\n")
        keep = size - back + cut + 1 if cut >= 0 else (0 if back == size else size)
        if keep == size:          # a line longer than 1 MiB: leave it for fsck
            return size
        fragment = os.pread(fd, size - keep, keep)
        self._keep_fragment(fragment, self.host)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return keep

    def _keep_fragment(self, fragment: bytes, host: str) -> None:
        with open(self.folder / fragments_name(host), "ab") as fh:
            fh.write(fragment.rstrip(b"\n") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def files(self) -> list[Path]:
        """Every journal file, of every host and of the single-file layout, by name."""
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event, all hosts merged in replay order; torn lines (see :meth:`torn`) are skipped."""
        events, _ = self.read()
        yield from events

    def read(self, since: dict[str, int] | None = None
             ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The events after the positions ``since`` (from an earlier call), in replay order
        (see the module's docstring), and the new positions. Only whole lines count: one
        being written now is read next time."""
        since = since or {}
        keyed: list[tuple[OrderKey, dict[str, Any]]] = []
        positions: dict[str, int] = {}
        for path in self.files():
            start = since.get(path.name, 0)
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            positions[path.name] = start + end
            host = file_host(path)
            for n, raw in enumerate(data[:end].split(b"\n")):
                event = _parse(raw)
                if event is not None:
                    keyed.append((_order_key(event, path.name, host, start + n), event))
        keyed.sort(key=lambda pair: pair[0])
        return [event for _, event in keyed], positions

    def torn(self) -> list[TornLine]:
        """Lines that do not parse as events: the remains of an interrupted write."""
        found = []
        for path in self.files():
            with open(path, "rb") as fh:
                for n, raw in enumerate(fh, 1):
                    if raw.strip() and _parse(raw) is None:
                        found.append(TornLine(path.name, n,
                                              raw.decode("utf-8", "replace").rstrip("\n")[:200]))
        return found

    def repair(self) -> int:
        """Take torn lines out of the journal (into the fragments file of the host whose file
        it is), keeping any whole event glued onto a fragment; returns how many lines were
        taken out. A file without torn lines is not rewritten."""
        removed = 0
        for path in self.files():
            host = file_host(path)
            if host:
                with self._host_lock(host):
                    removed += self._repair_file(path, host)
                continue
            fd = self._open_locked(path)
            try:
                removed += self._repair_file(path, host)
            finally:
                os.close(fd)
        return removed

    def _repair_file(self, path: Path, host: str) -> int:
        with open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
        kept: list[bytes] = []
        fragments: list[bytes] = []
        for raw in lines:
            if not raw.strip():
                continue
            if _parse(raw) is not None:
                kept.append(raw)
                continue
            salvaged = _salvage(raw)
            if salvaged is None:
                fragments.append(raw)
            else:
                fragments.append(raw[: len(raw) - len(salvaged)])
                kept.append(salvaged)
        if not fragments:
            return 0
        for fragment in fragments:
            self._keep_fragment(fragment, host)
        # A writer of the single-file layout waiting for the lock notices the new file and
        # reopens it; a host's writers wait for the host lock this is called under.
        atomic_write(path, b"".join(k + b"\n" for k in kept), mode=self.mode, sync_folder=True)
        return len(fragments)


def _order_key(event: dict[str, Any], name: str, host: str, line: int) -> OrderKey:
    """Where an event goes in the replay: single-file-layout files first, by name and line;
    then every host's lines by (written_at, host, seq), the line as a last resort."""
    if not host:
        return (0, name, "", line, 0)
    return (1, str(event.get("written_at", "")), host, _int(event.get("seq")), line)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _just_after(at: str) -> str:
    """The stamp one microsecond after ``at`` (``""`` if ``at`` is not a stamp)."""
    if not at.endswith("Z"):
        return ""
    try:
        when = dt.datetime.fromisoformat(at[:-1]).replace(tzinfo=dt.UTC)
    except ValueError:
        return ""
    return stamp(when + dt.timedelta(microseconds=1))


def _last_event(fd: int, size: int) -> dict[str, Any] | None:
    """The last whole event in the first ``size`` bytes of ``fd`` (a line being written or
    torn is passed over)."""
    back = min(size, _TAIL)
    while back:
        chunk = os.pread(fd, back, size - back)
        lines = chunk[: chunk.rfind(b"\n") + 1].split(b"\n")
        # the first piece may be the end of a longer line unless the chunk starts the file
        for raw in reversed(lines if back == size else lines[1:]):
            event = _parse(raw)
            if event is not None:
                return event
        if back == size:
            return None
        back = min(size, back * 8)
    return None


def _parse(raw: bytes) -> dict[str, Any] | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        event = json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def _salvage(raw: bytes) -> bytes | None:
    """The whole event at the end of a line a torn fragment was glued onto, if any."""
    at = raw.find(b'{"', 1)
    while at > 0:
        if _parse(raw[at:]) is not None:
            return raw[at:]
        at = raw.find(b'{"', at + 1)
    return None
