"""Defensive header reading: every field on its own, defects recorded, raw values kept."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.quarantine.headers import (
    _PART_HEADER,
    attachment_names,
    looks_like_mail,
    part_headers,
    summarize_headers,
)
from workbench.samples.mail import EICAR, Attachment, Mail


def test_summary_of_a_well_formed_message():
    data = Mail("Anna <anna@example.com>", "li@example.org", "Quarterly figures",
                text="hi", attachments=[Attachment("figures.pdf", b"%PDF-1.7")]).build()
    s = summarize_headers(data)
    assert s.from_addr == "Anna <anna@example.com>"
    assert s.to_addrs == "li@example.org"
    assert s.subject == "Quarterly figures"
    assert s.date is not None and s.date.year == 2026
    assert s.attachment_names == ["figures.pdf"]
    assert s.message_id.startswith("<") and s.defects == []


def test_encoded_words_and_rfc2231_names_are_decoded():
    data = (b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\nTo: a@b.c\n"
            b"Subject: =?utf-8?b?w7xiZXI=?=\nDate: Thu, 26 Nov 2026 10:00:00 +0100\n"
            b"Content-Type: multipart/mixed; boundary=x\n\n--x\n"
            b"Content-Disposition: attachment;\n filename*0*=utf-8''%E2%82%AC%20rates;\n"
            b" filename*1*=.pdf.exe\n\n--x\n"
            b"Content-Disposition: attachment; filename=\"=?utf-8?q?r=C3=A9sum=C3=A9.doc?=\"\n\n--x--\n")
    s = summarize_headers(data)
    assert s.from_addr == "Jürgen <j@example.com>"
    assert s.subject == "über"
    assert s.date is not None and s.date.hour == 9          # normalised to UTC
    assert s.attachment_names == ["€ rates.pdf.exe", "résumé.doc"]


@pytest.mark.parametrize(("header", "defect"), [
    (b"Date: Tuesday the 32nd\n", "Date: unparseable"),
    (b"Subject: =?x-unknown?b?////?=\n", "Subject: undecodable"),
])
def test_malformed_headers_keep_the_raw_value_and_record_a_defect(header, defect):
    data = b"From: a@b.c\nTo: d@e.f\n" + header + b"\nbody\n"
    s = summarize_headers(data)
    assert any(d.startswith(defect) for d in s.defects), s.defects
    if header.startswith(b"Subject"):
        assert s.subject == "=?x-unknown?b?////?="


def test_structure_defects_are_flagged_at_ingest():
    no_boundary = b"From: a@b.c\nSubject: x\nContent-Type: multipart/mixed\n\nbody\n"
    unterminated = b"From: a@b.c\nSubject: x\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nx\n"
    assert any("without a boundary" in d for d in summarize_headers(no_boundary).defects)
    assert any("closing boundary" in d for d in summarize_headers(unterminated).defects)


@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (bytes(range(256)) * 4, "NUL"),
    (b"Hello world, this is just text\nwith lines\n", "no RFC 5322 header"),
    (b"Foo: bar\nBaz: qux\n\nbody", "no mail header"),
    (EICAR, "no RFC 5322 header"),
])
def test_inputs_that_are_not_mail_are_recognised(data, why):
    assert why in (looks_like_mail(data) or "")


def test_mbox_from_line_and_plain_headers_are_mail():
    assert looks_like_mail(b"From MAILER-DAEMON Thu Nov 26 10:00:00 2026\nFrom: a@b.c\n\nx") is None
    assert looks_like_mail(b"Received: from x\nSubject: y\n\nz") is None


def test_ten_megabyte_header_line_is_read_without_failing():
    data = b"From: a@b.c\nSubject: " + b"A" * (10 * 1024 * 1024) + b"\n\nbody"
    s = summarize_headers(data)
    assert s.from_addr == "a@b.c"


def test_attachment_name_scan_is_bounded_and_unique():
    parts = b"".join(b'Content-Disposition: attachment; filename="f%d.txt"\n\n' % (i % 300)
                     for i in range(1000))
    names = attachment_names(parts)
    assert len(names) == 200 and names[0] == "f0.txt" and len(set(names)) == 200


CPYTHON_DATA = Path(sysconfig.get_path("stdlib")) / "test" / "test_email" / "data"


@pytest.mark.skipif(not CPYTHON_DATA.is_dir(), reason="CPython's test messages are not installed")
def test_cpythons_unusual_test_messages_never_raise():
    files = sorted(CPYTHON_DATA.glob("msg_*.txt"))
    assert len(files) > 40
    for path in files:
        s = summarize_headers(path.read_bytes())
        assert isinstance(s.defects, list)


def test_eight_bit_headers_are_read_as_utf8_or_windows_1252():
    latin = summarize_headers(b"From: \xc9lise <e@example.com>\nTo: a@b.c\n"
                              b"Subject: caf\xe9 \xe0 la carte\n\nbody\n")
    assert latin.subject == "café à la carte" and latin.from_addr == "Élise <e@example.com>"
    utf8 = summarize_headers("From: Jürgen <j@example.com>\nSubject: café\n\nx".encode())
    assert utf8.subject == "café" and utf8.from_addr == "Jürgen <j@example.com>"


def test_clean_text_repairs_lone_surrogates_so_text_can_be_written():
    from workbench.document import clean_text, dumps

    assert clean_text("caf\udce9") == "café"
    assert clean_text("caf\udcc3\udca9") == "café"
    assert clean_text("x\ud800y") == "x\ufffdy"
    assert "caf\\udce9" not in dumps({"s": "caf\udce9"}) and "café" in dumps({"s": "caf\udce9"})


_LINES = st.sampled_from([
    b"Content-Type: text/plain", b"content-disposition: attachment; filename=a.pdf",
    b"CONTENT-TYPE: application/zip;\r\n\tname=\"b.zip\"", b" folded; name=c.txt",
    b"X-Content-Type: nope", b"QUJDRGNvbnRlbnQtdHlwZQ==", b"body content-type: inline",
    b"content-", b"", b"--boundary", b"\tcontent-type: continuation"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=30), st.sampled_from([b"\n", b"\r\n"]))
def test_part_headers_finds_what_the_plain_regex_finds(lines, eol):
    """The fast scan is an optimisation only: same matches as _PART_HEADER.finditer."""
    data = eol.join(lines)
    assert [m.span() for m in part_headers(data)] == [m.span() for m in _PART_HEADER.finditer(data)]


@pytest.mark.parametrize(("value", "shown", "defect"), [
    ("a@x.example b@x.example", "a@x.example, b@x.example", "not separated by commas"),
    ('"Doe, John" <jd@x.example>', '"Doe, John" <jd@x.example>', None),
    ("jd@x.example (John Doe)", "jd@x.example (John Doe)", None),
    ("Joe (the boss) <joe@x.example>", "Joe (the boss) <joe@x.example>", None),
    ('"ceo@corp.example" <boss@evil.example>', '"ceo@corp.example" <boss@evil.example>', None),
    ('"John Doe" <jd@x.example>', "John Doe <jd@x.example>", None),       # quotes protecting nothing
    ("=?utf-8?q?J=C3=BCrgen?= <j@x.example>", "Jürgen <j@x.example>", None),
    ('"john doe"@x.example', '"john doe"@x.example', None),
    ('Friends: a@x.example, "b, c" <b@y.example>;', 'a@x.example, "b, c" <b@y.example>', None),
    ("undisclosed-recipients:;", "", None),
    ("MAILER DAEMON <>", "MAILER DAEMON <>", "empty address"),
    ("Doe, John <jd@x.example>", "Doe, John <jd@x.example>", "no address in 'Doe'"),
])
def test_address_lists_keep_every_address_as_written(value, shown, defect):
    from workbench.quarantine.headers import format_addresses, parse_addresses

    defects: list[str] = []
    assert format_addresses(parse_addresses([value], defects, "From")) == shown
    if defect is None:
        assert defects == []
    else:
        assert any(defect in d for d in defects), defects


def test_null_return_path_is_not_a_defect():
    from workbench.quarantine.headers import format_addresses, parse_addresses

    defects: list[str] = []
    assert format_addresses(parse_addresses(["<>"], defects, "Return-Path")) == "<>" and defects == []


def test_raw_utf8_and_windows_1252_parameters_decode_the_same_in_the_scan_and_the_parse():
    from email.parser import BytesParser
    from email.policy import compat32

    from workbench.quarantine.headers import part_names

    for raw, name in (("ciële.txt".encode(), "ciële.txt"), (b"r\xe9sum\xe9.doc", "résumé.doc")):
        data = (b"From: a@b.c\nContent-Type: text/plain; name=" + raw
                + b"\nContent-Disposition: attachment; filename=\"" + raw + b"\"\n\nx\n")
        assert attachment_names(data) == [name]
        assert part_names(BytesParser(policy=compat32).parsebytes(data), []) == (name, name)
