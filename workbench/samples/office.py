"""Office documents built in code: OLE/CFB Word files and OOXML .docm carrying real VBA projects.

Nothing on PyPI writes Compound File Binary files with VBA, so this module holds a
small CFB writer (MS-CFB version 3: 512-byte sectors, a mini stream for small
streams), the MS-OVBA compression and the VBA ``dir`` stream. oletools' olevba reads
the result like a document saved by Word: module source, AutoExec and Suspicious
keywords, and mraptor's flags.
"""

from __future__ import annotations

import io
import math
import struct
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

# -- MS-OVBA 2.4.1 compression ---------------------------------------------------------

_CHUNK = 4096


def _copy_token_bits(difference: int) -> int:
    return max(4, math.ceil(math.log2(difference))) if difference > 1 else 4


def _compress_chunk(chunk: bytes) -> bytes:
    """One CompressedChunk's data (without header), LZ77 over the chunk as the spec says."""
    out = bytearray()
    pos = 0
    heads: dict[bytes, list[int]] = {}
    n = len(chunk)
    while pos < n:
        flag_at = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if pos >= n:
                break
            bits = _copy_token_bits(pos)
            max_len = (0xFFFF >> bits) + 3
            max_off = 1 << bits
            best_len, best_off = 0, 0
            key = chunk[pos:pos + 3]
            if len(key) == 3:
                for cand in reversed(heads.get(key, [])[-32:]):
                    off = pos - cand
                    if off > max_off:
                        break
                    length = 0
                    limit = min(max_len, n - pos)
                    while length < limit and chunk[cand + length] == chunk[pos + length]:
                        length += 1
                    if length > best_len:
                        best_len, best_off = length, off
                        if length == limit:
                            break
            if best_len >= 3:
                token = ((best_off - 1) << (16 - bits)) | (best_len - 3)
                out += struct.pack("<H", token)
                flags |= 1 << bit
                step = best_len
            else:
                out.append(chunk[pos])
                step = 1
            for p in range(pos, pos + step):
                heads.setdefault(chunk[p:p + 3], []).append(p)
            pos += step
        out[flag_at] = flags
    return bytes(out)


