"""The UI's reader pool opens the index the quarantine is configured for, on both backends.

Every test here runs on SQLite and on PostgreSQL (tests/quarantine/conftest.py): the
terminal UI's list, counts and interrupts go through ``IndexPool``, so a PostgreSQL
workspace shows in the UI what ``quarantine list`` shows.
"""

from __future__ import annotations

import threading

import pytest

from tests.support.pilot import settle, until
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.query import parse_query
from workbench.tui.app import make_app
from workbench.tui.pages import IndexPool, fetch_page
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.widgets.message_list import MessageList


def _fill(quarantine, mail, n: int = 7) -> list[str]:
    return [ingest_bytes(quarantine, mail(i, subject=f"Invoice {i:02d}"), tower=f"t{i % 3}",
                         server="mx01", reason="stuck", source="test").messages[0].sha256
            for i in range(n)]


def test_the_pool_reads_the_configured_index(quarantine, mail, index_backend):
    shas = _fill(quarantine, mail)
    pool = IndexPool.for_quarantine(quarantine.root)
    try:
        assert pool.exists
        assert bool(pool.address) == (index_backend == "postgresql")
        query = parse_query("invoice sort:subject")
        with pool.reader() as index:
            page = fetch_page(index, query, 0, page_size=5)
            assert index.count(query) == len(shas)
        assert [r.sha256 for r in page] == [r.sha256 for r in quarantine.index.list(query, limit=5)]
    finally:
        pool.close()


def test_interrupt_stops_a_running_statement_on_either_backend(quarantine, mail, index_backend):
    _fill(quarantine, mail, 1)
    pool = IndexPool.for_quarantine(quarantine.root)
    slow = ("SELECT pg_sleep(60)" if index_backend == "postgresql" else
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
    started, outcome = threading.Event(), []

    def run() -> None:
        try:
            with pool.reader(token=3) as index:
                started.set()
                index.db.execute(slow).fetchone()
                outcome.append("finished")
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(30)
    for _ in range(100):                  # the statement may not have started yet
        pool.interrupt(3)
        thread.join(0.1)
        if not thread.is_alive():
            break
    assert not thread.is_alive()
    [error] = outcome
    import sqlite3

    assert isinstance(error, sqlite3.OperationalError) and "interrupt" in str(error).lower()
    with pool.reader() as index:          # the lent connection is usable again
        assert index.count("") == 1
    pool.close()


@pytest.mark.slow
async def test_the_ui_lists_and_filters_the_configured_index(quarantine, mail, workspace, index_backend):
    """The real app on the workspace: its list and filter read the same index the CLI does."""
    shas = _fill(quarantine, mail)
    app = make_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        table = screen.query_one(MessageList)
        await until(pilot, lambda: table.row_count() == len(shas), timeout=30)
        screen.start_listing(parse_query("subject:\"Invoice 03\""))
        await until(pilot, lambda: table.row_count() == 1, timeout=30)
        assert screen.listing is not None and screen.listing.row(0).subject == "Invoice 03"
