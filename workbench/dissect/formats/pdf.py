"""PDF: the objects that act (/JS, /OpenAction, /Launch, /URI, /EmbeddedFiles ...), scripts and files as children.

A pdfid-style scanner over the raw bytes, not a renderer: it reads ``N G obj ...
endobj`` blocks (capped), undoes ``#xx`` name obfuscation, decodes Flate and
ASCIIHex streams with a size cap, and follows ``/JS n 0 R`` and ``/EF`` references.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from workbench.dissect.model import LIMIT_HIT, PARTIAL, Child, DissectResult
from workbench.dissect.registry import DissectContext, Dissector

KEYWORDS = ("/JS", "/JavaScript", "/OpenAction", "/AA", "/Launch", "/URI", "/EmbeddedFiles",
            "/EmbeddedFile", "/AcroForm", "/XFA", "/RichMedia", "/ObjStm", "/Encrypt", "/SubmitForm",
            "/GoToR", "/GoToE", "/ImportData")
_OBJ = re.compile(rb"(\d{1,10})\s+(\d{1,5})\s+obj\b")
_NAME_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_REF = r"\s*(\d+)\s+\d+\s+R"


@dataclass
class PdfObject:
    number: int
    generation: int
    type: str
    keywords: list[str]
    stream_length: int = 0
    filters: list[str] = field(default_factory=list)


@dataclass
class PdfReport:
    version: str = ""
    object_count: int = 0
    objects_examined: int = 0
    keyword_counts: dict[str, int] = field(default_factory=dict)
    suspicious_objects: list[PdfObject] = field(default_factory=list)
    javascript: list[str] = field(default_factory=list)       # first 500 characters of each script
    uris: list[str] = field(default_factory=list)
    launch: list[str] = field(default_factory=list)
    embedded_files: list[str] = field(default_factory=list)
    encrypted: bool = False
    notes: list[str] = field(default_factory=list)


def _literal(raw: bytes) -> bytes:
    """A PDF literal string body (inside the parentheses) with its escapes undone."""
    out = bytearray()
    i = 0
    escapes = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):
            n = raw[i + 1]
            if n in escapes:
                out.append(escapes[n])
                i += 2
            elif 0x30 <= n <= 0x37:
                j = i + 1
                while j < min(i + 4, len(raw)) and 0x30 <= raw[j] <= 0x37:
                    j += 1
                out.append(int(raw[i + 1:j], 8) & 0xFF)
                i = j
            elif n in (0x0A, 0x0D):
                i += 2
            else:
                out.append(n)
                i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _string_after(key: bytes, body: bytes) -> bytes | None:
    """The string value of ``key`` in a dictionary: literal (balanced parentheses) or hex."""
    m = re.search(re.escape(key) + rb"\s*([(<])", body)
    if not m:
        return None
    start = m.end()
    if m.group(1) == b"<":
        end = body.find(b">", start)
        hexdigits = re.sub(rb"\s", b"", body[start:end if end >= 0 else len(body)])
        try:
            return bytes.fromhex((hexdigits + b"0" * (len(hexdigits) % 2)).decode("ascii"))
        except ValueError:
            return None
    depth, i = 1, start
    while i < len(body) and depth:
        if body[i] == 0x5C:
            i += 2
            continue
        depth += {0x28: 1, 0x29: -1}.get(body[i], 0)
        i += 1
    return _literal(body[start:i - 1])


def _decode_stream(raw: bytes, dictionary: bytes, cap: int) -> tuple[bytes, list[str], str]:
    filters = [f.decode("latin-1") for f in re.findall(rb"/(\w+Decode|Fl|AHx)\b", dictionary)]
    data = raw
    for f in filters:
        if f in ("FlateDecode", "Fl"):
            d = zlib.decompressobj()
            try:
                data = d.decompress(data, cap + 1)
            except zlib.error as exc:
                return data, filters, f"FlateDecode failed: {exc}"
            if len(data) > cap:
                return data[:cap], filters, f"stream expands past {cap} bytes"
        elif f in ("ASCIIHexDecode", "AHx"):
            digits = re.sub(rb"[^0-9A-Fa-f]", b"", data.split(b">")[0])
            data = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
        else:
            return data, filters, f"{f} not decoded"
    return data, filters, ""


class PdfDissector(Dissector):
    name = "pdf"
    version = 1
    slow = True
    mimes = ("application/pdf", "application/x-pdf")
    prefixes = (b"%PDF",)
    report_type = PdfReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = PdfReport()
        result.report = report
        head = re.search(rb"%PDF-(\d\.\d)", data[:1024])
        report.version = head.group(1).decode() if head else ""
        if not head:
            report.notes.append("no %PDF header in the first 1024 bytes")
        starts = list(_OBJ.finditer(data))
        report.object_count = len(starts)
        limit = ctx.limits.max_pdf_objects
        if len(starts) > limit:
            result.problem(LIMIT_HIT, f"{len(starts)} objects over the limit {limit}: first {limit} examined")
        normalized = _NAME_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), data)
        for kw in KEYWORDS:
            count = len(re.findall(re.escape(kw.encode()) + rb"(?![A-Za-z])", normalized))
            if count:
                report.keyword_counts[kw] = count
        report.encrypted = "/Encrypt" in report.keyword_counts
        if report.encrypted:
            result.problem(PARTIAL, "encrypted PDF: strings and streams are not decrypted")
        objects: dict[int, tuple[bytes, bytes]] = {}      # number -> (dictionary, raw stream)
        for index, m in enumerate(starts[:limit]):
            end = data.find(b"endobj", m.end())
            nxt = starts[index + 1].start() if index + 1 < len(starts) else len(data)
            body = data[m.end(): end if 0 <= end < nxt else nxt]
            stream = b""
            s = re.search(rb"\bstream\r?\n", body)
            if s:
                e = body.rfind(b"endstream")
                stream = body[s.end(): e if e > s.end() else len(body)].rstrip(b"\r\n")
                body = body[: s.start()]
            body = _NAME_HEX.sub(lambda x: bytes([int(x.group(1), 16)]), body)
            number = int(m.group(1))
            objects[number] = (body, stream)
            report.objects_examined += 1
            found = [kw for kw in KEYWORDS if re.search(re.escape(kw.encode()) + rb"(?![A-Za-z])", body)]
            if found:
                otype = re.search(rb"/Type\s*/(\w+)", body)
                report.suspicious_objects.append(PdfObject(
                    number, int(m.group(2)), otype.group(1).decode("latin-1") if otype else "", found,
                    len(stream), [f.decode("latin-1") for f in re.findall(rb"/(\w+Decode)", body)]))
        self._scripts(objects, report, result, ctx)
        self._files(objects, report, result, ctx)
        for body, _ in objects.values():
            for m in re.finditer(rb"/URI\s*\(", body):
                uri = _string_after(b"/URI", body[m.start():])
                if uri and len(report.uris) < 200:
                    report.uris.append(uri.decode("latin-1")[:2000])
            if b"/Launch" in body:
                target = _string_after(b"/F", body) or _string_after(b"/P", body) or b""
                report.launch.append(target.decode("latin-1")[:500])
        return result

    def _stream_of(self, objects: dict[int, tuple[bytes, bytes]], number: int, cap: int,
                   result: DissectResult) -> bytes | None:
        if number not in objects:
            result.problem(PARTIAL, f"object {number} referenced but not found (or past the object limit)")
            return None
        body, stream = objects[number]
        data, _filters, problem = _decode_stream(stream, body, cap)
        if problem:
            result.problem(PARTIAL, f"object {number}: {problem}")
        return data

    def _scripts(self, objects: dict[int, tuple[bytes, bytes]], report: PdfReport, result: DissectResult,
                 ctx: DissectContext) -> None:
        for number, (body, _stream) in sorted(objects.items()):
            if not re.search(rb"/JS(?![A-Za-z])", body):
                continue
            ref = re.search(rb"/JS" + _REF.encode(), body)
            script = (self._stream_of(objects, int(ref.group(1)), ctx.limits.max_child, result) if ref
                      else _string_after(b"/JS", body))
            if not script:
                continue
            if script.startswith((b"\xfe\xff", b"\xff\xfe")):
                script = script.decode("utf-16", "replace").encode("utf-8")
            report.javascript.append(script.decode("latin-1")[:500])
            result.children.append(Child(f"script-{number}.js", script, declared_type="application/javascript",
                                         note=f"JavaScript in object {number}"))

    def _files(self, objects: dict[int, tuple[bytes, bytes]], report: PdfReport, result: DissectResult,
               ctx: DissectContext) -> None:
        for number, (body, _stream) in sorted(objects.items()):
            ef = re.search(rb"/EF\s*<<[^>]*?/(?:F|UF)" + _REF.encode(), body)
            if not ef:
                continue
            raw_name = _string_after(b"/UF", body) or _string_after(b"/F", body) or b""
            name = raw_name.decode("utf-16" if raw_name.startswith(b"\xfe\xff") else "latin-1", "replace")
            content = self._stream_of(objects, int(ef.group(1)), ctx.limits.max_child, result)
            report.embedded_files.append(name or f"embedded-{ef.group(1).decode()}")
            if content is not None:
                result.children.append(Child(name or f"embedded-{ef.group(1).decode()}.bin", content,
                                             note=f"embedded file (filespec object {number})"))


DISSECTORS = [PdfDissector]