def ovba_compress(data: bytes) -> bytes:
    """A CompressedContainer (MS-OVBA 2.4.1.1.1) holding ``data``."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), _CHUNK):
        chunk = data[start:start + _CHUNK]
        packed = _compress_chunk(chunk)
        if len(packed) > _CHUNK:
            # Incompressible: a raw chunk (flag 0), zero-padded to 4096 bytes as 2.4.1.3.10 says.
            out += struct.pack("<H", 0x3000 | 0x0FFF) + chunk.ljust(_CHUNK, b"\x00")
        else:
            out += struct.pack("<H", 0xB000 | (len(packed) + 2 - 3)) + packed
    return bytes(out)


# -- MS-CFB writer ---------------------------------------------------------------------

_SECTOR = 512
_MINI = 64
_CUTOFF = 4096
FREESECT, ENDOFCHAIN, FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
WORD_CLSID = uuid.UUID("00020906-0000-0000-C000-000000000046").bytes_le


@dataclass
class _Entry:
    name: str
    kind: int                      # 1 storage, 2 stream, 5 root
    data: bytes = b""
    clsid: bytes = b"\x00" * 16
    children: list[int] = field(default_factory=list)
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM
    start: int = ENDOFCHAIN


def _cfb_key(name: str) -> tuple[int, str]:
    # MS-CFB 2.6.4: shorter names sort first, then by upper-cased code points.
    return (len(name), name.upper())


def build_cfb(streams: Mapping[str, bytes], *, root_clsid: bytes = b"\x00" * 16,
              storage_clsids: Mapping[str, bytes] | None = None) -> bytes:
    """A compound file holding ``streams`` (paths joined with ``/``; storages are implied)."""
    entries = [_Entry("Root Entry", 5, clsid=root_clsid)]
    by_path: dict[str, int] = {"": 0}
    for path, data in streams.items():
        parts = path.split("/")
        parent = ""
        for depth, part in enumerate(parts):
            here = "/".join(parts[: depth + 1])
            is_stream = depth == len(parts) - 1
            if here not in by_path:
                if len(part) > 31:
                    raise ValueError(f"CFB names are at most 31 characters: {part!r}")
                entries.append(_Entry(part, 2 if is_stream else 1,
                                      data=bytes(data) if is_stream else b"",
                                      clsid=(storage_clsids or {}).get(here, b"\x00" * 16)))
                by_path[here] = len(entries) - 1
                entries[by_path[parent]].children.append(by_path[here])
            parent = here

    def tree(ids: list[int]) -> int:
        if not ids:
            return NOSTREAM
        mid = len(ids) // 2
        node = entries[ids[mid]]
        node.left, node.right = tree(ids[:mid]), tree(ids[mid + 1:])
        return ids[mid]

    for entry in entries:
        if entry.children:
            entry.child = tree(sorted(entry.children, key=lambda i: _cfb_key(entries[i].name)))

    sectors: list[bytes] = []
    fat: list[int] = []

    def allocate(data: bytes) -> int:
        if not data:
            return ENDOFCHAIN
        count = -(-len(data) // _SECTOR)
        first = len(sectors)
        for i in range(count):
            sectors.append(data[i * _SECTOR:(i + 1) * _SECTOR].ljust(_SECTOR, b"\x00"))
            fat.append(first + i + 1 if i < count - 1 else ENDOFCHAIN)
        return first

    mini = bytearray()
    minifat: list[int] = []
    for entry in entries:
        if entry.kind != 2:
            continue
        if len(entry.data) >= _CUTOFF:
            entry.start = allocate(entry.data)
        elif entry.data:
            count = -(-len(entry.data) // _MINI)
            first = len(mini) // _MINI
            entry.start = first
            mini += entry.data.ljust(count * _MINI, b"\x00")
            minifat += [first + i + 1 if i < count - 1 else ENDOFCHAIN for i in range(count)]
    entries[0].start = allocate(bytes(mini))
    entries[0].data = bytes(mini)
    minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
    minifat_bytes += struct.pack("<I", FREESECT) * ((-len(minifat)) % (_SECTOR // 4))
    first_minifat = allocate(minifat_bytes) if minifat else ENDOFCHAIN

    directory = bytearray()
    for entry in entries:
        name = entry.name.encode("utf-16-le") + b"\x00\x00"
        size = len(entry.data)
        directory += struct.pack("<64sHBBIII16sIQQIQ", name, len(name), entry.kind, 1,
                                 entry.left, entry.right, entry.child, entry.clsid, 0, 0, 0,
                                 entry.start if size else ENDOFCHAIN if entry.kind != 1 else 0,
                                 size)
    while len(directory) % _SECTOR:
        directory += struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, NOSTREAM, NOSTREAM,
                                 NOSTREAM, b"\x00" * 16, 0, 0, 0, 0, 0)
    first_dir = allocate(bytes(directory))

    n_fat = 1
    while n_fat * (_SECTOR // 4) < len(sectors) + n_fat:
        n_fat += 1
    if n_fat > 109:
        raise ValueError("compound file too large for a header-only DIFAT (about 7 MB)")
    fat_start = len(sectors)
    fat += [FATSECT] * n_fat
    fat += [FREESECT] * (n_fat * (_SECTOR // 4) - len(fat))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    difat = [fat_start + i for i in range(n_fat)] + [FREESECT] * (109 - n_fat)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", bytes.fromhex("D0CF11E0A1B11AE1"), b"\x00" * 16,
                         0x003E, 3, 0xFFFE, 9, 6, b"\x00" * 6, 0, n_fat, first_dir, 0, _CUTOFF,
                         first_minifat, len(minifat_bytes) // _SECTOR if minifat else 0,
                         ENDOFCHAIN, 0)
    header += b"".join(struct.pack("<I", v) for v in difat)
    return header + b"".join(sectors) + fat_bytes


# -- VBA project (MS-OVBA 2.3) -----------------------------------------------------------


@dataclass(frozen=True)
class VbaModule:
    name: str
    source: str
    document: bool = False        # a document module (ThisDocument) rather than a standard one


def _record(rec_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", rec_id, len(payload)) + payload


def _dir_stream(modules: list[VbaModule], project_name: str) -> bytes:
    cp = "cp1252"
    out = bytearray()
    out += _record(0x0001, struct.pack("<I", 1))                   # SYSKIND: 32-bit Windows
    out += _record(0x0002, struct.pack("<I", 0x409))               # LCID
    out += _record(0x0014, struct.pack("<I", 0x409))               # LCIDINVOKE
    out += _record(0x0003, struct.pack("<H", 1252))                # CODEPAGE
    out += _record(0x0004, project_name.encode(cp))                # NAME
    out += _record(0x0005, b"") + _record(0x0040, b"")             # DOCSTRING (+ unicode)
    out += _record(0x0006, b"") + _record(0x003D, b"")             # HELPFILEPATH 1 and 2
    out += _record(0x0007, struct.pack("<I", 0))                   # HELPCONTEXT
    out += _record(0x0008, struct.pack("<I", 0))                   # LIBFLAGS
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)                   # VERSION (odd layout)
    out += _record(0x000C, b"") + _record(0x003C, b"")             # CONSTANTS (+ unicode)
    out += _record(0x000F, struct.pack("<H", len(modules)))        # MODULES count
    out += _record(0x0013, struct.pack("<H", 0xFFFF))              # PROJECTCOOKIE
    for m in modules:
        out += _record(0x0019, m.name.encode(cp))
        out += _record(0x0047, m.name.encode("utf-16-le"))
        out += _record(0x001A, m.name.encode(cp)) + _record(0x0032, m.name.encode("utf-16-le"))
        out += _record(0x001C, b"") + _record(0x0048, b"")
        out += _record(0x0031, struct.pack("<I", 0))               # text offset: no p-code cache
        out += _record(0x001E, struct.pack("<I", 0))
        out += _record(0x002C, struct.pack("<H", 0xFFFF))
        out += struct.pack("<HI", 0x0022 if m.document else 0x0021, 0)
        out += struct.pack("<HI", 0x002B, 0)
    out += struct.pack("<HI", 0x0010, 0)
    return bytes(out)


def _module_text(m: VbaModule) -> str:
    head = f'Attribute VB_Name = "{m.name}"\r\n'
    if m.document:
        head += ('Attribute VB_Base = "1Normal.ThisDocument"\r\nAttribute VB_GlobalNameSpace = False\r\n'
                 'Attribute VB_Creatable = False\r\nAttribute VB_PredeclaredId = True\r\n'
                 'Attribute VB_Exposed = True\r\nAttribute VB_TemplateDerived = True\r\n'
                 'Attribute VB_Customizable = True\r\n')
    body = m.source.replace("\r\n", "\n").replace("\n", "\r\n")
    return head + body + ("" if body.endswith("\r\n") else "\r\n")


def _project_stream(modules: list[VbaModule], project_name: str) -> bytes:
    lines = ['ID="{3F2C1A10-5B7E-4D2A-9C61-0B1F2E3D4C5A}"']
    for m in modules:
        lines.append(f"Document={m.name}/&H00000000" if m.document else f"Module={m.name}")
    lines += [f'Name="{project_name}"', 'HelpContextID="0"', 'VersionCompatible32="393222000"',
              'CMG="C9CB6B1B6F1B6F1B6F1B6F"', 'DPB="D1D373D3D7D4D7D4D7"', 'GC="C7C567C567C5"', "",
              "[Host Extender Info]", "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
              "", "[Workspace]"]
    lines += [f"{m.name}=0, 0, 0, 0, C" for m in modules]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def build_vba_project_streams(modules: list[VbaModule], *, project_name: str = "Project") -> dict[str, bytes]:
    """The streams of a VBA project storage, relative to the project root."""
    streams = {
        "PROJECT": _project_stream(modules, project_name),
        "PROJECTwm": b"".join(m.name.encode("cp1252") + b"\x00" + m.name.encode("utf-16-le") + b"\x00\x00"
                              for m in modules) + b"\x00\x00",
        # Version 0xFFFF: no performance cache, the source is authoritative (MS-OVBA 2.3.4.1).
        "VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00",
        "VBA/dir": ovba_compress(_dir_stream(modules, project_name)),
    }
    for m in modules:
        streams[f"VBA/{m.name}"] = ovba_compress(_module_text(m).encode("cp1252", "replace"))
    return streams


def _modules(macro_source: str, module_name: str) -> list[VbaModule]:
    if module_name == "ThisDocument":
        return [VbaModule("ThisDocument", macro_source, document=True)]
    return [VbaModule("ThisDocument", "", document=True), VbaModule(module_name, macro_source)]


def _word_document_stream(text: str) -> bytes:
    # A FIB base (wIdent 0xA5EC, nFib 0x00C1) and the text; enough for type detection, not for Word.
    fib = struct.pack("<HHHHH", 0xA5EC, 0x00C1, 0, 0x0409, 0) + b"\x00" * 27
    body = text.encode("utf-16-le")
    return (fib + body).ljust(4096, b"\x00")


_DOC_TEXT = "Enable editing and enable content to view this protected document."


def build_ole_word(macro_source: str | None = None, *, module_name: str = "ThisDocument",
                   text: str = _DOC_TEXT, extra_streams: Mapping[str, bytes] | None = None) -> bytes:
    """A Word 97-2003 compound file; with a VBA project under ``Macros/`` when source is given."""
    streams: dict[str, bytes] = {"WordDocument": _word_document_stream(text),
                                 "1Table": b"\x00" * 512}
    if macro_source is not None:
        for name, data in build_vba_project_streams(_modules(macro_source, module_name)).items():
            streams[f"Macros/{name}"] = data
    streams.update(extra_streams or {})
    return build_cfb(streams, root_clsid=WORD_CLSID)


_CT = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
       '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
       '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
       '<Default Extension="xml" ContentType="application/xml"/>'
       '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
       '<Override PartName="/word/document.xml" ContentType="{main}"/></Types>')
_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
         'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
_DOC_XML = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            '<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>')
_DOC_RELS_VBA = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                 '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                 '<Relationship Id="rId1" Type="http://schemas.microsoft.com/office/2006/relationships/'
                 'vbaProject" Target="vbaProject.bin"/></Relationships>')


def build_docm(macro_source: str, *, module_name: str = "ThisDocument", text: str = _DOC_TEXT) -> bytes:
    """An OOXML macro-enabled Word document with ``word/vbaProject.bin``."""
    project = build_cfb(build_vba_project_streams(_modules(macro_source, module_name)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("[Content_Types].xml",
             _CT.replace("{main}", "application/vnd.ms-word.document.macroEnabled.main+xml")),
            ("_rels/.rels", _RELS),
            ("word/document.xml", _DOC_XML.replace("{text}", text)),
            ("word/_rels/document.xml.rels", _DOC_RELS_VBA),
        ):
            zf.writestr(zipfile.ZipInfo(name, (2026, 11, 2, 9, 30, 0)), data)
        zf.writestr(zipfile.ZipInfo("word/vbaProject.bin", (2026, 11, 2, 9, 30, 0)), project)
    return buf.getvalue()


def build_vba_document(macro_source: str, *, module_name: str = "ThisDocument", kind: str = "doc") -> bytes:
    """A Word document whose VBA project olevba extracts: ``kind`` is ``doc`` (OLE) or ``docm``."""
    if kind == "doc":
        return build_ole_word(macro_source, module_name=module_name)
    if kind == "docm":
        return build_docm(macro_source, module_name=module_name)
    raise ValueError(f"unknown kind {kind!r}: 'doc' or 'docm'")


AUTOOPEN_SHELL_MACRO = (
    "Sub AutoOpen()\n"
    "    Dim cmd As String\n"
    "    cmd = \"powershell -nop -w hidden -c \" & Chr(34) & \"Write-Output EICAR-marker\" & Chr(34)\n"
    "    Shell cmd, vbHide\n"
    "End Sub\n"
)


# -- TNEF (winmail.dat) ---------------------------------------------------------------------------


def _tnef_attr(level: int, attr_id: int, data: bytes) -> bytes:
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def build_tnef(attachments: list[tuple[str, bytes]], *, subject: str = "Invoice") -> bytes:
    """A winmail.dat as Outlook sends it: message class, subject and each attachment's title and data."""
    out = struct.pack("<IH", 0x223E9F78, 0x0101)
    out += _tnef_attr(1, 0x00089006, struct.pack("<I", 0x00010000))            # attTnefVersion
    out += _tnef_attr(1, 0x00069007, struct.pack("<II", 1252, 0))               # attOemCodepage
    out += _tnef_attr(1, 0x00078008, b"IPM.Microsoft Mail.Note\x00")          # attMessageClass
    out += _tnef_attr(1, 0x00018004, subject.encode("latin-1", "replace") + b"\x00")   # attSubject
    for name, data in attachments:
        out += _tnef_attr(2, 0x00069002, b"\x01\x00" + b"\xff" * 4 + b"\x00" * 8)   # attAttachRendData
        out += _tnef_attr(2, 0x00018010, name.encode("latin-1", "replace") + b"\x00")  # attAttachTitle
        out += _tnef_attr(2, 0x0006800F, data)                                  # attAttachData
    return out


