"""The scan result cache: (rule key, file sha256) -> matches, and which pairs were scanned at all.

Matches are few, so each matching pair is a row. Non-matches are the rule, and a
row per (rule, file) would be millions; instead a *batch* records "these rule
keys were scanned over these files", and a pair is known when some batch holds
both. A batch's files are one *file set* (their sha256s end to end, kept once however
many batches share it), so a cold test of 1,000 rules over 4,000 files writes about
1,000 rows, and a re-test reads a few and adds a few.

The same file also keeps each test run's finished per-rule results (``rule_results``,
see ``testing.py``), so a re-test rebuilds only the results that could have changed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

from workbench.corpus import runmemo
from workbench.corpus.database import open_database, transaction
from workbench.corpus.scanner import RuleHit, StringHit
from workbench.document import iso, utcnow

CACHE_NAME = "scan-cache.sqlite"
RESULT_SETS_KEPT = 8           # saved results are kept for this many corpus selections
_CHUNK = 500
_FEW_RULES = 200             # more, and saved results are read for the whole corpus selection


class KnownKey(NamedTuple):
    """A key compiled before: known to compile, with libyara's warnings about it."""

    layout: str                                   # the rule text the lines were counted in
    warnings: tuple[tuple[int, str], ...]         # (line within the rule, message)

    def messages(self, start_line: int) -> list[str]:
        """The warnings as reported, for the rule starting at ``start_line`` of its file."""
        return [f"line {start_line + line}: {text}" for line, text in self.warnings]


