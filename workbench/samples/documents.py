"""Documents built in code: PDF (with or without JavaScript), RTF with an embedded object,
OOXML (plain, with an external template, with a DDE field), HTML pages."""

from __future__ import annotations

import io
import struct
import zipfile

from workbench.samples.archives import FIXED_TIME


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def build_pdf(text: str = "Hello", *, javascript: str | None = None, uri: str | None = None,
              embedded: tuple[str, bytes] | None = None, open_action: bool = True,
              trailer_javascript: str | None = None, object_streams: bool = False) -> bytes:
    """A small valid PDF (correct xref) with one page of text; optionally a JavaScript action in
    the /Names /JavaScript tree (and as the /OpenAction unless ``open_action`` is False), a /URI
    link annotation and an /EmbeddedFiles entry.

    ``trailer_javascript`` puts a JavaScript /OpenAction in the trailer dictionary;
    ``object_streams`` packs every dictionary into one Flate-compressed /ObjStm with a
    cross-reference stream (PDF 1.5), so nothing of them shows in the raw bytes.
    """
    objects: list[str | bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body)
        return len(objects)

    stream = f"BT /F1 18 Tf 72 720 Td {_pdf_string(text)} Tj ET"
    catalog_id = add("")  # filled below
    pages_id = add("")
    font_id = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    content_id = add(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    annots = ""
    if uri:
        link_id = add(f"<< /Type /Annot /Subtype /Link /Rect [72 700 300 730] "
                      f"/A << /S /URI /URI {_pdf_string(uri)} >> >>")
        annots = f" /Annots [{link_id} 0 R]"
    page_id = add(f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] "
                  f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R{annots} >>")
    objects[pages_id - 1] = f"<< /Type /Pages /Kids [{page_id} 0 R] /Count 1 >>"
    extra = ""
    if javascript:
        js_id = add(f"<< /Type /Action /S /JavaScript /JS {_pdf_string(javascript)} >>")
        if open_action:
            extra += f" /OpenAction {js_id} 0 R"
        names_js = add(f"<< /Names [{_pdf_string('init')} {js_id} 0 R] >>")
        extra += f" /Names << /JavaScript {names_js} 0 R"
        if embedded is None:
            extra += " >>"
    if embedded:
        fname, data = embedded
        ef_id = add(b"<< /Type /EmbeddedFile /Length " + str(len(data)).encode()
                    + b" >>\nstream\n" + data + b"\nendstream")
        spec_id = add(f"<< /Type /Filespec /F {_pdf_string(fname)} /EF << /F {ef_id} 0 R >> >>")
        tree_id = add(f"<< /Names [{_pdf_string(fname)} {spec_id} 0 R] >>")
        extra += (" " if javascript else " /Names << ") + f"/EmbeddedFiles {tree_id} 0 R >>"
    objects[catalog_id - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R{extra} >>"
    trailer_extra = (f" /OpenAction << /S /JavaScript /JS {_pdf_string(trailer_javascript)} >>"
                     if trailer_javascript else "")
    if object_streams:
        return _pdf_with_object_stream(objects, catalog_id, trailer_extra)

    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        data = body if isinstance(body, bytes) else body.encode("latin-1")
        out.write(f"{number} 0 obj\n".encode() + data + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root {catalog_id} 0 R{trailer_extra} >>\n"
              f"startxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _pdf_with_object_stream(objects: list[str | bytes], catalog_id: int, trailer_extra: str) -> bytes:
    """Dictionaries in one /ObjStm, streams as they are, and a cross-reference stream."""
    import zlib

    packed = [n for n, body in enumerate(objects, start=1) if isinstance(body, str) and "stream" not in body]
    header, bodies = [], b""
    for n in packed:
        header.append(f"{n} {len(bodies)}")
        bodies += str(objects[n - 1]).encode("latin-1") + b"\n"
    first = (" ".join(header) + "\n").encode()
    stm_id = len(objects) + 1
    xref_id = stm_id + 1
    packed_data = zlib.compress(first + bodies)
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number, body in enumerate(objects, start=1):
        if number in packed:
            continue
        offsets[number] = out.tell()
        data = body if isinstance(body, bytes) else body.encode("latin-1")
        out.write(f"{number} 0 obj\n".encode() + data + b"\nendobj\n")
    offsets[stm_id] = out.tell()
    out.write(f"{stm_id} 0 obj\n<< /Type /ObjStm /N {len(packed)} /First {len(first)} /Filter /FlateDecode "
              f"/Length {len(packed_data)} >>\nstream\n".encode() + packed_data + b"\nendstream\nendobj\n")
    offsets[xref_id] = out.tell()
    rows = b"\x00" + struct.pack(">IH", 0, 0xFFFF)
    for number in range(1, xref_id + 1):
        if number in packed:
            rows += b"\x02" + struct.pack(">IH", stm_id, packed.index(number))
        else:
            rows += b"\x01" + struct.pack(">IH", offsets[number], 0)
    out.write(f"{xref_id} 0 obj\n<< /Type /XRef /Size {xref_id + 1} /W [1 4 2] /Root {catalog_id} 0 R"
              f"{trailer_extra} /Length {len(rows)} >>\nstream\n".encode() + rows + b"\nendstream\nendobj\n")
    out.write(f"startxref\n{offsets[xref_id]}\n%%EOF\n".encode())
    return out.getvalue()


def ole1_native(filename: str, data: bytes) -> bytes:
    """The ``\\x01Ole10Native`` stream of an embedded Package (MS-OLEDS 2.3.6): size, names, the file."""
    temp_path = f"C:\\Temp\\{filename}".encode("latin-1") + b"\x00"
    native = (struct.pack("<H", 2) + filename.encode("latin-1") + b"\x00"
              + f"C:\\Users\\user\\Desktop\\{filename}".encode("latin-1") + b"\x00"
              + struct.pack("<I", 0x00030000) + struct.pack("<I", len(temp_path)) + temp_path
              + struct.pack("<I", len(data)) + data)
    return struct.pack("<I", len(native)) + native


def ole1_package(filename: str, data: bytes) -> bytes:
    """An OLE 1.0 embedded "Package" object (MS-OLEDS 2.2), as RTF ``\\objdata`` carries it."""
    def lp_string(text: str) -> bytes:
        raw = text.encode("latin-1") + b"\x00"
        return struct.pack("<I", len(raw)) + raw

    return (struct.pack("<II", 0x00000501, 2) + lp_string("Package") + struct.pack("<II", 0, 0)
            + ole1_native(filename, data))


def _rtf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")


def build_rtf(text: str, *, embedded: tuple[str, bytes] | None = None, dde_command: str | None = None) -> bytes:
    """An RTF document; with ``embedded``, an ``\\object\\objemb`` Package holding that file;
    with ``dde_command``, a ``\\field`` whose ``\\fldinst`` is ``DDEAUTO`` and the command."""
    out = "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Calibri;}}\n\\pard\\f0\\fs22 " + _rtf_escape(text) + "\\par\n"
    if dde_command:
        out += ("{\\field{\\*\\fldinst DDEAUTO " + _rtf_escape(dde_command)
                + "}{\\fldrslt {\\ul Click}}}\\par\n")
    if embedded:
        name, data = embedded
        hexdata = ole1_package(name, data).hex()
        lines = "\n".join(hexdata[i:i + 128] for i in range(0, len(hexdata), 128))
        out += ("{\\object\\objemb\\objw1440\\objh480{\\*\\objclass Package}{\\*\\objdata\n"
                + lines + "\n}}\n")
    out += "}\n"
    return out.encode("latin-1")


_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
<Override PartName="/word/settings.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml"/>
</Types>"""
_ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
</Relationships>"""
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def build_docx(paragraphs: list[str], *, template_url: str | None = None,
               dde_command: str | None = None) -> bytes:
    """A Word document. ``template_url`` adds an external attachedTemplate relationship
    (template injection); ``dde_command`` adds a DDEAUTO field to the body."""
    def run(text: str) -> str:
        safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f'<w:p><w:r><w:t xml:space="preserve">{safe}</w:t></w:r></w:p>'

    body = "".join(run(p) for p in paragraphs)
    if dde_command:
        cmd = dde_command.replace("&", "&amp;").replace('"', "&quot;")
        body += ('<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
                 f'<w:r><w:instrText xml:space="preserve"> DDEAUTO {cmd} </w:instrText></w:r>'
                 '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>!</w:t></w:r>'
                 '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>')
    document = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {_W}>'
                f"<w:body>{body}</w:body></w:document>")
    settings = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:settings {_W}>'
                + ('<w:attachedTemplate r:id="rId1"/>' if template_url else "") + "</w:settings>")
    members = [("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _ROOT_RELS),
               ("word/document.xml", document), ("word/settings.xml", settings)]
    if template_url:
        members.append(("word/_rels/settings.xml.rels",
                        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
                        f'2006/relationships/attachedTemplate" Target="{template_url}" '
                        'TargetMode="External"/></Relationships>'))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


def build_html_page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
            f"<body>\n{body}\n</body></html>\n")


# -- Excel with DDE links, and the single-file Office XML formats --------------------------------------

_XLSX_CT = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
{links}</Types>"""
_SML = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def build_xlsx(*, dde_link: tuple[str, str] | None = None, cell_text: str = "Totals",
               macro_enabled: bool = False) -> bytes:
    """An Excel workbook (``macro_enabled``: typed as an .xlsm); ``dde_link`` (service, topic) adds
    an ``xl/externalLinks`` part with a ``ddeLink`` (what Excel saves for ``=cmd|' /c calc'!A0``)."""
    links = ('<Override PartName="/xl/externalLinks/externalLink1.xml" ContentType="application/'
             'vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml"/>\n') if dde_link else ""
    workbook = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{_SML}" '
                f'xmlns:r="{_REL}"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets>'
                + ('<externalReferences><externalReference r:id="rId2"/></externalReferences>' if dde_link else "")
                + "</workbook>")
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="'
            f'{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            + (f'<Relationship Id="rId2" Type="{_REL}/externalLink" Target="externalLinks/externalLink1.xml"/>'
               if dde_link else "") + "</Relationships>")
    safe = cell_text.replace("&", "&amp;").replace("<", "&lt;")
    sheet = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_SML}"><sheetData>'
             f'<row r="1"><c r="A1" t="inlineStr"><is><t>{safe}</t></is></c></row></sheetData></worksheet>')
    content_types = _XLSX_CT.replace("{links}", links)
    if macro_enabled:
        content_types = content_types.replace("openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                                              "ms-excel.sheet.macroEnabled.main+xml")
    members = [("[Content_Types].xml", content_types),
               ("_rels/.rels", _ROOT_RELS.replace("word/document.xml", "xl/workbook.xml")),
               ("xl/workbook.xml", workbook), ("xl/_rels/workbook.xml.rels", rels),
               ("xl/worksheets/sheet1.xml", sheet)]
    if dde_link:
        service, topic = (v.replace("&", "&amp;").replace('"', "&quot;") for v in dde_link)
        members.append(("xl/externalLinks/externalLink1.xml",
                        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<externalLink xmlns="{_SML}">'
                        f'<ddeLink ddeService="{service}" ddeTopic="{topic}"><ddeItems>'
                        '<ddeItem name="A0" advise="1"/></ddeItems></ddeLink></externalLink>'))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=FIXED_TIME), text.encode("utf-8"))
    return buf.getvalue()


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def build_spreadsheetml_2003(formulas: list[str], *, text: str = "Totals") -> bytes:
    """An Excel 2003 XML workbook (SpreadsheetML): one row with ``text`` and a cell per formula."""
    cells = "".join(f'<Cell ss:Formula="{_xml_attr(f)}"><Data ss:Type="Number">0</Data></Cell>' for f in formulas)
    return ('<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
            '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
            'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="Sheet1"><Table><Row>'
            f'<Cell><Data ss:Type="String">{_xml_attr(text)}</Data></Cell>{cells}</Row></Table></Worksheet>'
            "</Workbook>\n").encode()


def _word_body(paragraphs: list[str], dde_command: str | None, *, simple: bool = False) -> str:
    body = "".join(f'<w:p><w:r><w:t>{_xml_attr(p)}</w:t></w:r></w:p>' for p in paragraphs)
    if dde_command and simple:
        body += f'<w:p><w:fldSimple w:instr=" DDEAUTO {_xml_attr(dde_command)} "><w:r><w:t>!</w:t></w:r></w:fldSimple></w:p>'
    elif dde_command:
        body += ('<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
                 f'<w:r><w:instrText> DDEAUTO {_xml_attr(dde_command)} </w:instrText></w:r>'
                 '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>!</w:t></w:r>'
                 '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>')
    return body


def build_word_2003_xml(paragraphs: list[str], *, dde_command: str | None = None, simple: bool = False) -> bytes:
    """A Word 2003 XML document (WordprocessingML 2003); ``dde_command`` adds a DDEAUTO field
    (``simple``: a ``fldSimple`` instead of ``fldChar`` runs)."""
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<?mso-application progid="Word.Document"?>\n'
            '<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml"><w:body>'
            + _word_body(paragraphs, dde_command, simple=simple) + "</w:body></w:wordDocument>\n").encode("utf-8")


def build_flat_opc(paragraphs: list[str], *, dde_command: str | None = None) -> bytes:
    """A Word Flat OPC document (the whole package in one XML file, as "Word XML Document" saves it)."""
    return ('<?xml version="1.0" standalone="yes"?>\n<?mso-application progid="Word.Document"?>\n'
            '<pkg:package xmlns:pkg="http://schemas.microsoft.com/office/2006/xmlPackage">'
            '<pkg:part pkg:name="/_rels/.rels" pkg:contentType="application/vnd.openxmlformats-package.'
            'relationships+xml"><pkg:xmlData><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            f'2006/relationships"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
            'Target="word/document.xml"/></Relationships></pkg:xmlData></pkg:part>'
            '<pkg:part pkg:name="/word/document.xml" pkg:contentType="application/vnd.openxmlformats-'
            'officedocument.wordprocessingml.document.main+xml"><pkg:xmlData>'
            f'<w:document {_W}><w:body>{_word_body(paragraphs, dde_command)}</w:body></w:document>'
            "</pkg:xmlData></pkg:part></pkg:package>\n").encode()


def build_csv(rows: list[list[str]], *, delimiter: str = ",") -> bytes:
    """CSV text as Excel reads it (cells quoted only when they must be)."""
    import csv

    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _xlsb_record(rec_type: int, payload: bytes) -> bytes:
    """A BIFF12 record: type and size as 7-bit varints (MS-XLSB 2.1.4)."""
    def varint(value: int, limit: int) -> bytes:
        out = bytearray()
        for _ in range(limit):
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
        return bytes(out)

    return varint(rec_type, 2) + varint(len(payload), 4) + payload


def _xlsb_string(text: str) -> bytes:
    return struct.pack("<I", len(text)) + text.encode("utf-16-le")


def build_xlsb(*, dde_link: tuple[str, str] | None = None) -> bytes:
    """An Excel binary workbook (.xlsb); ``dde_link`` (service, topic) adds an external link part
    starting with a DDE ``BrtBeginSupBook`` record."""
    ct = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/'
          'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
          'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
          '<Override PartName="/xl/workbook.bin" ContentType="application/vnd.ms-excel.sheet.binary.macroEnabled.main"/>'
          + ('<Override PartName="/xl/externalLinks/externalLink1.bin" ContentType="application/'
             'vnd.ms-excel.externalLinkBin"/>' if dde_link else "") + "</Types>")
    members: list[tuple[str, bytes]] = [
        ("[Content_Types].xml", ct.encode()),
        ("_rels/.rels", _ROOT_RELS.replace("word/document.xml", "xl/workbook.bin").encode()),
        ("xl/workbook.bin", _xlsb_record(0x0083, b"") + _xlsb_record(0x0084, b"")),     # BrtBeginBook/EndBook
    ]
    if dde_link:
        service, topic = dde_link
        link = (_xlsb_record(0x0168, struct.pack("<H", 1) + _xlsb_string(service) + _xlsb_string(topic))
                + _xlsb_record(0x0169, b""))
        members.append(("xl/externalLinks/externalLink1.bin", link))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=FIXED_TIME), data)
    return buf.getvalue()
