"""Windows PE files via pefile: headers, sections, imports, exports, resources, Rich header, overlay, signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.identify import entropy
from workbench.dissect.model import LIMIT_HIT, PARSER_ERROR, PARTIAL, Child, DissectResult

MAX_SECTIONS_LISTED = 200
RESOURCE_CHILD_MIN = 1024         # resources this large become children
MAX_RESOURCE_CHILDREN = 50
_SECTION_FLAGS = {0x20: "code", 0x40: "data", 0x20000000: "execute", 0x40000000: "read", 0x80000000: "write"}
_FILE_FLAGS = {0x0002: "executable", 0x0020: "large-address-aware", 0x0100: "32bit", 0x2000: "dll",
               0x0001: "relocs-stripped", 0x0200: "debug-stripped"}


# Addresses and file offsets: shown in hex, as every PE tool shows them (renderers read
# this field metadata; JSON keeps numbers).
HEX = {"hex": True}


@dataclass
class PeSection:
    name: str
    virtual_address: int = field(metadata=HEX)
    virtual_size: int = field(metadata=HEX)
    raw_offset: int = field(metadata=HEX)
    raw_size: int
    entropy: float
    md5: str
    sha256: str
    flags: list[str]
    mismatch: str = ""            # raw vs virtual size disagreement worth a look


@dataclass
class PeImport:
    dll: str
    functions: list[str]


@dataclass
class PeResource:
    type: str
    name: str
    language: int
    size: int
    offset: int = field(metadata=HEX)
    sha256: str
    child: str = ""


@dataclass
class PeDirectory:
    name: str                     # EXPORT, IMPORT, RESOURCE, SECURITY ... (IMAGE_DIRECTORY_ENTRY_ dropped)
    virtual_address: int = field(metadata=HEX)    # for SECURITY, a file offset
    size: int


@dataclass
class RichEntry:
    product_id: int
    build: int
    count: int


@dataclass
class PeReport:
    format: str = ""              # PE32 or PE32+
    machine: str = ""
    subsystem: str = ""
    dll: bool = False
    timestamp: int = 0
    compile_time: dt.datetime | None = None
    characteristics: list[str] = field(default_factory=list)
    entry_point: int = field(default=0, metadata=HEX)
    image_base: int = field(default=0, metadata=HEX)
    section_count: int = 0
    directory_count: int = 0      # NumberOfRvaAndSizes as declared
    directories: list[PeDirectory] = field(default_factory=list)    # the non-empty ones
    sections: list[PeSection] = field(default_factory=list)
    imports: list[PeImport] = field(default_factory=list)
    imphash: str = ""
    exports: list[str] = field(default_factory=list)
    export_name: str = ""
    exphash: str = ""
    resources: list[PeResource] = field(default_factory=list)
    version_info: dict[str, str] = field(default_factory=dict)
    rich: list[RichEntry] = field(default_factory=list)
    rich_hash: str = ""
    tls_callbacks: list[int] = field(default_factory=list, metadata=HEX)
    overlay_offset: int | None = field(default=None, metadata=HEX)
    overlay_size: int = 0
    signed: bool = False
    signers: list[str] = field(default_factory=list)
    dotnet: bool = False
    clr_version: str = ""
    warnings: list[str] = field(default_factory=list)

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath a PE file, in the CLI and the UI alike."""
        from workbench.humanize import shown
        from workbench.humanize import size as human_size

        when = shown(self.compile_time, seconds=False) or "?"
        out = [f"{self.format} {self.machine} {self.subsystem}{' DLL' if self.dll else ''}, "
               f"compiled {when}, {self.section_count} sections, imphash {self.imphash or '-'}"]
        if self.signed:
            out.append("signed by: " + ("; ".join(self.signers) or "(unreadable)"))
        if self.overlay_offset is not None:
            out.append(f"overlay: {human_size(self.overlay_size)} at 0x{self.overlay_offset:X}")
        if self.dotnet:
            out.append(f".NET {self.clr_version}")
        if self.tls_callbacks:
            out.append(f"TLS callbacks: {len(self.tls_callbacks)}")
        out += [f"{s.name}: {s.mismatch}" for s in self.sections if s.mismatch][:3]
        return out


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _sections(pe: Any, report: PeReport, data: bytes) -> None:
    for s in pe.sections[:MAX_SECTIONS_LISTED]:
        raw = data[s.PointerToRawData: s.PointerToRawData + s.SizeOfRawData]
        mismatch = ""
        if s.SizeOfRawData == 0 and s.Misc_VirtualSize > 0:
            mismatch = "no raw data, virtual only (unpacked at run time?)"
        elif s.SizeOfRawData and s.Misc_VirtualSize > 10 * s.SizeOfRawData:
            mismatch = f"virtual size {s.Misc_VirtualSize} is over 10x the raw size {s.SizeOfRawData}"
        elif s.PointerToRawData + s.SizeOfRawData > len(data):
            mismatch = "raw data runs past the end of the file"
        report.sections.append(PeSection(
            s.Name.rstrip(b"\x00").decode("latin-1"), s.VirtualAddress, s.Misc_VirtualSize,
            s.PointerToRawData, s.SizeOfRawData, round(entropy(raw), 3), hashlib.md5(raw).hexdigest(),
            hashlib.sha256(raw).hexdigest(), [n for b, n in _SECTION_FLAGS.items() if s.Characteristics & b],
            mismatch))