# -- encrypted OOXML ------------------------------------------------------------------------------

VELVET_SWEATSHOP = "VelvetSweatshop"     # Excel's built-in password: "encrypted" files anyone can open
_SMALLEST_READABLE_PACKAGE = 4096 + 512


def build_encrypted_docx(password: str = VELVET_SWEATSHOP, *, paragraphs: list[str] | None = None,
                         template_url: str | None = None) -> bytes:
    """A .docx encrypted with ECMA-376 agile encryption (msoffcrypto), as Word saves it.

    msoffcrypto 6.1 cannot read back an ``EncryptedPackage`` under 4,096 bytes: the
    stream then sits in the compound file's mini stream and decrypts to garbage. Real
    documents are larger, so the document is padded with (seeded, incompressible)
    paragraphs until its package is past that size.
    """
    import random

    from msoffcrypto.format.ooxml import OOXMLFile

    from workbench.samples.documents import build_docx

    text = list(paragraphs or ["Quarterly figures: see the attached summary."])
    rnd = random.Random(password)
    plain = build_docx(text, template_url=template_url)
    while len(plain) < _SMALLEST_READABLE_PACKAGE:
        text += [f"ref {rnd.randbytes(48).hex()}" for _ in range(20)]
        plain = build_docx(text, template_url=template_url)
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt(password, out)
    return out.getvalue()


