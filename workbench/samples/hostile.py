"""Hostile samples built in code: bombs, deep nesting, overlapping entries, odd names, broken encodings.

They attack the parser, not the analyst: every payload is zeros, text or EICAR.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from workbench.samples.archives import build_zip, nest_zip
from workbench.samples.mail import EICAR, Attachment, Mail, build_message
from workbench.samples.pe import build_pe

MiB = 1 << 20


def zip_bomb(expanded: int = 100 * MiB, *, name: str = "zeros.bin", lie: bool = False) -> bytes:
    """One member of ``expanded`` zero bytes (about 1000:1). ``lie`` declares a tiny size instead."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name, (2026, 11, 2, 9, 30, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", compresslevel=9) as zf, zf.open(info, "w", force_zip64=True) as fh:
        chunk = b"\x00" * MiB
        for _ in range(expanded // MiB):
            fh.write(chunk)
        fh.write(b"\x00" * (expanded % MiB))
    data = buf.getvalue()
    if lie:
        data = _patch_sizes(data, 68)
    return data


def _patch_sizes(data: bytes, fake: int) -> bytes:
    """Rewrite every declared uncompressed size (local and central headers) to ``fake``."""
    out = bytearray(data)
    pos = 0
    while (pos := out.find(b"PK\x01\x02", pos)) >= 0:
        struct.pack_into("<I", out, pos + 24, fake)
        pos += 4
    pos = 0
    while (pos := out.find(b"PK\x03\x04", pos)) >= 0:
        struct.pack_into("<I", out, pos + 22, fake)
        pos += 4
    return bytes(out)


def overlapping_zip(copies: int = 10, size: int = MiB) -> bytes:
    """A Fifield-style bomb: many central directory entries pointing at one local file."""
    payload = b"\x00" * size
    packed = zlib.compress(payload, 9)[2:-4]
    crc = zlib.crc32(payload)
    name = b"a.bin"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(packed), size,
                        len(name), 0) + name + packed
    central = b""
    for i in range(copies):
        entry = b"a%03d.bin" % i
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(packed),
                               size, len(entry), 0, 0, 0, 0, 0, 0) + entry
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, copies, copies, len(central), len(local), 0)
    return local + central + end


def zip_in_zip(levels: int = 20) -> bytes:
    return nest_zip("eicar.com", EICAR, levels)


def traversal_zip() -> bytes:
    return build_zip([("../../etc/cron.d/evil", b"* * * * * root echo pwned\n"),
                      ("..\\..\\Windows\\win.ini", b"[fonts]\n"), ("/tmp/absolute.txt", b"abs\n"),
                      ("invoice\u202efdp.exe", EICAR)])


def many_entries_zip(count: int = 1500) -> bytes:
    return build_zip([(f"f{i:05d}.txt", b"x") for i in range(count)])


def nested_mime(levels: int = 1000) -> bytes:
    """A message whose multiparts nest ``levels`` deep around one text part."""
    body = b"Content-Type: text/plain\n\nbottom of the well\n"
    for i in range(levels):
        b = b"lvl%d" % i
        body = b'Content-Type: multipart/mixed; boundary="' + b + b'"\n\n--' + b + b"\n" + body + b"--" + b + b"--\n"
    return b"From: deep@evil.example\nTo: victim@corp.example\nSubject: deep\nMIME-Version: 1.0\n" + body


def long_header(size: int = 10 * MiB) -> bytes:
    return (b"From: long@evil.example\nTo: victim@corp.example\nSubject: long header\nX-Padding: "
            + b"A" * size + b"\n\nbody\n")


def invalid_base64_message() -> bytes:
    return (b"From: b64@evil.example\nTo: victim@corp.example\nSubject: broken\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="XX"\n\n--XX\nContent-Type: text/plain\n\nhi\n'
            b'--XX\nContent-Type: application/octet-stream; name="x.bin"\n'
            b'Content-Disposition: attachment; filename="x.bin"\nContent-Transfer-Encoding: base64\n\n'
            b"TVqQ!!!AAMAAAAEAAAA//8AALgAAAA*&^AAAAAQAAAAAAAAAAA=AAAAA\n--XX--\n")


def truncated_pe() -> bytes:
    return build_pe()[:300]


def many_sections_pe(count: int = 5000) -> bytes:
    return build_pe(n_sections=count)


def message_with(attachments: list[tuple[str, bytes]], *, text: str = "See attached.") -> bytes:
    return build_message(Mail("attacker@evil.example", "victim@corp.example", "Hostile sample", text=text,
                              attachments=[Attachment(n, d) for n, d in attachments]))
