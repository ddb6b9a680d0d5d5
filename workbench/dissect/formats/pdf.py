"""PDF: the objects that act (/JS, /OpenAction, /Launch, /URI, /EmbeddedFiles ...), scripts and files as children.

Two readers. qpdf (through pikepdf) parses the file as a reader does: cross-reference
tables and streams, object streams (/ObjStm), the trailer, name trees, encryption with
an empty user password, and it repairs broken files the way viewers do. Every
dictionary is walked (direct objects inside others too), so a script in the trailer, in
an object stream or in the /Names /JavaScript tree is found and becomes a child.
When qpdf rejects the file, a pdfid-style scanner over the raw bytes still reports:
it reads ``N G obj ... endobj`` blocks (capped; NUL is whitespace), the trailer
dictionaries and the objects packed in object streams, undoes ``#xx`` name
obfuscation, decodes Flate and ASCIIHex streams with a size cap, and follows ``/JS n 0
R`` and ``/EF`` references. The raw keyword counts (pdfid's view) are always kept.
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.model import LIMIT_HIT, PARTIAL, Child, DissectResult

KEYWORDS = ("/JS", "/JavaScript", "/OpenAction", "/AA", "/Launch", "/URI", "/EmbeddedFiles",
            "/EmbeddedFile", "/AcroForm", "/XFA", "/RichMedia", "/ObjStm", "/Encrypt", "/SubmitForm",
            "/GoToR", "/GoToE", "/ImportData")
_WS = rb"[\x00\t\n\x0c\r ]"               # PDF white-space: NUL counts (ISO 32000-1 7.2.2)
_OBJ = re.compile(rb"(\d{1,10})" + _WS + rb"+(\d{1,5})" + _WS + rb"+obj(?![A-Za-z])")
_NAME_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_REF = r"[\x00\t\n\x0c\r ]*(\d+)[\x00\t\n\x0c\r ]+\d+[\x00\t\n\x0c\r ]+R"
_HEADER = re.compile(rb"%PDF-(\d\.\d)")
HEADER_WINDOW = 1024                   # readers accept %PDF- anywhere in the first 1,024 bytes
MAX_WALK_DEPTH = 40


@dataclass
class PdfObject:
    number: int
    generation: int
    type: str
    keywords: list[str]
    stream_length: int = 0
    filters: list[str] = field(default_factory=list)


@dataclass
class PdfScript:
    source: str                   # "object 12", "object 7 (in object stream 3)", "trailer"
    triggers: list[str]           # how it runs: "/OpenAction", "/Names/JavaScript", "/AA/O", "/A" ...
    auto: bool                    # runs when the document opens or a page shows (no click)
    size: int
    child: str                    # name of the child holding the script


@dataclass
class PdfReport:
    version: str = ""
    parser: str = ""              # "qpdf 12.4.2" or "raw scanner" (qpdf rejected the file)
    header_offset: int = 0        # where %PDF- starts (readers accept up to 1,024)
    object_count: int = 0
    objects_examined: int = 0
    keyword_counts: dict[str, int] = field(default_factory=dict)
    suspicious_objects: list[PdfObject] = field(default_factory=list)
    javascript: list[str] = field(default_factory=list)       # first 500 characters of each script
    scripts: list[PdfScript] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)            # javascript, auto-action, launch, embedded-file ...
    uris: list[str] = field(default_factory=list)
    launch: list[str] = field(default_factory=list)
    embedded_files: list[str] = field(default_factory=list)
    encrypted: bool = False
    notes: list[str] = field(default_factory=list)

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath a PDF, in the CLI and the UI alike."""
        out: list[str] = []
        if self.flags:
            out.append("flags: " + ", ".join(self.flags) + (f" (read by {self.parser})" if self.parser else ""))
        out += [f"script in {s.source}" + (f" via {', '.join(s.triggers[:3])}" if s.triggers else "")
                + (": runs on open" if s.auto else "") for s in self.scripts[:5]]
        if self.keyword_counts:
            out.append("keywords: " + ", ".join(f"{k} {v}" for k, v in self.keyword_counts.items()))
        out += [f"uri: {u}" for u in self.uris[:3]]
        out += [f"launch: {u}" for u in self.launch[:3]]
        return out


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
    m = re.search(re.escape(key) + rb"[\x00\s]*([(<])", body)
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
    data, problem = _apply_filters(raw, filters, cap)
    return data, filters, problem


CAPPED_FILTERS = ("FlateDecode", "Fl", "ASCIIHexDecode", "AHx")