# -- binary Word with fields ---------------------------------------------------------------------


def word_field(instruction: str, result: str = "", *, pad: str = " ") -> str:
    """A Word field in document text: 0x13 instruction 0x14 result 0x15 (MS-DOC 2.8.25)."""
    return f"\x13{pad}{instruction}{pad}\x14{result}\x15"


def build_dde_doc(command: str | None, *, text: str = _DOC_TEXT, utf16: bool = True, pad: str = " ") -> bytes:
    """A .doc whose text holds a ``DDEAUTO`` field (None: the text only), in UTF-16 or 8-bit text.

    ``pad`` is what Word writes between the field marks and the instruction (a space);
    msodde misses a UTF-16 field whose instruction does not start right after the mark.
    """
    body = text + (word_field(f"DDEAUTO {command}", pad=pad) if command else "")
    if utf16:
        return build_ole_word(text=body)
    fib = struct.pack("<HHHHH", 0xA5EC, 0x00C1, 0, 0x0409, 0) + b"\x00" * 27
    stream = (fib + body.encode("cp1252")).ljust(4096, b"\x00")
    return build_cfb({"WordDocument": stream, "1Table": b"\x00" * 512}, root_clsid=WORD_CLSID)


# -- BIFF8 Excel (.xls): DDE links and Excel 4 (XLM) macro sheets -----------------------------------

