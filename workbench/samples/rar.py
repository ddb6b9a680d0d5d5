"""RAR 4 and RAR 5 archives written byte by byte with the "store" method (no RAR writer is free software).

What the tests need and nothing more: stored (uncompressed) members, directories, names
that attack the reader (``../``, RTLO), the password flag on a member (its data merely
scrambled: no real RAR encryption is done, so nothing can or should decrypt it) and
archives whose headers are encrypted. The layouts follow RARLAB's technical notes for
RAR 2.9/4.x (``technote.txt``) and RAR 5.0; libarchive reads what comes out.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Mapping, Sequence

from workbench.samples.archives import FIXED_TIME

RAR4_MARKER = b"Rar!\x1a\x07\x00"
RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"
RAR4_END = b"\xc4\x3d\x7b\x00\x40\x07\x00"

# RAR 4 block types and flags (technote.txt)
_MAIN_HEAD, _FILE_HEAD = 0x73, 0x74
MHD_SOLID, MHD_PASSWORD = 0x0008, 0x0080          # archive: solid; block headers encrypted
LHD_PASSWORD, LHD_UNICODE, LHD_LONG_BLOCK = 0x0004, 0x0200, 0x8000
LHD_DIRECTORY = 0x00E0                            # the dictionary bits all set mean a directory
_HOST_WIN32 = 2
_ATTR_ARCHIVE, _ATTR_DIRECTORY = 0x20, 0x10
_METHOD_STORE = 0x30

Member = tuple[str, bytes]                        # a name ending in "/" is a directory


def _dos_datetime() -> int:
    y, mo, d, h, mi, s = FIXED_TIME
    return (((y - 1980) << 9 | mo << 5 | d) << 16) | (h << 11 | mi << 5 | s // 2)


def _block4(head_type: int, flags: int, body: bytes) -> bytes:
    """A RAR 4 block header: HEAD_CRC is the low 16 bits of the CRC32 of everything after it."""
    rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def _scramble(name: str, data: bytes) -> bytes:
    """Stand-in ciphertext for a member flagged as encrypted: reproducible, not the plain bytes."""
    stream = b""
    counter = 0
    while len(stream) < len(data):
        stream += hashlib.sha256(name.encode() + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


def build_rar4(members: Sequence[Member], *, encrypted: Sequence[str] = (), solid: bool = False,
               header_encrypted: bool = False, omit_end: bool = False,
               declare: Mapping[str, int] | None = None) -> bytes:
    """A RAR 4 archive of stored members.

    ``encrypted`` names members that get the password flag (``LHD_PASSWORD``) and a salt; their
    data is scrambled, not encrypted. ``header_encrypted`` sets ``MHD_PASSWORD`` on the archive
    header and follows it with random-looking bytes, as ``rar -hp`` archives look to a reader
    without the password. ``declare`` gives members an unpacked size other than their real one
    (a header that lies, as bombs do).
    """
    out = bytearray(RAR4_MARKER)
    main_flags = (MHD_SOLID if solid else 0) | (MHD_PASSWORD if header_encrypted else 0)
    out += _block4(_MAIN_HEAD, main_flags, b"\x00" * 6)          # RESERVED1 (2), RESERVED2 (4)
    if header_encrypted:
        # salt (8 bytes), then AES blocks of encrypted headers: noise to any reader without the key
        out += hashlib.sha256(b"salt").digest()[:8] + _scramble("headers", b"\x00" * 64)
        return bytes(out)
    for name, data in members:
        is_dir = name.endswith("/")
        stored_name = name.rstrip("/").replace("/", "\\")
        raw_name = stored_name.encode("utf-8")
        flags = LHD_LONG_BLOCK
        if not stored_name.isascii():
            flags |= LHD_UNICODE          # a UTF-8 name with no NUL in it (RAR 3.x and later)
        if is_dir:
            flags |= LHD_DIRECTORY
            data = b""
        salt = b""
        packed = data
        if name in encrypted:
            flags |= LHD_PASSWORD | 0x0400                        # LHD_SALT
            salt = hashlib.sha256(name.encode()).digest()[:8]
            packed = _scramble(name, data)
        unpacked = (declare or {}).get(name, len(data))
        body = struct.pack("<IIBIIBBHI", len(packed), unpacked, _HOST_WIN32,
                           zlib.crc32(data) & 0xFFFFFFFF, _dos_datetime(), 20, _METHOD_STORE,
                           len(raw_name), _ATTR_DIRECTORY if is_dir else _ATTR_ARCHIVE)
        out += _block4(_FILE_HEAD, flags, body + raw_name + salt) + packed
    if not omit_end:
        out += RAR4_END
    return bytes(out)


# -- RAR 5 -----------------------------------------------------------------------------------


def _vint(value: int) -> bytes:
    """RAR 5's variable-length integer: 7 bits a byte, low bits first, high bit = more follows."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _block5(head_type: int, head_flags: int, fields: bytes, *, data_size: int | None = None,
            extra: bytes = b"") -> bytes:
    """A RAR 5 header: CRC32 of (size, type, flags ... extra), then that."""
    flags = head_flags | (0x0001 if extra else 0) | (0x0002 if data_size is not None else 0)
    inner = _vint(head_type) + _vint(flags)
    if extra:
        inner += _vint(len(extra))
    if data_size is not None:
        inner += _vint(data_size)
    inner += fields + extra
    sized = _vint(len(inner)) + inner
    return struct.pack("<I", zlib.crc32(sized) & 0xFFFFFFFF) + sized


def build_rar5(members: Sequence[Member], *, header_encrypted: bool = False) -> bytes:
    """A RAR 5 archive of stored members (``header_encrypted``: an archive encryption header
    and noise after it, as ``rar -hp`` archives look without the password)."""
    out = bytearray(RAR5_SIGNATURE)
    if header_encrypted:
        # version 0 (AES-256), flags 1 (check value present), KDF count 15, salt, check value
        fields = _vint(0) + _vint(1) + bytes([15]) + hashlib.sha256(b"salt").digest()[:16] + b"\x00" * 12
        out += _block5(4, 0, fields) + _scramble("headers", b"\x00" * 64)
        return bytes(out)
    out += _block5(1, 0, _vint(0))                                 # main header, no archive flags
    mtime = 1793611800
    for name, data in members:
        is_dir = name.endswith("/")
        raw_name = name.rstrip("/").encode("utf-8")
        if is_dir:
            data = b""
        file_flags = 0x0002 | 0x0004 | (0x0001 if is_dir else 0)   # Unix mtime, CRC32, directory
        compression = 0 | (0 << 7)                                 # version 0, method 0 (store)
        fields = (_vint(file_flags) + _vint(len(data)) + _vint(_ATTR_DIRECTORY if is_dir else _ATTR_ARCHIVE)
                  + struct.pack("<II", mtime, zlib.crc32(data) & 0xFFFFFFFF) + _vint(compression)
                  + _vint(0) + _vint(len(raw_name)) + raw_name)    # host OS 0: Windows
        out += _block5(2, 0, fields, data_size=len(data)) + data
    out += _block5(5, 0, _vint(0))                                 # end of archive
    return bytes(out)
