"""Serving the repository's static files with strong ETags, If-None-Match and Range.

Only ``metadata/<name>`` and ``targets/<name>`` are served: no folders, no hidden or
temporary files, no symbolic links. The ETag is the file's SHA-256, computed once per
change of the file (inode, size, mtime); small files are also kept in memory, so a
no-change poll (``If-None-Match`` on ``timestamp.json``) costs a ``stat`` and a 304.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

SERVED_FOLDERS = ("metadata", "targets")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}")
# Files that change in place; everything else is written once under a new name.
MUTABLE = {("metadata", "timestamp.json"), ("metadata", "root.json")}
CACHE_MUTABLE = "no-cache"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
SMALL_FILE = 1 << 20
MAX_CACHED_FILES = 512


@dataclass(frozen=True)
class RepositoryFile:
    path: Path
    kind: str                  # "metadata" or "targets"
    size: int
    etag: str                  # quoted, strong
    content_type: str
    cache_control: str
    stat_result: os.stat_result
    data: bytes | None         # the content when small


class RepositoryFiles:
    """Look up a served file by its URL path below ``/repository/``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[Path, tuple[tuple[int, int, int], RepositoryFile]] = {}
        self._lock = threading.Lock()

    def lookup(self, rel: str) -> RepositoryFile | None:
        parts = rel.split("/")
        if len(parts) != 2 or parts[0] not in SERVED_FOLDERS or not _NAME.fullmatch(parts[1]):
            return None
        path = self.root / parts[0] / parts[1]
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        entry = self._load(path, parts[0], parts[1], st)
        if entry is None:
            return None
        with self._lock:
            if len(self._cache) >= MAX_CACHED_FILES:
                self._cache.clear()
            self._cache[path] = (stamp, entry)
        return entry

    def _load(self, path: Path, kind: str, name: str, st: os.stat_result) -> RepositoryFile | None:
        digest = hashlib.sha256()
        data: bytes | None = None
        try:
            with open(path, "rb") as fh:
                if st.st_size <= SMALL_FILE:
                    data = fh.read()
                    digest.update(data)
                else:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
        except OSError:
            return None
        if data is not None and len(data) != st.st_size:
            return None        # replaced while read; the next request sees the new file
        content_type = "application/json" if name.endswith(".json") else (
            "application/gzip" if name.endswith(".gz") else "application/octet-stream")
        mutable = (kind, name) in MUTABLE
        return RepositoryFile(path=path, kind=kind, size=st.st_size,
                              etag=f'"{digest.hexdigest()}"', content_type=content_type,
                              cache_control=CACHE_MUTABLE if mutable else CACHE_IMMUTABLE,
                              stat_result=st, data=data)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an ``If-None-Match`` list against our ETag."""
    value = if_none_match.strip()
    if value == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == bare for candidate in value.split(","))
