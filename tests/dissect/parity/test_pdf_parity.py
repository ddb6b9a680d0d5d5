"""PDF parity: every script and embedded file pikepdf (qpdf) finds, the workbench extracts as a child.

pikepdf is the parser the dissector uses, but the reference here is a separate walk
(tests/support) over every dictionary, so a script the dissector's walk skips (in the
trailer, an object stream, a name tree) fails the test. Broken files that qpdf
rejects go to the raw scanner, which must still report.
"""

from __future__ import annotations

import hashlib
import zlib

import pikepdf
import pytest

from tests.support.office_pdf_reference import pikepdf_answer
from workbench.dissect.model import OK, PARTIAL, Artifact
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples.documents import build_pdf

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

JS = "app.alert('WB-PDF');"
PAYLOAD = ("invoice.exe", b"MZ" + b"\x00" * 62 + b"WB-PDF-EMBEDDED")
PDF_CASES = [
    # name, bytes, scripts expected, every script runs on open
    ("open-action-and-names", build_pdf("x", javascript=JS, uri="http://pdf.example/u"), 1, True),
    ("names-tree-only", build_pdf("x", javascript=JS, open_action=False), 1, True),
    ("trailer-open-action", build_pdf("x", trailer_javascript=JS), 1, True),
    ("object-stream", build_pdf("x", javascript=JS, object_streams=True), 1, True),
    ("object-stream-trailer-and-file", build_pdf("x", javascript=JS, trailer_javascript="app.alert(2);",
                                                 object_streams=True, embedded=PAYLOAD), 2, True),
    ("embedded-file", build_pdf("x", embedded=PAYLOAD), 0, False),
    ("nul-whitespace", build_pdf("x", javascript=JS).replace(b" 0 obj", b"\x000 obj"), 1, True),
    ("header-after-junk", b"\x01" * 700 + build_pdf("x", javascript=JS), 1, True),
    ("benign", build_pdf("JavaScript /JS /OpenAction are words here"), 0, False),
    ("benign-object-stream", build_pdf("plain", object_streams=True), 0, False),
]


def _hashes(node: Artifact) -> set[str]:
    return {c.sha256 for c in node.children}


@pytest.mark.parametrize(("case", "data", "scripts", "auto"), PDF_CASES, ids=[c[0] for c in PDF_CASES])
def test_pdf_at_least_what_pikepdf_finds(pool: WorkerPool, case: str, data: bytes, scripts: int,
                                         auto: bool) -> None:
    reference = pikepdf_answer(data)
    # the builder made what the case says (an xref stream's dictionary is the trailer: counted twice)
    assert len(set(reference.scripts)) == scripts
    node = dissect_bytes(data, f"{case}.pdf", pool=pool).root
    assert node.dissector == "pdf", node.mime
    report = node.report
    assert set(reference.scripts) <= _hashes(node), "a script pikepdf reads is not a child"
    assert {h for _n, h in reference.attachments} <= _hashes(node)
    assert sorted(n for n, _h in reference.attachments) == sorted(report.embedded_files)
    assert len(report.scripts) == scripts
    assert all(s.auto for s in report.scripts) == auto or not scripts
    assert ("javascript" in report.flags) == bool(scripts)
    assert ("auto-javascript" in report.flags) == (auto and bool(scripts))
    for script in report.scripts:
        child = next(c for c in node.children if c.filename == script.child)
        assert child.note.startswith("JavaScript in ") and child.declared_type == "application/javascript"
    assert report.parser.startswith("qpdf") and node.status == OK, node.reason


def test_header_after_junk_is_flagged_and_dissected(pool: WorkerPool) -> None:
    node = dissect_bytes(b"\x01" * 700 + build_pdf("x", javascript=JS), "late.pdf", pool=pool).root
    assert node.dissector == "pdf" and node.report.header_offset == 700
    assert "header-not-at-start" in node.report.flags


def _broken_object_stream(script: bytes) -> bytes:
    """An object stream holding a JavaScript action, with no trailer and no pages: qpdf gives up."""
    inner = b"<< /Type /Action /S /JavaScript /JS (" + script + b") >>"
    packed = zlib.compress(b"7 0\n" + inner)
    return (b"%PDF-1.5\n1\x000\x00obj\n<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length "
            + str(len(packed)).encode() + b" >>\nstream\n" + packed + b"\nendstream\nendobj\n"
            + b"2 0 obj\n<< /Type /Catalog /OpenAction 7 0 R >>\nendobj\n%%EOF\n")