def _apply_filters(raw: bytes, filters: list[str], cap: int) -> tuple[bytes, str]:
    """Flate and ASCIIHex undone in order, never past ``cap`` bytes: ``(data, problem)``."""
    data = raw
    for f in filters:
        if f in ("FlateDecode", "Fl"):
            d = zlib.decompressobj()
            try:
                data = d.decompress(data, cap + 1)
            except zlib.error as exc:
                return data, f"FlateDecode failed: {exc}"
            if len(data) > cap:
                return data[:cap], f"stream expands past {cap} bytes"
        elif f in ("ASCIIHexDecode", "AHx"):
            digits = re.sub(rb"[^0-9A-Fa-f]", b"", data.split(b">")[0])
            data = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
        else:
            return data, f"{f} not decoded"
    return data, ""


_AUTO_TRIGGERS = ("/OpenAction", "/AA", "/Names/JavaScript")
# Keys under which a script, a launch, a link or a file can sit (directly or in a nested dictionary).
_ACTION_KEYS = frozenset(("/JS", "/A", "/AA", "/OpenAction", "/Names", "/JavaScript", "/EF", "/EmbeddedFiles",
                          "/URI", "/S", "/Annots", "/AcroForm", "/Fields", "/Kids", "/Next", "/F", "/Launch"))


def _label(number: int) -> str:
    return "trailer" if number < 0 else f"object {number}"


def _pdf_text(raw: bytes) -> bytes:
    """A PDF text string as UTF-8 bytes (UTF-16 with a byte-order mark, else as it is)."""
    if raw.startswith((b"\xfe\xff", b"\xff\xfe")):
        return raw.decode("utf-16", "replace").encode("utf-8")
    return raw


class _Walker:
    """Every dictionary of a qpdf-parsed document, direct ones inside others included.

    ``refs`` maps an indirect object to the key paths that point at it (``/OpenAction``,
    ``/Names[1]`` ...), so a script object knows how it is triggered.
    """

    def __init__(self, pdf: Any, limit: int) -> None:
        self.pdf = pdf
        self.limit = limit
        self.refs: dict[tuple[int, int], list[str]] = {}
        # (source, key path, dictionary, (number, generation) of its indirect object, its keys and name values)
        self.dicts: list[tuple[str, str, Any, tuple[int, int] | None, set[str]]] = []
        self.examined = 0
        self.skimmed = 0              # past the limit, walked because their keys can hold an action
        self.total = 0

    def run(self) -> None:
        import pikepdf

        self._visit(self.pdf.trailer, "trailer", "", 0, None, top=True)
        for obj in self.pdf.objects:
            if not isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream, pikepdf.Array)):
                continue
            if isinstance(obj, pikepdf.Stream) and obj.stream_dict.get("/Type") == pikepdf.Name.XRef:
                continue          # a cross-reference stream's dictionary is the trailer, walked above
            self.total += 1
            if self.examined >= self.limit:
                # Past the limit, only what can hold an action is walked: a key-set check is cheap.
                keys = obj.stream_dict.keys() if isinstance(obj, pikepdf.Stream) else (
                    obj.keys() if isinstance(obj, pikepdf.Dictionary) else ())
                if isinstance(obj, pikepdf.Array) or not _ACTION_KEYS.isdisjoint(keys):
                    self.skimmed += 1
                    self._visit(obj, f"object {obj.objgen[0]}", "", 0, obj.objgen, top=True)
                continue
            self.examined += 1
            self._visit(obj, f"object {obj.objgen[0]}", "", 0, obj.objgen, top=True)

    def _visit(self, obj: Any, source: str, path: str, depth: int, objgen: tuple[int, int] | None, *,
               top: bool = False) -> None:
        import pikepdf

        if depth > MAX_WALK_DEPTH:
            return
        if not top and getattr(obj, "is_indirect", False):
            self.refs.setdefault(obj.objgen, []).append(path or "/")
            return
        if isinstance(obj, pikepdf.Stream):
            obj = obj.stream_dict
        if isinstance(obj, pikepdf.Dictionary):
            names: set[str] = set()
            self.dicts.append((source, path, obj, objgen, names))
            try:
                items = list(obj.items())
            except Exception:
                return
            for key, value in items:
                names.add(key)
                if isinstance(value, pikepdf.Name):
                    names.add(str(value))
                elif isinstance(value, (pikepdf.Dictionary, pikepdf.Array, pikepdf.Stream)):
                    self._visit(value, source, f"{path}{key}", depth + 1, objgen)
        elif isinstance(obj, pikepdf.Array):
            for i, value in enumerate(obj):
                if isinstance(value, (pikepdf.Dictionary, pikepdf.Array, pikepdf.Stream)):
                    self._visit(value, source, f"{path}[{i}]", depth + 1, objgen)