def _resources(pe: Any, report: PeReport, result: DissectResult, data: bytes, ctx: DissectContext) -> None:
    import pefile

    root = getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None)
    if root is None:
        return
    children = 0
    for rtype in root.entries[:100]:
        type_name = _text(rtype.name) if rtype.name else pefile.RESOURCE_TYPE.get(rtype.id, str(rtype.id))
        for rname in (getattr(rtype, "directory", None) and rtype.directory.entries[:200]) or []:
            name = _text(rname.name) if rname.name else str(rname.id)
            for lang in (getattr(rname, "directory", None) and rname.directory.entries[:20]) or []:
                entry = lang.data.struct
                try:
                    offset = pe.get_offset_from_rva(entry.OffsetToData)
                except Exception:
                    offset = -1
                blob = data[offset: offset + entry.Size] if offset >= 0 else b""
                res = PeResource(str(type_name).removeprefix("RT_"), name, lang.data.lang or 0, entry.Size,
                                 offset, hashlib.sha256(blob).hexdigest())
                if len(blob) >= RESOURCE_CHILD_MIN and children < MAX_RESOURCE_CHILDREN \
                        and len(blob) <= ctx.limits.max_child:
                    res.child = f"resource {res.type}-{name}-{res.language}"
                    children += 1
                    result.children.append(Child(f"{res.type}_{name}_{res.language}.bin", blob,
                                                 segment=res.child, note="PE resource"))
                report.resources.append(res)


def _version_info(pe: Any, report: PeReport) -> None:
    for info in getattr(pe, "FileInfo", None) or []:
        for entry in info:
            for table in getattr(entry, "StringTable", None) or []:
                for k, v in table.entries.items():
                    report.version_info[_text(k)] = _text(v)[:500]


def _directories(pe: Any, report: PeReport) -> None:
    report.directory_count = pe.OPTIONAL_HEADER.NumberOfRvaAndSizes
    if len(pe.OPTIONAL_HEADER.DATA_DIRECTORY) < min(report.directory_count, 16):
        report.warnings.append(f"{report.directory_count} data directories declared, "
                               f"{len(pe.OPTIONAL_HEADER.DATA_DIRECTORY)} present")
    for d in pe.OPTIONAL_HEADER.DATA_DIRECTORY:
        if d.VirtualAddress or d.Size:
            report.directories.append(PeDirectory(d.name.removeprefix("IMAGE_DIRECTORY_ENTRY_"),
                                                  d.VirtualAddress, d.Size))


def data_directory(pe: Any, name: str) -> Any | None:
    """A data directory by name, or None when the header declares fewer.

    ``DATA_DIRECTORY`` holds only ``NumberOfRvaAndSizes`` entries (tiny and packed PEs
    declare fewer than 16): indexing past them raised IndexError and lost the rest of
    the report, the overlay included.
    """
    import pefile

    index = pefile.DIRECTORY_ENTRY[name]
    directories = pe.OPTIONAL_HEADER.DATA_DIRECTORY
    return directories[index] if index < len(directories) else None


