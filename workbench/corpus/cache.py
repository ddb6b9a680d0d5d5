"""The scan result cache: (rule key, file sha256) -> matches, and which pairs were scanned at all.

Matches are few, so each matching pair is a row. Non-matches are the rule, and a
row per (rule, file) would be millions; instead a *batch* records "these rule
keys were scanned over these files", and a pair is known when some batch holds
both. A batch's files are one row (their sha256s end to end), so a cold test of
1,000 rules over 4,000 files writes about 1,000 rows, and a re-test reads a few.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from workbench.corpus.database import open_database, transaction
from workbench.corpus.scanner import RuleHit, StringHit
from workbench.document import iso, utcnow

CACHE_NAME = "scan-cache.sqlite"
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_rules (
    key TEXT NOT NULL,
    batch INTEGER NOT NULL,
    PRIMARY KEY (key, batch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_files (       -- before batch_shas: one row per file
    batch INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (batch, sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_shas (
    batch INTEGER PRIMARY KEY,
    shas BLOB NOT NULL                             -- sorted sha256 hex, 64 bytes each, no separator
);
CREATE TABLE IF NOT EXISTS rule_keys (
    key TEXT PRIMARY KEY,
    warnings TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS matches (
    key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    total INTEGER NOT NULL,
    too_many INTEGER NOT NULL DEFAULT 0,
    hits TEXT NOT NULL,
    PRIMARY KEY (key, sha256)
) WITHOUT ROWID;
"""


