"""Content-addressed object store: raw bytes kept once, under their sha256, written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workbench.durable import fsync_path
from workbench.errors import Kind, WorkbenchError
from workbench.quarantine.access import Access

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class ObjectNotFound(WorkbenchError, KeyError):
    """No object (or more than one, for a prefix) answers to the given id."""

    kind = Kind.NOT_FOUND

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such object"


def is_sha256(text: str) -> bool:
    return bool(_SHA256.match(text))


@dataclass(frozen=True)
class PutResult:
    sha256: str
    size: int
    created: bool          # False when the object was already there (a duplicate)


class ObjectStore:
    """``objects/ab/cd/<sha256>`` files, read-only once written.

    Writes go to ``tmp/`` first and are renamed into place, so a reader or a
    crash never sees a half-written object. ``durable=False`` skips the per-file
    fsync so a batch can call :meth:`sync` once (see ``ingest``); the rename is
    still atomic.
    """

    def __init__(self, root: Path, access: Access | None = None):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.access = access or Access.load(self.root)     # every store honours access.json
        self._folders: set[Path] = set()      # objects/ab/cd/ made by this process

    def ensure(self) -> ObjectStore:
        for folder in (self.root, self.objects, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
            self.access.folder(folder)
        return self

    def path_for(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def resolve(self, ident: str) -> str:
        """The sha256 of the one object whose id starts with ``ident`` (4+ hex characters)."""
        ident = ident.strip().lower()
        if is_sha256(ident):
            if self.exists(ident):
                return ident
            raise ObjectNotFound(f"no stored object {ident}")
        if len(ident) < 4 or not re.fullmatch(r"[0-9a-f]+", ident):
            raise ObjectNotFound(f"{ident!r} is not a sha256 or a prefix of 4+ hex characters")
        folder = self.objects / ident[:2] / ident[2:4]
        found = sorted(p.name for p in folder.iterdir() if p.name.startswith(ident)) if folder.is_dir() else []
        if not found:
            raise ObjectNotFound(f"no stored object with id {ident}")
        if len(found) > 1:
            raise ObjectNotFound(f"id {ident} matches {len(found)} stored objects: give more characters")
        return found[0]

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def put_bytes(self, data: bytes, *, durable: bool = True) -> PutResult:
        sha = hashlib.sha256(data).hexdigest()
        final = self.path_for(sha)
        if self._intact(final, len(data)):
            return PutResult(sha, len(data), False)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                self.access.file(fd, readonly=True)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            return PutResult(sha, len(data), self._install(Path(tmp_name), final, durable))
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def put_stream(self, stream: BinaryIO, *, durable: bool = True,
                   max_bytes: int | None = None) -> PutResult:
        """Store a stream without holding it in memory; raises ValueError past ``max_bytes``."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ValueError(f"object larger than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                self.access.file(fd, readonly=True)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path_for(sha)
            if self._intact(final, size):
                Path(tmp_name).unlink()
                return PutResult(sha, size, False)
            return PutResult(sha, size, self._install(Path(tmp_name), final, durable))
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def _intact(self, final: Path, size: int) -> bool:
        """An existing object of the right size counts as present (fsck checks the hash)."""
        try:
            return final.stat().st_size == size
        except FileNotFoundError:
            return False

    def _install(self, tmp: Path, final: Path, durable: bool) -> bool:
        folder = final.parent
        if folder not in self._folders:     # objects/ab/cd/ once per process, not per object
            self._make_folders(folder)
            self._folders.add(folder)
        if final.exists():
            # A damaged object (wrong size) is replaced by the good copy we hold.
            os.chmod(final, stat.S_IRUSR | stat.S_IWUSR)
        try:
            os.replace(tmp, final)
        except FileNotFoundError:           # the folder went away under us (a manual clean-up)
            self._make_folders(folder)
            os.replace(tmp, final)
        if durable:
            fsync_path(folder)
        return True

    def _make_folders(self, folder: Path) -> None:
        """``objects/ab/cd/`` with the quarantine's folder mode, whatever the umask."""
        for level in (folder.parent, folder):
            try:
                level.mkdir()
            except FileExistsError:
                continue
            self.access.folder(level)

    def loose(self, sha256: str) -> bool:
        """Whether an object's mode is not the configured one (e.g. writable or world-readable)."""
        return stat.S_IMODE(self.path_for(sha256).stat().st_mode) != self.access.object_mode

    def tighten(self, sha256: str) -> None:
        path = self.path_for(sha256)
        if self.access.gid >= 0:
            os.chown(path, -1, self.access.gid)
        os.chmod(path, self.access.object_mode)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self.path_for(sha256), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(sha256) from None

    def read(self, sha256: str, *, limit: int | None = None) -> bytes:
        with self.open(sha256) as fh:
            return fh.read() if limit is None else fh.read(limit)

    def size(self, sha256: str) -> int:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(sha256) from None

    def iter_objects(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for first in sorted(self.objects.iterdir()):
            if not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for obj in sorted(second.iterdir()):
                    if is_sha256(obj.name):
                        yield obj.name

    def verify(self, sha256: str) -> bool:
        digest = hashlib.sha256()
        with self.open(sha256) as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest() == sha256

    def remove(self, sha256: str) -> None:
        path = self.path_for(sha256)
        if path.exists():
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
            path.unlink()

    def clean_tmp(self, min_age_seconds: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes; returns how many.

        Only files older than ``min_age_seconds`` go: another process may be
        writing the young ones right now.
        """
        count = 0
        if self.tmp.is_dir():
            cutoff = time.time() - min_age_seconds
            for leftover in self.tmp.iterdir():
                try:
                    if leftover.stat().st_mtime <= cutoff:
                        leftover.unlink()
                        count += 1
                except FileNotFoundError:
                    continue
        return count

    @staticmethod
    def sync() -> None:
        """Make every write so far durable (one call per batch)."""
        os.sync()



def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