def _signature(pe: Any, report: PeReport, data: bytes) -> tuple[int, int]:
    sec = data_directory(pe, "IMAGE_DIRECTORY_ENTRY_SECURITY")
    if sec is None or not sec.VirtualAddress or not sec.Size:
        return 0, 0
    report.signed = True
    blob = data[sec.VirtualAddress: sec.VirtualAddress + sec.Size]
    if len(blob) < 8:
        report.warnings.append("security directory points past the end of the file")
        return sec.VirtualAddress, sec.Size
    length, _revision, ctype = struct.unpack_from("<IHH", blob)
    if ctype == 2:
        try:
            from cryptography.hazmat.primitives.serialization import pkcs7

            certs = pkcs7.load_der_pkcs7_certificates(blob[8:length])
            report.signers = [c.subject.rfc4514_string() for c in certs][:10]
        except Exception as exc:
            report.warnings.append(f"certificate table unreadable: {type(exc).__name__}")
    return sec.VirtualAddress, sec.Size


def _dotnet(pe: Any, report: PeReport, data: bytes) -> None:
    clr = data_directory(pe, "IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR")
    if clr is None or not clr.VirtualAddress:
        return
    report.dotnet = True
    try:
        header = pe.get_data(clr.VirtualAddress, 72)
        meta_rva = struct.unpack_from("<I", header, 8)[0]
        root = pe.get_data(meta_rva, 64)
        if root[:4] == b"BSJB":
            length = struct.unpack_from("<I", root, 12)[0]
            report.clr_version = root[16:16 + min(length, 48)].split(b"\x00")[0].decode("latin-1")
    except Exception as exc:
        report.warnings.append(f"CLR header unreadable: {type(exc).__name__}")


