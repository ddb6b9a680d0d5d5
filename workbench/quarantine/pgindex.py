"""The quarantine index on PostgreSQL: the SQLite index's interface, for many hosts at once.

Chosen by a ``postgresql://`` index address (``quarantine/settings.toml``, ``$WORKBENCH_INDEX``
or ``--index``; see :func:`workbench.quarantine.service.index_address`). The tables, the
query language and the results are the SQLite index's: the query module's SQL is rewritten
for PostgreSQL (``?`` to ``%s``, ``COLLATE NOCASE`` to ``lower()``, ``LIKE`` to ``ILIKE``)
and text columns use the ``"C"`` collation, so sorting and case folding (ASCII only) are
byte-for-byte SQLite's. Substring terms are served by ``pg_trgm`` GIN indexes, which the
planner picks by itself. The audit log is append-only in the database: triggers refuse
UPDATE, DELETE and TRUNCATE whoever asks.
"""

from __future__ import annotations

import builtins
import json
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from workbench.quarantine.index import (
    BULK_CHUNK,
    MESSAGE_COLUMNS,
    SCHEMA_VERSION,
    AuditEntry,
    BulkLoadRefused,
    FailedInput,
    MessageRow,
    NewMessage,
    Sighting,
    UnknownId,
    _join_tags,
    journal_audit_rows,
    loaded_message,
    resolve_prefix,
    sighting_detail,
)
from workbench.quarantine.query import _CONTENT_MATCH, SORT_COLUMNS, Query, parse_query

T = TypeVar("T")
SCHEME = "postgresql"

_SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """CREATE TABLE IF NOT EXISTS messages (
        rowid BIGSERIAL UNIQUE,
        sha256 TEXT COLLATE "C" PRIMARY KEY,
        message_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        from_addr TEXT COLLATE "C" NOT NULL DEFAULT '',
        to_addrs TEXT COLLATE "C" NOT NULL DEFAULT '',
        subject TEXT COLLATE "C" NOT NULL DEFAULT '',
        date TEXT COLLATE "C",
        size BIGINT NOT NULL,
        tower TEXT COLLATE "C" NOT NULL DEFAULT '',
        server TEXT COLLATE "C" NOT NULL DEFAULT '',
        reason TEXT COLLATE "C" NOT NULL DEFAULT '',
        first_seen TEXT COLLATE "C" NOT NULL,
        last_seen TEXT COLLATE "C" NOT NULL,
        sightings INTEGER NOT NULL DEFAULT 0,
        attachment_names TEXT COLLATE "C" NOT NULL DEFAULT '',
        attachment_count INTEGER NOT NULL DEFAULT 0,
        status TEXT COLLATE "C" NOT NULL DEFAULT 'new',
        tags TEXT COLLATE "C" NOT NULL DEFAULT '',
        defects TEXT COLLATE "C" NOT NULL DEFAULT '[]',
        defect_count INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS messages_first_seen ON messages(first_seen, rowid)",
    "CREATE INDEX IF NOT EXISTS messages_last_seen ON messages(last_seen, rowid)",
    "CREATE INDEX IF NOT EXISTS messages_tower ON messages(lower(tower), first_seen, rowid)",
    "CREATE INDEX IF NOT EXISTS messages_status ON messages(lower(status), first_seen, rowid)",
    "CREATE INDEX IF NOT EXISTS messages_reason ON messages(lower(reason), first_seen, rowid)",
    "CREATE INDEX IF NOT EXISTS messages_defects ON messages(first_seen) WHERE defect_count > 0",
    "CREATE INDEX IF NOT EXISTS messages_subject_trgm ON messages USING gin (subject gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS messages_from_trgm ON messages USING gin (from_addr gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS messages_names_trgm "
    "ON messages USING gin (attachment_names gin_trgm_ops)",
    """CREATE TABLE IF NOT EXISTS sightings (
        id TEXT COLLATE "C" PRIMARY KEY,
        sha256 TEXT COLLATE "C" NOT NULL,
        tower TEXT COLLATE "C" NOT NULL,
        server TEXT COLLATE "C" NOT NULL,
        reason TEXT COLLATE "C" NOT NULL,
        seen_at TEXT COLLATE "C" NOT NULL,
        source TEXT COLLATE "C" NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS sightings_sha ON sightings(sha256)",
    """CREATE TABLE IF NOT EXISTS failed (
        id TEXT COLLATE "C" PRIMARY KEY,
        at TEXT COLLATE "C" NOT NULL,
        reason TEXT COLLATE "C" NOT NULL,
        size BIGINT NOT NULL,
        source TEXT COLLATE "C" NOT NULL,
        stored_as TEXT COLLATE "C" NOT NULL,
        tower TEXT COLLATE "C" NOT NULL DEFAULT '',
        server TEXT COLLATE "C" NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS audit (
        id BIGSERIAL PRIMARY KEY,
        at TEXT COLLATE "C" NOT NULL,
        actor TEXT COLLATE "C" NOT NULL,
        action TEXT COLLATE "C" NOT NULL,
        sha256 TEXT COLLATE "C" NOT NULL DEFAULT '',
        detail TEXT COLLATE "C" NOT NULL DEFAULT '',
        note TEXT COLLATE "C" NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS audit_sha ON audit(sha256)",
    """CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
    "DROP TRIGGER IF EXISTS audit_no_change ON audit",
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "DROP TRIGGER IF EXISTS audit_no_truncate ON audit",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # What dissection found in a message, for free-text search: SQLite's ``message_content``
    # (an FTS5 trigram table) as three trigram-indexed columns, searched by substring.
    """CREATE TABLE IF NOT EXISTS message_content (
        sha256 TEXT COLLATE "C" PRIMARY KEY,
        body TEXT COLLATE "C" NOT NULL DEFAULT '',
        names TEXT COLLATE "C" NOT NULL DEFAULT '',
        strings TEXT COLLATE "C" NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS content_body_trgm ON message_content USING gin (body gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS content_names_trgm ON message_content USING gin (names gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS content_strings_trgm "
    "ON message_content USING gin (strings gin_trgm_ops)",
    """CREATE TABLE IF NOT EXISTS artifact_hashes (
        value TEXT COLLATE "C" NOT NULL,
        message_sha256 TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (value, message_sha256, kind))""",
    "CREATE INDEX IF NOT EXISTS artifact_hashes_message ON artifact_hashes(message_sha256)",
    # An FTS5 phrase ("word", quotes doubled inside) as the ILIKE pattern of the same substring.
    """CREATE OR REPLACE FUNCTION wb_phrase_pattern(p text) RETURNS text
        LANGUAGE sql IMMUTABLE AS $$
        SELECT '%' || replace(replace(replace(replace(substr(p, 2, length(p) - 2), '""', '"'),
                                              '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' $$""",
)
# What a bulk load drops while it loads and builds after (``PostgresIndex.bulk_load``): the
# secondary indexes of the tables it fills, trigram indexes too; the primary keys and the
# rowid's unique index stay (they check the input).
_BULK_INDEXES = {
    match.group(1): statement for statement in _SCHEMA
    if (match := re.match(r"CREATE INDEX IF NOT EXISTS (\w+) ON (?:messages|sightings|audit)\b",
                          statement))}
# COPY's text format: a backslash, tab, newline or carriage return in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: Iterable[Sequence[object]]) -> str:
    """Rows in COPY's text format (None as NULL): formatted here in one pass, far faster
    than psycopg's per-value dumpers in pure Python."""
    return "".join("\t".join("\\N" if v is None else str(v).translate(_COPY_ESCAPES)
                             for v in row) + "\n" for row in rows)


# Schema creation is serialised across processes (CREATE ... IF NOT EXISTS races otherwise).
_SCHEMA_LOCK = 0x5157_4958   # any constant: the advisory lock's key


def to_postgres(where: str) -> str:
    """The query module's SQLite WHERE clause as PostgreSQL.

    SQLite's ``NOCASE`` and ``LIKE`` fold ASCII case only; ``lower()`` and ``ILIKE`` on
    ``"C"``-collated columns do the same, so both backends select the same rows.
    """
    if where.strip() == "1":
        return "TRUE"
    sql = where.replace("%", "%%")
    sql = sql.replace(_CONTENT_MATCH, "sha256 IN (SELECT c.sha256 FROM message_content c, "
                      "(SELECT wb_phrase_pattern(?) AS pat) p WHERE c.body ILIKE p.pat "
                      "OR c.names ILIKE p.pat OR c.strings ILIKE p.pat)")
    sql = re.sub(r"(\w+) = \? COLLATE NOCASE", r"lower(\1) = lower(?)", sql)
    sql = re.sub(r"(\w+) COLLATE NOCASE IN", r"lower(\1) IN", sql)
    sql = sql.replace(" LIKE ? ESCAPE '\\'", " ILIKE ?")
    return sql.replace("?", "%s")


def order_by(q: Query) -> str:
    """SQLite's order: NULLs (a message without a Date) sort as the smallest value."""
    column = SORT_COLUMNS[q.sort]
    # only ``date`` may be NULL; a NULLS clause on another column would keep the planner
    # from walking its index backwards
    nulls = (" NULLS LAST" if q.descending else " NULLS FIRST") if column == "date" else ""
    direction = "DESC" if q.descending else "ASC"
    return f"{column} {direction}{nulls}, rowid {direction}"


def retry_conflict(fn: Callable[[], T], *, attempts: int = 20) -> T:
    """Run a transaction, again after a deadlock or a serialisation failure between writers."""
    for attempt in range(attempts):
        try:
            return fn()
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1) * (1 + random.random()))
    raise AssertionError("unreachable")


class PostgresIndex:
    """The quarantine index in a PostgreSQL database: the interface of ``QuarantineIndex``."""

    text_index = True      # pg_trgm, used by the planner without being asked

    def __init__(self, address: str, *, readonly: bool = False):
        self.address = address
        self._db = self._connect()
        if not readonly:
            self._ensure_schema()

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.address, autocommit=True, row_factory=dict_row)

    @property
    def db(self) -> psycopg.Connection[dict[str, Any]]:
        """The connection; a new one when the server dropped the last (a restart, a
        failover), so a long-running ``serve`` answers 503 while it is away, not forever."""
        if self._db.broken:
            self._db.close()
            self._db = self._connect()
        return self._db

    def __repr__(self) -> str:
        return f"PostgresIndex({self.db.info.dbname!r})"     # never the password

    def _ensure_schema(self) -> None:
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            have = self.db.execute("SELECT to_regclass('meta') IS NOT NULL AS t").fetchone()
            if have and have["t"]:
                row = self.db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row and row["value"] == str(SCHEMA_VERSION):
                    return
            for statement in _SCHEMA:
                self.db.execute(statement)
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', %s) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    def interrupt(self) -> None:
        """Cancel the statement running on this connection (a superseded UI query)."""
        self.db.cancel_safe()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self.db.transaction():
            yield self.db

    def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        def attempt() -> T:
            with self.transaction() as db:
                return fn(db)
        return retry_conflict(attempt)

    # -- writes -------------------------------------------------------------------

    def record_content(self, sha256: str, *, body: str, names: str, strings: str,
                       hashes: Iterable[tuple[str, str]]) -> None:
        """Replace what search knows of a dissected message's content and artifact hashes
        (``hashes``: (kind, value) pairs, hex in lower case), as the SQLite index does."""
        pairs = sorted({(kind, value) for kind, value in hashes if value})
        # PostgreSQL's text holds no NUL; extracted strings never need one to be found
        body, names, strings = (t.replace("\x00", "") for t in (body, names, strings))

        def write(db: psycopg.Connection[Any]) -> None:
            if db.execute("SELECT 1 FROM messages WHERE sha256 = %s", (sha256,)).fetchone() is None:
                raise UnknownId(f"no quarantined message with id {sha256!r}")
            db.execute("INSERT INTO message_content (sha256, body, names, strings) "
                       "VALUES (%s, %s, %s, %s) ON CONFLICT (sha256) DO UPDATE SET "
                       "body = excluded.body, names = excluded.names, strings = excluded.strings",
                       (sha256, body, names, strings))
            db.execute("DELETE FROM artifact_hashes WHERE message_sha256 = %s", (sha256,))
            with db.cursor() as cur:
                cur.executemany("INSERT INTO artifact_hashes VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                                [(value, sha256, kind) for kind, value in pairs])
        self._write(write)

    def record(self, messages: Iterable[NewMessage], sightings: Iterable[Sighting],
               *, actor: str = "ingest") -> int:
        """Add messages and their sightings in one transaction; returns new sightings.

        Rows are written in the caller's order, as SQLite does (it numbers the rows, which
        breaks ties in sorting). Two ingest hosts writing the same new messages in opposite
        orders can deadlock: PostgreSQL aborts one, and it is retried whole."""
        messages = builtins.list(messages)
        sightings = builtins.list(sightings)

        def write(db: psycopg.Connection[Any]) -> int:
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO messages (sha256, message_id, from_addr, to_addrs, subject, "
                    "date, size, first_seen, last_seen, attachment_names, attachment_count, "
                    "defects, defect_count) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (sha256) DO NOTHING",
                    [(m.sha256, m.message_id, m.from_addr, m.to_addrs, m.subject, m.date,
                      m.size, "", "", "\n".join(m.attachment_names), len(m.attachment_names),
                      json.dumps(m.defects), len(m.defects)) for m in messages])
            if not sightings:
                return 0
            # one statement inserts the batch; the new ones (the first of each id) say which
            # messages to update and audit, in the batch's order, as SQLite's loop does
            columns = list(zip(*[(s.id, s.sha256, s.tower, s.server, s.reason, s.seen_at,
                                  s.source) for s in sightings], strict=True))
            inserted = {r["id"] for r in db.execute(
                "INSERT INTO sightings (id, sha256, tower, server, reason, seen_at, source) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
                "%s::text[], %s::text[], %s::text[]) ON CONFLICT (id) DO NOTHING RETURNING id",
                [builtins.list(c) for c in columns]).fetchall()}
            fresh: builtins.list[Sighting] = []
            for s in sightings:
                if s.id in inserted:
                    inserted.discard(s.id)
                    fresh.append(s)
            with db.cursor() as cur:
                cur.executemany(
                    "UPDATE messages SET sightings = sightings + 1, "
                    "first_seen = CASE WHEN first_seen = '' OR %(at)s < first_seen THEN %(at)s "
                    "ELSE first_seen END, "
                    "tower = CASE WHEN %(at)s >= last_seen THEN %(tower)s ELSE tower END, "
                    "server = CASE WHEN %(at)s >= last_seen THEN %(server)s ELSE server END, "
                    "reason = CASE WHEN %(at)s >= last_seen THEN %(reason)s ELSE reason END, "
                    "last_seen = CASE WHEN %(at)s > last_seen THEN %(at)s ELSE last_seen END "
                    "WHERE sha256 = %(sha)s",
                    [{"at": s.seen_at, "tower": s.tower, "server": s.server, "reason": s.reason,
                      "sha": s.sha256} for s in fresh])
                cur.executemany(
                    "INSERT INTO audit (at, actor, action, sha256, detail) "
                    "VALUES (%s,%s,%s,%s,%s)",
                    [(s.seen_at, actor, "sighting", s.sha256, sighting_detail(s))
                     for s in fresh])
            return len(fresh)

        return self._write(write)

    def bulk_load(self, entries: Iterable[tuple[NewMessage, Sequence[Sighting]]], *,
                  actor: str = "ingest", chunk: int = BULK_CHUNK) -> int:
        """Fill an empty index with new messages, each with its sightings: what ``record``
        writes for the same input in the same order (``QuarantineIndex.bulk_load``), in one
        transaction of COPYs with the secondary and trigram indexes dropped and built after
        the load, then VACUUM ANALYZE (what autovacuum would do next). Readers see the old,
        empty index until it commits; refused input rolls it all back. Returns the number of
        messages."""
        loaded = 0
        columns = ", ".join(MESSAGE_COLUMNS)
        try:
            with self.transaction() as db:
                db.execute("LOCK TABLE messages, sightings, audit IN EXCLUSIVE MODE")
                row = db.execute("SELECT EXISTS (SELECT 1 FROM messages) OR EXISTS "
                                 "(SELECT 1 FROM sightings) OR EXISTS (SELECT 1 FROM audit) "
                                 "AS used").fetchone()
                if row and row["used"]:
                    raise BulkLoadRefused(f"{self!r}: a bulk load needs an empty index")
                db.execute("SET LOCAL maintenance_work_mem = '512MB'")
                for name in _BULK_INDEXES:
                    db.execute(f"DROP INDEX IF EXISTS {name}")
                batch: builtins.list[tuple[NewMessage, Sequence[Sighting]]] = []

                def flush() -> None:
                    seen = [s for _, ss in batch for s in ss]
                    with db.cursor() as cur:
                        with cur.copy(f"COPY messages ({columns}) FROM STDIN") as copy:
                            copy.write(copy_text(loaded_message(m, ss) for m, ss in batch))
                        with cur.copy("COPY sightings (id, sha256, tower, server, reason, "
                                      "seen_at, source) FROM STDIN") as copy:
                            copy.write(copy_text((s.id, s.sha256, s.tower, s.server, s.reason,
                                                  s.seen_at, s.source) for s in seen))
                        with cur.copy("COPY audit (at, actor, action, sha256, detail) "
                                      "FROM STDIN") as copy:
                            copy.write(copy_text((s.seen_at, actor, "sighting", s.sha256,
                                                  sighting_detail(s)) for s in seen))

                for entry in entries:
                    batch.append(entry)
                    if len(batch) >= chunk:
                        flush()
                        loaded += len(batch)
                        batch = []
                if batch:
                    flush()
                    loaded += len(batch)
                for statement in _BULK_INDEXES.values():
                    db.execute(statement)
        except pg_errors.UniqueViolation as exc:
            raise BulkLoadRefused(f"bulk load: a message or sighting given twice "
                                  f"({exc.diag.message_detail})") from None
        self.db.execute("VACUUM ANALYZE messages")
        self.db.execute("VACUUM ANALYZE sightings")
        self.db.execute("VACUUM ANALYZE audit")
        return loaded

    def record_failed(self, failures: Iterable[FailedInput], *, actor: str = "ingest") -> None:
        failures = list(failures)

        def write(db: psycopg.Connection[Any]) -> None:
            for f in failures:
                cur = db.execute(
                    "INSERT INTO failed (id, at, reason, size, source, stored_as, tower, server) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING",
                    (f.id, f.at, f.reason, f.size, f.source, f.stored_as, f.tower, f.server))
                if cur.rowcount:
                    db.execute(
                        "INSERT INTO audit (at, actor, action, detail) VALUES (%s,%s,%s,%s)",
                        (f.at, actor, "failed", json.dumps({"reason": f.reason,
                                                            "stored_as": f.stored_as})))

        self._write(write)

    def apply_status(self, sha256: str, status: str, *, actor: str, at: str, note: str = "") -> None:
        def write(db: psycopg.Connection[Any]) -> None:
            db.execute("UPDATE messages SET status = %s WHERE sha256 = %s", (status, sha256))
            db.execute(
                "INSERT INTO audit (at, actor, action, sha256, detail, note) "
                "VALUES (%s,%s,%s,%s,%s,%s)", (at, actor, "status", sha256, status, note))

        self._write(write)

    def apply_tags(self, sha256: str, add: Iterable[str], remove: Iterable[str], *, actor: str,
                   at: str) -> builtins.list[str]:
        add, remove = builtins.list(add), builtins.list(remove)

        def write(db: psycopg.Connection[Any]) -> builtins.list[str]:
            row = db.execute("SELECT tags FROM messages WHERE sha256 = %s FOR UPDATE",
                             (sha256,)).fetchone()
            current = {t for t in (row["tags"] if row else "").split(",") if t}
            current |= {t.strip().lower() for t in add if t.strip()}
            current -= {t.strip().lower() for t in remove}
            db.execute("UPDATE messages SET tags = %s WHERE sha256 = %s",
                       (_join_tags(current), sha256))
            db.execute(
                "INSERT INTO audit (at, actor, action, sha256, detail) VALUES (%s,%s,%s,%s,%s)",
                (at, actor, "tags", sha256, json.dumps({"add": add, "remove": remove})))
            return sorted(current)

        return self._write(write)

    def log(self, action: str, *, actor: str, at: str, sha256: str = "", detail: str = "",
            note: str = "") -> None:
        self.db.execute(
            "INSERT INTO audit (at, actor, action, sha256, detail, note) "
            "VALUES (%s,%s,%s,%s,%s,%s)", (at, actor, action, sha256, detail, note))

    # -- reads --------------------------------------------------------------------

    def resolve(self, ident: str) -> str:
        """A full sha256 from a sha256 or a unique prefix of one (at least 4 characters)."""
        return resolve_prefix(ident, lambda low, high: [str(r["sha256"]) for r in self.db.execute(
            "SELECT sha256 FROM messages WHERE sha256 >= %s AND sha256 < %s LIMIT 2",
            (low, high)).fetchall()])

    def last_change(self) -> int:
        """The newest audit entry's id (see ``QuarantineIndex.last_change``)."""
        row = self.db.execute("SELECT coalesce(max(id), 0) AS n FROM audit").fetchone()
        return int(row["n"]) if row else 0

    def get(self, sha256: str) -> MessageRow:
        row = self.db.execute("SELECT * FROM messages WHERE sha256 = %s", (sha256,)).fetchone()
        if row is None:
            raise UnknownId(f"no quarantined message with id {sha256!r}")
        return MessageRow.from_row(row)   # type: ignore[arg-type]

    def list(self, query: Query | str = "", *, offset: int = 0,
             limit: int = 50) -> builtins.list[MessageRow]:
        q = parse_query(query) if isinstance(query, str) else query
        rows = self.db.execute(
            f"SELECT * FROM messages WHERE {to_postgres(q.where)} ORDER BY {order_by(q)} "
            f"LIMIT %s OFFSET %s", (*q.params, limit, offset)).fetchall()
        return [MessageRow.from_row(r) for r in rows]    # type: ignore[arg-type]

    def count(self, query: Query | str = "") -> int:
        q = parse_query(query) if isinstance(query, str) else query
        row = self.db.execute(f"SELECT count(*) AS n FROM messages WHERE {to_postgres(q.where)}",
                              q.params).fetchone()
        return int(row["n"]) if row else 0

    def facets(self, query: Query | str = "") -> dict[str, dict[str, int]]:
        """Counts by reason and by status for the messages a query selects."""
        q = parse_query(query) if isinstance(query, str) else query
        out: dict[str, dict[str, int]] = {}
        for column in ("reason", "status"):
            rows = self.db.execute(
                f"SELECT {column} AS k, count(*) AS n FROM messages "
                f"WHERE {to_postgres(q.where)} GROUP BY {column} ORDER BY n DESC",
                q.params).fetchall()
            out[column] = {r["k"]: int(r["n"]) for r in rows}
        return out

    def sightings(self, sha256: str) -> builtins.list[Sighting]:
        rows = self.db.execute("SELECT * FROM sightings WHERE sha256 = %s ORDER BY seen_at",
                               (sha256,)).fetchall()
        return [Sighting(**r) for r in rows]

    def sighting_rows(self) -> builtins.list[dict[str, Any]]:
        """Every sighting, for fsck's comparison with the journal."""
        return self.db.execute("SELECT id, sha256, tower, server, reason, seen_at, source "
                               "FROM sightings").fetchall()

    def has_sighting(self, sighting_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM sightings WHERE id = %s",
                               (sighting_id,)).fetchone() is not None

    def known_sightings(self, ids: Iterable[str]) -> set[str]:
        """Which of these sighting ids are indexed (one query, not one per id)."""
        rows = self.db.execute("SELECT id FROM sightings WHERE id = ANY(%s)",
                               (builtins.list(ids),)).fetchall()
        return {r["id"] for r in rows}

    def audit(self, sha256: str | None = None, *, limit: int = 1000) -> builtins.list[AuditEntry]:
        if sha256:
            rows = self.db.execute("SELECT * FROM audit WHERE sha256 = %s ORDER BY id LIMIT %s",
                                   (sha256, limit)).fetchall()
        else:
            rows = self.db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT %s",
                                   (limit,)).fetchall()
        return [AuditEntry(**r) for r in rows]

    def failed(self, *, limit: int = 1000) -> builtins.list[FailedInput]:
        rows = self.db.execute("SELECT * FROM failed ORDER BY at DESC LIMIT %s",
                               (limit,)).fetchall()
        return [FailedInput(**r) for r in rows]

    def known(self, shas: Iterable[str]) -> set[str]:
        """Which of these sha256s are indexed messages."""
        rows = self.db.execute("SELECT sha256 FROM messages WHERE sha256 = ANY(%s)",
                               (builtins.list(shas),)).fetchall()
        return {r["sha256"] for r in rows}

    def rows_after(self, rowid: int, limit: int) -> builtins.list[tuple[int, MessageRow]]:
        """Messages in the order they were indexed, after ``rowid``."""
        rows = self.db.execute("SELECT * FROM messages WHERE rowid > %s ORDER BY rowid LIMIT %s",
                               (rowid, limit)).fetchall()
        out = []
        for r in rows:
            mark = int(r.pop("rowid"))
            out.append((mark, MessageRow.from_row(r)))    # type: ignore[arg-type]
        return out

    def sha_at(self, rowid: int) -> str:
        row = self.db.execute("SELECT sha256 FROM messages WHERE rowid = %s", (rowid,)).fetchone()
        return str(row["sha256"]) if row else ""

    def all_shas(self) -> set[str]:
        return {r["sha256"] for r in self.db.execute("SELECT sha256 FROM messages")}

    def stats(self) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT count(*) AS messages, coalesce(sum(sightings),0) AS sightings, "
            "coalesce(sum(size),0) AS bytes FROM messages").fetchone() or {}
        failed = self.db.execute("SELECT count(*) AS n FROM failed").fetchone() or {"n": 0}
        return {"messages": int(row["messages"]), "sightings": int(row["sightings"]),
                "bytes": int(row["bytes"]), "failed": int(failed["n"])}

    # -- reindex ----------------------------------------------------------------------

    def replace_from(self, scratch: Path, actors: dict[tuple[str, str], str],
                     reindex_detail: str, *, at: str, actor: str) -> None:
        """Replace the rows by those of a rebuilt (SQLite) index, in one transaction.

        Readers see the old rows or the new ones. The audit log is only appended to:
        restored from the rebuilt index when empty, else given what only the journal knew.
        """
        source = sqlite3.connect(f"file:{scratch}?mode=ro", uri=True)
        source.row_factory = sqlite3.Row
        try:
            with self.transaction() as db:
                # no writer between our reading the old ids and replacing the rows
                db.execute("LOCK TABLE messages, sightings, failed IN EXCLUSIVE MODE")
                old_sightings = {r["id"] for r in db.execute("SELECT id FROM sightings")}
                old_failed = {r["id"] for r in db.execute("SELECT id FROM failed")}
                empty = db.execute("SELECT NOT EXISTS (SELECT 1 FROM audit) AS e").fetchone()
                audit_empty = bool(empty and empty["e"])
                for table in ("messages", "sightings", "failed"):
                    db.execute(f"DELETE FROM {table}")
                columns = ", ".join(MESSAGE_COLUMNS)
                with db.cursor() as cur:
                    with cur.copy(f"COPY messages ({columns}) FROM STDIN") as copy:
                        for r in source.execute(
                                f"SELECT {columns} FROM messages ORDER BY rowid"):
                            copy.write_row(tuple(r))
                    with cur.copy("COPY sightings (id, sha256, tower, server, reason, seen_at, "
                                  "source) FROM STDIN") as copy:
                        for r in source.execute("SELECT id, sha256, tower, server, reason, "
                                                "seen_at, source FROM sightings"):
                            copy.write_row(tuple(r))
                    with cur.copy("COPY failed (id, at, reason, size, source, stored_as, tower, "
                                  "server) FROM STDIN") as copy:
                        for r in source.execute("SELECT id, at, reason, size, source, "
                                                "stored_as, tower, server FROM failed"):
                            copy.write_row(tuple(r))
                    if audit_empty:
                        with cur.copy("COPY audit (at, actor, action, sha256, detail, note) "
                                      "FROM STDIN") as copy:
                            for r in source.execute("SELECT at, actor, action, sha256, detail, "
                                                    "note FROM audit ORDER BY id"):
                                copy.write_row(tuple(r))
                if not audit_empty:
                    with db.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO audit (at, actor, action, sha256, detail) "
                            "VALUES (%s,%s,%s,%s,%s)",
                            journal_audit_rows(source.execute("SELECT * FROM sightings").fetchall(),
                                               source.execute("SELECT * FROM failed").fetchall(),
                                               actors, old_sightings, old_failed))
                db.execute("INSERT INTO audit (at, actor, action, detail) VALUES (%s,%s,%s,%s)",
                           (at, actor, "reindex", reindex_detail))
        finally:
            source.close()
