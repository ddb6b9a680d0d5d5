"""The paged listing behind the virtual quarantine list, and the connection pool."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from tests.support.ui_samples import MESSAGES
from workbench.quarantine.index import MessageRow
from workbench.quarantine.query import parse_query
from workbench.quarantine.service import INDEX_NAME
from workbench.tui.pages import IndexPool, Listing, fetch_page
from workbench.workspace import Workspace


def _row(n: int) -> MessageRow:
    return MessageRow(sha256=f"{n:064x}", message_id="", from_addr="", to_addrs="", subject=str(n),
                      date=None, size=1, tower="", server="", reason="", first_seen="",
                      last_seen="", sightings=1, attachment_names=[], attachment_count=0,
                      status="new", tags=[], defects=[])


def test_rows_come_from_loaded_pages_only() -> None:
    listing = Listing(parse_query(""), generation=1, page_size=10)
    assert listing.row(3) is None
    assert listing.want(0) and not listing.want(0)        # asked once only
    listing.store(0, [_row(i) for i in range(10)])
    assert listing.row(3).subject == "3"
    assert listing.row(12) is None
    # the total is unknown: a full page promises one more page of rows
    assert listing.known_rows == 20
    listing.store(1, [_row(10 + i) for i in range(4)])
    assert listing.total == 14 and listing.known_rows == 14
    assert not listing.want(2)                             # past the end


def test_the_cache_keeps_only_recent_pages() -> None:
    listing = Listing(parse_query(""), generation=1, page_size=2, max_pages=3)
    for page in range(5):
        listing.store(page, [_row(page * 2), _row(page * 2 + 1)])
    assert sorted(listing.pages) == [2, 3, 4]
    listing.row(4)                                          # touch page 2
    listing.store(5, [_row(10), _row(11)])
    assert sorted(listing.pages) == [2, 4, 5]


def test_replace_updates_a_cached_row() -> None:
    listing = Listing(parse_query(""), generation=1, page_size=5)
    listing.store(0, [_row(i) for i in range(3)])
    fresh = _row(1)
    fresh.status = "signed"
    assert listing.replace(fresh)
    assert listing.row(1).status == "signed"
    assert not listing.replace(_row(99))


def test_pool_pages_match_the_index(ui_workspace: Workspace) -> None:
    pool = IndexPool(ui_workspace.quarantine / INDEX_NAME)
    try:
        query = parse_query("", sort="subject", descending=False)
        with pool.reader() as index:
            first = fetch_page(index, query, 0, page_size=10)
            second = fetch_page(index, query, 1, page_size=10)
            everything = index.list(query, limit=1000)
        assert [r.sha256 for r in first + second] == [r.sha256 for r in everything[:20]]
        assert len(everything) == MESSAGES + 2
    finally:
        pool.close()


def test_pool_lends_distinct_connections_and_reuses_them(ui_workspace: Workspace) -> None:
    pool = IndexPool(ui_workspace.quarantine / INDEX_NAME, size=2)
    try:
        with pool.reader() as a, pool.reader() as b:
            assert a is not b
        with pool.reader() as c:
            assert c in (a, b)
    finally:
        pool.close()
    with pytest.raises(RuntimeError), pool.reader():
        pass


def test_interrupt_stops_a_running_query(ui_workspace: Workspace) -> None:
    pool = IndexPool(ui_workspace.quarantine / INDEX_NAME)
    outcome: list[object] = []
    started = threading.Event()

    def slow() -> None:
        with pool.reader(token=7) as index:
            started.set()
            try:
                # a query that would run for a long time
                index.db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                                 "SELECT count(*) FROM c").fetchone()
                outcome.append("finished")
            except sqlite3.OperationalError as exc:
                outcome.append(str(exc))

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait(5)
    time.sleep(0.05)
    pool.interrupt(7)
    thread.join(5)
    pool.close()
    assert not thread.is_alive()
    assert outcome == ["interrupted"]
