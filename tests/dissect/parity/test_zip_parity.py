"""ZIP parity: every member Python's zipfile lists is reported, every file member's bytes become a
child; links are reported as links, passwords are counted per member and in total, and a genuine
Office Open XML package is not taken for a disguised file."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
import pyzipper

from workbench.dissect.model import OK, PARTIAL, Artifact
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples.mail import EICAR
from workbench.samples.pe import build_pe

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

LINK_MODE = 0o120777 << 16
FILE_MODE = 0o100644 << 16


def assert_covers(node: Artifact, data: bytes, passwords: dict[str, bytes] | None = None) -> None:
    """Every member zipfile lists is in the report; every regular file's bytes are a child."""
    passwords = passwords or {}
    members = {m.name: m for m in node.report.members}
    children = {c.filename: c.sha256 for c in node.children}
    with zipfile.ZipFile(io.BytesIO(data)) as ref:
        for info in ref.infolist():
            assert info.filename in members, info.filename
            member = members[info.filename]
            if info.is_dir():
                assert member.is_dir and info.filename not in children
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000 and info.create_system == 3:
                assert member.kind == "symlink" and not member.extracted
                assert member.link_target == ref.read(info).decode()
                assert info.filename not in children
                continue
            if info.flag_bits & 1:
                continue                     # zipfile reads no AES; checked in the password test
            assert children[info.filename] == hashlib.sha256(ref.read(info)).hexdigest(), info.filename


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for info, content in entries:
            z.writestr(info, content)
    return buf.getvalue()


def _info(name: str, mode: int, system: int = 3) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2026, 11, 2, 9, 0, 0))
    info.create_system, info.external_attr = system, mode
    return info


def test_symlink_member_is_a_link_not_a_file(pool: WorkerPool) -> None:
    data = _zip([(_info("docs/", 0o40755 << 16 | 0x10), b""),
                 (_info("docs/readme.txt", FILE_MODE), b"hello"),
                 (_info("docs/passwd", LINK_MODE), b"../../../../etc/passwd"),
                 (_info("e.com", FILE_MODE), EICAR)])
    node = dissect_bytes(data, "links.zip", pool=pool).root
    assert node.status == OK
    assert_covers(node, data)
    link = next(m for m in node.report.members if m.name == "docs/passwd")
    assert (link.kind, link.link_target, link.extracted) == ("symlink", "../../../../etc/passwd", False)
    assert sorted(c.filename for c in node.children) == ["docs/readme.txt", "e.com"]


def test_benign_twin_same_bytes_without_link_mode(pool: WorkerPool) -> None:
    # A Windows-made archive (no unix mode) with the same content: an ordinary file.
    data = _zip([(_info("docs/passwd", 0x20, system=0), b"../../../../etc/passwd")])
    node = dissect_bytes(data, "plain.zip", pool=pool).root
    assert node.report.members[0].kind == "file" and node.report.members[0].extracted
    assert_covers(node, data)


def _aes(entries: list[tuple[str, bytes, bytes]]) -> bytes:
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as z:
        for name, content, password in entries:
            z.setpassword(password)
            z.writestr(name, content)
    return buf.getvalue()


def test_passwords_counted_per_member_and_in_total(pool: WorkerPool) -> None:
    from workbench.dissect.walker import DEFAULT_PASSWORDS

    data = _aes([("a.com", EICAR, b"infected"), ("b.com", EICAR + b"b", b"1234"),
                 ("c.com", EICAR + b"c", b"no-such-password"), ("d.com", EICAR + b"d", b"infected")])
    node = dissect_bytes(data, "mixed.zip", pool=pool).root
    members = {m.name: m for m in node.report.members}
    first, second = 1, DEFAULT_PASSWORDS.index("1234") + 1
    assert [members[n].passwords_tried for n in ("a.com", "b.com", "c.com")] == [
        first, second, len(DEFAULT_PASSWORDS)]
    assert members["d.com"].extracted                      # a password found earlier is tried first
    assert node.report.passwords_tried >= first + second + len(DEFAULT_PASSWORDS)   # a running total
    assert node.status == PARTIAL and f"c.com: encrypted, none of {len(DEFAULT_PASSWORDS)} passwords" in node.reason
    with pyzipper.AESZipFile(io.BytesIO(data)) as ref:
        expected = {n: hashlib.sha256(ref.read(n, pwd=p)).hexdigest()
                    for n, p in (("a.com", b"infected"), ("b.com", b"1234"), ("d.com", b"infected"))}
    assert {c.filename: c.sha256 for c in node.children} == expected


WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


def _ooxml(first: list[str], main: str = WORD_MAIN, part: str = "word/document.xml") -> bytes:
    types = ('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             '<Default Extension="xml" ContentType="application/xml"/>'
             f'<Override PartName="/{part}" ContentType="{main}"/></Types>')
    entries = [("[Content_Types].xml", types.encode()), ("_rels/.rels", b"<Relationships/>")]
    entries += [(name, b"<x/>") for name in first]
    entries += [(part, b"<document/>")]
    return _zip([(_info(n, FILE_MODE, system=0), c) for n, c in entries])


@pytest.mark.parametrize("name, main, part, mime", [
    ("report.docx", WORD_MAIN, "word/document.xml",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml", "xl/workbook.xml",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("macro.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.main+xml", "xl/workbook.xml",
     "application/vnd.ms-excel.sheet.macroEnabled.12"),
])
def test_genuine_ooxml_is_not_an_extension_mismatch(pool: WorkerPool, name: str, main: str, part: str,
                                                    mime: str) -> None:
    # SharePoint-style package: customXml/ and docProps/ before the main part; libmagic says only
    # "Microsoft OOXML" (application/octet-stream).
    data = _ooxml(["customXml/item1.xml", "customXml/itemProps1.xml", "customXml/_rels/item1.xml.rels",
                   "docProps/app.xml", "docProps/core.xml", "docProps/custom.xml"], main, part)
    node = dissect_bytes(data, name, pool=pool).root
    assert node.magic.startswith("Microsoft OOXML")
    assert "extension-mismatch" not in node.flags, (node.magic, node.mime)
    assert node.mime == mime and node.dissector == "office"


def test_disguised_files_named_docx_are_still_flagged(pool: WorkerPool) -> None:
    node = dissect_bytes(build_pe(), "report.docx", pool=pool).root
    assert "extension-mismatch" in node.flags
    node = dissect_bytes(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", "report.docx", pool=pool).root
    assert "extension-mismatch" in node.flags
