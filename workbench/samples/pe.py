"""Synthetic Windows PE files assembled in code: sections, imports, exports, resources, overlay.

They load in pefile the way a linker's output does (PE32 for i386, PE32+ for amd64)
and carry only inert bytes. Options build the odd ones too: thousands of sections,
truncation, raw vs virtual size mismatches, an Authenticode-shaped certificate, a
.NET header, TLS callbacks.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FILE_ALIGN = 0x200
SECT_ALIGN = 0x1000
IMAGE_BASE_32 = 0x400000
IMAGE_BASE_64 = 0x140000000

CODE = 0x60000020          # CNT_CODE | MEM_EXECUTE | MEM_READ
IDATA = 0x40000040         # CNT_INITIALIZED_DATA | MEM_READ
WDATA = 0xC0000040         # ... | MEM_WRITE

DEFAULT_IMPORTS: dict[str, list[str]] = {
    "kernel32.dll": ["GetProcAddress", "LoadLibraryA", "VirtualAlloc", "ExitProcess"],
    "user32.dll": ["MessageBoxA"],
}
RT_RCDATA, RT_VERSION = 10, 16
DEFAULT_TIMESTAMP = int(dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC).timestamp())


@dataclass(frozen=True)
class Section:
    name: str
    data: bytes = b""
    characteristics: int = IDATA
    virtual_size: int | None = None     # None: the data's length


@dataclass(frozen=True)
class Resource:
    type_id: int
    name_id: int
    data: bytes
    lang: int = 0x409


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _rol(value: int, shift: int) -> int:
    shift &= 31
    return ((value << shift) | (value >> (32 - shift))) & 0xFFFFFFFF


def _rich_header(dos: bytes, entries: Sequence[tuple[int, int]]) -> bytes:
    """A Rich header with the checksum the linker computes (so the key looks genuine)."""
    offset = len(dos)
    csum = offset
    for i, byte in enumerate(dos):
        if 0x3C <= i < 0x40:
            continue
        csum = (csum + _rol(byte, i)) & 0xFFFFFFFF
    for compid, count in entries:
        csum = (csum + _rol(compid, count)) & 0xFFFFFFFF
    key = csum
    words = [0x536E6144 ^ key, key, key, key]           # "DanS" and three padding dwords
    for compid, count in entries:
        words += [compid ^ key, count ^ key]
    return b"".join(struct.pack("<I", w) for w in words) + b"Rich" + struct.pack("<I", key)


_DOS_STUB = (b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
             b"This program cannot be run in DOS mode.\r\r\n$").ljust(64, b"\x00")


def _imports_blob(imports: Mapping[str, Sequence[str]], rva: int, wide: bool) -> tuple[bytes, int, int, int]:
    """Import descriptors, lookup/address tables and names; returns (blob, dir size, iat rva, iat size)."""
    thunk = 8 if wide else 4
    dlls = list(imports.items())
    desc_size = 20 * (len(dlls) + 1)
    tables = []
    offset = desc_size
    for _dll, names in dlls:
        size = thunk * (len(names) + 1)
        tables.append((offset, offset + size))        # ILT, IAT offsets
        offset += 2 * size
    strings = bytearray()
    strings_at = offset
    name_rvas: list[list[int]] = []
    dll_rvas: list[int] = []
    for dll, names in dlls:
        rvas = []
        for hint, fn in enumerate(names):
            rvas.append(rva + strings_at + len(strings))
            strings += struct.pack("<H", hint) + fn.encode() + b"\x00"
            if len(strings) % 2:
                strings += b"\x00"
        name_rvas.append(rvas)
        dll_rvas.append(rva + strings_at + len(strings))
        strings += dll.encode() + b"\x00"
        if len(strings) % 2:
            strings += b"\x00"
    blob = bytearray(strings_at + len(strings))
    iat_start = tables[0][1] if tables else 0
    for i, ((ilt, iat), rvas) in enumerate(zip(tables, name_rvas, strict=True)):
        struct.pack_into("<IIIII", blob, 20 * i, rva + ilt, 0, 0, dll_rvas[i], rva + iat)
        fmt = "<Q" if wide else "<I"
        for j, name_rva in enumerate(rvas):
            struct.pack_into(fmt, blob, ilt + thunk * j, name_rva)
            struct.pack_into(fmt, blob, iat + thunk * j, name_rva)
    blob[strings_at:] = strings
    iat_size = (tables[-1][1] + thunk * (len(dlls[-1][1]) + 1) - iat_start) if tables else 0
    return bytes(blob), desc_size, rva + iat_start, iat_size


def _exports_blob(names: Sequence[str], dll_name: str, rva: int, code_rva: int) -> bytes:
    n = len(names)
    funcs_at = 40
    names_at = funcs_at + 4 * n
    ords_at = names_at + 4 * n
    strings_at = ords_at + 2 * n
    strings = bytearray(dll_name.encode() + b"\x00")
    name_rvas = []
    for name in sorted(names):
        name_rvas.append(rva + strings_at + len(strings))
        strings += name.encode() + b"\x00"
    blob = bytearray(strings_at) + strings
    struct.pack_into("<IIHHIIIIIII", blob, 0, 0, 0, 0, 0, rva + strings_at, 1, n, n,
                     rva + funcs_at, rva + names_at, rva + ords_at)
    for i in range(n):
        struct.pack_into("<I", blob, funcs_at + 4 * i, code_rva + 16 * i)
        struct.pack_into("<I", blob, names_at + 4 * i, name_rvas[i])
        struct.pack_into("<H", blob, ords_at + 2 * i, i)
    return bytes(blob)


def _vs_node(key: str, value: bytes, children: bytes, *, wtype: int, value_length: int) -> bytes:
    head = struct.pack("<HHH", 0, value_length, wtype) + key.encode("utf-16-le") + b"\x00\x00"
    head += b"\x00" * ((-len(head)) % 4)
    body = head + value
    body += b"\x00" * ((-len(body)) % 4)
    body += children
    return struct.pack("<H", len(body)) + body[2:]


def version_info_resource(fields: Mapping[str, str], version: tuple[int, int, int, int] = (1, 0, 0, 0)) -> bytes:
    """A VS_VERSIONINFO block (what Explorer shows as file properties)."""
    strings = b""
    for k, v in fields.items():
        value = v.encode("utf-16-le") + b"\x00\x00"
        node = _vs_node(k, value, b"", wtype=1, value_length=len(v) + 1)
        strings += node + b"\x00" * ((-len(node)) % 4)
    table = _vs_node("040904B0", b"", strings, wtype=1, value_length=0)
    sfi = _vs_node("StringFileInfo", b"", table + b"\x00" * ((-len(table)) % 4), wtype=1, value_length=0)
    var = _vs_node("Translation", struct.pack("<HH", 0x0409, 0x04B0), b"", wtype=0, value_length=4)
    vfi = _vs_node("VarFileInfo", b"", var, wtype=1, value_length=0)
    ms, ls = (version[0] << 16) | version[1], (version[2] << 16) | version[3]
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x00010000, ms, ls, ms, ls, 0x3F, 0, 0x40004, 1, 0, 0, 0)
    children = sfi + b"\x00" * ((-len(sfi)) % 4) + vfi
    return _vs_node("VS_VERSION_INFO", fixed, children, wtype=0, value_length=len(fixed))


def _resources_blob(resources: Sequence[Resource], rva: int) -> bytes:
    """The three-level resource tree (type, name, language) with integer ids."""
    by_type: dict[int, dict[int, list[Resource]]] = {}
    for r in resources:
        by_type.setdefault(r.type_id, {}).setdefault(r.name_id, []).append(r)
    layout = bytearray()
    pending: list[tuple[int, list[tuple[int, object]]]] = []

    def directory(entries: list[tuple[int, object]]) -> int:
        at = len(layout)
        layout.extend(b"\x00" * (16 + 8 * len(entries)))
        pending.append((at, entries))
        return at

    root_entries: list[tuple[int, object]] = [(t, names) for t, names in sorted(by_type.items())]
    directory(root_entries)
    data_entries: list[tuple[int, Resource]] = []
    i = 0
    while i < len(pending):
        at, entries = pending[i]
        struct.pack_into("<IIHHHH", layout, at, 0, 0, 0, 0, 0, len(entries))
        for j, (ident, child) in enumerate(entries):
            if isinstance(child, dict):
                sub = directory([(n, langs) for n, langs in sorted(child.items())])
                struct.pack_into("<II", layout, at + 16 + 8 * j, ident, 0x80000000 | sub)
            elif isinstance(child, list):
                sub = directory([(r.lang, r) for r in child])
                struct.pack_into("<II", layout, at + 16 + 8 * j, ident, 0x80000000 | sub)
            else:
                leaf = len(layout)
                layout.extend(b"\x00" * 16)
                assert isinstance(child, Resource)
                data_entries.append((leaf, child))
                struct.pack_into("<II", layout, at + 16 + 8 * j, ident, leaf)
        i += 1
    for leaf, res in data_entries:
        while len(layout) % 8:
            layout.append(0)
        struct.pack_into("<IIII", layout, leaf, rva + len(layout), len(res.data), 0, 0)
        layout.extend(res.data)
    return bytes(layout)


def _certificate(signer: str) -> bytes:
    """A WIN_CERTIFICATE holding a PKCS#7 SignedData made with a throwaway self-signed key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, signer)])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    der = (pkcs7.PKCS7SignatureBuilder().set_data(b"workbench synthetic authenticode")
           .add_signer(cert, key, hashes.SHA256())
           .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.NoAttributes]))
    blob = struct.pack("<IHH", 8 + len(der), 0x0200, 0x0002) + der
    return blob + b"\x00" * ((-len(blob)) % 8)