class PeDissector(Dissector):
    name = "pe"
    version = 2
    mimes = ("application/x-dosexec", "application/vnd.microsoft.portable-executable",
             "application/x-msdownload")
    magic_words = ("PE32", "MS-DOS executable")
    prefixes = (b"MZ",)
    report_type = PeReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        import pefile

        result = DissectResult()
        report = PeReport()
        result.report = report
        try:
            pe = pefile.PE(data=data, fast_load=True)
        except pefile.PEFormatError as exc:
            result.problem(PARSER_ERROR, f"not a loadable PE: {exc.value if hasattr(exc, 'value') else exc}")
            return result
        try:
            self._headers(pe, report)
            _directories(pe, report)
            pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY[n] for n in (
                "IMAGE_DIRECTORY_ENTRY_IMPORT", "IMAGE_DIRECTORY_ENTRY_EXPORT",
                "IMAGE_DIRECTORY_ENTRY_RESOURCE", "IMAGE_DIRECTORY_ENTRY_TLS")])
        except Exception as exc:
            result.problem(PARTIAL, f"pefile stopped: {type(exc).__name__}: {exc}")
        cert = (0, 0)

        def signature() -> None:
            nonlocal cert
            cert = _signature(pe, report, data)

        # Each step on its own: one that trips on an odd file must not cost the others
        # (the overlay above all, which pefile reports whatever the directories hold).
        steps: list[tuple[str, Any]] = [
            ("sections", lambda: self._section_step(pe, report, result, data)),
            ("imports", lambda: self._imports(pe, report)),
            ("exports", lambda: self._exports(pe, report)),
            ("resources", lambda: _resources(pe, report, result, data, ctx)),
            ("version info", lambda: _version_info(pe, report)),
            ("rich header", lambda: self._rich(pe, report)),
            ("tls", lambda: self._tls(pe, report)),
            ("signature", signature),
            (".NET header", lambda: _dotnet(pe, report, data)),
            ("overlay", lambda: self._overlay(pe, report, result, data, cert[0], cert[1], ctx)),
        ]
        for label, step in steps:
            try:
                step()
            except Exception as exc:
                result.problem(PARTIAL, f"{label}: pefile stopped: {type(exc).__name__}: {exc}")
        report.warnings += [str(w)[:300] for w in pe.get_warnings()[:100]]
        return result

    @staticmethod
    def _section_step(pe: Any, report: PeReport, result: DissectResult, data: bytes) -> None:
        _sections(pe, report, data)
        if report.section_count > len(report.sections):
            result.problem(PARTIAL, f"{report.section_count} sections declared; {len(report.sections)} listed")

    @staticmethod
    def _imports(pe: Any, report: PeReport) -> None:
        for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])[:500]:
            report.imports.append(PeImport(_text(entry.dll), [
                _text(i.name) if i.name else f"ord{i.ordinal}" for i in entry.imports[:2000]]))
        report.imphash = pe.get_imphash() if report.imports else ""

    @staticmethod
    def _exports(pe: Any, report: PeReport) -> None:
        exports = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
        if exports is not None:
            report.exports = [_text(s.name) if s.name else f"ord{s.ordinal}" for s in exports.symbols[:5000]]
            report.export_name = _text(pe.get_string_at_rva(exports.struct.Name) or b"")
            report.exphash = pe.get_exphash()

    def _headers(self, pe: Any, report: PeReport) -> None:
        import pefile

        fh, oh = pe.FILE_HEADER, pe.OPTIONAL_HEADER
        report.format = "PE32+" if oh.Magic == 0x20B else "PE32"
        report.machine = pefile.MACHINE_TYPE.get(fh.Machine, hex(fh.Machine)).removeprefix("IMAGE_FILE_MACHINE_")
        report.subsystem = pefile.SUBSYSTEM_TYPE.get(oh.Subsystem, str(oh.Subsystem)).removeprefix("IMAGE_SUBSYSTEM_")
        report.dll = bool(fh.Characteristics & 0x2000)
        report.timestamp = fh.TimeDateStamp
        try:
            report.compile_time = dt.datetime.fromtimestamp(fh.TimeDateStamp, dt.UTC)
        except (OverflowError, OSError, ValueError):
            report.compile_time = None
        report.characteristics = [n for b, n in _FILE_FLAGS.items() if fh.Characteristics & b]
        report.entry_point = oh.AddressOfEntryPoint
        report.image_base = oh.ImageBase
        report.section_count = fh.NumberOfSections

    def _rich(self, pe: Any, report: PeReport) -> None:
        rich = pe.parse_rich_header()
        if not rich:
            return
        values = rich.get("values", [])
        for compid, count in zip(values[::2], values[1::2], strict=False):
            report.rich.append(RichEntry(compid >> 16, compid & 0xFFFF, count))
        clear = rich.get("clear_data")
        report.rich_hash = hashlib.md5(clear).hexdigest() if clear else ""

    def _tls(self, pe: Any, report: PeReport) -> None:
        tls = getattr(pe, "DIRECTORY_ENTRY_TLS", None)
        if tls is None or not tls.struct.AddressOfCallBacks:
            return
        wide = pe.OPTIONAL_HEADER.Magic == 0x20B
        rva = tls.struct.AddressOfCallBacks - pe.OPTIONAL_HEADER.ImageBase
        for i in range(64):
            try:
                raw = pe.get_data(rva + i * (8 if wide else 4), 8 if wide else 4)
            except Exception:
                break
            value = struct.unpack("<Q" if wide else "<I", raw)[0]
            if not value:
                break
            report.tls_callbacks.append(value)

    def _overlay(self, pe: Any, report: PeReport, result: DissectResult, data: bytes,
                 cert_offset: int, cert_size: int, ctx: DissectContext) -> None:
        start = pe.get_overlay_data_start_offset()
        if start is None:
            return
        if cert_size and cert_offset == start:
            start += cert_size        # the signature is not overlay data
        if start >= len(data):
            return
        report.overlay_offset, report.overlay_size = start, len(data) - start
        if report.overlay_size > ctx.limits.max_child:
            result.problem(LIMIT_HIT, f"overlay of {report.overlay_size} bytes over the child limit")
            return
        result.children.append(Child("overlay.bin", data[start:], segment="overlay",
                                     note=f"PE overlay at offset {start}"))


DISSECTORS = [PeDissector]
