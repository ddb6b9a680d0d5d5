"""A bulk-loaded index answers as one built by ``record``: same rows, order, counts, audit."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.text_index_samples import NAMES, QUERIES, SENDERS, SUBJECTS
from workbench.quarantine.index import BulkLoadRefused, NewMessage, QuarantineIndex, Sighting
from workbench.quarantine.query import SORT_COLUMNS, parse_query

TOWERS = ["t01", "T02", "t03"]
MORE = ["", "tower:t02", "tower:T01 reason:spam", "status:new", "-status:dismissed",
        "has:attachment", "has:defects", "sha:0000", "msgid:@mx", "to:rcpt3",
        "after:2026-11-10", "before:2026-11-05 from:example", "server:MX1",
        "reason:unknown-virus invoice", "-has:attachment 4471", "sort:subject", "sort:+date"]


def _entries(count: int = 60) -> list[tuple[NewMessage, list[Sighting]]]:
    """Messages with 0-3 sightings each, seen out of order, some with a tab or newline."""
    out = []
    for n in range(count):
        sha = f"{n * 7919:064x}"
        name = NAMES[n % len(NAMES)]
        message = NewMessage(
            sha256=sha, size=100 + n % 13,
            subject=f"{SUBJECTS[n % len(SUBJECTS)]} {n}" + ("\ttab\\" if n % 17 == 0 else ""),
            from_addr=SENDERS[n % len(SENDERS)], to_addrs=f"rcpt{n % 4}@corp.example",
            message_id=f"<{n}@mx.example>",
            date=None if n % 9 == 0 else f"2026-10-{1 + n % 27:02d}T10:00:00.000000Z",
            attachment_names=[name, "b.txt"] if name and n % 5 == 0 else [name] if name else [],
            defects=["x"] if n % 11 == 0 else [])
        sightings = [Sighting(
            id=f"{sha[-30:]}{copy:02d}", sha256=sha, tower=TOWERS[(n + copy) % 3],
            server=f"mx{copy}", reason=["stuck", "unknown-virus", "Spam"][n % 3],
            seen_at=f"2026-11-{1 + (n * (3 - copy)) % 28:02d}T00:00:{n % 60:02d}.000000Z",
            source="s\n" if copy else "") for copy in range(n % 4)]
        out.append((message, sightings))
    return out


@pytest.fixture
def open_index(tmp_path, index_backend, postgres_server):
    """Opens an empty index of this run's backend by name."""
    import psycopg

    from workbench.quarantine.pgindex import PostgresIndex

    opened = []

    def open_(name: str):
        if index_backend == "sqlite":
            index = QuarantineIndex(tmp_path / f"{name}.sqlite")
        else:
            schema = f"bulk_{name}_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(postgres_server.address("workbench"), autocommit=True) as db:
                db.execute(f"CREATE SCHEMA {schema}")
            index = PostgresIndex(postgres_server.address("workbench",
                                                          search_path=f"{schema},public"))
        opened.append(index)
        return index

    yield open_
    for index in opened:
        index.close()


def _answers(index, text: str) -> tuple:
    return (index.list(text, limit=1000), index.count(text), index.facets(text),
            [r.sha256 for r in index.list(text, offset=5, limit=7)])


