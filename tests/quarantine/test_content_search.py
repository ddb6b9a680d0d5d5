"""Search reaches what dissection found: bodies, names inside archives, strings, artifact hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess

import pefile
import pytest

from workbench.dissect.walker import dissect_message
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.query import QueryError, parse_query
from workbench.samples.archives import build_zip
from workbench.samples.mail import Attachment, Mail
from workbench.samples.threats import THREATS

STEALER = next(t for t in THREATS if t.key == "stealer")


def _stealer_mail() -> bytes:
    pe = STEALER.build()
    return Mail("billing@mail-secure.example", "anna@corp.example", "QuickBooks update required",
                text="Please install the update from our portal before Friday.\n",
                attachments=[Attachment("QB_update.zip", build_zip([(STEALER.filename, pe)]),
                                        "application/zip")],
                date=dt.datetime(2026, 11, 20, tzinfo=dt.UTC)).build()


@pytest.fixture
def dissected(quarantine, mail):
    """The stealer mail and an ordinary one, both dissected."""
    stealer = ingest_bytes(quarantine, _stealer_mail(), tower="t12", server="mx01",
                           reason="unknown-virus", source="test").messages[0].sha256
    plain = ingest_bytes(quarantine, mail(1, subject="Lunch plans"), tower="t03", server="mx01",
                         reason="stuck", source="test").messages[0].sha256
    for sha in (stealer, plain):
        dissect_message(quarantine, sha)
    return quarantine, stealer, plain


def found(q, text: str) -> set[str]:
    return {r.sha256 for r in q.index.list(text, limit=100)}


def test_free_text_finds_strings_inside_an_attachment_inside_an_archive(dissected):
    q, stealer, _ = dissected
    assert found(q, "WbStealer") == {stealer}, "a string of the PE inside the zip"
    assert found(q, "exfil.stealer.example") == {stealer}
    assert q.index.count("wbstealer") == 1, "case-insensitive, like the header text"


def test_every_string_the_strings_tool_finds_is_searchable(dissected, tmp_path):
    """GNU strings (binutils) is the reference: each of its strings of the PE finds the message."""
    if shutil.which("strings") is None:
        pytest.skip("binutils' strings is not installed")
    q, stealer, _ = dissected
    sample = tmp_path / STEALER.filename
    sample.write_bytes(STEALER.build())
    out = subprocess.run(["strings", "-a", "-n", "12", str(sample)], capture_output=True,
                         check=True).stdout.decode("ascii", "replace").splitlines()
    assert out, "strings found something to compare"
    for text in out:
        term = text.strip().replace('"', "")
        if len(term) >= 12 and " " not in term and ":" not in term:
            assert stealer in found(q, term), term


def test_free_text_finds_names_inside_archives_and_body_text(dissected):
    q, stealer, plain = dissected
    assert found(q, STEALER.filename) == {stealer}, "the member name, not only the zip's"
    assert found(q, '"portal before Friday"') == {stealer} and found(q, '"Friday portal"') == set()
    assert found(q, '"body 1"') == {plain}


def test_any_artifact_hash_finds_its_message(dissected):
    q, stealer, _ = dissected
    pe = STEALER.build()
    imphash = pefile.PE(data=pe).get_imphash()      # the reference tool computes it too
    assert imphash
    ssdeep = next(n.ssdeep for n in dissect_message(q, stealer).root.walk()
                  if n.sha256 == hashlib.sha256(pe).hexdigest())
    for value in (hashlib.sha256(pe).hexdigest(), hashlib.md5(pe).hexdigest(),
                  hashlib.sha1(pe).hexdigest().upper(), imphash, ssdeep):
        assert found(q, value) == {stealer}, value
        assert found(q, f"hash:{value}") == {stealer}, value
    assert found(q, f"hash:{stealer}") == {stealer}, "the message's own sha256 too"
    with pytest.raises(QueryError, match="hash:"):
        parse_query("hash:xyz")


def test_a_reindex_keeps_what_dissection_made_searchable(dissected):
    """The journal does not hold dissection's content: a reindex (new rowids) keeps it."""
    q, stealer, plain = dissected
    pe = STEALER.build()
    before = {text: found(q, text) for text in
              ("WbStealer", STEALER.filename, '"body 1"', hashlib.md5(pe).hexdigest(), "QuickBooks")}
    assert before["WbStealer"] == {stealer} and before['"body 1"'] == {plain}
    report = q.reindex()
    assert report.messages == 2
    assert {text: found(q, text) for text in before} == before
    assert q.index.count("WbStealer") == 1
    q.reindex()                                   # twice: nothing doubled, nothing lost
    assert {text: found(q, text) for text in before} == before


@pytest.mark.sqlite_only
def test_header_search_still_uses_the_text_index_beside_the_content(dissected):
    q, stealer, _ = dissected
    where, _params = q.index._plan(parse_query("QuickBooks"))
    assert "messages_fts" in where and "message_content" in where
    assert found(q, "QuickBooks") == {stealer}


@pytest.mark.parametrize(("text", "hint"), [
    ("towr:t12", "did you mean 'tower:'"),
    ("foo:bar", "unknown field 'foo:'"),
    ("status:bogus", "unknown status 'bogus'"),
    ("-status:bogus", "known: new, triaged"),
    ("statsu:new", "did you mean 'status:'"),
])
def test_unknown_fields_and_values_are_errors_with_a_hint(text, hint):
    with pytest.raises(QueryError, match=hint):
        parse_query(text)


@pytest.mark.parametrize("text", [
    "http://exfil.stealer.example/upload.php", "C:\\build\\wbstealer", "3:abc:def", "12:30",
])
def test_text_with_a_colon_that_is_no_field_stays_free_text(text):
    parse_query(text)


def test_the_cli_says_what_is_wrong_with_a_query(quarantine, capsys):
    from workbench.cli import main
    from workbench.exitcodes import E_USAGE

    home = str(quarantine.root.parent)
    assert main(["--home", home, "quarantine", "list", "-q", "towr:t12"]) == E_USAGE
    assert "did you mean 'tower:'" in capsys.readouterr().err
