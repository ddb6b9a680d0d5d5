"""Office parity: on the same bytes, the workbench finds at least what oletools finds.

Each case is built in code and handed to the reference tool in the same test (msodde
for DDE, oleobj and rtfobj for embedded objects, olevba and mraptor for macros). The
benign twins must stay empty in both: a false positive fails as surely as a miss.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.support.office_pdf_reference import (
    msodde_commands,
    normalise_command,
    oleobj_packages,
    olevba_answer,
    rtfobj_objects,
)
from workbench.dissect.model import OK, Artifact
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples.documents import (
    build_csv,
    build_docx,
    build_flat_opc,
    build_rtf,
    build_spreadsheetml_2003,
    build_word_2003_xml,
    build_xlsb,
    build_xlsx,
    ole1_native,
)
from workbench.samples.mail import EICAR
from workbench.samples.office import (
    AUTOOPEN_SHELL_MACRO,
    build_cfb,
    build_dde_doc,
    build_ppt,
    build_slk,
    build_vba_document,
    build_xls,
)

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

CMD = 'c:\\windows\\system32\\cmd.exe "/k calc"'
CSV_DDE = "=cmd|' /c calc'!A1"
SLK_DDE = "MSEXCEL|'\\..\\..\\..\\Windows\\System32\\cmd.exe /c calc.exe'!''"
# Text that says DDE without being DDE: the false positives of a keyword search.
DDE_PROSE = "Our DDE report: DDEAUTO is a Word field and cmd|calc!A1 is not a formula here."

# name, file name, bytes, DDE expected (a benign twin expects none)
DDE_CASES = [
    ("doc-utf16", "a.doc", build_dde_doc(CMD, pad=""), True),
    ("doc-utf16-spaced", "a.doc", build_dde_doc(CMD), True),      # msodde misses it; the workbench must not
    ("doc-8bit", "a.doc", build_dde_doc(CMD, utf16=False), True),
    ("doc-benign", "b.doc", build_dde_doc(None, text=DDE_PROSE), False),
    ("doc-benign-8bit", "b.doc", build_dde_doc(None, text=DDE_PROSE, utf16=False), False),
    ("xls", "a.xls", build_xls(dde_link=("cmd", "/c calc")), True),
    ("xls-benign", "b.xls", build_xls(xlm=None), False),
    ("xlsx", "a.xlsx", build_xlsx(dde_link=("cmd", "/c calc")), True),
    ("xlsx-benign", "b.xlsx", build_xlsx(cell_text=DDE_PROSE), False),
    ("xlsm", "a.xlsm", build_xlsx(dde_link=("cmd", "/c calc"), macro_enabled=True), True),
    ("xlsb", "a.xlsb", build_xlsb(dde_link=("cmd", "/c calc")), True),
    ("xlsb-benign", "b.xlsb", build_xlsb(), False),
    ("docx", "a.docx", build_docx(["hi"], dde_command=CMD), True),
    ("docx-benign", "b.docx", build_docx([DDE_PROSE]), False),
    ("rtf", "a.rtf", build_rtf("hi", dde_command=CMD), True),
    ("rtf-benign", "b.rtf", build_rtf(DDE_PROSE), False),
    ("csv", "a.csv", build_csv([["name", "value"], ["x", CSV_DDE]]), True),
    ("csv-semicolon", "a.csv", build_csv([["name", "value"], ["x", CSV_DDE]], delimiter=";"), True),
    ("csv-benign", "b.csv", build_csv([["note", "sum"], [DDE_PROSE, "=SUM(A1:A2)"]]), False),
    ("slk", "a.slk", build_slk([SLK_DDE], macro_sheet=False), True),
    ("slk-benign", "b.slk", build_slk(["SUM(R1C2:R2C2)"], macro_sheet=False), False),
    ("spreadsheetml-2003", "a.xml", build_spreadsheetml_2003([CSV_DDE]), True),
    ("spreadsheetml-2003-benign", "b.xml", build_spreadsheetml_2003(["=SUM(A1:A2)"], text=DDE_PROSE), False),
    ("word-2003-xml", "a.xml", build_word_2003_xml(["hi"], dde_command=CMD), True),
    ("word-2003-xml-simple", "a.xml", build_word_2003_xml(["hi"], dde_command=CMD, simple=True), True),
    ("word-2003-xml-benign", "b.xml", build_word_2003_xml([DDE_PROSE]), False),
    ("flat-opc", "a.xml", build_flat_opc(["hi"], dde_command=CMD), True),
    ("flat-opc-benign", "b.xml", build_flat_opc([DDE_PROSE]), False),
]


# Where msodde 0.60 finds nothing and the workbench does: a UTF-16 field whose instruction starts after
# a space (msodde's NUL-interleaved prefix test fails), SYLK (its CSV sniffer raises on SYLK records).
MSODDE_MISSES = {"doc-utf16-spaced", "slk"}


def _office_node(root: Artifact) -> Artifact:
    assert root.dissector == "office", f"{root.filename}: typed {root.mime}, dissector {root.dissector!r}"
    return root


@pytest.mark.parametrize(("case", "filename", "data", "malicious"), DDE_CASES, ids=[c[0] for c in DDE_CASES])
def test_dde_at_least_what_msodde_finds(pool: WorkerPool, case: str, filename: str, data: bytes,
                                        malicious: bool) -> None:
    reference = msodde_commands(data, "." + filename.rsplit(".", 1)[1])
    node = _office_node(dissect_bytes(data, filename, pool=pool).root)
    found = {normalise_command(c) for c in node.report.dde}
    assert set(reference) <= found, f"msodde found {reference}, the workbench {sorted(found)}"
    if malicious:
        assert bool(reference) == (case not in MSODDE_MISSES), f"msodde: {reference}"
        assert found, "no DDE reported"
        assert any("calc" in c for c in found)
    else:
        assert reference == [] and found == set(), f"false positive: {found or reference}"
    assert node.status == OK, node.reason


def test_every_dde_case_reaches_the_office_dissector_from_mail(pool: WorkerPool) -> None:
    """As attachments, the text formats (CSV, SYLK, Office XML) are typed by content, not dropped as text."""
    from workbench.samples.mail import Attachment, Mail, build_message

    cases = [c for c in DDE_CASES if c[3] and c[1].endswith((".csv", ".slk", ".xml"))]
    mail = Mail("a@x.example", "b@y.example", "Figures", text="see attached",
                attachments=[Attachment(f"{i}-{c[1]}", c[2]) for i, c in enumerate(cases)])
    root = dissect_bytes(build_message(mail), as_message=True, pool=pool).root
    nodes = {n.filename: n for n in root.walk() if n.filename}
    for i, (case, filename, _data, _m) in enumerate(cases):
        node = nodes[f"{i}-{filename}"]
        assert node.dissector == "office" and node.report.dde, case


def _child_hashes(node: Artifact) -> set[tuple[str, str]]:
    return {(c.filename, c.sha256) for c in node.children}


LNK = b"L\x00\x00\x00\x01\x14\x02\x00" + b"\x00" * 68 + b"C:\\Windows\\System32\\cmd.exe\x00"
PPT_OBJECTS = [("invoice.lnk", LNK), ("update.vbs", b"WScript.Echo \"WB-PPT\"\r\n"), ("eicar.com", EICAR)]
EMBED_CASES = [
    ("ppt", "deck.ppt", build_ppt(PPT_OBJECTS), 3),
    ("pps-uncompressed", "show.pps", build_ppt(PPT_OBJECTS[:1], compressed=False), 1),
    ("pot", "template.pot", build_ppt(PPT_OBJECTS[1:2]), 1),
    ("ppt-benign", "plain.ppt", build_ppt([]), 0),
    ("doc-package", "a.doc", build_cfb({"WordDocument": b"\x00" * 4096,
                                        "ObjectPool/_1/\x01Ole10Native": ole1_native("run.lnk", LNK)}), 1),
]


@pytest.mark.parametrize(("case", "filename", "data", "count"), EMBED_CASES, ids=[c[0] for c in EMBED_CASES])
def test_embedded_objects_at_least_what_oleobj_finds(pool: WorkerPool, case: str, filename: str, data: bytes,
                                                     count: int) -> None:
    reference = oleobj_packages(data, filename)
    assert len(reference) == count                     # the builder made what the case says
    node = _office_node(dissect_bytes(data, filename, pool=pool).root)
    assert set(reference) <= _child_hashes(node), f"oleobj: {reference}"
    assert len([e for e in node.report.embedded if e.class_name == "Package"]) == count
    assert node.status == OK, node.reason


def test_lnk_package_in_ppt_is_dissected_further(pool: WorkerPool) -> None:
    root = dissect_bytes(build_ppt([("invoice.lnk", LNK)]), "deck.ppt", pool=pool).root
    (child,) = root.children
    assert child.filename == "invoice.lnk" and "ExOleObjStg" not in child.note and "PowerPoint" in child.note
    assert child.sha256 == hashlib.sha256(LNK).hexdigest()


@pytest.mark.parametrize("benign", [False, True])
def test_rtf_objects_at_least_what_rtfobj_finds(pool: WorkerPool, benign: bool) -> None:
    data = build_rtf("hello", embedded=None if benign else ("update.vbs", b"WScript.Echo 1"))
    reference = rtfobj_objects(data)
    node = _office_node(dissect_bytes(data, "o.rtf", pool=pool).root)
    assert set(reference) <= _child_hashes(node)
    assert len(node.children) == len(reference) == (0 if benign else 1)


XLM = [("EXEC", ("calc.exe",)), ("HALT", ())]
SLK_XLM = ['CALL("Kernel32","WinExec","JCJ","calc.exe",0)', "HALT()"]
MACRO_CASES = [
    ("doc-vba", "a.doc", build_vba_document(AUTOOPEN_SHELL_MACRO, kind="doc"), True),
    ("docm-vba", "a.docm", build_vba_document(AUTOOPEN_SHELL_MACRO, kind="docm"), True),
    ("xls-xlm-only", "m.xls", build_xls(xlm=XLM), True),
    ("xlt-xlm-no-autoopen", "m.xlt", build_xls(xlm=XLM, auto_open=False), True),
    ("slk-xlm", "m.slk", build_slk(SLK_XLM), True),
    ("xls-benign", "b.xls", build_xls(dde_link=None), False),
    ("slk-benign", "b.slk", build_slk(SLK_XLM, macro_sheet=False), False),
    ("doc-benign", "b.doc", build_dde_doc(None), False),
]


@pytest.mark.parametrize(("case", "filename", "data", "macros"), MACRO_CASES, ids=[c[0] for c in MACRO_CASES])
def test_macros_at_least_what_olevba_and_mraptor_find(pool: WorkerPool, case: str, filename: str, data: bytes,
                                                      macros: bool) -> None:
    reference = olevba_answer(data, filename)
    node = _office_node(dissect_bytes(data, filename, pool=pool).root)
    report = node.report
    assert (reference.vba or reference.xlm) == macros
    assert (report.vba, report.xlm) == (reference.vba, reference.xlm)
    assert sorted(reference.modules) == sorted(m.filename for m in report.modules)
    assert set(reference.autoexec) <= set(report.autoexec)
    assert set(reference.suspicious) <= {f.keyword for f in report.findings if f.kind == "Suspicious"}
    if macros:
        assert report.mraptor is not None and report.mraptor.flags == reference.mraptor_flags
        assert reference.xlm_lines == report.xlm_macros[:len(reference.xlm_lines)]
    else:
        assert report.mraptor is None and report.modules == [] and report.autoexec == []
    assert node.status == OK, node.reason


def test_xlm_only_workbook_reports_auto_open_and_formulas(pool: WorkerPool) -> None:
    node = dissect_bytes(build_xls(xlm=XLM), "invoice.xls", pool=pool).root
    report = node.report
    assert report.xlm and not report.vba and report.autoexec == ["Auto_Open"]
    assert report.mraptor.flags == "A-X" and report.mraptor.suspicious
    assert any('EXEC("calc.exe")' in line for line in report.xlm_macros)
    (child,) = node.children
    assert child.path.endswith("XLM/xlm_macro.txt") and child.note == "XLM macro formulas (olevba)"


@pytest.mark.parametrize(("filename", "data"), [("notes.slk", b"just some text that mentions DDE\r\n"),
                                                ("data.csv", b"\x00\x01\x02binary junk named csv")])
def test_text_named_as_a_spreadsheet_is_read_as_csv_without_error(pool: WorkerPool, filename: str,
                                                                   data: bytes) -> None:
    node = _office_node(dissect_bytes(data, filename, pool=pool).root)
    assert node.report.container == "csv" and node.report.dde == [] and node.status == OK


def test_office_xml_entity_bomb_is_refused(pool: WorkerPool) -> None:
    """Billion laughs in a Word 2003 XML document: expat's amplification limit stops it, the node says so."""
    from workbench.dissect.model import PARSER_ERROR

    entities = "".join(f'<!ENTITY lol{i} "' + (f"&lol{i - 1};" if i > 1 else "lol") * 10 + '">' for i in range(1, 10))
    data = ('<?xml version="1.0"?>\n<?mso-application progid="Word.Document"?>\n'
            f"<!DOCTYPE lolz [{entities}]>\n"
            '<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml"><w:body><w:p><w:r>'
            "<w:instrText>&lol9;</w:instrText></w:r></w:p></w:body></w:wordDocument>").encode()
    node = _office_node(dissect_bytes(data, "lol.xml", pool=pool).root)
    assert node.status == PARSER_ERROR and "amplification" in node.reason
