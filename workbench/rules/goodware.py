"""The goodware string database: how many clean files contain each string (SQLite, WAL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.dissect.strings import iter_strings
from workbench.document import utcnow
from workbench.workspace import Workspace

DB_NAME = "goodware.sqlite"
MIN_LEN = 4
MAX_LEN = 256          # longer strings are stored and looked up by their first MAX_LEN characters
_BATCH = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    strings INTEGER NOT NULL,
    added TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strings (
    text TEXT PRIMARY KEY,
    files INTEGER NOT NULL
) WITHOUT ROWID;
"""


def goodware_path(workspace: Workspace) -> Path:
    return workspace.state / DB_NAME


def string_key(text: str) -> str:
    return text[:MAX_LEN]


def file_strings(data: bytes, *, min_len: int = MIN_LEN) -> set[str]:
    """The distinct strings of a file as the database counts them (ASCII and UTF-16LE merged)."""
    return {string_key(s.text) for s in iter_strings(data, min_len=min_len, wide=True)}


@dataclass
class GoodwareStats:
    path: str
    files: int
    strings: int


class GoodwareDB:
    """Counts, per string, the clean files that contain it. Adding a file twice is a no-op.

    Safe to share between threads (one connection behind a lock); several processes may
    open the same file (SQLite WAL with a busy timeout).
    """

    def __init__(self, path: Path | str, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        if readonly:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30,
                                         check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    @classmethod
    def open_for(cls, workspace: Workspace, *, readonly: bool = False) -> GoodwareDB | None:
        """The workspace's database; None when reading one that does not exist yet."""
        path = goodware_path(workspace)
        if readonly and not path.exists():
            return None
        return cls(path, readonly=readonly)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> GoodwareDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- writing ---------------------------------------------------------------

    def add_file(self, sha256: str, data: bytes) -> bool:
        """Count the strings of one clean file; False if this sha256 was already added."""
        return self.add_files([(sha256, data)]) == 1

    def add_files(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Add many clean files (one transaction per batch); returns how many were new."""
        added = 0
        batch: list[tuple[str, bytes]] = []
        for item in items:
            batch.append(item)
            if len(batch) >= 50:
                added += self._add_batch(batch)
                batch = []
        if batch:
            added += self._add_batch(batch)
        return added

    def _add_batch(self, batch: list[tuple[str, bytes]]) -> int:
        shas = [sha.lower() for sha, _ in batch]
        extracted = {}
        with self._lock:
            known = self._known(shas)
        for (_sha, data), lower in zip(batch, shas, strict=True):
            if lower not in known and lower not in extracted:
                extracted[lower] = (len(data), file_strings(data))
        if not extracted:
            return 0
        now = utcnow().isoformat()
        added = 0
        with self._tx() as conn:
            for sha, (size, strings) in extracted.items():
                # Re-check inside the transaction: another process may have added it meanwhile.
                if conn.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha,)).fetchone():
                    continue
                conn.execute("INSERT INTO files (sha256, size, strings, added) VALUES (?, ?, ?, ?)",
                             (sha, size, len(strings), now))
                conn.executemany(
                    "INSERT INTO strings (text, files) VALUES (?, 1) "
                    "ON CONFLICT(text) DO UPDATE SET files = files + 1",
                    ((s,) for s in strings))
                added += 1
        return added

    # -- reading ---------------------------------------------------------------

    def _known(self, shas: list[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(shas), _BATCH):
            chunk = shas[i:i + _BATCH]
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self._conn.execute(
                f"SELECT sha256 FROM files WHERE sha256 IN ({marks})", chunk))
        return out

    def contains(self, sha256: str) -> bool:
        with self._lock:
            return bool(self._known([sha256.lower()]))

    def frequency(self, strings: Iterable[str]) -> dict[str, int]:
        """For each string, the number of clean files containing it (0 when none)."""
        wanted = list(dict.fromkeys(strings))
        keys = {s: string_key(s) for s in wanted}
        counts: dict[str, int] = {}
        unique_keys = list(dict.fromkeys(keys.values()))
        with self._lock:
            for i in range(0, len(unique_keys), _BATCH):
                chunk = unique_keys[i:i + _BATCH]
                marks = ",".join("?" * len(chunk))
                counts.update(self._conn.execute(
                    f"SELECT text, files FROM strings WHERE text IN ({marks})", chunk).fetchall())
        return {s: counts.get(keys[s], 0) for s in wanted}

    def stats(self) -> GoodwareStats:
        with self._lock:
            files = self._conn.execute("SELECT count(*) FROM files").fetchone()[0]
            strings = self._conn.execute("SELECT count(*) FROM strings").fetchone()[0]
        return GoodwareStats(str(self.path), files, strings)