class SavedResult(NamedTuple):
    key: str
    variant: str
    result: bytes

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
CREATE TABLE IF NOT EXISTS batch_shas (         -- before file_sets: a copy per batch
    batch INTEGER PRIMARY KEY,
    shas BLOB NOT NULL                             -- sorted sha256 hex, 64 bytes each, no separator
);
CREATE TABLE IF NOT EXISTS file_sets (            -- each distinct set of files once
    digest TEXT PRIMARY KEY,                       -- sha256 of ``shas``
    shas BLOB NOT NULL                             -- sorted sha256 hex, 64 bytes each, no separator
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_sets (
    batch INTEGER PRIMARY KEY,
    file_set TEXT NOT NULL
);
DROP TABLE IF EXISTS rule_keys;                    -- warnings kept with absolute lines, replaced by:
CREATE TABLE IF NOT EXISTS compiled_keys (
    key TEXT PRIMARY KEY,
    layout TEXT NOT NULL,                          -- the rule text its warnings' lines were counted in
    warnings TEXT NOT NULL DEFAULT '[]'            -- [[line within the rule, message], ...]
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_results (          -- finished per-rule results (testing.py)
    corpora TEXT NOT NULL,                         -- the tested corpora and their states, as a digest
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    variant TEXT NOT NULL,                         -- what else the result depends on (its hash metadata)
    result BLOB NOT NULL,
    PRIMARY KEY (corpora, rule)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS result_sets (
    corpora TEXT PRIMARY KEY,
    used INTEGER NOT NULL                          -- a counter: the least recently used sets go first
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
        self.db = open_database(self.path, _SCHEMA + runmemo.SCHEMA)
        self._batch_files: dict[int, frozenset[str]] = {}
        self._by_set: dict[str, frozenset[str]] = {}       # file set digest -> its files

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
            row = self.db.execute("SELECT s.digest, s.shas FROM batch_sets b JOIN file_sets s "
                                  "ON s.digest = b.file_set WHERE b.batch=?", (batch,)).fetchone()
            if row is None:                # a cache written before file_sets
                old = self.db.execute("SELECT shas FROM batch_shas WHERE batch=?", (batch,)).fetchone()
                row = None if old is None else (hashlib.sha256(old[0]).hexdigest(), old[0])
            if row is not None:
                files = self._by_set.get(row[0])       # batches over the same files share a set
                if files is None:
                    text = bytes(row[1]).decode("ascii")
                    files = self._by_set[row[0]] = frozenset(text[i:i + 64]
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

    def known_keys(self, keys: Iterable[str]) -> dict[str, KnownKey]:
        """Keys compiled before (so known to compile), with the libyara warnings they had."""
        out: dict[str, KnownKey] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            for key, layout, warnings in self.db.execute(
                    f"SELECT key, layout, warnings FROM compiled_keys WHERE key IN ({marks})", chunk):
                out[key] = KnownKey(layout, () if warnings == "[]" else
                                    tuple((int(line), str(text)) for line, text in json.loads(warnings)))
        return out

    # -- recording ----------------------------------------------------------------------

    def record(self, keys: Iterable[str], shas: Iterable[str],
               hits: Iterable[tuple[str, str, RuleHit]] = (),
               compiled: dict[str, KnownKey] | None = None) -> None:
        """One batch: ``keys`` were scanned over ``shas``; ``hits`` are (key, sha, hit) matches.

        ``shas`` given as a list are taken as distinct and kept in that order (sorting
        4,000 of them was a twentieth of a re-test); other collections are sorted. A
        file set is kept once per order it comes in; the caller's order is deterministic.
        ``compiled`` (keys that compiled, with their warnings) goes in the same transaction.
        """
        keys = list(dict.fromkeys(keys))
        shas = shas if isinstance(shas, list) else sorted(set(shas))
        batch = None
        if not compiled and (not keys or not shas):
            return
        with self._transaction() as db:
            if compiled:
                db.executemany("INSERT OR REPLACE INTO compiled_keys(key, layout, warnings) VALUES (?,?,?)",
                               [(k, c.layout, json.dumps([list(w) for w in c.warnings]))
                                for k, c in compiled.items()])
            if not keys or not shas:
                return
            batch = db.execute("INSERT INTO batches(created) VALUES (?)",
                               (iso(utcnow()),)).lastrowid
            db.executemany("INSERT OR IGNORE INTO batch_rules(key, batch) VALUES (?,?)",
                           [(k, batch) for k in keys])
            blob_text = "".join(shas)
            if blob_text.isascii() and set(map(len, shas)) == {64}:
                blob = blob_text.encode("ascii")
                digest = hashlib.sha256(blob).hexdigest()
                db.execute("INSERT OR IGNORE INTO file_sets(digest, shas) VALUES (?,?)", (digest, blob))
                db.execute("INSERT INTO batch_sets(batch, file_set) VALUES (?,?)", (batch, digest))
            else:                          # not sha256 hex (never from the store): a row each
                db.executemany("INSERT OR IGNORE INTO batch_files(batch, sha256) VALUES (?,?)",
                               [(batch, s) for s in shas])
            db.executemany(
                "INSERT OR REPLACE INTO matches(key, sha256, total, too_many, hits) "
                "VALUES (?,?,?,?,?)",
                [(k, s, h.total, int(h.too_many), _encode_hits(h.hits)) for k, s, h in hits])
        if batch is not None:
            self._batch_files[int(batch)] = frozenset(shas)

    # -- finished results ---------------------------------------------------------------

    def saved_results(self, corpora: str, rules: Iterable[str]) -> dict[str, tuple[str, str, str, bytes]]:
        """(rule, key, variant, result) saved for these rule names over the corpora ``corpora`` stands for."""
        names = list(dict.fromkeys(rules))
        cursor = self.db.cursor()
        cursor.row_factory = None     # the rows as they come: a named tuple each would cost
        if len(names) > _FEW_RULES:     # most of a ruleset: reading every row is 4x faster than IN
            wanted = set(names)
            return {row[0]: row for row in cursor.execute(
                "SELECT rule, key, variant, result FROM rule_results WHERE corpora=?", (corpora,))
                if row[0] in wanted}
        marks = ",".join("?" * len(names))
        return {row[0]: row for row in cursor.execute(
            f"SELECT rule, key, variant, result FROM rule_results WHERE corpora=? AND rule IN ({marks})",
            (corpora, *names))}

    def save_results(self, corpora: str, results: dict[str, SavedResult]) -> None:
        """Keep results (by rule name, replacing older ones); results of all but the
        :data:`RESULT_SETS_KEPT` most recently saved corpus selections go."""
        if not results:
            return
        with self._transaction() as db:
            used = db.execute("SELECT COALESCE(MAX(used), 0) + 1 FROM result_sets").fetchone()[0]
            db.execute("INSERT OR REPLACE INTO result_sets(corpora, used) VALUES (?,?)", (corpora, used))
            db.executemany("INSERT OR REPLACE INTO rule_results(corpora, rule, key, variant, result) "
                           "VALUES (?,?,?,?,?)",
                           [(corpora, rule, r.key, r.variant, r.result) for rule, r in results.items()])
            stale = [row[0] for row in db.execute(
                "SELECT corpora FROM result_sets ORDER BY used DESC LIMIT -1 OFFSET ?",
                (RESULT_SETS_KEPT,))]
            for old in stale:
                db.execute("DELETE FROM rule_results WHERE corpora=?", (old,))
                db.execute("DELETE FROM result_sets WHERE corpora=?", (old,))

    # -- whole runs ---------------------------------------------------------------------

    def saved_run(self, corpora: str, files: Sequence[str], inputs: list[str] | None = None
                  ) -> Any | None:
        """The report of a run over ``corpora`` whose rule files have not changed since."""
        return runmemo.lookup(self.db, corpora, files, inputs)

    def save_run(self, corpora: str, files: Sequence[str], loaded: Sequence[Path], report: Any,
                 *, started: float) -> None:
        runmemo.save(self.db, corpora, files, loaded, report, started=started)

    def stats(self) -> dict[str, int]:
        """Row counts; ``batch_files`` counts (batch, file) pairs recorded."""
        tables = ("batches", "batch_rules", "batch_files", "matches", "compiled_keys", "file_sets",
                  "rule_results")
        out = {table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
               for table in tables}
        out["batch_files"] += self.db.execute(
            "SELECT COALESCE(SUM(LENGTH(shas)), 0) / 64 FROM batch_shas").fetchone()[0]
        out["batch_files"] += self.db.execute(
            "SELECT COALESCE(SUM(LENGTH(s.shas)), 0) / 64 FROM batch_sets b "
            "JOIN file_sets s ON s.digest = b.file_set").fetchone()[0]
        return out

    def clear(self) -> None:
        with self._transaction() as db:
            for table in ("batches", "batch_rules", "batch_files", "batch_shas", "file_sets",
                          "batch_sets", "matches", "compiled_keys", "rule_results", "result_sets",
                          "test_runs"):
                db.execute(f"DELETE FROM {table}")
        self._batch_files.clear()
        self._by_set.clear()


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