def test_raw_scanner_when_qpdf_rejects_the_file(pool: WorkerPool) -> None:
    data = _broken_object_stream(b"app.alert('RAW');")
    with pytest.raises(pikepdf.PdfError):
        pikepdf.open(__import__("io").BytesIO(data))          # the reference cannot read it
    node = dissect_bytes(data, "broken.pdf", pool=pool).root
    report = node.report
    assert report.parser == "raw scanner" and node.status == PARTIAL and "raw scan only" in node.reason
    assert report.object_count == 3                             # NUL-separated "1 0 obj", 2, and 7 in the stream
    (script,) = report.scripts
    assert script.source == "object 7" and script.auto and "/OpenAction" in script.triggers
    assert hashlib.sha256(b"app.alert('RAW');").hexdigest() in _hashes(node)


def test_raw_scanner_trailer_script() -> None:
    from workbench.dissect.dissectors import DissectContext
    from workbench.dissect.formats.pdf import PdfDissector, PdfReport
    from workbench.dissect.model import Limits

    data = (b"%PDF-1.4\n1 0 obj\x00<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R /OpenAction "
            b"<< /S /JavaScript /JS (app.alert\\(1\\)) >> >>\n%%EOF\n")
    ctx = DissectContext("t.pdf", "", "application/pdf", "", Limits())
    result = PdfDissector().dissect(data, ctx)
    report = result.report
    assert isinstance(report, PdfReport) and report.parser == "raw scanner"
    assert [c.data for c in result.children] == [b"app.alert(1)"]
    assert report.scripts[0].source == "trailer" and report.scripts[0].auto


def test_js_keyword_without_an_extracted_script_is_partial(pool: WorkerPool) -> None:
    data = b"%PDF-1.4\n%%EOF\nnot a pdf body /JS (x"
    node = dissect_bytes(data, "junk.pdf", pool=pool).root
    assert node.status == PARTIAL and "scripts extracted" in node.reason


def _encrypted_with_stream_script() -> bytes:
    """AES-encrypted with an empty user password (opens without asking), the script a stream."""
    import io

    pdf = pikepdf.open(io.BytesIO(build_pdf("x", javascript=JS, embedded=PAYLOAD)))
    pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.JavaScript,
                                             JS=pikepdf.Stream(pdf, b"app.alert('WB-PDF-STREAM');" * 40))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(owner="owner", user="", aes=True))
    return out.getvalue()


def test_encrypted_pdf_scripts_are_decrypted(pool: WorkerPool) -> None:
    data = _encrypted_with_stream_script()
    assert b"WB-PDF" not in data
    reference = pikepdf_answer(data)
    assert len(set(reference.scripts)) == 2 and len(reference.attachments) == 1
    node = dissect_bytes(data, "locked.pdf", pool=pool).root
    assert set(reference.scripts) | {h for _n, h in reference.attachments} <= _hashes(node)
    assert node.report.encrypted and "encrypted" in node.report.flags and node.status == OK


def test_script_stream_bomb_is_capped(pool: WorkerPool) -> None:
    import io

    from workbench.dissect.model import LIMIT_HIT, Limits

    pdf = pikepdf.open(io.BytesIO(build_pdf("x")))
    bomb = pikepdf.Stream(pdf, zlib.compress(b"app.alert(1);" + b" " * (64 << 20)))
    bomb.Filter = pikepdf.Name.FlateDecode
    pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=bomb)
    out = io.BytesIO()
    pdf.save(out)
    node = dissect_bytes(out.getvalue(), "bomb.pdf", pool=pool, limits=Limits(max_child=1 << 20)).root
    assert node.status == LIMIT_HIT and "expands past" in node.reason
    (child,) = node.children
    assert child.size == 1 << 20


def test_script_past_the_object_limit_is_still_found(pool: WorkerPool) -> None:
    """Objects past ``max_pdf_objects`` are skimmed: those whose keys can hold an action are walked."""
    import io

    from workbench.dissect.model import LIMIT_HIT

    pdf = pikepdf.new()
    for _ in range(600):
        pdf.add_blank_page()
    pdf.pages[-1].obj.AA = pikepdf.Dictionary(O=pikepdf.Dictionary(S=pikepdf.Name.JavaScript,
                                                                   JS=pikepdf.String("app.alert('LAST');")))
    out = io.BytesIO()
    pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    data = out.getvalue()
    reference = pikepdf_answer(data)
    node = dissect_bytes(data, "long.pdf", pool=pool).root
    assert node.status == LIMIT_HIT and "can hold an action walked" in node.reason
    assert set(reference.scripts) <= _hashes(node) and len(reference.scripts) == 1
    (script,) = node.report.scripts
    assert script.triggers == ["/AA/O"] and script.auto