def _clr_blob(rva: int) -> bytes:
    """A COR20 header and a minimal metadata root (BSJB, runtime v4.0.30319)."""
    version = b"v4.0.30319\x00\x00"
    metadata = struct.pack("<IHHII", 0x424A5342, 1, 1, 0, len(version)) + version + struct.pack("<HH", 0, 0)
    header = struct.pack("<IHH", 72, 2, 5) + struct.pack("<II", rva + 72, len(metadata))
    header += struct.pack("<II", 1, 0x06000001) + b"\x00" * (72 - 24)
    return header + metadata


def build_pe(*, machine: str = "i386", dll: bool = False, subsystem: str = "gui",
             timestamp: int = DEFAULT_TIMESTAMP,
             sections: Sequence[Section] | None = None,
             imports: Mapping[str, Sequence[str]] | None = None,
             exports: Sequence[str] = (), dll_name: str = "sample.dll",
             resources: Sequence[Resource] = (), version_info: Mapping[str, str] | None = None,
             tls_callbacks: int = 0, rich: bool = True, dotnet: bool = False,
             signer: str | None = None, overlay: bytes = b"",
             n_sections: int | None = None, truncate: int | None = None, data: bytes = b"",
             data_directories: int = 16) -> bytes:
    """A PE file; ``n_sections`` pads the table with empty sections, ``truncate`` cuts the file.

    ``data_directories`` is ``NumberOfRvaAndSizes``: tiny and packed PEs declare fewer
    than 16 and the optional header shrinks with them (directories past it are dropped).

    ``data`` goes at the end of the default ``.data`` section (strings a rule can match).
    """
    wide = machine == "amd64"
    image_base = IMAGE_BASE_64 if wide else IMAGE_BASE_32
    imports = DEFAULT_IMPORTS if imports is None else imports
    user = list(sections) if sections is not None else [
        Section(".text", b"\x55\x89\xe5\x31\xc0\x5d\xc3" + b"\xcc" * 57 + b"workbench synthetic PE\x00", CODE),
        Section(".data", b"config=inert\x00".ljust(64, b"\x00") + data, WDATA),
    ]
    all_resources = list(resources)
    if version_info is not None:
        all_resources.append(Resource(RT_VERSION, 1, version_info_resource(version_info)))
    need_rdata = bool(imports or exports or tls_callbacks or dotnet)
    count = len(user) + need_rdata + bool(all_resources)
    fillers = max(0, (n_sections or 0) - count)
    count += fillers

    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<HHHHHHHHHHHHH", dos, 2, 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8, 0, 0, 0, 0x40, 0)
    stub = bytes(dos) + _DOS_STUB
    if rich:
        stub += _rich_header(stub, [(0x00FF7809, 1), (0x01047809, 12), (0x01037809, 3)])
    e_lfanew = _align(len(stub), 8)
    if not 0 <= data_directories <= 16:
        raise ValueError("data_directories must be 0..16")
    opt_size = (112 if wide else 96) + 8 * data_directories
    headers_end = e_lfanew + 4 + 20 + opt_size + 40 * count
    size_of_headers = _align(headers_end, FILE_ALIGN)

    # Lay sections out: RVAs first (generated blobs need their own RVA), then file offsets.
    rva = _align(size_of_headers, SECT_ALIGN)
    table: list[tuple[str, bytes, int, int, int]] = []     # name, data, chars, rva, vsize
    data_dirs = [(0, 0)] * 16
    entry_rva = 0
    code_rva = 0
    for s in user:
        vsize = s.virtual_size if s.virtual_size is not None else max(len(s.data), 1)
        if s.characteristics & 0x20 and not code_rva:
            code_rva = entry_rva = rva
        table.append((s.name, s.data, s.characteristics, rva, vsize))
        rva += _align(max(vsize, len(s.data), 1), SECT_ALIGN)
    if need_rdata:
        blob = bytearray()
        if imports:
            imp, dir_size, iat_rva, iat_size = _imports_blob(imports, rva, wide)
            data_dirs[1] = (rva, dir_size)
            data_dirs[12] = (iat_rva, iat_size)
            blob += imp
        if exports:
            blob += b"\x00" * ((-len(blob)) % 4)
            data_dirs[0] = (rva + len(blob), 0)
            exp = _exports_blob(exports, dll_name, rva + len(blob), code_rva or rva)
            data_dirs[0] = (rva + len(blob), len(exp))
            blob += exp
        if tls_callbacks:
            blob += b"\x00" * ((-len(blob)) % 8)
            tls_rva = rva + len(blob)
            ptr = 8 if wide else 4
            tls_size = 40 if wide else 24
            callbacks_rva = tls_rva + tls_size
            index_rva = callbacks_rva + ptr * (tls_callbacks + 1)
            fields = [image_base + index_rva + ptr, image_base + index_rva + ptr, image_base + index_rva,
                      image_base + callbacks_rva]
            if wide:
                blob += struct.pack("<QQQQII", *fields, 0, 0)
            else:
                blob += struct.pack("<IIIIII", *fields, 0, 0)
            target = code_rva or rva
            fmt = "<Q" if wide else "<I"
            for i in range(tls_callbacks):
                blob += struct.pack(fmt, image_base + target + 8 * i)
            blob += struct.pack(fmt, 0) + b"\x00" * (2 * ptr)
            data_dirs[9] = (tls_rva, tls_size)
        if dotnet:
            blob += b"\x00" * ((-len(blob)) % 4)
            clr = _clr_blob(rva + len(blob))
            data_dirs[14] = (rva + len(blob), 72)
            blob += clr
        table.append((".rdata", bytes(blob), IDATA, rva, len(blob)))
        rva += _align(len(blob), SECT_ALIGN)
    if all_resources:
        res = _resources_blob(all_resources, rva)
        data_dirs[2] = (rva, len(res))
        table.append((".rsrc", res, IDATA, rva, len(res)))
        rva += _align(len(res), SECT_ALIGN)
    for i in range(fillers):
        table.append((f".s{i:05d}"[:8], b"", IDATA, rva, 0x200))
        rva += SECT_ALIGN
    size_of_image = rva

    body = bytearray()
    headers = bytearray()
    raw_at = size_of_headers
    section_headers = bytearray()
    for name, data, chars, s_rva, vsize in table:
        raw_size = _align(len(data), FILE_ALIGN) if data else 0
        section_headers += struct.pack("<8sIIIIIIHHI", name.encode()[:8], vsize, s_rva, raw_size,
                                       raw_at if raw_size else 0, 0, 0, 0, 0, chars)
        if raw_size:
            body += data.ljust(raw_size, b"\x00")
            raw_at += raw_size
    end_of_sections = raw_at

    certificate = _certificate(signer) if signer else b""
    if certificate:
        data_dirs[4] = (end_of_sections, len(certificate))   # a file offset, not an RVA

    characteristics = 0x0102 if not wide else 0x0022       # EXECUTABLE | 32BIT_MACHINE / LARGE_ADDRESS
    if dll:
        characteristics |= 0x2000
    coff = struct.pack("<HHIIIHH", 0x8664 if wide else 0x014C, count, timestamp, 0, 0, opt_size,
                       characteristics)
    code_size = sum(_align(len(d), FILE_ALIGN) for _, d, c, _, _ in table if c & 0x20)
    data_size = sum(_align(len(d), FILE_ALIGN) for _, d, c, _, _ in table if not c & 0x20)
    sub = {"gui": 2, "console": 3, "native": 1}[subsystem]
    if wide:
        opt = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 14, 0, code_size, data_size, 0,
                          entry_rva, code_rva, image_base, SECT_ALIGN, FILE_ALIGN, 6, 0, 0, 0, 6, 0, 0,
                          size_of_image, size_of_headers, 0, sub, 0x8160, 0x100000, 0x1000, 0x100000,
                          0x1000, 0, data_directories)
    else:
        opt = struct.pack("<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII", 0x10B, 14, 0, code_size, data_size, 0,
                          entry_rva, code_rva, 0, image_base, SECT_ALIGN, FILE_ALIGN, 6, 0, 0, 0, 6,
                          0, 0, size_of_image, size_of_headers, 0, sub, 0x8140, 0x100000, 0x1000,
                          0x100000, 0x1000, 0, data_directories)
    opt += b"".join(struct.pack("<II", a, s) for a, s in data_dirs[:data_directories])
    stub = stub[:0x3C] + struct.pack("<I", e_lfanew) + stub[0x40:]
    headers += stub.ljust(e_lfanew, b"\x00") + b"PE\x00\x00" + coff + opt + section_headers
    out = bytes(headers.ljust(size_of_headers, b"\x00")) + bytes(body) + certificate + overlay
    return out[:truncate] if truncate is not None else out