def _indexes(index) -> set[str]:
    if isinstance(index, QuarantineIndex):
        return {r[0] for r in index.db.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger', 'table')")}
    return {r["indexname"] for r in index.db.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}


def test_a_bulk_loaded_index_answers_as_one_built_row_by_row(open_index):
    entries = _entries()
    by_rows, bulk = open_index("rows"), open_index("bulk")
    by_rows.record([m for m, _ in entries], [s for _, ss in entries for s in ss])
    assert bulk.bulk_load(entries, chunk=7) == len(entries)      # several batches
    assert _indexes(bulk) == _indexes(by_rows)
    for text in QUERIES + MORE:
        assert _answers(bulk, text) == _answers(by_rows, text), text
    for column in SORT_COLUMNS:
        for descending in (True, False):
            q = parse_query("", sort=column, descending=descending)
            assert [r.sha256 for r in bulk.list(q, limit=1000)] \
                == [r.sha256 for r in by_rows.list(q, limit=1000)]
    assert bulk.stats() == by_rows.stats()
    assert bulk.audit(limit=10**6) == by_rows.audit(limit=10**6)
    assert bulk.rows_after(0, 1000) == by_rows.rows_after(0, 1000)
    for message, _ in entries[:12]:
        assert bulk.sightings(message.sha256) == by_rows.sightings(message.sha256)
    # and it goes on as a live index: the triggers and text index keep up with new writes
    more = _entries(70)[60:]
    for index in (bulk, by_rows):
        index.record([m for m, _ in more], [s for _, ss in more for s in ss])
        index.apply_status(more[0][0].sha256, "dismissed", actor="a", at="2026-12-01")
    for text in ("invoice", "-status:dismissed", "from:evil", ""):
        assert _answers(bulk, text) == _answers(by_rows, text), text


def test_a_bulk_load_needs_an_empty_index(open_index):
    entries = _entries(5)
    index = open_index("used")
    index.record([entries[0][0]], entries[0][1])
    with pytest.raises(BulkLoadRefused, match="empty index"):
        index.bulk_load(entries[1:])
    assert index.count("") == 1


def test_a_message_given_twice_is_refused(open_index, index_backend):
    entries = _entries(5)
    index = open_index("twice")
    with pytest.raises(BulkLoadRefused, match="given twice"):
        index.bulk_load([*entries, entries[2]], chunk=3)
    # PostgreSQL loads in one transaction: nothing stays. SQLite keeps the batches before
    # the bad one, indexed as opening an index makes them.
    if index_backend == "postgresql":
        assert index.count("") == 0
    else:
        assert index.count("") == 3
        names = {r[0] for r in index.db.execute("SELECT name FROM sqlite_master")}
        assert {"messages_tower", "messages_fts", "messages_fts_insert"} <= names
        assert index.count("invoice") == len([m for m, _ in entries[:3]
                                              if "invoice" in m.subject.lower()])


def test_a_sighting_of_another_message_is_refused(open_index):
    entries = _entries(5)
    message, _ = entries[1]
    with pytest.raises(BulkLoadRefused, match="not of"):
        open_index("other").bulk_load([(message, entries[3][1])])


def test_the_sqlite_bulk_load_leaves_no_open_transaction(open_index, index_backend):
    if index_backend != "sqlite":
        pytest.skip("SQLite's connection state")
    index = open_index("state")
    index.bulk_load(_entries(10))
    assert not index.db.in_transaction
    assert isinstance(index.db, sqlite3.Connection)


def test_a_kept_server_starts_again_on_its_databases(index_backend):
    """``LocalPostgres(keep=True)``, as the benchmark caches its built index: stop leaves the
    folder, and a second start serves the same databases without a new initdb."""
    if index_backend != "postgresql":
        pytest.skip("once, in the postgresql run")
    import psycopg

    from workbench.quarantine.pgserver import LocalPostgres

    # not under pytest's tmp_path: the server's user must reach the folder
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-kept-"))
    with LocalPostgres(folder, keep=True) as pg, \
            psycopg.connect(pg.create_database("cache"), autocommit=True) as db:
        db.execute("CREATE TABLE t (n int)")
        db.execute("INSERT INTO t VALUES (42)")
    assert (folder / "data" / "PG_VERSION").exists()
    with LocalPostgres(folder, keep=True) as pg, \
            psycopg.connect(pg.address("cache"), autocommit=True) as db:
        assert db.execute("SELECT n FROM t").fetchone() == (42,)
    LocalPostgres(folder).stop()         # not kept: removes the folder (not running: no pg_ctl)
    assert not folder.exists()
