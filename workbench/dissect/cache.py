"""The dissection cache and catalog: ``state/dissect.sqlite`` (identities, reports, extracted artifacts).

Reports are keyed by (sha256, dissector, dissector version, limits, passwords) and
stored as compressed JSON (:func:`pack`; rows from before compression are plain JSON text,
read the same by :func:`unpack`); :func:`revive` turns them back into the dissector's typed
report. docs/dissection.md describes the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import sqlite3
import threading
import types
import typing
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.document import dumps, to_data, utcnow
from workbench.quarantine.index import retry_busy
from workbench.workspace import Workspace

CACHE_NAME = "dissect.sqlite"
SCHEMA_VERSION = 1
# Bump when identities are computed differently. 2: ssdeep by libfuzzy for every size up to
# Limits.fuzzy_max (version 1 skipped files over 1 MiB). 3: an OOXML package libmagic calls only
# "Microsoft OOXML" gets its MIME type from [Content_Types].xml.
IDENTITY_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    sha256 TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    dissector TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    report TEXT NOT NULL,
    children TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_sha ON reports(sha256);
CREATE TABLE IF NOT EXISTS extracted (
    message_sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (message_sha256, path)
);
CREATE INDEX IF NOT EXISTS extracted_sha ON extracted(sha256);
CREATE TABLE IF NOT EXISTS dissected (
    message_sha256 TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    nodes INTEGER NOT NULL
);
"""


# one message's catalog entry: (message sha256, status, its extracted-artifact rows)
CatalogEntry = tuple[str, str, list[tuple[Any, ...]]]


def cache_path(workspace: Workspace) -> Path:
    return workspace.state / CACHE_NAME


class DissectCache:
    """One SQLite file in WAL mode; safe to share between threads of one process."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self.db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False,
                                  isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        if not readonly:
            retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA synchronous=NORMAL")
            retry_busy(lambda: self.db.executescript(_SCHEMA))

    @classmethod
    def open(cls, workspace: Workspace) -> DissectCache:
        return cls(cache_path(workspace))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> DissectCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = list(rows)
        if not rows:
            return

        def run() -> None:
            with self._lock:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    self.db.executemany(sql, rows)
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
        retry_busy(run)

    def query(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            return retry_busy(lambda: self.db.execute(sql, args).fetchall())

    # -- identities and reports ------------------------------------------------------------

    def get_identity(self, sha256: str) -> dict[str, Any] | None:
        """The identity computed earlier, unless an older way of computing it made it."""
        rows = self.query("SELECT data FROM identities WHERE sha256 = ?", (sha256,))
        if not rows:
            return None
        data: dict[str, Any] = unpack(rows[0]["data"])
        return data if data.get("identity_version") == IDENTITY_VERSION else None

    def put_identity(self, sha256: str, identity: Any) -> None:
        data = {**to_data(identity), "identity_version": IDENTITY_VERSION}
        self._write("INSERT OR REPLACE INTO identities VALUES (?, ?)", [(sha256, pack(data))])

    def get_report(self, key: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM reports WHERE key = ?", (key,))
        return rows[0] if rows else None

    def reports_of(self, sha256: str) -> dict[str, Any]:
        """The newest report of each dissector for ``sha256``, as JSON data."""
        rows = self.query("SELECT dissector, report FROM reports WHERE sha256 = ? ORDER BY at", (sha256,))
        out: dict[str, Any] = {}
        for r in rows:
            data = unpack(r["report"])
            if isinstance(data, dict):
                out[r["dissector"]] = data
        return out

    def put_report(self, key: str, *, sha256: str, dissector: str, version: int, status: str,
                   reason: str, report: Any, children: list[Any]) -> None:
        self._write("INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key, sha256, dissector, version, status, reason, pack(report), pack(children),
                      utcnow().isoformat())])

    # -- the catalog -------------------------------------------------------------------------

    def record_message(self, message_sha256: str, status: str, rows: list[tuple[Any, ...]]) -> None:
        """Replace what the catalog knows about one message's extracted artifacts."""
        self.record_messages([(message_sha256, status, rows)])

    def is_recorded(self, message_sha256: str, status: str, rows: list[tuple[Any, ...]]) -> bool:
        """Whether the catalog already holds exactly this entry for the message: opening a
        message dissected before then writes nothing (no catalog commit, no disk sync)."""
        found = self.query("SELECT status, nodes FROM dissected WHERE message_sha256 = ?", (message_sha256,))
        if not found or found[0]["status"] != status or found[0]["nodes"] != len(rows) + 1:
            return False
        have = self.query("SELECT message_sha256, path, sha256, filename, mime, size, depth, status "
                          "FROM extracted WHERE message_sha256 = ?", (message_sha256,))
        return {tuple(r) for r in have} == {tuple(r) for r in rows}

    def record_messages(self, entries: list[CatalogEntry]) -> None:
        """:meth:`record_message` for many messages in one transaction."""
        if not entries:
            return

        def run() -> None:
            with self._lock:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    for message_sha256, status, rows in entries:
                        self.db.execute("DELETE FROM extracted WHERE message_sha256 = ?", (message_sha256,))
                        self.db.executemany("INSERT OR REPLACE INTO extracted VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                            rows)
                        self.db.execute("INSERT OR REPLACE INTO dissected VALUES (?, ?, ?, ?)",
                                        (message_sha256, utcnow().isoformat(), status, len(rows) + 1))
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
        retry_busy(run)

    def dissected_messages(self) -> set[str]:
        return {r["message_sha256"] for r in self.query("SELECT message_sha256 FROM dissected", ())}


# -- stored JSON: compressed ------------------------------------------------------------------
#
# A value written since format 1 is a BLOB: one byte saying how, then the JSON's UTF-8 bytes.
# 0x01: raw deflate (zlib, wbits -15) primed with _DICTIONARY_1, the skeleton of the
# documents stored most (child lists, a zip's and a message's report, an identity) with
# their values emptied: their key names and punctuation are most of a small report, and a
# dictionary lets even a 200-byte document refer to them. Older rows hold plain JSON TEXT
# and are read as they are. _DICTIONARY_1 must never change: add a 0x02 with a new one.
PACKED_DEFLATE_1 = 1
_DICTIONARY_1 = (
    b'[{"name": "", "sha256": "", "size": 0, "declared_type": "", "segment": "", "note": ""}]'
    b"\n"
    b'{"format": "", "member_count": 0, "members": [{"name": "", "size": 0, "compressed_size": 0, "ratio": 0, "crc": "", "method": "", "flags": 0, "encrypted": false, "is_dir": false, "kind": "", "link_target": "", "extracted": false, "note": "", "passwords_tried": 0}], "encrypted": false, "password": null, "passwords_tried": 0, "overlapping": [], "high_ratio": [], "comment": "", "inner_name": "", "notes": []}'
    b"\n"
    b'{"subject": "", "from_addr": "", "to": "", "cc": "", "reply_to": "", "return_path": "", "sender": "", "date": "", "message_id": "", "headers": [{"name": "", "value": "", "raw": "", "length": 0}], "received": [], "auth": [], "mismatches": [], "defects": [], "parts": [{"position": "", "depth": 0, "content_type": "", "charset": "", "disposition": "", "filename": "", "encoding": "", "size": 0, "defects": [], "child": "", "name": ""}], "preamble": "", "epilogue": "", "text": "", "html": "", "urls": [{"url": "", "defanged": "", "source": ""}], "emails": [], "password_candidates": [""]}'
    b"\n"
    b'{"md5": "", "sha1": "", "ssdeep": "", "tlsh": "", "entropy": 0, "entropy_window": 0, "entropy_windows": [0], "notes": [], "size": 0, "sha256": "", "magic": "", "mime": "", "identity_version": 0}'
    b"\n"
)


def pack(value: Any) -> bytes:
    """A document as stored in the cache (a BLOB): see PACKED_DEFLATE_1."""
    raw = dumps(value, indent=None).encode("utf-8")
    squeeze = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_DICTIONARY_1)
    return bytes([PACKED_DEFLATE_1]) + squeeze.compress(raw) + squeeze.flush()


