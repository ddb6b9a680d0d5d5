"""Paged reads of the quarantine index for the virtual message list (no Textual here).

The list never holds every row: it asks for the page a visible row falls in, keeps
the most recent pages in an LRU cache, and a query change starts a new ``Listing``
(the cache belongs to one query). Readers borrow connections from a small pool,
one connection per thread at a time, because a connection must not be shared across
threads while a query runs; a superseded query can be interrupted. The pool opens the
index the quarantine is configured for: its SQLite file, or a PostgreSQL address
(``quarantine/settings.toml``, ``$WORKBENCH_INDEX``), as every other command does.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.quarantine.index import MessageRow, QuarantineIndex
from workbench.quarantine.query import Query
from workbench.quarantine.service import INDEX_NAME, index_address

if TYPE_CHECKING:
    from workbench.quarantine.pgindex import PostgresIndex

PAGE_SIZE = 100
MAX_PAGES = 64


class QueryInterrupted(sqlite3.OperationalError):
    """A borrower's statement was stopped by ``IndexPool.interrupt``: SQLite's own error for
    that, and what a cancelled PostgreSQL statement is turned into, so callers handle one."""


class IndexPool:
    """Read connections to the quarantine's index, lent to one thread at a time."""

    def __init__(self, path: Path, *, address: str = "", size: int = 4):
        self.path = Path(path)
        self.address = address            # a postgresql:// index; "" is the SQLite file at path
        self.size = size
        self._idle: list[QuarantineIndex | PostgresIndex] = []
        self._busy: dict[int, QuarantineIndex | PostgresIndex] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def for_quarantine(cls, root: Path, *, size: int = 4) -> IndexPool:
        """The pool for the quarantine at ``root``, on the index its settings name."""
        return cls(Path(root) / INDEX_NAME, address=index_address(Path(root)), size=size)

    @property
    def exists(self) -> bool:
        """Whether there is an index to read (a server's is there; its errors say otherwise)."""
        return bool(self.address) or self.path.is_file()

    def _open(self) -> QuarantineIndex | PostgresIndex:
        # the TUI reads; the writers (ingest, triage) own the schema
        if self.address:
            from workbench.quarantine.pgindex import PostgresIndex

            return PostgresIndex(self.address, readonly=True)
        return QuarantineIndex(self.path, readonly=True)

    @contextmanager
    def reader(self, token: int | None = None) -> Iterator[QuarantineIndex | PostgresIndex]:
        """Borrow a connection; ``token`` names the borrower so ``interrupt(token)`` can stop it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the index pool is closed")
            index = self._idle.pop() if self._idle else None
        if index is None:
            index = self._open()
        key = token if token is not None else id(index)
        with self._lock:
            self._busy[key] = index
        try:
            yield index
        except Exception as exc:
            psycopg = sys.modules.get("psycopg")     # loaded only for a PostgreSQL index
            if psycopg is not None and isinstance(exc, psycopg.errors.QueryCanceled):
                raise QueryInterrupted("interrupted") from exc
            raise
        finally:
            with self._lock:
                self._busy.pop(key, None)
                keep = not self._closed and len(self._idle) < self.size
                if keep:
                    self._idle.append(index)
            if not keep:
                index.close()

    def interrupt(self, token: int) -> None:
        """Abort the statement a borrower is running (it raises :class:`QueryInterrupted`
        or SQLite's own ``OperationalError: interrupted``)."""
        with self._lock:
            index = self._busy.get(token)
        if index is not None:
            index.interrupt()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for index in idle:
            index.close()


@dataclass
class Listing:
    """One query's view of the index: its total (once counted) and cached pages of rows."""

    query: Query
    generation: int
    page_size: int = PAGE_SIZE
    max_pages: int = MAX_PAGES
    total: int | None = None
    pages: OrderedDict[int, list[MessageRow]] = field(default_factory=OrderedDict)
    pending: set[int] = field(default_factory=set)

    def page_of(self, row: int) -> int:
        return row // self.page_size

    def row(self, index: int) -> MessageRow | None:
        """The row at ``index`` if its page is loaded (None means: ask for ``page_of(index)``)."""
        page_no = self.page_of(index)
        page = self.pages.get(page_no)
        if page is None:
            return None
        self.pages.move_to_end(page_no)
        offset = index - page_no * self.page_size
        return page[offset] if offset < len(page) else None

    def store(self, page_no: int, rows: list[MessageRow]) -> None:
        self.pending.discard(page_no)
        self.pages[page_no] = rows
        self.pages.move_to_end(page_no)
        while len(self.pages) > self.max_pages:
            self.pages.popitem(last=False)
        if len(rows) < self.page_size:
            # a short page is the last one: the total is known without counting
            self.total = page_no * self.page_size + len(rows)

    def want(self, page_no: int) -> bool:
        """True when the page is neither loaded nor already asked for (and marks it asked)."""
        if page_no in self.pages or page_no in self.pending:
            return False
        if self.total is not None and page_no * self.page_size >= max(self.total, 1):
            return False
        self.pending.add(page_no)
        return True

    def replace(self, row: MessageRow) -> bool:
        """Swap in a fresh copy of a row (after triage) wherever it is cached."""
        found = False
        for page in self.pages.values():
            for i, old in enumerate(page):
                if old.sha256 == row.sha256:
                    page[i] = row
                    found = True
        return found

    @property
    def known_rows(self) -> int:
        """Rows the list can show now: the total, else as far as loaded pages reach.

        While the count runs, a full last page promises one more page, so scrolling
        on asks for it instead of stopping at an arbitrary row.
        """
        if self.total is not None:
            return self.total
        if not self.pages:
            return 0
        last = max(self.pages)
        rows = last * self.page_size + len(self.pages[last])
        return rows + self.page_size if len(self.pages[last]) == self.page_size else rows


def fetch_page(index: QuarantineIndex | PostgresIndex, query: Query, page_no: int,
               page_size: int = PAGE_SIZE) -> list[MessageRow]:
    return index.list(query, offset=page_no * page_size, limit=page_size)
