"""Office documents (OLE, OOXML, RTF) via oletools: VBA, XLM, DDE, external links, embedded objects."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass, field

from workbench.dissect.model import LIMIT_HIT, PARSER_ERROR, PARTIAL, Child, DissectResult
from workbench.dissect.registry import DissectContext, Dissector

VELVET = "VelvetSweatshop"
MAX_DECRYPT_TRIES = 12          # agile encryption costs ~0.1 s per try
_DDE = re.compile(r"\b(DDEAUTO|DDE)\b\s+[^\x00-\x08\x13\x14\x15]{0,500}", re.I)


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
    container: str                # ole, ooxml, rtf
    vba: bool = False
    modules: list[VbaModule] = field(default_factory=list)
    findings: list[MacroFinding] = field(default_factory=list)
    mraptor: Mraptor | None = None
    xlm: bool = False
    xlm_macros: list[str] = field(default_factory=list)
    dde: list[str] = field(default_factory=list)
    external_relationships: list[ExternalRelationship] = field(default_factory=list)
    embedded: list[EmbeddedObject] = field(default_factory=list)
    encrypted: bool = False
    decrypted_with: str | None = None
    streams: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _quiet_oletools() -> None:
    for name in ("olevba", "oleobj", "rtfobj", "olefile", "msoffcrypto", "mraptor", "xls_parser",
                 "oletools", "ppt_parser", "record_base"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _vba(data: bytes, filename: str, report: OfficeReport, result: DissectResult) -> None:
    from oletools.mraptor import MacroRaptor
    from oletools.olevba import VBA_Parser

    try:
        parser = VBA_Parser(filename or "document", data=data)
    except Exception as exc:
        report.notes.append(f"olevba could not open the file: {type(exc).__name__}: {exc}")
        return
    try:
        if parser.detect_vba_macros():
            report.vba = True
            seen: dict[str, int] = {}
            for _sub, stream, vba_filename, code in parser.extract_macros():
                name = vba_filename or stream.rsplit("/", 1)[-1] or "module"
                seen[name] = seen.get(name, 0) + 1
                segment = f"VBA/{name}" + (f"#{seen[name]}" if seen[name] > 1 else "")
                source = (code or "").encode("utf-8", "replace")
                report.modules.append(VbaModule(stream, vba_filename, len(source), segment))
                result.children.append(Child(vba_filename, source, declared_type="text/x-vba",
                                             segment=segment, note="VBA source (olevba)"))
            for kind, keyword, description in parser.analyze_macros() or []:
                report.findings.append(MacroFinding(kind, str(keyword)[:200], str(description)[:300]))
            raptor = MacroRaptor(parser.get_vba_code_all_modules() or "")
            raptor.scan()
            report.mraptor = Mraptor(raptor.get_flags(), raptor.autoexec, raptor.write, raptor.execute,
                                     raptor.suspicious)
        if parser.detect_xlm_macros():
            report.xlm = True
            report.xlm_macros = [str(line)[:500] for line in (parser.xlm_macros or [])[:500]]
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


def _ole_objects(data: bytes, report: OfficeReport, result: DissectResult) -> None:
    import olefile
    from oletools.oleobj import OleNativeStream

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
                if leaf == "\x01Ole10Native":
                    native = OleNativeStream(ole.openstream(entry).read())
                    name = native.filename or native.src_path or "ole10native.bin"
                    payload = native.data or b""
                    report.embedded.append(EmbeddedObject(path, "Package", name, len(payload)))
                    result.children.append(Child(name, payload, note=f"OLE package in {path}"))
                elif leaf in ("Package", "CONTENTS") or (leaf.startswith("MBD") and leaf.endswith(".bin")):
                    payload = ole.openstream(entry).read()
                    report.embedded.append(EmbeddedObject(path, leaf, "", len(payload)))
                    result.children.append(Child(f"{leaf}.bin", payload, note=f"embedded stream {path}"))
                elif leaf in ("WordDocument",):
                    text = ole.openstream(entry).read(4 << 20).decode("latin-1")
                    report.dde += [m.group(0).strip()[:300] for m in _DDE.finditer(text)][:20]
            except Exception as exc:
                report.notes.append(f"{path}: {type(exc).__name__}: {exc}")


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
            elif name.endswith(".xml") and ("document" in name or "sheet" in name or "slide" in name):
                part = (read(info, 16 << 20) or b"").decode("utf-8", "replace")
                # Field codes split across runs: join every instrText, then look for DDE.
                text = " ".join(a or b for a, b in re.findall(
                    r"<w:instrText[^>]*>(.*?)</w:instrText>|w:instr=\"([^\"]*)\"", part, re.S))
                report.dde += [m.group(0).strip()[:300] for m in _DDE.finditer(text)][:20]
            elif "/embeddings/" in name or name.endswith("/activeX/activeX1.bin"):
                payload = read(info, ctx.limits.max_child)
                if payload is not None:
                    report.embedded.append(EmbeddedObject(name, "embedding", name.rsplit("/", 1)[-1], len(payload)))
                    result.children.append(Child(name.rsplit("/", 1)[-1], payload, note=f"OOXML part {name}"))


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


class OfficeDissector(Dissector):
    name = "office"
    version = 1
    uses_passwords = True
    mimes = ("application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
             "application/x-ole-storage", "application/CDFV2", "application/vnd.ms-office",
             "application/encrypted", "application/CDFV2-encrypted", "text/rtf", "application/rtf",
             "application/vnd.ms-outlook")
    mime_prefixes = ("application/vnd.openxmlformats-officedocument.", "application/vnd.ms-word.",
                     "application/vnd.ms-excel.", "application/vnd.ms-powerpoint.")
    magic_words = ("Composite Document File", "Microsoft Word 2007", "Microsoft Excel 2007",
                   "Microsoft PowerPoint 2007", "Microsoft OOXML", "Rich Text Format")
    prefixes = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"{\\rtf", b"{\\rt")
    report_type = OfficeReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        _quiet_oletools()
        result = DissectResult()
        if data.lstrip()[:4] == b"{\\rt":
            report = OfficeReport("rtf")
            result.report = report
            _rtf(data, report, result)
            return result
        is_ole = data.startswith(b"\xd0\xcf\x11\xe0")
        report = OfficeReport("ole" if is_ole else "ooxml")
        result.report = report
        if _encryption(data, ctx, report, result):
            return result
        _vba(data, ctx.filename, report, result)
        if is_ole:
            _ole_objects(data, report, result)
        else:
            _ooxml(data, ctx, report, result)
        return result


DISSECTORS = [OfficeDissector]
