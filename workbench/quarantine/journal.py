"""The append-only journal of what only the index knows: sightings, status, tags.

One JSON object a line in ``quarantine/journal/<YYYY-MM>.jsonl``. An append holds an
exclusive ``flock`` on the file, writes its lines whole (a short write, e.g. a full
disk, is retried and otherwise rolled back by truncating to where the append began) and
fsyncs before the index is told. A line is therefore in the journal whole or not at all,
and a caller that got no exception may acknowledge it. ``quarantine reindex`` rebuilds
the index from the objects plus this journal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.document import to_data, utcnow
from workbench.durable import atomic_write, crash_point

TORN_NAME = "torn-fragments.txt"     # what a repair took out of the journal, kept for the record


@dataclass
class TornLine:
    """A journal line that does not parse (the remains of a write that did not finish)."""

    file: str
    line: int
    text: str


class Journal:
    def __init__(self, folder: Path, *, mode: int = 0o640):
        self.folder = Path(folder)
        self.mode = mode

    def _open_locked(self, path: Path) -> int:
        """The journal file opened for appending under an exclusive lock; reopened if a
        repair replaced the file while we waited for the lock."""
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
        lines = [json.dumps(to_data(e), ensure_ascii=False, sort_keys=True) + "\n" for e in events]
        if not lines:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{utcnow():%Y-%m}.jsonl"
        payload = "".join(lines).encode("utf-8")
        fd = self._open_locked(path)
        try:
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
        finally:
            os.close(fd)
        return len(lines)

    def _line_boundary(self, fd: int) -> int:
        """The file's size, after cutting a torn tail (a writer that died mid-line before
        this journal rolled back) into ``torn-fragments.txt`` so nothing is glued onto it."""
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
        self._keep_fragment(fragment)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return keep

    def _keep_fragment(self, fragment: bytes) -> None:
        with open(self.folder / TORN_NAME, "ab") as fh:
            fh.write(fragment.rstrip(b"\n") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event in order of writing; torn lines (see :meth:`torn`) are skipped."""
        events, _ = self.read()
        yield from events

    def read(self, since: dict[str, int] | None = None
             ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The events after the positions ``since`` (from an earlier call) and the new
        positions. Only whole lines count: one being written now is read next time."""
        since = since or {}
        out: list[dict[str, Any]] = []
        positions: dict[str, int] = {}
        for path in self.files():
            start = since.get(path.name, 0)
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            positions[path.name] = start + end
            for raw in data[:end].split(b"\n"):
                event = _parse(raw)
                if event is not None:
                    out.append(event)
        return out, positions

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
        """Take torn lines out of the journal (into ``torn-fragments.txt``), keeping any whole
        event glued onto a fragment; returns how many lines were taken out."""
        removed = 0
        for path in self.files():
            fd = self._open_locked(path)
            try:
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
                    removed += 1
                    salvaged = _salvage(raw)
                    if salvaged is None:
                        fragments.append(raw)
                    else:
                        fragments.append(raw[: len(raw) - len(salvaged)])
                        kept.append(salvaged)
                if not fragments and len(kept) == len([r for r in lines if r.strip()]):
                    continue
                for fragment in fragments:
                    self._keep_fragment(fragment)
                # A writer waiting for the lock notices the new file and reopens it.
                atomic_write(path, b"".join(k + b"\n" for k in kept), mode=self.mode,
                             sync_folder=True)
            finally:
                os.close(fd)
        return removed


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
