"""Office documents via oletools: VBA, XLM, DDE, external links, embedded objects.

Containers: OLE (Word, Excel, PowerPoint 97-2003), OOXML, RTF, single-file Office XML
(Word 2003 XML, Flat OPC, SpreadsheetML 2003), CSV and SYLK.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass, field

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.formats import dde
from workbench.dissect.model import LIMIT_HIT, PARSER_ERROR, PARTIAL, Child, DissectResult

VELVET = "VelvetSweatshop"
MAX_DECRYPT_TRIES = 12          # agile encryption costs ~0.1 s per try
MAX_TEXT_FORMAT = 16 << 20      # CSV, SYLK and XML documents read for formulas and fields
OFFICE_XML_PROGIDS = ("Word.Document", "Excel.Sheet", "PowerPoint.Show")


@dataclass
class VbaModule:
    stream: str
    filename: str
    size: int
    child: str                    # path segment of the source child


@dataclass
class MacroFinding:
    kind: str                     # AutoExec, Suspicious, IOC, Hex String, Base64 String, Dridex String, VBA string
    keyword: str
    description: str


@dataclass
class Mraptor:
    flags: str                    # e.g. "AX": A autoexec, W write, X execute
    autoexec: bool
    write: bool
    execute: bool
    suspicious: bool


@dataclass
class ExternalRelationship:
    part: str
    type: str
    target: str


@dataclass
class EmbeddedObject:
    source: str                   # stream or part it came from
    class_name: str
    filename: str
    size: int


@dataclass
class OfficeReport:
    container: str                # ole, ooxml, rtf, xml, csv, sylk
    vba: bool = False
    modules: list[VbaModule] = field(default_factory=list)
    findings: list[MacroFinding] = field(default_factory=list)
    mraptor: Mraptor | None = None
    xlm: bool = False
    xlm_macros: list[str] = field(default_factory=list)
    autoexec: list[str] = field(default_factory=list)     # AutoExec keywords of VBA and XLM (Auto_Open ...)
    dde: list[str] = field(default_factory=list)          # DDE commands, as msodde prints them
    external_relationships: list[ExternalRelationship] = field(default_factory=list)
    embedded: list[EmbeddedObject] = field(default_factory=list)
    encrypted: bool = False
    decrypted_with: str | None = None
    streams: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath an Office document, in the CLI and the UI alike."""
        line = f"{self.container}"
        if self.vba:
            line += f", VBA: {', '.join(m.filename for m in self.modules if not m.child.startswith('XLM/'))}"
        if self.xlm:
            line += ", XLM macros"
        if self.mraptor:
            line += f", mraptor {self.mraptor.flags or '-'}{' SUSPICIOUS' if self.mraptor.suspicious else ''}"
        if self.encrypted:
            line += f", encrypted (decrypted with {self.decrypted_with!r})" if self.decrypted_with else ", encrypted"
        out = [line]
        autoexec = [f.keyword for f in self.findings if f.kind == "AutoExec"]
        suspicious = [f.keyword for f in self.findings if f.kind == "Suspicious"]
        if autoexec:
            out.append("autoexec: " + ", ".join(autoexec[:8]))
        if suspicious:
            out.append("suspicious: " + ", ".join(suspicious[:8]))
        out += [f"external {r.type}: {r.target}" for r in self.external_relationships[:5]]
        out += [f"DDE: {d}" for d in self.dde[:3]]
        if self.xlm:
            out.append(f"XLM macros: {len(self.xlm_macros)} lines")
        return out


