"""DDE in every container oletools' msodde reads: Word fields, Excel links and DDE formulas.

Each finder takes bytes (or an open compound file) and returns the DDE commands as
msodde prints them, so the parity tests can compare line for line: a Word field's
instruction text (``DDEAUTO c:\\windows\\system32\\cmd.exe "/k calc"``), an Excel link's
``service topic``, a formula's ``program arguments``. Only real DDE counts: a field
whose instruction starts with DDE/DDEAUTO, a ``ddeLink`` element, a DDE ``SupBook``
record, a formula of the form ``=program|'arguments'!cell``. Body text that merely
contains the word is not a field.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any
from xml.etree import ElementTree

MAX_FIELD = 1000                     # msodde reads the first 1,000 characters of a field
MAX_FOUND = 50
MAX_XML = 32 << 20
# =cmd|' /c calc'!A1, +MSEXCEL|'...'!'', @SUM(cmd|'..'!A0): msodde's CSV_DDE_FORMAT.
FORMULA = re.compile(r'\s*"?[=+-@](.+)\|(.+)!(.*)\s*')
_FORMULA_ANYWHERE = re.compile(r"[=+\-@]\s*([\w.]+)\|('[^'\r\n]{0,1000}'|[^\s,;!]{1,1000})!")
_FIELD = re.compile(rb"\x13([^\x13\x14\x15]*)(?:\x14[^\x13\x15]*)?\x15")
_PROGID = re.compile(rb'<\?mso-application\s+progid="([^"]*)"\s*\?>')


def is_dde_instruction(text: str) -> bool:
    """A field instruction that runs DDE (msodde's test: it starts with ``dde``)."""
    return text.lstrip().lower().startswith("dde")


def _unquote(field: str) -> str:
    from oletools.msodde import unquote

    try:
        return str(unquote(field))
    except Exception:
        return field


# -- binary Word (.doc): fields in any stream, 8-bit or UTF-16 text --------------------------------


def _field_text(raw: bytes) -> str:
    """A field's instruction bytes as text: UTF-16LE when the field start was a 16-bit character."""
    if raw.startswith(b"\x00"):
        body = raw[1:]
        return body[: len(body) & ~1].decode("utf-16-le", "replace")
    return raw.decode("cp1252", "replace")


def doc_stream_fields(data: bytes) -> list[str]:
    """DDE fields (0x13 instruction [0x14 result] 0x15) in one stream of a binary Word file."""
    found: list[str] = []
    for m in _FIELD.finditer(data):
        text = _field_text(m.group(1)[: 2 * MAX_FIELD + 1]).replace("\r", "\n")
        if is_dde_instruction(text):
            found.append(text.strip())
            if len(found) >= MAX_FOUND:
                break
    return found


def ole_doc_fields(ole: Any) -> list[str]:
    """DDE fields in every stream of a Word compound file, orphans included (as msodde reads them)."""
    import olefile

    found: list[str] = []
    for sid, entry in enumerate(ole.direntries):
        if entry is None:
            try:
                entry = ole._load_direntry(sid)
            except Exception:
                continue
        if entry.entry_type != olefile.STGTY_STREAM:
            continue
        try:
            data = ole._open(entry.isectStart, entry.size).read(64 << 20)
        except Exception:
            continue
        found += doc_stream_fields(data)
    return found[:MAX_FOUND]


# -- Excel BIFF (.xls) and BIFF12 (.xlsb) external links ---------------------------------------------


def xls_links(data: bytes) -> list[str]:
    """DDE and external-workbook ``SupBook`` records of an .xls (what msodde reports for .xls)."""
    from oletools import xls_parser

    found: list[str] = []
    xls = xls_parser.XlsFile(data)
    try:
        for stream in xls.iter_streams():
            if not isinstance(stream, xls_parser.WorkbookStream):
                continue
            for record in stream.iter_records():
                if (isinstance(record, xls_parser.XlsRecordSupBook) and record.support_link_type in (
                        record.LINK_TYPE_OLE_DDE, record.LINK_TYPE_EXTERNAL)):
                    found.append(record.virt_path.replace("\u0003", " "))
    finally:
        xls.close()
    return found[:MAX_FOUND]


def is_xls(data: bytes) -> bool:
    from oletools import xls_parser

    return bool(xls_parser.is_xls(data))


class _SizedStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.size = len(data)


def xlsb_links(part: bytes, name: str) -> list[str]:
    """DDE ``BrtBeginSupBook`` records in one binary part of an .xlsb."""
    from oletools import xls_parser

    found: list[str] = []
    try:
        for record in xls_parser.parse_xlsb_part(_SizedStream(part), "", name):
            if (isinstance(record, xls_parser.XlsbBeginSupBook)
                    and record.link_type == record.LINK_TYPE_DDE):
                found.append(f"{record.string1} {record.string2}")
    except Exception:
        pass                          # not a record stream (images, printer settings ...)
    return found[:MAX_FOUND]


# -- XML: OOXML parts, Word 2003 XML, Flat OPC, SpreadsheetML 2003 ------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _iter_end(xml: bytes) -> Iterator[ElementTree.Element]:
    """Elements in document order as they close (expat: no external entities are fetched)."""
    parser: Any = ElementTree.XMLPullParser(events=("end",))
    for start in range(0, min(len(xml), MAX_XML), 1 << 20):
        parser.feed(xml[start:start + (1 << 20)])
        yield from _elements(parser)
    parser.close()
    yield from _elements(parser)


def _elements(parser: Any) -> Iterator[ElementTree.Element]:
    for _event, elem in parser.read_events():
        yield elem


def word_xml_fields(xml: bytes) -> list[str]:
    """DDE fields of WordprocessingML (2003 or 2006+): ``fldSimple`` and ``fldChar``/``instrText`` runs.

    The instruction of a complex field is the text of every ``instrText`` between its
    ``begin`` and its ``end`` (Word splits it across runs at will); nested fields add to
    the outer one, as msodde reads them.
    """
    found: list[str] = []
    level, text = 0, ""
    for elem in _iter_end(xml):
        name = _local(elem.tag)
        if name == "fldSimple":
            instr = next((v for k, v in elem.attrib.items() if _local(k) == "instr"), None)
            if instr is not None and is_dde_instruction(_unquote(instr)):
                found.append(_unquote(instr).strip())
        elif name == "fldChar":
            kind = next((v for k, v in elem.attrib.items() if _local(k) == "fldCharType"), "")
            if kind == "begin":
                level += 1
            elif kind == "end":
                level -= 1
                if level <= 0:
                    if is_dde_instruction(text):
                        found.append(text.strip())
                    level, text = 0, ""
        elif name == "instrText" and elem.text:
            text += _unquote(elem.text)
        elif name == "body":
            elem.clear()
        if len(found) >= MAX_FOUND:
            break
    if level > 0 and is_dde_instruction(text):
        found.append(text.strip())        # a field never closed still runs
    return found


def excel_xml_links(xml: bytes) -> list[str]:
    """``ddeLink`` elements (xlsx externalLinks, flat OPC) and DDE cell formulas (SpreadsheetML 2003)."""
    found: list[str] = []
    for elem in _iter_end(xml):
        name = _local(elem.tag)
        if name.lower() == "ddelink":
            found.append(" ".join(v for v in (elem.attrib.get("ddeService"), elem.attrib.get("ddeTopic"))
                                  if v is not None))
        elif name.lower() == "cell":
            formula = next((v for k, v in elem.attrib.items() if _local(k).lower() == "formula"), None)
            m = FORMULA.match(formula) if formula else None
            if m:
                found.append(" ".join(m.groups()[:2]))
        if len(found) >= MAX_FOUND:
            break
    return found


def xml_progid(head: bytes) -> str:
    """The ``<?mso-application progid=...?>`` of a single-file Office XML document ('' if none)."""
    m = _PROGID.search(head[:4096])
    return m.group(1).decode("ascii", "replace") if m else ""


def single_xml(xml: bytes) -> list[str]:
    """DDE in a single-file Office XML document (Word 2003 XML, Flat OPC, SpreadsheetML 2003)."""
    return [*word_xml_fields(xml), *excel_xml_links(xml)]


def ooxml(zf: zipfile.ZipFile, names: Iterable[str], read: Any) -> list[str]:
    """DDE in an OOXML package: Word fields and Excel links in its XML parts, DDE records in .bin parts."""
    found: list[str] = []
    for name in names:
        lower = name.lower()
        if lower.endswith(".xml"):
            part = read(name)
            if not part:
                continue
            if b"fld" in part:
                found += word_xml_fields(part)
            if b"ddeLink" in part or b"ddelink" in part.lower():
                found += excel_xml_links(part)
        elif lower.endswith(".bin") and "xl/" in lower and "/embeddings/" not in lower:
            part = read(name)
            if part:
                found += xlsb_links(part, name)
    return found[:MAX_FOUND]


# -- RTF fields -----------------------------------------------------------------------------------


def rtf_fields(data: bytes) -> list[str]:
    """DDE ``\\fldinst`` instructions of an RTF document (msodde's field parser)."""
    from oletools.msodde import RtfFieldParser

    parser = RtfFieldParser(data)
    parser.parse()
    found = []
    for raw in parser.fields:
        text = raw.decode("latin-1", "replace")
        if is_dde_instruction(text):
            found.append(text.strip())
    return found[:MAX_FOUND]


# -- CSV and SYLK formulas --------------------------------------------------------------------------


def _csv_cells(text: str, delimiters: str) -> tuple[list[str], str]:
    dialect = csv.Sniffer().sniff(text[:1024], delimiters=delimiters)
    dialect.strict = False
    found = []
    for row in csv.reader(io.StringIO(text, newline=""), dialect):
        for cell in row:
            m = FORMULA.match(cell)
            if m:
                found.append(" ".join(m.groups()[:2]))
    return found, dialect.delimiter


def csv_formulas(data: bytes) -> list[str]:
    """DDE formulas in CSV text: msodde's sniffing first, then every ``=prog|'args'!`` anywhere."""
    text = data[: 16 << 20].decode("utf-8", "replace")
    delimiters = ",\t ;|^"
    found: list[str] = []
    try:
        found, used = _csv_cells(text, delimiters)
    except csv.Error:
        used = ""
    if not found and len(data) < 1024:
        for delimiter in delimiters.replace(used, "") if used else delimiters:
            try:
                found, _ = _csv_cells(text, delimiter)
            except csv.Error:
                continue
            if found:
                break
        if not found:
            m = FORMULA.match(text[:1024])
            if m:
                found = [" ".join(m.groups()[:2])]
    for m in _FORMULA_ANYWHERE.finditer(text):
        command = f"{m.group(1)} {m.group(2)}"
        if not any(command in f or f.startswith(m.group(1)) for f in found):
            found.append(command)
    return found[:MAX_FOUND]


def sylk_formulas(data: bytes) -> list[str]:
    """DDE formulas in SYLK cells (``C;X1;Y1;EMSEXCEL|'..\\cmd.exe /c calc'!A0``)."""
    found = []
    for line in data[: 16 << 20].splitlines():
        if not line.startswith(b"C"):
            continue
        for part in line.split(b";"):
            if part.startswith(b"E"):
                formula = "=" + part[1:].decode("latin-1")
                m = FORMULA.match(formula)
                if m:
                    found.append(" ".join(m.groups()[:2]))
    return found[:MAX_FOUND]