class ScanCache:
    """``state/scan-cache.sqlite`` (WAL): safe for several testers at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = open_database(self.path, _SCHEMA)
        self._batch_files: dict[int, frozenset[str]] = {}
        self._by_blob: dict[bytes, frozenset[str]] = {}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ScanCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

    # -- what is known ----------------------------------------------------------------

    def coverage(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """For each key, the files it was scanned over (in any batch)."""
        keys = list(dict.fromkeys(keys))
        batches_of: dict[str, list[int]] = {k: [] for k in keys}
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            for key, batch in self.db.execute(
                    f"SELECT key, batch FROM batch_rules WHERE key IN ({marks})", chunk):
                batches_of[key].append(batch)
        combos: dict[tuple[int, ...], frozenset[str]] = {}
        out: dict[str, frozenset[str]] = {}
        for key, batches in batches_of.items():
            combo = tuple(sorted(batches))
            if combo not in combos:
                distinct = list({id(f): f for f in map(self._files_of, combo)}.values())
                combos[combo] = distinct[0] if len(distinct) == 1 else frozenset().union(*distinct)
            out[key] = combos[combo]
        return out

    def _files_of(self, batch: int) -> frozenset[str]:
        files = self._batch_files.get(batch)
        if files is None:
            row = self.db.execute("SELECT shas FROM batch_shas WHERE batch=?", (batch,)).fetchone()
            if row is not None:
                blob = bytes(row[0])
                files = self._by_blob.get(blob)       # batches over the same files share a set
                if files is None:
                    text = blob.decode("ascii")
                    files = self._by_blob[blob] = frozenset(text[i:i + 64]
                                                            for i in range(0, len(text), 64))
            else:                          # a cache written before batch_shas
                files = frozenset(r[0] for r in self.db.execute(
                    "SELECT sha256 FROM batch_files WHERE batch=?", (batch,)))
            self._batch_files[batch] = files
        return files

    def matches(self, keys: Iterable[str], shas: Iterable[str] | None = None
                ) -> dict[tuple[str, str], RuleHit]:
        """Cached matches of ``keys`` (restricted to ``shas`` when given), rule names left blank."""
        wanted = None if shas is None else shas if isinstance(shas, (set, frozenset)) else set(shas)
        rows: list[tuple[str, str, int, int, str]] = []
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            rows.extend(row for row in self.db.execute(
                f"SELECT key, sha256, total, too_many, hits FROM matches WHERE key IN ({marks})",
                chunk) if wanted is None or row[1] in wanted)
        # one JSON document for every row: a thousand small json.loads calls cost twice as much
        decoded = json.loads("[" + ",".join(row[4] for row in rows) + "]") if rows else []
        return {(key, sha): RuleHit("", _hits(stored), total, bool(too_many))
                for (key, sha, total, too_many, _), stored in zip(rows, decoded, strict=True)}

    def known_keys(self, keys: Iterable[str]) -> dict[str, list[str]]:
        """Keys compiled before (so known to compile), with the libyara warnings they had."""
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            for key, warnings in self.db.execute(
                    f"SELECT key, warnings FROM rule_keys WHERE key IN ({marks})", chunk):
                out[key] = [] if warnings == "[]" else json.loads(warnings)
        return out

    # -- recording ----------------------------------------------------------------------

    def record_compiled(self, warnings: dict[str, list[str]]) -> None:
        """Keys that compiled, with their warnings (kept so a cached run reports them too)."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO rule_keys(key, warnings) VALUES (?,?)",
                           [(k, json.dumps(w)) for k, w in warnings.items()])

    def record(self, keys: Iterable[str], shas: Iterable[str],
               hits: Iterable[tuple[str, str, RuleHit]] = (),
               compiled: dict[str, list[str]] | None = None) -> None:
        """One batch: ``keys`` were scanned over ``shas``; ``hits`` are (key, sha, hit) matches.

        ``compiled`` (keys that compiled, with their warnings) goes in the same transaction.
        """
        keys, shas = list(dict.fromkeys(keys)), sorted(set(shas))
        batch = None
        if not compiled and (not keys or not shas):
            return
        with self._transaction() as db:
            if compiled:
                db.executemany("INSERT OR REPLACE INTO rule_keys(key, warnings) VALUES (?,?)",
                               [(k, json.dumps(w)) for k, w in compiled.items()])
            if not keys or not shas:
                return
            batch = db.execute("INSERT INTO batches(created) VALUES (?)",
                               (iso(utcnow()),)).lastrowid
            db.executemany("INSERT OR IGNORE INTO batch_rules(key, batch) VALUES (?,?)",
                           [(k, batch) for k in keys])
            if all(len(s) == 64 and s.isascii() for s in shas):
                db.execute("INSERT INTO batch_shas(batch, shas) VALUES (?,?)",
                           (batch, "".join(shas).encode("ascii")))
            else:                          # not sha256 hex (never from the store): a row each
                db.executemany("INSERT OR IGNORE INTO batch_files(batch, sha256) VALUES (?,?)",
                               [(batch, s) for s in shas])
            db.executemany(
                "INSERT OR REPLACE INTO matches(key, sha256, total, too_many, hits) "
                "VALUES (?,?,?,?,?)",
                [(k, s, h.total, int(h.too_many), _encode_hits(h.hits)) for k, s, h in hits])
        if batch is not None:
            self._batch_files[int(batch)] = frozenset(shas)

    def stats(self) -> dict[str, int]:
        """Row counts; ``batch_files`` counts (batch, file) pairs recorded."""
        out = {table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
               for table in ("batches", "batch_rules", "batch_files", "matches", "rule_keys")}
        out["batch_files"] += self.db.execute(
            "SELECT COALESCE(SUM(LENGTH(shas)), 0) / 64 FROM batch_shas").fetchone()[0]
        return out

    def clear(self) -> None:
        with self._transaction() as db:
            for table in ("batches", "batch_rules", "batch_files", "batch_shas", "matches",
                          "rule_keys"):
                db.execute(f"DELETE FROM {table}")
        self._batch_files.clear()
        self._by_blob.clear()


def _encode_hits(hits: Iterable[StringHit]) -> str:
    return json.dumps([[h.identifier, h.offset, h.length, h.data.hex()] +
                       ([h.before.hex(), h.after.hex()] if h.before is not None and h.after is not None
                        else []) for h in hits], separators=(",", ":"))


def _decode_hits(text: str) -> tuple[StringHit, ...]:
    return _hits(json.loads(text))


def _hits(stored: list[list[Any]]) -> tuple[StringHit, ...]:
    """Hits as stored: ``[id, offset, length, hex]`` plus ``before, after`` hex when known."""
    out = []
    for row in stored:
        if len(row) == 6:
            out.append(StringHit(row[0], row[1], row[2], bytes.fromhex(row[3]),
                                 bytes.fromhex(row[4]), bytes.fromhex(row[5])))
        else:
            out.append(StringHit(row[0], row[1], row[2], bytes.fromhex(row[3])))
    return tuple(out)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]
