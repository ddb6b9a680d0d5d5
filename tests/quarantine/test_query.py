"""The query language against a real index."""

from __future__ import annotations

import pytest

from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.query import QueryError, parse_query


@pytest.fixture
def filled(quarantine, mail):
    specs = [
        ("t12", "unknown-virus", "billing@evil.example", "Invoice 4471", "invoice.zip"),
        ("t12", "stuck", "anna@example.com", "Lunch plans", None),
        ("t03", "unknown-virus", "hr@example.com", "Payroll update", "payroll.xlsm"),
        ("t03", "stuck", "news@shop.example", "50% off_today", None),
    ]
    for n, (tower, reason, sender, subject, att) in enumerate(specs):
        ingest_bytes(quarantine, mail(n, subject=subject, sender=sender, attachment=att),
                     tower=tower, server="mx01", reason=reason, source="test")
    return quarantine


def subjects(q, text):
    return sorted(r.subject for r in q.index.list(text))


def test_field_filters_combine(filled):
    assert subjects(filled, "tower:t12 reason:unknown-virus") == ["Invoice 4471"]
    assert subjects(filled, "has:attachment") == ["Invoice 4471", "Payroll update"]
    assert subjects(filled, "from:@example.com") == ["Lunch plans", "Payroll update"]
    assert subjects(filled, "TOWER:T03 status:new") == ["50% off_today", "Payroll update"]
    assert subjects(filled, "name:xlsm") == ["Payroll update"]


def test_free_text_negation_and_like_escaping(filled):
    assert subjects(filled, "invoice") == ["Invoice 4471"]
    assert subjects(filled, "-tower:t12") == ["50% off_today", "Payroll update"]
    assert subjects(filled, "50%") == ["50% off_today"]
    assert subjects(filled, "off_t") == ["50% off_today"]
    assert subjects(filled, '"Lunch plans"') == ["Lunch plans"]


def test_tags_status_and_sort(filled):
    sha = filled.index.list("invoice")[0].sha256
    filled.tag(sha, ["emotet", "urgent"])
    filled.set_status(sha, "triaged", note="looks like emotet")
    assert subjects(filled, "tag:emotet") == ["Invoice 4471"]
    assert subjects(filled, "status:triaged") == ["Invoice 4471"]
    assert subjects(filled, "has:note") == ["Invoice 4471"]
    ordered = [r.subject for r in filled.index.list("sort:+subject")]
    assert ordered == sorted(ordered)
    assert filled.index.count("has:attachment") == 2
    facets = filled.index.facets("")
    assert facets["reason"] == {"unknown-virus": 2, "stuck": 2}
    assert facets["status"]["triaged"] == 1


@pytest.mark.parametrize(("text", "message"), [
    ('"unbalanced', "quotes"),
    ("has:wings", "has:"),
    ("sort:colour", "sort"),
    ("after:yesterday", "date"),
    ("tower:", "needs a value"),
])
def test_bad_queries_say_what_is_wrong(text, message):
    with pytest.raises(QueryError, match=message):
        parse_query(text)


def _plan(q, text):
    query = parse_query(text)
    where, params = q.index._plan(query)
    rows = q.index.db.execute(
        f"EXPLAIN QUERY PLAN SELECT count(*) FROM messages WHERE {where}", params).fetchall()
    return " ".join(str(r[3]) for r in rows)


def test_negated_status_and_defects_are_answered_by_an_index(filled, index_backend):
    sha = filled.index.list("invoice")[0].sha256
    filled.set_status(sha, "dismissed")
    assert subjects(filled, "-status:dismissed") == ["50% off_today", "Lunch plans", "Payroll update"]
    assert subjects(filled, "-status:DISMISSED tower:t12") == ["Lunch plans"]
    assert subjects(filled, "-status:new") == ["Invoice 4471"]
    assert filled.index.count("-status:new") == 1
    sqlite = index_backend == "sqlite"
    # the count walks the status index, not every message (SQLite's plan; PostgreSQL's
    # planner reads a table this small whole)
    assert not sqlite or "messages_status" in _plan(filled, "-status:new")
    filled.index.db.execute("UPDATE messages SET defect_count = 1, defects = '[\"x\"]' "
                            f"WHERE sha256 = {'?' if sqlite else '%s'}", (sha,))
    assert subjects(filled, "has:defects") == ["Invoice 4471"]
    assert not sqlite or "messages_defects" in _plan(filled, "has:defects")
    # a status no triage sets is a mistake, not a negation that selects everything
    with pytest.raises(QueryError, match="unknown status 'odd'"):
        subjects(filled, "-status:odd")
