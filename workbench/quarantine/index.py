"""The SQLite index of the quarantine: messages, sightings, failed inputs and the audit log."""

from __future__ import annotations

import builtins
import json
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import Kind, WorkbenchError
from workbench.quarantine.query import STATUSES as STATUSES
from workbench.quarantine.query import Query, parse_query

SCHEMA_VERSION = 2          # 2: the trigram text index (messages_fts)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    sha256 TEXT PRIMARY KEY,
    message_id TEXT NOT NULL DEFAULT '',
    from_addr TEXT NOT NULL DEFAULT '',
    to_addrs TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    date TEXT,
    size INTEGER NOT NULL,
    tower TEXT NOT NULL DEFAULT '',
    server TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    sightings INTEGER NOT NULL DEFAULT 0,
    attachment_names TEXT NOT NULL DEFAULT '',
    attachment_count INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'new',
    tags TEXT NOT NULL DEFAULT '',
    defects TEXT NOT NULL DEFAULT '[]',
    defect_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_first_seen ON messages(first_seen);
CREATE INDEX IF NOT EXISTS messages_last_seen ON messages(last_seen);
CREATE INDEX IF NOT EXISTS messages_tower ON messages(tower COLLATE NOCASE, first_seen);
CREATE INDEX IF NOT EXISTS messages_status ON messages(status COLLATE NOCASE, first_seen);
CREATE INDEX IF NOT EXISTS messages_reason ON messages(reason COLLATE NOCASE, first_seen);
CREATE INDEX IF NOT EXISTS messages_defects ON messages(first_seen) WHERE defect_count > 0;
CREATE TABLE IF NOT EXISTS sightings (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    tower TEXT NOT NULL,
    server TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sightings_sha ON sightings(sha256);
CREATE TABLE IF NOT EXISTS failed (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL,
    source TEXT NOT NULL,
    stored_as TEXT NOT NULL,
    tower TEXT NOT NULL DEFAULT '',
    server TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    sha256 TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_sha ON audit(sha256);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- What dissection found in a message, for free-text search (query.py): the text of its
-- text parts, every name in its tree (archive members too) and the strings of its
-- extracted files, in a trigram index (substring semantics); rowid = the message's rowid.
CREATE VIRTUAL TABLE IF NOT EXISTS message_content USING fts5(
    sha256 UNINDEXED, body, names, strings, tokenize = 'trigram');
-- Every hash of every artifact dissection extracted, to the messages that held it.
CREATE TABLE IF NOT EXISTS artifact_hashes (
    value TEXT NOT NULL,
    message_sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (value, message_sha256, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS artifact_hashes_message ON artifact_hashes(message_sha256);
CREATE TRIGGER IF NOT EXISTS message_content_delete AFTER DELETE ON messages BEGIN
    DELETE FROM message_content WHERE rowid = old.rowid;
    DELETE FROM artifact_hashes WHERE message_sha256 = old.sha256;
END;
"""

# The text index: free text and from:/subject:/name: terms find their rows through a trigram
# FTS5 index (substring semantics, like LIKE) when a term is selective, instead of a LIKE over
# every row; see QuarantineIndex._plan. It keeps its own copy of the three columns and the
# sha256 that queries join on; its rowid mirrors the message's only so the triggers find it.
_FTS_STATEMENTS = (
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        sha256 UNINDEXED, subject, from_addr, attachment_names, tokenize = 'trigram')""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, sha256, subject, from_addr, attachment_names)
        VALUES (new.rowid, new.sha256, new.subject, new.from_addr, new.attachment_names);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        DELETE FROM messages_fts WHERE rowid = old.rowid;
    END""",
    """CREATE TRIGGER messages_fts_update
    AFTER UPDATE OF subject, from_addr, attachment_names ON messages BEGIN
        DELETE FROM messages_fts WHERE rowid = old.rowid;
        INSERT INTO messages_fts (rowid, sha256, subject, from_addr, attachment_names)
        VALUES (new.rowid, new.sha256, new.subject, new.from_addr, new.attachment_names);
    END""",
)
# What a bulk load drops while it loads (``QuarantineIndex.bulk_load``): every secondary
# index of the tables it fills, and the text index with its triggers. Opening an index
# creates them again (``_SCHEMA``, ``_ensure_text_index``), filled from the rows.
_BULK_DROP = (
    *(f"DROP INDEX IF EXISTS {name}" for name in re.findall(
        r"CREATE INDEX IF NOT EXISTS (\w+) ON (?:messages|sightings|audit)\(", _SCHEMA)),
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TABLE IF EXISTS messages_fts",
)
BULK_CHUNK = 100_000      # rows per transaction of a bulk load

# A term that matches at most this many messages is looked up in the text index; a more
# common one is left to LIKE, which finds a first page of common matches by reading a few
# rows in list order (the index would have to list every match before sorting them).
SELECTIVE_MATCHES = 1000

MESSAGE_COLUMNS = (
    "sha256", "message_id", "from_addr", "to_addrs", "subject", "date", "size", "tower",
    "server", "reason", "first_seen", "last_seen", "sightings", "attachment_names",
    "attachment_count", "status", "tags", "defects", "defect_count",
)


class AmbiguousId(WorkbenchError, LookupError):
    kind = Kind.NOT_FOUND


class UnknownId(WorkbenchError, LookupError):
    kind = Kind.NOT_FOUND


class BulkLoadRefused(WorkbenchError):
    """A bulk load into an index that is not empty, or of input ``record`` would not take
    as new messages (a message twice, a sighting of another message)."""

    kind = Kind.CONFLICT


@dataclass
class MessageRow:
    """One quarantined message as the index knows it (the ``--json`` shape of list/show)."""

    sha256: str
    message_id: str
    from_addr: str
    to_addrs: str
    subject: str
    date: str | None
    size: int
    tower: str
    server: str
    reason: str
    first_seen: str
    last_seen: str
    sightings: int
    attachment_names: list[str]
    attachment_count: int
    status: str
    tags: list[str]
    defects: list[str]

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MessageRow:
        return cls(
            sha256=row["sha256"], message_id=row["message_id"], from_addr=row["from_addr"],
            to_addrs=row["to_addrs"], subject=row["subject"], date=row["date"], size=row["size"],
            tower=row["tower"], server=row["server"], reason=row["reason"],
            first_seen=row["first_seen"], last_seen=row["last_seen"], sightings=row["sightings"],
            attachment_names=_split_names(row["attachment_names"]),
            attachment_count=row["attachment_count"], status=row["status"],
            tags=[t for t in row["tags"].split(",") if t], defects=json.loads(row["defects"]),
        )


@dataclass
class Sighting:
    """A tower saw a message: one row per copy received."""

    id: str
    sha256: str
    tower: str
    server: str
    reason: str
    seen_at: str
    source: str = ""


@dataclass
class NewMessage:
    """What ingest learned from a message's headers, for its index row."""

    sha256: str
    size: int
    message_id: str = ""
    from_addr: str = ""
    to_addrs: str = ""
    subject: str = ""
    date: str | None = None
    attachment_names: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


@dataclass
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    sha256: str
    detail: str
    note: str


@dataclass
class FailedInput:
    id: str
    at: str
    reason: str
    size: int
    source: str
    stored_as: str
    tower: str
    server: str


def _split_names(text: str) -> list[str]:
    return [n for n in text.split("\n") if n] if text else []


def _join_tags(tags: Iterable[str]) -> str:
    clean = sorted({t.strip().lower() for t in tags if t.strip()})
    return f",{','.join(clean)}," if clean else ""


def retry_busy(fn: Callable[[], T], *, attempts: int = 50) -> T:
    """Run ``fn``, retrying with jittered backoff while another writer holds the database."""
    delay = 0.005
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if ("locked" not in message and "busy" not in message) or attempt == attempts - 1:
                raise
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")



def journal_audit_rows(sightings: Iterable[Any], failed: Iterable[Any], actors: dict[tuple[str, str], str],
                       old_sightings: set[str], old_failed: set[str]) -> list[tuple[str, str, str, str, str]]:
    """The audit entries (at, actor, action, sha256, detail) a reindex adds for what only the
    journal knew: sightings and failures the live index did not have. Both backends write these."""
    rows: list[tuple[str, str, str, str, str]] = []
    for r in sightings:
        if r["id"] not in old_sightings:
            rows.append((r["seen_at"], actors.get(("sighting", r["id"]), "ingest"), "sighting", r["sha256"],
                         json.dumps({"tower": r["tower"], "server": r["server"],
                                     "reason": r["reason"], "source": r["source"]})))
    for r in failed:
        if r["id"] not in old_failed:
            rows.append((r["at"], actors.get(("failed", r["id"]), "ingest"), "failed", "",
                         json.dumps({"reason": r["reason"], "stored_as": r["stored_as"]})))
    return rows


def sighting_detail(s: Sighting) -> str:
    """The audit detail of a sighting (both backends write it)."""
    return json.dumps({"tower": s.tower, "server": s.server, "reason": s.reason,
                       "source": s.source})


def loaded_message(m: NewMessage, sightings: Sequence[Sighting]) -> tuple[object, ...]:
    """The ``messages`` row (MESSAGE_COLUMNS order) that ``record`` leaves for a new message
    and its sightings, taken in order: each sighting's UPDATE applied in Python."""
    first = last = tower = server = reason = ""
    for s in sightings:
        if s.sha256 != m.sha256:
            raise BulkLoadRefused(f"sighting {s.id!r} is of {s.sha256!r}, not of {m.sha256!r}")
        at = s.seen_at
        new_first = at if first == "" or at < first else first
        if at >= last:
            tower, server, reason = s.tower, s.server, s.reason
        last = at if at > last else last
        first = new_first
    return (m.sha256, m.message_id, m.from_addr, m.to_addrs, m.subject, m.date, m.size, tower,
            server, reason, first, last, len(sightings), "\n".join(m.attachment_names),
            len(m.attachment_names), "new", "", json.dumps(m.defects), len(m.defects))


def resolve_prefix(ident: str, between: Callable[[str, str], list[str]]) -> str:
    """A full sha256 from a sha256 or a unique prefix of one (at least 4 characters);
    ``between(low, high)`` gives at most two stored sha256 in [low, high), in either index."""
    ident = ident.strip().lower()
    if len(ident) < 4:
        raise UnknownId(f"id {ident!r} is too short: give at least 4 characters of the sha256")
    found = between(ident, ident + "g")
    if not found:
        raise UnknownId(f"no quarantined message with id {ident!r}")
    if len(found) > 1:
        raise AmbiguousId(f"id {ident!r} matches more than one message: give more characters")
    return found[0]

class QuarantineIndex:
    """Short transactions over one SQLite file in WAL mode, safe for many processes."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        if not readonly:
            retry_busy(lambda: self.db.executescript(_SCHEMA))
            retry_busy(self._ensure_text_index)
            retry_busy(lambda: self.db.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value WHERE value != excluded.value",
                (str(SCHEMA_VERSION),)))        # written when it changes, not on every open
        self.text_index = self._has_text_index()

    def _has_text_index(self) -> bool:
        return self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone() is not None

    def _ensure_text_index(self) -> None:
        """Create the text index, filled from the messages when the index predates it."""
        if self._has_text_index():
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_text_index():        # not made meanwhile by another process
                for statement in _FTS_STATEMENTS:
                    self.db.execute(statement)
                self.db.execute(
                    "INSERT INTO messages_fts (rowid, sha256, subject, from_addr, attachment_names) "
                    "SELECT rowid, sha256, subject, from_addr, attachment_names FROM messages")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _plan(self, q: Query) -> tuple[str, list[object]]:
        """The WHERE clause and parameters for ``q``: each text term through the text index
        when it is selective (at most SELECTIVE_MATCHES messages), else through LIKE."""
        if not q.text_terms or not self.text_index:
            return q.where, q.params

        def selective(match: str) -> bool:
            try:
                found = self.db.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? "
                    "LIMIT ?)", (match, SELECTIVE_MATCHES + 1)).fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "interrupt" in str(exc).lower():   # the reader was stopped: stop, not LIKE
                    raise
                return False                          # a term FTS5 cannot take: LIKE it is
            return int(found) <= SELECTIVE_MATCHES

        return q.planned(selective)

    def close(self) -> None:
        self.db.close()

    def interrupt(self) -> None:
        """Abort the statement running on this connection (from another thread: a superseded
        UI query); it raises ``sqlite3.OperationalError: interrupted``."""
        self.db.interrupt()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        retry_busy(lambda: self.db.execute("BEGIN IMMEDIATE"))
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            retry_busy(lambda: self.db.execute("COMMIT"))

    # -- writes -------------------------------------------------------------------

    def record(self, messages: Iterable[NewMessage], sightings: Iterable[Sighting],
               *, actor: str = "ingest") -> int:
        """Add messages and their sightings in one transaction; returns new sightings.

        One statement per kind of row for the whole batch (``executemany``): which sightings
        are new is asked once, in the transaction, and a sighting id given twice counts once."""
        messages = list(messages)
        sightings = list(sightings)
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO messages (sha256, message_id, from_addr, to_addrs, "
                "subject, date, size, first_seen, last_seen, attachment_names, "
                "attachment_count, defects, defect_count) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(m.sha256, m.message_id, m.from_addr, m.to_addrs, m.subject, m.date, m.size,
                  "", "", "\n".join(m.attachment_names), len(m.attachment_names),
                  json.dumps(m.defects), len(m.defects)) for m in messages])
            taken = self._known_sightings(db, [s.id for s in sightings])
            new: list[Sighting] = []
            for s in sightings:
                if s.id not in taken:
                    taken.add(s.id)
                    new.append(s)
            db.executemany(
                "INSERT INTO sightings (id, sha256, tower, server, reason, seen_at, source) "
                "VALUES (?,?,?,?,?,?,?)",
                [(s.id, s.sha256, s.tower, s.server, s.reason, s.seen_at, s.source) for s in new])
            db.executemany(
                "UPDATE messages SET sightings = sightings + 1, "
                "first_seen = CASE WHEN first_seen = '' OR ?1 < first_seen THEN ?1 ELSE first_seen END, "
                "tower = CASE WHEN ?1 >= last_seen THEN ?2 ELSE tower END, "
                "server = CASE WHEN ?1 >= last_seen THEN ?3 ELSE server END, "
                "reason = CASE WHEN ?1 >= last_seen THEN ?4 ELSE reason END, "
                "last_seen = CASE WHEN ?1 > last_seen THEN ?1 ELSE last_seen END "
                "WHERE sha256 = ?5",
                [(s.seen_at, s.tower, s.server, s.reason, s.sha256) for s in new])
            db.executemany(
                "INSERT INTO audit (at, actor, action, sha256, detail) VALUES (?,?,?,?,?)",
                [(s.seen_at, actor, "sighting", s.sha256, sighting_detail(s)) for s in new])
        return len(new)

    def bulk_load(self, entries: Iterable[tuple[NewMessage, Sequence[Sighting]]], *,
                  actor: str = "ingest", chunk: int = BULK_CHUNK) -> int:
        """Fill an empty index with new messages, each with its sightings: the rows, sightings
        and audit entries ``record`` writes for the same input in the same order, loaded in
        big transactions with the secondary indexes and the text index dropped, then built
        again from the loaded rows. For building a big index (a benchmark, a restore) while
        nothing else writes to it: readers meanwhile see a partial, unindexed index.
        Returns the number of messages. A message given twice, or a sighting given twice or
        with another message, is refused (the rows before it stay, indexed)."""
        if self.db.execute("SELECT EXISTS (SELECT 1 FROM messages) OR EXISTS "
                           "(SELECT 1 FROM sightings) OR EXISTS (SELECT 1 FROM audit)").fetchone()[0]:
            raise BulkLoadRefused(f"{self.path}: a bulk load needs an empty index")
        self.db.execute("PRAGMA cache_size=-262144")      # 256 MiB: the unique keys' pages
        retry_busy(lambda: self.db.execute("BEGIN IMMEDIATE"))
        try:
            for statement in _BULK_DROP:
                self.db.execute(statement)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        loaded = 0
        try:
            batch: builtins.list[tuple[NewMessage, Sequence[Sighting]]] = []
            for entry in entries:
                batch.append(entry)
                if len(batch) >= chunk:
                    loaded += self._load_batch(batch, actor)
                    batch = []
            if batch:
                loaded += self._load_batch(batch, actor)
        except sqlite3.IntegrityError as exc:
            raise BulkLoadRefused(f"bulk load: a message or sighting given twice ({exc})") from None
        finally:
            # the indexes and the text index, as opening an index creates them
            retry_busy(lambda: self.db.executescript(_SCHEMA))
            retry_busy(self._ensure_text_index)
            self.text_index = self._has_text_index()
            self.db.execute("PRAGMA cache_size=-2000")
        return loaded

    def _load_batch(self, batch: builtins.list[tuple[NewMessage, Sequence[Sighting]]],
                    actor: str) -> int:
        with self.transaction() as db:
            db.executemany(f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})",
                           [loaded_message(m, seen) for m, seen in batch])
            db.executemany("INSERT INTO sightings (id, sha256, tower, server, reason, seen_at, "
                           "source) VALUES (?,?,?,?,?,?,?)",
                           [(s.id, s.sha256, s.tower, s.server, s.reason, s.seen_at, s.source)
                            for _, seen in batch for s in seen])
            db.executemany("INSERT INTO audit (at, actor, action, sha256, detail) "
                           "VALUES (?,?,?,?,?)",
                           [(s.seen_at, actor, "sighting", s.sha256, sighting_detail(s))
                            for _, seen in batch for s in seen])
        return len(batch)

    def record_failed(self, failures: Iterable[FailedInput], *, actor: str = "ingest") -> None:
        with self.transaction() as db:
            for f in failures:
                cur = db.execute(
                    "INSERT OR IGNORE INTO failed (id, at, reason, size, source, stored_as, tower, "
                    "server) VALUES (?,?,?,?,?,?,?,?)",
                    (f.id, f.at, f.reason, f.size, f.source, f.stored_as, f.tower, f.server))
                if cur.rowcount:
                    db.execute(
                        "INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)",
                        (f.at, actor, "failed", json.dumps({"reason": f.reason,
                                                            "stored_as": f.stored_as})))

    def apply_status(self, sha256: str, status: str, *, actor: str, at: str, note: str = "") -> None:
        with self.transaction() as db:
            db.execute("UPDATE messages SET status = ? WHERE sha256 = ?", (status, sha256))
            db.execute(
                "INSERT INTO audit (at, actor, action, sha256, detail, note) VALUES (?,?,?,?,?,?)",
                (at, actor, "status", sha256, status, note))

    def apply_tags(self, sha256: str, add: Iterable[str], remove: Iterable[str], *, actor: str,
                   at: str) -> list[str]:
        add, remove = list(add), list(remove)
        with self.transaction() as db:
            row = db.execute("SELECT tags FROM messages WHERE sha256 = ?", (sha256,)).fetchone()
            current = {t for t in (row["tags"] if row else "").split(",") if t}
            current |= {t.strip().lower() for t in add if t.strip()}
            current -= {t.strip().lower() for t in remove}
            db.execute("UPDATE messages SET tags = ? WHERE sha256 = ?", (_join_tags(current), sha256))
            db.execute(
                "INSERT INTO audit (at, actor, action, sha256, detail) VALUES (?,?,?,?,?)",
                (at, actor, "tags", sha256, json.dumps({"add": add, "remove": remove})))
        return sorted(current)

    def log(self, action: str, *, actor: str, at: str, sha256: str = "", detail: str = "",
            note: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit (at, actor, action, sha256, detail, note) VALUES (?,?,?,?,?,?)",
                (at, actor, action, sha256, detail, note))

    # -- reads --------------------------------------------------------------------

    def resolve(self, ident: str) -> str:
        """A full sha256 from a sha256 or a unique prefix of one (at least 4 characters)."""
        return resolve_prefix(ident, lambda low, high: [str(r["sha256"]) for r in self.db.execute(
            "SELECT sha256 FROM messages WHERE sha256 >= ? AND sha256 < ? LIMIT 2",
            (low, high)).fetchall()])

    def last_change(self) -> int:
        """The newest audit entry's id. Every write to the index appends one (sightings,
        status, tags, failures, exports), so a reader that sees it move knows its view is old."""
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0])

    def record_content(self, sha256: str, *, body: str, names: str, strings: str,
                       hashes: Iterable[tuple[str, str]]) -> None:
        """Replace what search knows of a dissected message's content and artifact hashes
        (``hashes``: (kind, value) pairs, hex in lower case)."""
        pairs = sorted({(kind, value) for kind, value in hashes if value})

        def run() -> None:
            with self.transaction() as db:
                row = db.execute("SELECT rowid FROM messages WHERE sha256 = ?", (sha256,)).fetchone()
                if row is None:
                    raise UnknownId(f"no quarantined message with id {sha256!r}")
                db.execute("DELETE FROM message_content WHERE rowid = ?", (row[0],))
                db.execute("INSERT INTO message_content (rowid, sha256, body, names, strings) "
                           "VALUES (?, ?, ?, ?, ?)", (row[0], sha256, body, names, strings))
                db.execute("DELETE FROM artifact_hashes WHERE message_sha256 = ?", (sha256,))
                db.executemany("INSERT OR IGNORE INTO artifact_hashes VALUES (?, ?, ?)",
                               [(value, sha256, kind) for kind, value in pairs])
        run()

    def get(self, sha256: str) -> MessageRow:
        row = self.db.execute("SELECT * FROM messages WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            raise UnknownId(f"no quarantined message with id {sha256!r}")
        return MessageRow.from_row(row)

    def list(self, query: Query | str = "", *, offset: int = 0, limit: int = 50) -> builtins.list[MessageRow]:
        q = parse_query(query) if isinstance(query, str) else query
        where, params = self._plan(q)
        rows = self.db.execute(
            f"SELECT * FROM messages WHERE {where} ORDER BY {q.order_by} LIMIT ? OFFSET ?",
            (*params, limit, offset)).fetchall()
        return [MessageRow.from_row(r) for r in rows]

    def count(self, query: Query | str = "") -> int:
        q = parse_query(query) if isinstance(query, str) else query
        where, params = self._plan(q)
        return int(self.db.execute(f"SELECT count(*) FROM messages WHERE {where}",
                                   params).fetchone()[0])

    def facets(self, query: Query | str = "") -> dict[str, dict[str, int]]:
        """Counts by reason and by status for the messages a query selects."""
        q = parse_query(query) if isinstance(query, str) else query
        where, params = self._plan(q)
        out: dict[str, dict[str, int]] = {}
        for column in ("reason", "status"):
            rows = self.db.execute(
                f"SELECT {column} AS k, count(*) AS n FROM messages WHERE {where} "
                f"GROUP BY {column} ORDER BY n DESC", params).fetchall()
            out[column] = {r["k"]: r["n"] for r in rows}
        return out

    def sightings(self, sha256: str) -> builtins.list[Sighting]:
        rows = self.db.execute(
            "SELECT * FROM sightings WHERE sha256 = ? ORDER BY seen_at", (sha256,)).fetchall()
        return [Sighting(**dict(r)) for r in rows]

    def sighting_rows(self) -> builtins.list[sqlite3.Row]:
        """Every sighting, for fsck's comparison with the journal."""
        return self.db.execute("SELECT id, sha256, tower, server, reason, seen_at, source "
                               "FROM sightings").fetchall()

    def has_sighting(self, sighting_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM sightings WHERE id = ?",
                               (sighting_id,)).fetchone() is not None

    def known_sightings(self, ids: Iterable[str]) -> set[str]:
        """Which of these sighting ids are indexed (one query per 500, not one per id)."""
        return self._known_sightings(self.db, list(ids))

    @staticmethod
    def _known_sightings(db: sqlite3.Connection, ids: builtins.list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(r[0] for r in db.execute(
                f"SELECT id FROM sightings WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def audit(self, sha256: str | None = None, *, limit: int = 1000) -> builtins.list[AuditEntry]:
        if sha256:
            rows = self.db.execute("SELECT * FROM audit WHERE sha256 = ? ORDER BY id LIMIT ?",
                                   (sha256, limit)).fetchall()
        else:
            rows = self.db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?",
                                   (limit,)).fetchall()
        return [AuditEntry(**dict(r)) for r in rows]

    def failed(self, *, limit: int = 1000) -> builtins.list[FailedInput]:
        rows = self.db.execute("SELECT * FROM failed ORDER BY at DESC LIMIT ?", (limit,)).fetchall()
        return [FailedInput(**dict(r)) for r in rows]

    def known(self, shas: Iterable[str]) -> set[str]:
        """Which of these sha256s are indexed messages."""
        shas = list(shas)
        found: set[str] = set()
        for start in range(0, len(shas), 500):
            chunk = shas[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found |= {r[0] for r in self.db.execute(
                f"SELECT sha256 FROM messages WHERE sha256 IN ({marks})", chunk)}
        return found

    def rows_after(self, rowid: int, limit: int) -> builtins.list[tuple[int, MessageRow]]:
        """Messages in the order they were indexed, after ``rowid``: what a follower of the
        index (the campaign store) has not seen yet."""
        rows = self.db.execute("SELECT rowid AS rowid_, * FROM messages WHERE rowid > ? "
                               "ORDER BY rowid LIMIT ?", (rowid, limit)).fetchall()
        return [(int(r["rowid_"]), MessageRow.from_row(r)) for r in rows]

    def sha_at(self, rowid: int) -> str:
        """The message at ``rowid`` ("" when none): a follower's check that its mark still
        means what it did (a reindex numbers rows anew)."""
        row = self.db.execute("SELECT sha256 FROM messages WHERE rowid = ?", (rowid,)).fetchone()
        return str(row[0]) if row else ""

    def all_shas(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT sha256 FROM messages")}

    def stats(self) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT count(*) AS messages, coalesce(sum(sightings),0) AS sightings, "
            "coalesce(sum(size),0) AS bytes FROM messages").fetchone()
        failed = self.db.execute("SELECT count(*) FROM failed").fetchone()[0]
        return {"messages": row["messages"], "sightings": row["sightings"],
                "bytes": row["bytes"], "failed": failed}
