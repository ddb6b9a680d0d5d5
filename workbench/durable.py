"""Writing files so that a crash leaves the old content or the new, never half of either."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from workbench.errors import Kind, WorkbenchError

CRASH_ENV = "WORKBENCH_CRASH_AT"
_crash_passes: dict[str, int] = {}


class LockBusy(WorkbenchError):
    """Another process (or another open of the lock file) holds the lock."""

    kind = Kind.CONFLICT


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a folder (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crash_point(step: str) -> None:
    """Die here, as by ``kill -9``, when ``$WORKBENCH_CRASH_AT`` names this step.

    The fault-injection tests run real processes with ``WORKBENCH_CRASH_AT=ingest.journaled``
    (or ``ingest.journaled@3``: at the third pass) and check that nothing acknowledged is lost.
    Unset, it costs one dictionary lookup.
    """
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _crash_passes[step] = _crash_passes.get(step, 0) + 1
    if _crash_passes[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


KEEP_MODE = None
"""``mode=KEEP_MODE``: the mode of the file replaced, or an ordinary new file's (0666 less the umask)."""


def _umask() -> int:
    """The process umask, read without setting it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _mode_for(path: Path, mode: int | None) -> int:
    if mode is not None:
        return mode
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, mode: int | None = 0o644,
                  sync_folder: bool = False, durable: bool = True) -> Iterator[BinaryIO]:
    """A new file object that becomes ``path`` when the ``with`` block ends without error.

    The temporary file is made by ``mkstemp`` in the target folder (``O_CREAT | O_EXCL``,
    a fresh random name), so a file or symlink planted beside the target is never opened
    or followed, two writers never share a temporary file, and the target appears
    complete or not at all. ``mode`` is set before any byte is written; ``KEEP_MODE``
    keeps the mode of the file replaced (files people edit, such as rule files).
    ``durable=False`` skips the fsync, for caches that are rebuilt when lost: still
    never half a file, but a crash may leave the old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path, mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w+b") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_folder:
        fsync_path(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int | None = 0o644,
                 sync_folder: bool = False, durable: bool = True) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it, rename it over ``path``.

    ``mode`` is set before any byte is written, so a secret (``0o600``) is never readable
    by others, not even for a moment. ``sync_folder`` also makes the rename durable.
    """
    path = Path(path)
    with atomic_output(path, mode=mode, sync_folder=sync_folder, durable=durable) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, wait: bool = True,
              shared: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    The lock belongs to the open file, so it is released when the holder exits or dies,
    and two opens in one process exclude each other as two processes do. With
    ``wait=False`` a held lock raises :class:`LockBusy` at once instead of waiting.
    ``shared`` takes a shared lock: many holders at once, none while an exclusive one
    is held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:             # another user's lock file: flock needs only a read
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                        | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
