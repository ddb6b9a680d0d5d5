"""Builders of small synthetic mail for the quarantine tests, and the two index backends.

Every quarantine test runs twice: on the SQLite index (the default) and on a PostgreSQL
index, each test in its own schema of one real server started for the session (initdb in
a temporary folder, a unix socket, stopped at the end). A test of something only the SQLite
file has (its pages, its locks, its file mode) is marked ``sqlite_only``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.quarantine.service import index_address
from workbench.samples.mail import Attachment, Mail

_schemas = itertools.count(1)


def make_mail(n: int, *, subject: str | None = None, sender: str | None = None,
              attachment: str | None = None) -> bytes:
    return Mail(sender or f"user{n}@sender{n % 7}.example", f"rcpt{n}@corp.example",
                subject or f"Message number {n}", text=f"body {n}\n",
                attachments=[Attachment(attachment, b"payload %d" % n)] if attachment else [],
                date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)).build()


@pytest.fixture
def mail():
    return make_mail


def indexed_shas(root: Path) -> set[str]:
    """The messages the quarantine at ``root`` has indexed, read by a connection of our own
    (whichever backend it uses); empty while there is no index yet."""
    import sqlite3

    address = index_address(root)
    if address:
        import psycopg

        with psycopg.connect(address) as db:
            if db.execute("SELECT to_regclass('messages')").fetchone() == (None,):
                return set()
            return {r[0] for r in db.execute("SELECT sha256 FROM messages")}
    if not (root / "index.sqlite").exists():
        return set()
    con = sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return {r[0] for r in con.execute("SELECT sha256 FROM messages")}
    finally:
        con.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: tests a property of the SQLite index file")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """One PostgreSQL server for the session, with a ``workbench`` database (pg_trgm in it)."""
    from workbench.quarantine.pgserver import LocalPostgres, PostgresUnavailable

    try:
        server = LocalPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL: {exc}")
    try:
        server.create_database("workbench")
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_address(postgres_server) -> Iterator[str]:
    """The address of an empty index of its own on the session's server (a fresh schema)."""
    import psycopg

    schema = f"t{next(_schemas)}"
    with psycopg.connect(postgres_server.address("workbench"), autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    yield postgres_server.address("workbench", search_path=f"{schema},public")
    with psycopg.connect(postgres_server.address("workbench"), autocommit=True) as db:
        db.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"], autouse=True)
def index_backend(request: pytest.FixtureRequest, _isolated_env: None,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    """Which index this test's quarantine uses (``$WORKBENCH_INDEX``, as ``--index`` sets)."""
    if request.param == "postgresql":
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("a property of the SQLite index file")
        monkeypatch.setenv("WORKBENCH_INDEX", request.getfixturevalue("postgres_address"))
    return str(request.param)