def _name_tree_leaves(node: Any, depth: int = 0) -> list[Any]:
    """The values of a name tree (``/Names`` pairs in leaves, ``/Kids`` below)."""
    import pikepdf

    if depth > MAX_WALK_DEPTH or not isinstance(node, pikepdf.Dictionary):
        return []
    out: list[Any] = []
    names = node.get("/Names")
    if isinstance(names, pikepdf.Array):
        out += [names[i] for i in range(1, len(names), 2)]
    kids = node.get("/Kids")
    if isinstance(kids, pikepdf.Array):
        for kid in kids:
            out += _name_tree_leaves(kid, depth + 1)
    return out


class PdfDissector(Dissector):
    name = "pdf"
    version = 2
    slow = True
    mimes = ("application/pdf", "application/x-pdf")
    prefixes = (b"%PDF",)
    report_type = PdfReport

    def accepts(self, *, mime: str, magic: str, declared: str, extension: str, head: bytes) -> bool:
        if super().accepts(mime=mime, magic=magic, declared=declared, extension=extension, head=head):
            return True
        # %PDF- after some junk: readers still open it. Other containers keep their dissector.
        strong = ("zip", "rar", "7z", "gzip", "dosexec", "executable", "msword", "ms-excel", "officedocument",
                  "cdfv2", "ole-storage", "html", "message/")
        return bool(_HEADER.search(head[:HEADER_WINDOW])) and not any(w in mime for w in strong)

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = PdfReport()
        result.report = report
        head = _HEADER.search(data[:HEADER_WINDOW])
        report.version = head.group(1).decode() if head else ""
        if head:
            report.header_offset = head.start()
            if head.start():
                report.notes.append(f"%PDF- header at offset {head.start()}, not 0 (readers accept it)")
        else:
            report.notes.append(f"no %PDF header in the first {HEADER_WINDOW} bytes")
        normalized = _NAME_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), data)
        for kw in KEYWORDS:
            count = len(re.findall(re.escape(kw.encode()) + rb"(?![A-Za-z])", normalized))
            if count:
                report.keyword_counts[kw] = count
        if not self._parsed(data, ctx, report, result):
            self._raw(data, ctx, report, result)
        # The raw counts also see "/JS" in page text; only the raw scanner's answer is checked against them
        # (qpdf's walk reads every /JS value, and says so when one cannot be read).
        named = report.keyword_counts.get("/JS", 0) if report.parser == "raw scanner" else 0
        if named > len(report.scripts):
            result.problem(PARTIAL, f"{named} /JS keywords in the bytes, {len(report.scripts)} scripts extracted")
        report.flags = self._flags(report)
        return result

    @staticmethod
    def _flags(report: PdfReport) -> list[str]:
        flags = []
        raw = report.parser == "raw scanner"
        if report.scripts or (raw and "/JS" in report.keyword_counts):
            flags.append("javascript")
        if any(s.auto for s in report.scripts):
            flags.append("auto-javascript")
        if report.launch or (raw and "/Launch" in report.keyword_counts):
            flags.append("launch")
        if report.embedded_files:
            flags.append("embedded-file")
        if report.encrypted:
            flags.append("encrypted")
        if report.header_offset:
            flags.append("header-not-at-start")
        return flags

    # -- qpdf ------------------------------------------------------------------------------------

    def _parsed(self, data: bytes, ctx: DissectContext, report: PdfReport, result: DissectResult) -> bool:
        """Read the document with qpdf; False when qpdf rejects it (the raw scanner takes over)."""
        try:
            import pikepdf
        except ImportError:
            report.notes.append("pikepdf is not installed: raw scanner only")
            result.cacheable = False
            return False
        try:
            pdf = pikepdf.open(io.BytesIO(data))
        except pikepdf.PasswordError:
            report.encrypted = True
            result.problem(PARTIAL, "encrypted PDF with a user password: not decrypted; raw scan only")
            return False
        except Exception as exc:
            why = re.sub(r"^stream <[^>]*>: ", "", str(exc))[:300]      # drop the BytesIO's address
            result.problem(PARTIAL, f"qpdf could not read the file ({why}): raw scan only")
            return False
        with pdf:
            report.parser = f"qpdf {pikepdf.__libqpdf_version__}"
            report.version = str(pdf.pdf_version) or report.version
            report.encrypted = bool(pdf.is_encrypted)
            walker = _Walker(pdf, ctx.limits.max_pdf_objects)
            try:
                walker.run()
            except Exception as exc:
                result.problem(PARTIAL, f"qpdf: {type(exc).__name__}: {str(exc)[:300]}")
            report.object_count = walker.total
            report.objects_examined = walker.examined
            if walker.total > walker.examined:
                result.problem(LIMIT_HIT, f"{walker.total} objects over the limit {walker.limit}: "
                                          f"first {walker.examined} examined, {walker.skimmed} more that can "
                                          "hold an action walked")
            warnings = [str(w)[:300] for w in pdf.get_warnings()]
            if warnings:
                report.notes.append(f"qpdf repaired the file ({len(warnings)} warnings): {warnings[0]}")
            document_scripts = self._document_scripts(pdf)
            self._parsed_objects(walker, report)
            self._parsed_actions(walker, document_scripts, report, result, ctx)
        return True

    @staticmethod
    def _document_scripts(pdf: Any) -> set[tuple[int, int]]:
        """Objects in the /Names /JavaScript tree (document-level scripts: they run at open)."""
        try:
            tree = pdf.Root.get("/Names", {}).get("/JavaScript")
            return {leaf.objgen for leaf in _name_tree_leaves(tree) if getattr(leaf, "is_indirect", False)}
        except Exception:
            return set()

    @staticmethod
    def _parsed_objects(walker: _Walker, report: PdfReport) -> None:

        seen: dict[str, PdfObject] = {}
        for source, _path, d, _objgen, names in walker.dicts:
            found = [kw for kw in KEYWORDS if kw in names]
            if not found:
                continue
            number = -1 if source == "trailer" else int(source.split()[1])
            entry = seen.get(source)
            if entry is None:
                otype = d.get("/Type")
                entry = seen[source] = PdfObject(number, 0, str(otype)[1:] if otype is not None else "", [])
            entry.keywords += [kw for kw in found if kw not in entry.keywords]
        report.suspicious_objects = list(seen.values())

    def _parsed_actions(self, walker: _Walker, document_scripts: set[tuple[int, int]], report: PdfReport,
                        result: DissectResult, ctx: DissectContext) -> None:
        import pikepdf

        cap = ctx.limits.max_child
        scripts: dict[str, int] = {}
        for source, path, d, objgen, names in walker.dicts:
            if names.isdisjoint(("/JS", "/URI", "/Launch", "/EF")):
                continue
            # -- JavaScript: /JS as a string or a stream, whatever /S says
            js = d.get("/JS")
            if js is not None:
                code = self._bytes_of(js, cap, f"{source}{path}/JS", result)
                if code is not None:
                    key = f"{source}{path}"
                    if key not in scripts:
                        triggers = [path] if path else []
                        if objgen is not None and not path:
                            triggers += walker.refs.get(objgen, [])
                        if objgen is not None and not path and objgen in document_scripts:
                            triggers.append("/Names/JavaScript")
                        self._add_script(key, _pdf_text(code), triggers, report, result)
                        scripts[key] = 1
            # -- URIs and Launch actions
            uri = d.get("/URI")
            if isinstance(uri, pikepdf.String) and len(report.uris) < 200:
                report.uris.append(bytes(uri).decode("latin-1")[:2000])
            if d.get("/S") == pikepdf.Name.Launch:
                target = d.get("/F") or d.get("/Win")
                if isinstance(target, pikepdf.Dictionary):
                    target = target.get("/F") or target.get("/UF")
                report.launch.append(bytes(target).decode("latin-1")[:500] if isinstance(target, pikepdf.String)
                                     else "")
            # -- embedded files: a file specification with /EF
            ef = d.get("/EF")
            if isinstance(ef, pikepdf.Dictionary):
                stream = ef.get("/UF") or ef.get("/F")
                raw_name = d.get("/UF") or d.get("/F")
                name = (_pdf_text(bytes(raw_name)).decode("utf-8", "replace")
                        if isinstance(raw_name, pikepdf.String) else "")
                label = name or f"embedded-{len(report.embedded_files) + 1}"
                content = self._bytes_of(stream, cap, f"{source}{path}/EF", result) if stream is not None else None
                report.embedded_files.append(label)
                if content is not None:
                    result.children.append(Child(name or f"{label}.bin", content,
                                                 note=f"embedded file (file specification in {source}{path})"))

    @staticmethod
    def _bytes_of(value: Any, cap: int, where: str, result: DissectResult) -> bytes | None:
        import pikepdf

        if isinstance(value, pikepdf.String):
            return bytes(value)
        if isinstance(value, pikepdf.Stream):
            length = value.stream_dict.get("/Length")
            spec = value.stream_dict.get("/Filter")
            filters = ([str(f)[1:] for f in spec] if isinstance(spec, pikepdf.Array)
                       else [str(spec)[1:]] if spec is not None else [])
            try:
                if isinstance(length, int) and int(length) > cap:
                    result.problem(LIMIT_HIT, f"{where}: stream of {int(length)} bytes over the child limit")
                    return None
                if all(f in CAPPED_FILTERS for f in filters) and "/DecodeParms" not in value.stream_dict:
                    # qpdf would decode a Flate bomb whole in memory: decode it here, capped.
                    data, problem = _apply_filters(bytes(value.read_raw_bytes()), filters, cap)
                    if problem:
                        result.problem(LIMIT_HIT if "past" in problem else PARTIAL, f"{where}: {problem}")
                    return data
                data = bytes(value.read_bytes())
            except Exception as exc:
                result.problem(PARTIAL, f"{where}: stream not decoded ({type(exc).__name__}: {str(exc)[:200]})")
                return None
            if len(data) > cap:
                result.problem(LIMIT_HIT, f"{where}: decodes past {cap} bytes")
                return data[:cap]
            return data
        return None

    @staticmethod
    def _add_script(where: str, code: bytes, triggers: list[str], report: PdfReport, result: DissectResult) -> None:
        triggers = list(dict.fromkeys(t for t in triggers if t))
        auto = any(t.startswith(_AUTO_TRIGGERS) or "/AA" in t or t.startswith("/OpenAction") for t in triggers) \
            or where.startswith("trailer")
        safe = re.sub(r"[^A-Za-z0-9]+", "-", where).strip("-")
        name = f"script-{safe}.js"
        report.javascript.append(code.decode("latin-1")[:500])
        report.scripts.append(PdfScript(where, triggers, auto, len(code), name))
        how = f" ({', '.join(triggers)})" if triggers else ""
        result.children.append(Child(name, code, declared_type="application/javascript",
                                     note=f"JavaScript in {where}{how}" + (": runs on open" if auto else "")))

    # -- raw scanner (qpdf rejected the file) --------------------------------------------------------

    def _raw(self, data: bytes, ctx: DissectContext, report: PdfReport, result: DissectResult) -> None:
        report.parser = "raw scanner"
        starts = list(_OBJ.finditer(data))
        report.object_count = len(starts)
        limit = ctx.limits.max_pdf_objects
        if len(starts) > limit:
            result.problem(LIMIT_HIT, f"{len(starts)} objects over the limit {limit}: first {limit} examined")
        report.encrypted = report.encrypted or "/Encrypt" in report.keyword_counts
        if report.encrypted:
            result.problem(PARTIAL, "encrypted PDF: strings and streams are not decrypted")
        objects: dict[int, tuple[bytes, bytes]] = {}      # number -> (dictionary, raw stream); trailers < 0
        for index, m in enumerate(starts[:limit]):
            end = data.find(b"endobj", m.end())
            nxt = starts[index + 1].start() if index + 1 < len(starts) else len(data)
            body = data[m.end(): end if 0 <= end < nxt else nxt]
            stream = b""
            s = re.search(rb"(?<![A-Za-z])stream\r?\n", body)
            if s:
                e = body.rfind(b"endstream")
                stream = body[s.end(): e if e > s.end() else len(body)].rstrip(b"\r\n")
                body = body[: s.start()]
            body = _NAME_HEX.sub(lambda x: bytes([int(x.group(1), 16)]), body)
            objects[int(m.group(1))] = (body, stream)
            report.objects_examined += 1
        for i, t in enumerate(re.finditer(rb"trailer" + _WS + rb"*<<", data)):
            end = data.find(b"startxref", t.end())
            body = data[t.start() + 7: end if end >= 0 else t.end() + 65536]
            objects[-1 - i] = (_NAME_HEX.sub(lambda x: bytes([int(x.group(1), 16)]), body), b"")
        self._object_streams(objects, ctx, report, result)
        for number, (body, stream) in sorted(objects.items()):
            found = [kw for kw in KEYWORDS if re.search(re.escape(kw.encode()) + rb"(?![A-Za-z])", body)]
            if found:
                otype = re.search(rb"/Type[\x00\s]*/(\w+)", body)
                report.suspicious_objects.append(PdfObject(
                    number, 0, otype.group(1).decode("latin-1") if otype else "", found,
                    len(stream), [f.decode("latin-1") for f in re.findall(rb"/(\w+Decode)", body)]))
        self._scripts(objects, report, result, ctx)
        self._files(objects, report, result, ctx)
        for body, _ in objects.values():
            for m in re.finditer(rb"/URI[\x00\s]*\(", body):
                uri = _string_after(b"/URI", body[m.start():])
                if uri and len(report.uris) < 200:
                    report.uris.append(uri.decode("latin-1")[:2000])
            if b"/Launch" in body:
                target = _string_after(b"/F", body) or _string_after(b"/P", body) or b""
                report.launch.append(target.decode("latin-1")[:500])

    def _object_streams(self, objects: dict[int, tuple[bytes, bytes]], ctx: DissectContext, report: PdfReport,
                        result: DissectResult) -> None:
        """Unpack /ObjStm streams: ``N`` pairs of (number, offset) then the objects from ``/First``."""
        for number, (body, stream) in list(objects.items()):
            if not re.search(rb"/Type[\x00\s]*/ObjStm", body):
                continue
            data, _filters, problem = _decode_stream(stream, body, ctx.limits.max_child)
            if problem:
                result.problem(PARTIAL, f"object stream {number}: {problem}")
            first = re.search(rb"/First[\x00\s]+(\d+)", body)
            if not first:
                continue
            offset0 = int(first.group(1))
            pairs = [int(x) for x in re.findall(rb"\d+", data[:offset0])]
            entries = list(zip(pairs[0::2], pairs[1::2], strict=False))
            for i, (inner, offset) in enumerate(entries):
                if len(objects) >= ctx.limits.max_pdf_objects + 64:
                    result.problem(LIMIT_HIT, f"object stream {number}: objects past the limit not examined")
                    break
                stop = entries[i + 1][1] if i + 1 < len(entries) else len(data) - offset0
                if inner not in objects:
                    chunk = data[offset0 + offset: offset0 + stop]
                    objects[inner] = (_NAME_HEX.sub(lambda x: bytes([int(x.group(1), 16)]), chunk), b"")
                    report.objects_examined += 1
                    report.object_count += 1

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
        referrers: dict[int, list[str]] = {}
        for body, _stream in objects.values():
            for m in re.finditer(rb"(/OpenAction|/JavaScript|/AA|/A|/Names)" + _REF.encode(), body):
                referrers.setdefault(int(m.group(2)), []).append(m.group(1).decode())
        for number, (body, _stream) in sorted(objects.items()):
            for js in re.finditer(rb"/JS(?![A-Za-z])", body):
                tail = body[js.start():]
                ref = re.match(rb"/JS" + _REF.encode(), tail)
                script = (self._stream_of(objects, int(ref.group(1)), ctx.limits.max_child, result) if ref
                          else _string_after(b"/JS", tail))
                if not script:
                    continue
                before = body[:js.start()]
                triggers = [k.decode() for k in re.findall(rb"(/OpenAction|/AA)", before)]
                triggers += ["/Names/JavaScript" if t == "/JavaScript" else t for t in referrers.get(number, [])]
                where = _label(number) + (f" at {js.start()}" if len(re.findall(rb"/JS(?![A-Za-z])", body)) > 1
                                          else "")
                self._add_script(where, _pdf_text(script), triggers, report, result)

    def _files(self, objects: dict[int, tuple[bytes, bytes]], report: PdfReport, result: DissectResult,
               ctx: DissectContext) -> None:
        for number, (body, _stream) in sorted(objects.items()):
            ef = re.search(rb"/EF[\x00\s]*<<[^>]*?/(?:F|UF)" + _REF.encode(), body)
            if not ef:
                continue
            raw_name = _string_after(b"/UF", body) or _string_after(b"/F", body) or b""
            name = raw_name.decode("utf-16" if raw_name.startswith(b"\xfe\xff") else "latin-1", "replace")
            content = self._stream_of(objects, int(ef.group(1)), ctx.limits.max_child, result)
            report.embedded_files.append(name or f"embedded-{ef.group(1).decode()}")
            if content is not None:
                result.children.append(Child(name or f"embedded-{ef.group(1).decode()}.bin", content,
                                             note=f"embedded file (filespec {_label(number)})"))


DISSECTORS = [PdfDissector]
