"""Builders of small synthetic mail for the quarantine tests, and the two index backends.

Every quarantine test runs twice: on the SQLite index (the default) and on a PostgreSQL
index, each test in its own schema of one real server started for the session (initdb in
a temporary folder, a unix socket, stopped at the end). A test of something only the SQLite
file has (its pages, its locks, its file mode) is marked ``sqlite_only``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.support.quarantine_mail import make_mail

_schemas = itertools.count(1)


@pytest.fixture
def mail():
    return make_mail



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