def unpack(stored: str | bytes) -> Any:
    """A stored document back as JSON data, whichever way it was stored."""
    if isinstance(stored, str):                 # rows written before compression: plain JSON
        return json.loads(stored)
    if stored[:1] == bytes([PACKED_DEFLATE_1]):
        expand = zlib.decompressobj(-15, zdict=_DICTIONARY_1)
        return json.loads(expand.decompress(stored[1:]) + expand.flush())
    raise ValueError(f"dissect cache: a value stored in an unknown way ({stored[:1]!r}): "
                     "written by a newer workbench?")


# -- JSON back to typed documents ---------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _shape(cls: type) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A dataclass's resolved type hints and init fields, worked out once per class: resolving
    hints evaluates every annotation string, and was most of the time of opening a message
    whose reports are cached (70 of 85 ms)."""
    return typing.get_type_hints(cls), tuple(f.name for f in dataclasses.fields(cls) if f.init)


def revive(cls: Any, data: Any) -> Any:
    """Rebuild a dataclass (or container of them) from :func:`workbench.document.to_data` output."""
    if data is None:
        return None
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(cls) if a is not type(None)]
        return revive(options[0], data) if len(options) == 1 else data
    if origin in (list, tuple, set, frozenset):
        (item,) = typing.get_args(cls)[:1] or (Any,)
        return origin(revive(item, v) for v in data)
    if origin is dict:
        _, value_type = typing.get_args(cls) or (str, Any)
        return {k: revive(value_type, v) for k, v in data.items()}
    if dataclasses.is_dataclass(cls) and isinstance(cls, type):
        hints, fields = _shape(cls)
        kwargs = {name: revive(hints.get(name, Any), data[name]) for name in fields if name in data}
        return cls(**kwargs)
    if cls is dt.datetime and isinstance(data, str):
        # to_data wrote it as ISO 8601 with a Z; a cached report must look like a fresh one
        return dt.datetime.fromisoformat(data.replace("Z", "+00:00"))
    return data
