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
              embedded: tuple[str, bytes] | None = None) -> bytes:
    """A small valid PDF (correct xref) with one page of text; optionally an /OpenAction
    JavaScript, a /URI link annotation and an /EmbeddedFiles entry."""
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
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root {catalog_id} 0 R >>\n"
              f"startxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def ole1_package(filename: str, data: bytes) -> bytes:
    """An OLE 1.0 embedded "Package" object (MS-OLEDS 2.2), as RTF ``\\objdata`` carries it."""
    def lp_string(text: str) -> bytes:
        raw = text.encode("latin-1") + b"\x00"
        return struct.pack("<I", len(raw)) + raw

    temp_path = f"C:\\Temp\\{filename}".encode("latin-1") + b"\x00"
    native = (struct.pack("<H", 2) + filename.encode("latin-1") + b"\x00"
              + f"C:\\Users\\user\\Desktop\\{filename}".encode("latin-1") + b"\x00"
              + struct.pack("<I", 0x00030000) + struct.pack("<I", len(temp_path)) + temp_path
              + struct.pack("<I", len(data)) + data)
    return (struct.pack("<II", 0x00000501, 2) + lp_string("Package") + struct.pack("<II", 0, 0)
            + struct.pack("<I", len(native)) + native)


def build_rtf(text: str, *, embedded: tuple[str, bytes] | None = None) -> bytes:
    """An RTF document; with ``embedded``, an ``\\object\\objemb`` Package holding that file."""
    body = text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
    out = "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Calibri;}}\n\\pard\\f0\\fs22 " + body + "\\par\n"
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
