"""The PostgreSQL index gives the SQLite index's answers: same rows, same order, same counts."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.text_index_samples import NAMES, QUERIES, SENDERS, SUBJECTS
from workbench.quarantine.index import (
    AmbiguousId,
    FailedInput,
    NewMessage,
    QuarantineIndex,
    Sighting,
)
from workbench.quarantine.query import SORT_COLUMNS, STATUSES, QueryError, parse_query

TOWERS = ["t01", "T02", "t03"]


def _fill(index) -> None:
    messages, sightings = [], []
    for n in range(90):
        sha = f"{n * 7919:064x}"
        name = NAMES[n % len(NAMES)]
        messages.append(NewMessage(
            sha256=sha, size=100 + n % 13, subject=f"{SUBJECTS[n % len(SUBJECTS)]} {n}",
            from_addr=SENDERS[n % len(SENDERS)], to_addrs=f"rcpt{n % 4}@corp.example",
            message_id=f"<{n}@mx.example>",
            date=None if n % 9 == 0 else f"2026-10-{1 + n % 27:02d}T10:00:00.000000Z",
            attachment_names=[name] if name else [], defects=["x"] if n % 11 == 0 else []))
        for copy in range(1 + n % 3):      # some messages seen more than once, by other towers
            sightings.append(Sighting(
                id=f"{sha[:30]}{copy:02d}", sha256=sha, tower=TOWERS[(n + copy) % 3],
                server=f"mx{copy}", reason=["stuck", "unknown-virus", "Spam"][n % 3],
                seen_at=f"2026-11-{1 + n % 28:02d}T00:{copy:02d}:{n % 60:02d}.000000Z"))
    index.record(messages, sightings)
    index.record_failed([FailedInput("f1", "2026-11-02T00:00:00.000000Z", "not mail", 3, "x",
                                     "failed/x", "t01", "mx1")])
    for n in range(0, 90, 4):
        sha = f"{n * 7919:064x}"
        index.apply_status(sha, STATUSES[n % len(STATUSES)], actor="a", at=f"2026-11-29T00:{n:02d}",
                           note="looked" if n % 8 == 0 else "")
        index.apply_tags(sha, ["Phish", f"wave{n % 3}"], [], actor="a", at="2026-11-29T01:00")


@pytest.fixture
def both(tmp_path, index_backend, postgres_address):
    if index_backend == "sqlite":
        pytest.skip("compares both backends in the postgresql run")
    from workbench.quarantine.pgindex import PostgresIndex

    lite, pg = QuarantineIndex(tmp_path / "index.sqlite"), PostgresIndex(postgres_address)
    _fill(lite)
    _fill(pg)
    yield lite, pg
    lite.close()
    pg.close()


def _answers(index, text: str) -> tuple:
    return ([r for r in index.list(text, limit=1000)], index.count(text), index.facets(text),
            [r.sha256 for r in index.list(text, offset=5, limit=7)])


MORE = ["", "tower:t02", "tower:T01 reason:spam", "status:new", "-status:dismissed",
        "-status:NEW", "has:attachment", "has:tags", "has:defects", "has:note", "tag:phish",
        "tag:wave1 -tag:wave2", "sha:0000", "msgid:@mx", "to:rcpt3", "after:2026-11-10",
        "before:2026-11-05 from:example", "since:2026-11-20T00:00:00Z", "server:MX1",
        "reason:unknown-virus invoice", "-has:attachment 4471", "name:straße", "STRASSE", "üNÏ"]


@pytest.mark.parametrize("text", QUERIES + MORE)
def test_every_query_has_the_same_answer(both, text):
    lite, pg = both
    assert _answers(pg, text) == _answers(lite, text)


@pytest.mark.parametrize("column", sorted(SORT_COLUMNS))
@pytest.mark.parametrize("descending", [True, False])
def test_every_sort_has_the_same_order(both, column, descending):
    lite, pg = both
    q = parse_query("", sort=column, descending=descending)
    assert [r.sha256 for r in pg.list(q, limit=1000)] == [r.sha256 for r in lite.list(q, limit=1000)]


def test_everything_else_agrees(both):
    lite, pg = both
    sha = lite.list("")[3].sha256
    assert pg.get(sha) == lite.get(sha)
    assert pg.sightings(sha) == lite.sightings(sha)
    assert pg.resolve(sha.upper()) == lite.resolve(sha.upper()) == sha
    for index in (lite, pg):
        with pytest.raises(AmbiguousId):
            index.resolve("0000")
    assert pg.stats() == lite.stats()
    assert pg.failed() == lite.failed()
    assert pg.all_shas() == lite.all_shas()
    assert pg.known([sha, "f" * 64]) == lite.known([sha, "f" * 64]) == {sha}
    assert [(a.at, a.actor, a.action, a.sha256, a.detail, a.note) for a in pg.audit(limit=10**6)] \
        == [(a.at, a.actor, a.action, a.sha256, a.detail, a.note) for a in lite.audit(limit=10**6)]
    assert [r for _, r in pg.rows_after(0, 1000)] == [r for _, r in lite.rows_after(0, 1000)]
    assert pg.last_change() == lite.last_change()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from("aAbIinvoceÜüß%_\\\"' .:-5"), min_size=1, max_size=9))
def test_any_text_has_the_same_answer(both, text):
    lite, pg = both
    try:
        parse_query(text)
    except QueryError:
        return
    assert _answers(pg, text) == _answers(lite, text)


def test_record_keeps_the_latest_sighting_whatever_the_order(both):
    """Sightings of one message in one batch, out of time order: the same row."""
    lite, pg = both
    sha = "e" * 64
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    seen = [Sighting(id=f"z{n}", sha256=sha, tower=f"t{n}", server="s", reason="r",
                     seen_at=(at + dt.timedelta(minutes=(n * 7) % 5)).isoformat()) for n in range(5)]
    for index in (lite, pg):
        index.record([NewMessage(sha256=sha, size=1)], seen)
    assert pg.get(sha) == lite.get(sha)