EXCEL_CLSID = uuid.UUID("00020820-0000-0000-C000-000000000046").bytes_le
_XLM_FUNCTIONS = {"HALT": (0x0036, None), "EXEC": (0x006E, None), "CALL": (0x0096, None),
                  "ALERT": (0x003B, None), "RETURN": (0x0037, None)}


def _biff(opcode: int, payload: bytes) -> bytes:
    return struct.pack("<HH", opcode, len(payload)) + payload


def _bof(kind: int) -> bytes:
    return _biff(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0x000100C1, 0x00000406))


def _short_string(text: str) -> bytes:
    return struct.pack("<BB", len(text), 0) + text.encode("latin-1")


def xlm_formula(function: str, *args: str) -> bytes:
    """Parsed formula bytes (rgce) of ``FUNCTION("arg", ...)`` for an XLM macro sheet cell."""
    number, fixed = _XLM_FUNCTIONS[function]
    rgce = b"".join(b"\x17" + _short_string(a) for a in args)
    if fixed is not None:
        return rgce + struct.pack("<BH", 0x41, number)                 # ptgFuncV
    return rgce + struct.pack("<BBH", 0x42, len(args), number)       # ptgFuncVarV


def build_xls(*, dde_link: tuple[str, str] | None = None,
              xlm: list[tuple[str, tuple[str, ...]]] | None = None, auto_open: bool = True,
              sheet_name: str = "Macro1") -> bytes:
    """An Excel 97-2003 workbook: a ``SupBook`` DDE link (service, topic) and/or an Excel 4.0 macro
    sheet whose cells hold ``xlm`` formulas (function, string arguments), ``Auto_Open`` naming A1."""
    macro_sheet = b""
    if xlm:
        cells = b""
        for row, (function, args) in enumerate(xlm):
            rgce = xlm_formula(function, *args)
            cells += _biff(0x0006, struct.pack("<HHH", row, 0, 0x0F) + b"\x00" * 8
                           + struct.pack("<HIH", 0, 0, len(rgce)) + rgce)
        macro_sheet = _bof(0x0040) + cells + _biff(0x000A, b"")
    records = []
    if xlm:
        records.append(("sheet", b""))
        if auto_open:
            ref = struct.pack("<BHHH", 0x3A, 0, 0, 0)              # ptgRef3d: first sheet, A1
            name = struct.pack("<HBBHHH4s", 0x0020, 0, 1, len(ref), 0, 1, b"\x00" * 4) + b"\x00\x01" + ref
            records.append(("raw", _biff(0x0018, name)))
    if dde_link:
        service, topic = dde_link
        path = f"{service}\x03{topic}"
        records.append(("raw", _biff(0x01AE, struct.pack("<HH", 0, len(path)) + b"\x00" + path.encode("latin-1"))))
    globals_without_sheet = _bof(0x0005) + b"".join(r for k, r in records if k == "raw") + _biff(0x000A, b"")
    boundsheet_size = 4 + 6 + 2 + len(sheet_name) if xlm else 0
    offset = len(globals_without_sheet) + boundsheet_size
    workbook = _bof(0x0005)
    for kind, rec in records:
        if kind == "sheet":
            workbook += _biff(0x0085, struct.pack("<IBB", offset, 0, 1) + _short_string(sheet_name))
        else:
            workbook += rec
    workbook += _biff(0x000A, b"") + macro_sheet
    return build_cfb({"Workbook": workbook.ljust(4096, b"\x00")}, root_clsid=EXCEL_CLSID)


