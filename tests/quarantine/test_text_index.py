"""The trigram text index answers substring terms exactly as LIKE does, only faster."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.text_index_samples import NAMES, QUERIES, SENDERS, SUBJECTS
from workbench.quarantine import index as index_module
from workbench.quarantine.index import NewMessage, QuarantineIndex, Sighting
from workbench.quarantine.query import parse_query

# SQLite's FTS5 text index; test_backends.py holds PostgreSQL to the same answers
pytestmark = pytest.mark.sqlite_only



def _fill(index: QuarantineIndex, count: int = 60) -> None:
    messages, sightings = [], []
    for n in range(count):
        sha = f"{n:064x}"
        name = NAMES[n % len(NAMES)]
        messages.append(NewMessage(sha256=sha, size=100, subject=f"{SUBJECTS[n % len(SUBJECTS)]} {n}",
                                   from_addr=SENDERS[n % len(SENDERS)],
                                   attachment_names=[name] if name else []))
        sightings.append(Sighting(id=sha[:32], sha256=sha, tower="t01", server="mx01",
                                  reason="stuck", seen_at=f"2026-11-{1 + n % 28:02d}T00:00:{n % 60:02d}"))
    index.record(messages, sightings)


@pytest.fixture
def index(tmp_path):
    idx = QuarantineIndex(tmp_path / "index.sqlite")
    _fill(idx)
    yield idx
    idx.close()


def _results(index: QuarantineIndex, text: str, monkeypatch, *, selective: int) -> tuple:
    monkeypatch.setattr(index_module, "SELECTIVE_MATCHES", selective)
    return ([r.sha256 for r in index.list(text, limit=1000)], index.count(text),
            index.facets(text))




@pytest.mark.parametrize("text", QUERIES)
def test_the_index_and_like_agree(index, monkeypatch, text):
    by_index = _results(index, text, monkeypatch, selective=10**9)     # every term indexed
    by_like = _results(index, text, monkeypatch, selective=-1)         # no term indexed
    assert by_index == by_like


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="abcinvoeß%_ \"'-:.ÜZ0479", min_size=1, max_size=8))
def test_any_term_the_index_and_like_agree(index, monkeypatch, text):
    try:
        parse_query(text)
    except ValueError:
        return                      # unbalanced quotes: a QueryError either way
    assert (_results(index, text, monkeypatch, selective=10**9)
            == _results(index, text, monkeypatch, selective=-1))


def test_a_selective_term_is_answered_by_the_index(index):
    query = parse_query("renewal")
    where, params = index._plan(query)
    assert "messages_fts" in where and params[0] == '"renewal"' and params[1:] == query.params
    common = parse_query("invoice")
    index_module_limit = index_module.SELECTIVE_MATCHES
    try:
        index_module.SELECTIVE_MATCHES = 3              # "invoice" is in many more rows
        assert index._plan(common) == (common.where, common.params)
    finally:
        index_module.SELECTIVE_MATCHES = index_module_limit


def test_an_index_from_before_the_text_index_gets_one(tmp_path, monkeypatch):
    path = tmp_path / "index.sqlite"
    old = QuarantineIndex(path)
    _fill(old)
    for name in ("messages_fts_insert", "messages_fts_delete", "messages_fts_update"):
        old.db.execute(f"DROP TRIGGER {name}")
    old.db.execute("DROP TABLE messages_fts")
    old.close()
    reader = QuarantineIndex(path, readonly=True)          # a reader does not migrate: LIKE
    assert not reader.text_index
    like = [r.sha256 for r in reader.list("renewal")]
    assert len(like) == 6
    migrated = QuarantineIndex(path)                       # a writer adds and fills it
    assert migrated.text_index
    assert [r.sha256 for r in migrated.list("renewal")] == like
    assert migrated.db.execute("SELECT count(*) FROM messages_fts").fetchone()[0] == 60
    assert migrated.db.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    reader.close()
    migrated.close()


def test_reindex_leaves_the_text_index_in_step(quarantine, mail):
    from workbench.quarantine.ingest import ingest_bytes

    for n, subject in enumerate(["Contract renewal", "Lunch", "Renewal notice"]):
        ingest_bytes(quarantine, mail(n, subject=subject), tower="t01", server="mx01",
                     reason="stuck", source="test")
    quarantine.reindex()
    rows = quarantine.index.db.execute("SELECT count(*) FROM messages_fts").fetchone()[0]
    assert rows == 3
    assert sorted(r.subject for r in quarantine.index.list("renewal")) == [
        "Contract renewal", "Renewal notice"]


def test_a_term_fts5_cannot_parse_falls_back_to_like(index):
    """The phrase quoting makes every term a literal; a broken text index is not trusted."""
    assert index._plan(parse_query('"a""b" zzzz'))[0]      # quotes inside a phrase: fine
    index.db.execute("DROP TABLE messages_fts")
    for name in ("messages_fts_insert", "messages_fts_delete", "messages_fts_update"):
        index.db.execute(f"DROP TRIGGER {name}")
    query = parse_query("renewal")
    assert index._plan(query) == (query.where, query.params)
    assert index.count("renewal") == 6
    with pytest.raises(sqlite3.OperationalError):
        index.db.execute("SELECT * FROM messages_fts")


def test_one_query_probes_each_term_once(index, monkeypatch):
    """List, count, counts by reason and further pages of one query share its plan."""
    probes: list[str] = []
    real = index.db

    class Spy:
        def execute(self, sql, params=()):
            if "LIMIT ?)" in sql:
                probes.append(params[0])
            return real.execute(sql, params)

        def close(self):
            real.close()

    monkeypatch.setattr(index, "db", Spy())
    query = parse_query("renewal invoice")
    index.list(query)
    index.list(query, offset=50)
    index.count(query)
    index.facets(query)
    assert sorted(probes) == ['"invoice"', '"renewal"']