def _quiet_oletools() -> None:
    for name in ("olevba", "oleobj", "rtfobj", "olefile", "msoffcrypto", "mraptor", "xls_parser",
                 "oletools", "ppt_parser", "record_base"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _macros(data: bytes, filename: str, report: OfficeReport, result: DissectResult) -> None:
    """VBA and Excel 4 (XLM) macros as olevba sees them, and mraptor over both.

    olevba yields XLM formulas as one pseudo-module (``xlm_macro.txt``, one commented
    line per cell, name and macro sheet); its AutoExec keywords (``Auto_Open``) and
    mraptor's flags are computed whether or not the file also carries VBA.
    """
    from oletools.mraptor import MacroRaptor
    from oletools.olevba import VBA_Parser

    try:
        parser = VBA_Parser(filename or "document", data=data)
    except Exception as exc:
        report.notes.append(f"olevba could not open the file: {type(exc).__name__}: {exc}")
        return
    try:
        report.vba = bool(parser.detect_vba_macros())
        report.xlm = bool(parser.detect_xlm_macros())
        if not (report.vba or report.xlm):
            return
        if report.xlm:
            report.xlm_macros = [str(line)[:500] for line in (parser.xlm_macros or [])[:500]]
        seen: dict[str, int] = {}
        for _sub, stream, vba_filename, code in parser.extract_macros():
            name = vba_filename or stream.rsplit("/", 1)[-1] or "module"
            seen[name] = seen.get(name, 0) + 1
            folder = "XLM" if stream == "xlm_macro" else "VBA"
            segment = f"{folder}/{name}" + (f"#{seen[name]}" if seen[name] > 1 else "")
            if folder == "XLM":
                code = (code or "").replace("\x00", "")   # plugin_biff keeps a sheet name's BIFF8 flag byte
            source = (code or "").encode("utf-8", "replace")
            report.modules.append(VbaModule(stream, vba_filename, len(source), segment))
            note = "XLM macro formulas (olevba)" if folder == "XLM" else "VBA source (olevba)"
            result.children.append(Child(vba_filename, source, declared_type="text/x-vba",
                                         segment=segment, note=note))
        for kind, keyword, description in parser.analyze_macros() or []:
            report.findings.append(MacroFinding(kind, str(keyword)[:200], str(description)[:300]))
        report.autoexec = list(dict.fromkeys(f.keyword for f in report.findings if f.kind == "AutoExec"))
        raptor = MacroRaptor(parser.get_vba_code_all_modules() or "")
        raptor.scan()
        report.mraptor = Mraptor(raptor.get_flags(), raptor.autoexec, raptor.write, raptor.execute,
                                 raptor.suspicious)
    except Exception as exc:
        result.problem(PARTIAL, f"olevba: {type(exc).__name__}: {exc}")
    finally:
        parser.close()


def _encryption(data: bytes, ctx: DissectContext, report: OfficeReport, result: DissectResult) -> bool:
    """True when the file is encrypted; a decrypted copy becomes a child when a password works."""
    import msoffcrypto

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        encrypted = office.is_encrypted()
    except Exception:
        return False
    if not encrypted:
        return False
    report.encrypted = True
    candidates = [VELVET, *[p for p in ctx.passwords if p != VELVET]][:MAX_DECRYPT_TRIES]
    for password in candidates:
        try:
            office = msoffcrypto.OfficeFile(io.BytesIO(data))
            office.load_key(password=password)
            out = io.BytesIO()
            office.decrypt(out)
        except Exception:
            continue
        report.decrypted_with = password
        result.children.append(Child("decrypted", out.getvalue(), segment="decrypted",
                                     note=f"decrypted with password {password!r}"))
        return True
    result.problem(PARTIAL, f"encrypted document; none of {len(candidates)} passwords worked")
    return True


def _package(native_data: bytes, where: str, report: OfficeReport, result: DissectResult) -> None:
    """An OLE 1.0 ``Package`` (Ole10Native): the embedded file becomes a child; a link is listed."""
    from oletools.oleobj import OleNativeStream

    native = OleNativeStream(native_data)
    name = native.filename or native.src_path or "ole10native.bin"
    if native.is_link:
        report.embedded.append(EmbeddedObject(where, "Package (link)", native.src_path or name, 0))
        return
    payload = native.data or b""
    report.embedded.append(EmbeddedObject(where, "Package", name, len(payload)))
    result.children.append(Child(name, payload, note=f"OLE package in {where}"))


def _ole_dde(data: bytes, ole: object, report: OfficeReport, result: DissectResult) -> None:
    """DDE where msodde looks: ``SupBook`` records of a workbook, fields of anything but PowerPoint."""
    try:
        if dde.is_xls(data):
            report.dde += dde.xls_links(data)
        elif not _is_ppt(data):
            report.dde += dde.ole_doc_fields(ole)
    except Exception as exc:
        report.notes.append(f"DDE: {type(exc).__name__}: {exc}")


def _is_ppt(data: bytes) -> bool:
    from oletools.ppt_record_parser import is_ppt

    return bool(is_ppt(data))


def _ppt_objects(data: bytes, cap: int, report: OfficeReport, result: DissectResult) -> None:
    """Embedded OLE objects of a PowerPoint 97-2003 file (``ExOleObjStg`` records, zlib-compressed
    or not), as oleobj finds them: a package's file is a child, any other object the whole storage."""
    import olefile
    from oletools.ppt_record_parser import PptFile, PptRecordExOleVbaActiveXAtom

    ppt = PptFile(data)
    try:
        count = 0
        for stream in ppt.iter_streams():
            for index, record in enumerate(stream.iter_records()):
                if not isinstance(record, PptRecordExOleVbaActiveXAtom):
                    continue
                where = f"{stream.name} record {index}"
                try:
                    size = record.get_uncompressed_size()
                    if size > cap:
                        result.problem(LIMIT_HIT, f"{where}: {size} bytes over the child limit")
                        continue
                    storage = b"".join(record.iter_uncompressed())[:cap]
                except Exception as exc:
                    report.notes.append(f"{where}: {type(exc).__name__}: {exc}")
                    continue
                if not storage.startswith(olefile.MAGIC):
                    continue      # a VBA project storage or an ActiveX control (olevba reads those)
                count += 1
                packaged = False
                try:
                    with olefile.OleFileIO(storage) as inner:
                        for entry in inner.listdir():
                            if entry[-1].lower() == "\x01ole10native":
                                _package(inner.openstream(entry).read(), f"{where}/{'/'.join(entry)}",
                                         report, result)
                                packaged = True
                except Exception as exc:
                    report.notes.append(f"{where}: {type(exc).__name__}: {exc}")
                if not packaged:
                    report.embedded.append(EmbeddedObject(where, "OLE object", f"object{count}.ole",
                                                          len(storage)))
                    result.children.append(Child(f"object{count}.ole", storage,
                                                 note=f"OLE object embedded in {where}"))
    finally:
        ppt.close()


def _ole_objects(data: bytes, ctx: DissectContext, report: OfficeReport, result: DissectResult) -> None:
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:
        result.problem(PARSER_ERROR, f"OLE structure unreadable: {exc}")
        return
    with ole:
        entries = ole.listdir(streams=True, storages=False)
        report.streams = ["/".join(e) for e in entries[:200]]
        if len(entries) > 200:
            report.notes.append(f"{len(entries)} streams; first 200 listed")
        for entry in entries:
            path = "/".join(entry)
            leaf = entry[-1]
            try:
                if leaf.lower() == "\x01ole10native":
                    _package(ole.openstream(entry).read(), path, report, result)
                elif leaf in ("Package", "CONTENTS") or (leaf.startswith("MBD") and leaf.endswith(".bin")):
                    payload = ole.openstream(entry).read()
                    report.embedded.append(EmbeddedObject(path, leaf, "", len(payload)))
                    result.children.append(Child(f"{leaf}.bin", payload, note=f"embedded stream {path}"))
            except Exception as exc:
                report.notes.append(f"{path}: {type(exc).__name__}: {exc}")
        _ole_dde(data, ole, report, result)
    try:
        if _is_ppt(data):
            _ppt_objects(data, ctx.limits.max_child, report, result)
    except Exception as exc:
        result.problem(PARTIAL, f"PowerPoint records: {type(exc).__name__}: {exc}")


def _ooxml(data: bytes, ctx: DissectContext, report: OfficeReport, result: DissectResult) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        result.problem(PARSER_ERROR, f"OOXML container unreadable: {exc}")
        return
    with zf:
        infos = zf.infolist()
        if len(infos) > ctx.limits.max_archive_entries:
            result.problem(LIMIT_HIT, f"{len(infos)} parts over the entries limit")
            infos = infos[: ctx.limits.max_archive_entries]
        report.streams = [i.filename for i in infos[:200]]

        def read(info: zipfile.ZipInfo, cap: int) -> bytes | None:
            if info.file_size > cap:
                result.problem(LIMIT_HIT, f"{info.filename}: {info.file_size} bytes over the child limit")
                return None
            try:
                with zf.open(info) as fh:
                    return fh.read(cap + 1)[:cap]
            except Exception as exc:
                report.notes.append(f"{info.filename}: {exc}")
                return None

        for info in infos:
            name = info.filename
            if name.endswith(".rels"):
                xml = read(info, 4 << 20) or b""
                for rel in re.finditer(rb"<Relationship\b[^>]*>", xml):
                    tag = rel.group(0)
                    if b'TargetMode="External"' not in tag:
                        continue
                    rtype = re.search(rb'Type="([^"]*)"', tag)
                    target = re.search(rb'Target="([^"]*)"', tag)
                    report.external_relationships.append(ExternalRelationship(
                        name, (rtype.group(1).decode("utf-8", "replace").rsplit("/", 1)[-1] if rtype else ""),
                        target.group(1).decode("utf-8", "replace")[:2000] if target else ""))
            elif "/embeddings/" in name or name.endswith("/activeX/activeX1.bin"):
                payload = read(info, ctx.limits.max_child)
                if payload is not None:
                    report.embedded.append(EmbeddedObject(name, "embedding", name.rsplit("/", 1)[-1], len(payload)))
                    result.children.append(Child(name.rsplit("/", 1)[-1], payload, note=f"OOXML part {name}"))

        def part(name: str) -> bytes | None:
            info = zf.getinfo(name)
            return read(info, 16 << 20) if info.file_size <= 16 << 20 else None

        try:
            report.dde += dde.ooxml(zf, [i.filename for i in infos], part)
        except Exception as exc:
            result.problem(PARTIAL, f"DDE: {type(exc).__name__}: {exc}")


def _rtf(data: bytes, report: OfficeReport, result: DissectResult) -> None:
    from oletools.rtfobj import RtfObjParser

    try:
        parser = RtfObjParser(data)
        parser.parse()
    except Exception as exc:
        result.problem(PARSER_ERROR, f"rtfobj: {type(exc).__name__}: {exc}")
        return
    for i, obj in enumerate(parser.objects, start=1):
        try:
            if obj.is_package:
                name, payload = obj.filename or f"object{i}.bin", obj.olepkgdata
            elif obj.is_ole:
                name, payload = f"object{i}.{(obj.class_name or b'ole').decode('latin-1', 'replace')}", obj.oledata
            else:
                name, payload = f"object{i}.raw", obj.rawdata
            class_name = (obj.class_name or b"").decode("latin-1", "replace") if obj.is_ole else ""
            report.embedded.append(EmbeddedObject(f"rtf object {i} at {obj.start}", class_name,
                                                  name, len(payload or b"")))
            if payload:
                result.children.append(Child(name, payload, note=f"RTF object {i} (rtfobj)"))
        except Exception as exc:
            report.notes.append(f"rtf object {i}: {type(exc).__name__}: {exc}")
    try:
        report.dde += dde.rtf_fields(data)
    except Exception as exc:
        result.problem(PARTIAL, f"RTF fields: {type(exc).__name__}: {exc}")


def _text_format(data: bytes, report: OfficeReport, result: DissectResult) -> None:
    """DDE in the text formats msodde reads: Office XML, CSV, SYLK."""
    body = data[:MAX_TEXT_FORMAT]
    if len(data) > MAX_TEXT_FORMAT:
        result.problem(LIMIT_HIT, f"first {MAX_TEXT_FORMAT} bytes read for formulas and fields")
    try:
        if report.container == "xml":
            report.dde += dde.single_xml(body)
        elif report.container == "sylk":
            report.dde += dde.sylk_formulas(body)
        else:
            report.dde += dde.csv_formulas(body)
    except Exception as exc:
        result.problem(PARSER_ERROR if report.container == "xml" else PARTIAL,
                       f"{report.container}: {type(exc).__name__}: {exc}")


def text_container(head: bytes, mime: str, extension: str, declared: str) -> str:
    """Which text format an Office program would open this as: 'xml', 'sylk', 'csv' or ''."""
    declared = declared.split(";")[0].strip().lower()
    if head.startswith(b"ID;") or (head.startswith(b"ID") and extension == "slk") or mime == "application/x-sylk":
        return "sylk"
    if dde.xml_progid(head) in OFFICE_XML_PROGIDS or b"<pkg:package" in head[:4096]:
        return "xml"
    if "csv" in mime or declared in ("text/csv", "application/csv") or (
            extension in ("csv", "tsv") and (mime.startswith("text/") or mime in ("", "application/octet-stream"))):
        return "csv"
    return ""


class OfficeDissector(Dissector):
    name = "office"
    version = 2
    uses_passwords = True
    mimes = ("application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
             "application/x-ole-storage", "application/CDFV2", "application/vnd.ms-office",
             "application/encrypted", "application/CDFV2-encrypted", "text/rtf", "application/rtf",
             "application/vnd.ms-outlook", "application/x-sylk", "text/csv", "application/csv")
    mime_prefixes = ("application/vnd.openxmlformats-officedocument.", "application/vnd.ms-word.",
                     "application/vnd.ms-excel.", "application/vnd.ms-powerpoint.")
    magic_words = ("Composite Document File", "Microsoft Word 2007", "Microsoft Excel 2007",
                   "Microsoft PowerPoint 2007", "Microsoft OOXML", "Rich Text Format",
                   "spreadsheet interchange document")
    extensions = ("csv", "slk")
    prefixes = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"{\\rtf", b"{\\rt", b"ID;")
    report_type = OfficeReport

    def accepts(self, *, mime: str, magic: str, declared: str, extension: str, head: bytes) -> bool:
        if super().accepts(mime=mime, magic=magic, declared=declared, extension=extension, head=head):
            return True
        return bool(mime.startswith("text/") or mime.endswith("/xml")) and bool(
            text_container(head, mime, extension, declared))

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        _quiet_oletools()
        result = DissectResult()
        if data.lstrip()[:4] == b"{\\rt":
            report = OfficeReport("rtf")
            result.report = report
            _rtf(data, report, result)
            return result
        is_ole = data.startswith(b"\xd0\xcf\x11\xe0")
        # Neither a compound file nor a zip: a text format. msodde reads whatever else it is as CSV.
        kind = "" if is_ole or data.startswith(b"PK") else text_container(
            data[:4096], ctx.mime, _extension(ctx.filename), ctx.declared_type) or "csv"
        if kind:
            report = OfficeReport(kind)
            result.report = report
            if kind == "sylk":
                _macros(data, ctx.filename, report, result)
            _text_format(data, report, result)
            return result
        report = OfficeReport("ole" if is_ole else "ooxml")
        result.report = report
        if _encryption(data, ctx, report, result):
            return result
        _macros(data, ctx.filename, report, result)
        if is_ole:
            _ole_objects(data, ctx, report, result)
        else:
            _ooxml(data, ctx, report, result)
        return result


def _extension(filename: str) -> str:
    from workbench.dissect.identify import extension

    return extension(filename)


DISSECTORS = [OfficeDissector]
