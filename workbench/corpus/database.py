"""The corpus package's SQLite files (registry, scan cache): WAL connections and short transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def retry_busy(fn: Callable[[], T]) -> T:
    """``fn()``; while another writer holds the database, the quarantine index's retry
    (imported only then: with it come the quarantine's query modules, which cost a re-test
    as much start-up as the corpus modules it needs)."""
    try:
        return fn()
    except sqlite3.OperationalError as exc:
        message = str(exc).lower()
        if "locked" not in message and "busy" not in message:
            raise
    from workbench.quarantine.index import retry_busy as retry

    return retry(fn)


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A WAL connection with a busy timeout, schema applied; safe for several processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    retry_busy(lambda: db.execute("PRAGMA journal_mode=WAL"))
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    retry_busy(lambda: db.executescript(schema))
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    retry_busy(lambda: db.execute("BEGIN IMMEDIATE"))
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    else:
        retry_busy(lambda: db.execute("COMMIT"))