# -- PowerPoint 97-2003 (.ppt) with embedded OLE objects --------------------------------------------

PPT_CLSID = uuid.UUID("64818D10-4F9B-11CF-86EA-00AA00B929E8").bytes_le


def _ppt_record(rec_type: int, payload: bytes, *, version: int = 0, instance: int = 0) -> bytes:
    return struct.pack("<HHI", (instance << 4) | version, rec_type, len(payload)) + payload


def build_ppt(embedded: list[tuple[str, bytes]] | None = None, *, compressed: bool = True) -> bytes:
    """A PowerPoint 97-2003 file whose document holds each ``embedded`` file as an OLE ``Package``
    object (``ExOleObjStg``, zlib-compressed as PowerPoint writes it), as oleobj extracts them."""
    import zlib

    from workbench.samples.documents import ole1_native

    objects = b""
    for name, data in embedded or []:
        storage = build_cfb({"\x01Ole10Native": ole1_native(name, data)})
        if compressed:
            payload = struct.pack("<I", len(storage)) + zlib.compress(storage)
            objects += _ppt_record(0x1011, payload, instance=1)
        else:
            objects += _ppt_record(0x1011, storage)
    document = _ppt_record(0x03E8, _ppt_record(0x03E9, b"\x00" * 40), version=0xF)
    user_edit_offset = len(document) + len(objects)
    user_edit = _ppt_record(0x0FF5, struct.pack("<IHBBIIIII", 0, 0, 0, 3, 0, 0, 0, 1, 0), version=0)
    persist = _ppt_record(0x1772, struct.pack("<II", 0x00100001, 0))
    stream = document + objects + user_edit + persist
    current_user = _ppt_record(0x0FF6, struct.pack("<IIIHHBBH", 0x14, 0xE391C05F, user_edit_offset, 4, 0x03F4,
                                                    3, 0, 0) + b"user" + struct.pack("<I", 8))
    return build_cfb({"PowerPoint Document": stream, "Current User": current_user},
                     root_clsid=PPT_CLSID)


# -- SYLK (.slk) ------------------------------------------------------------------------------------


def build_slk(formulas: list[str], *, macro_sheet: bool = True, auto_open: bool = True) -> bytes:
    """A SYLK file: ``formulas`` in column A (``CALL("Kernel32","WinExec",...)``, ``HALT()`` or a DDE
    ``MSEXCEL|'..'!A0``); ``macro_sheet`` marks it an Excel 4.0 macro sheet (``O;E``), with an
    ``Auto_Open`` name on A1."""
    lines = ["ID;P", *(["O;E"] if macro_sheet else []),
             *(["NN;NAuto_open;ER1C1"] if auto_open and macro_sheet else [])]
    lines += [f"C;X1;Y{row};K0;E{formula}" for row, formula in enumerate(formulas, start=1)]
    lines.append("E")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")
