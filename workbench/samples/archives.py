"""Archives built in memory, byte-for-byte reproducible: zip (plain, nested, ZipCrypto, AES), gzip, tar."""

from __future__ import annotations

import binascii
import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

FIXED_TIME = (2026, 11, 2, 9, 30, 0)


def build_zip(members: Sequence[tuple[str, bytes]], *, compress: bool = True) -> bytes:
    """A plain zip with fixed timestamps (deflated unless ``compress`` is False)."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def nest_zip(name: str, data: bytes, levels: int) -> bytes:
    """``data`` as ``name`` inside ``levels`` zips, each named ``layerN.zip`` inside the next."""
    payload, inner_name = data, name
    for level in range(levels):
        payload = build_zip([(inner_name, payload)])
        inner_name = f"layer{levels - level}.zip"
    return payload


class _ZipCryptoKeys:
    """The traditional PKWARE stream cipher (what 7-Zip and WinZip write by default)."""

    def __init__(self, password: bytes):
        self.k0, self.k1, self.k2 = 0x12345678, 0x23456789, 0x34567890
        for byte in password:
            self._update(byte)

    def _update(self, byte: int) -> None:
        self.k0 = (zlib.crc32(bytes([byte]), self.k0 ^ 0xFFFFFFFF) ^ 0xFFFFFFFF)
        self.k1 = ((self.k1 + (self.k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        self.k2 = (zlib.crc32(bytes([self.k1 >> 24]), self.k2 ^ 0xFFFFFFFF) ^ 0xFFFFFFFF)

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            temp = (self.k2 | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            self._update(byte)
        return bytes(out)


def _dos_time() -> tuple[int, int]:
    y, mo, d, h, mi, s = FIXED_TIME
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


def build_zipcrypto_zip(members: Sequence[tuple[str, bytes]], password: bytes) -> bytes:
    """A password-protected zip (ZipCrypto, deflated), reproducible: the 11 'random'
    header bytes come from a hash of the member, not from a random source."""
    out = io.BytesIO()
    central = []
    dos_time, dos_date = _dos_time()
    for name, data in members:
        crc = binascii.crc32(data) & 0xFFFFFFFF
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = compressor.compress(data) + compressor.flush()
        keys = _ZipCryptoKeys(password)
        header = hashlib.sha256(name.encode() + data).digest()[:11] + bytes([crc >> 24])
        body = keys.encrypt(header + packed)
        fname = name.encode("utf-8")
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x0001 | 0x0800, 8, dos_time,
                              dos_date, crc, len(body), len(data), len(fname), 0))
        out.write(fname + body)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x0001 | 0x0800, 8,
                                   dos_time, dos_date, crc, len(body), len(data), len(fname),
                                   0, 0, 0, 0, 0o644 << 16, offset) + fname)
    start = out.tell()
    for entry in central:
        out.write(entry)
    size = out.tell() - start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), size, start, 0))
    return out.getvalue()


@contextmanager
def _seeded_random(seed: bytes) -> Iterator[None]:
    """Make pyzipper's AES salt reproducible while building a sample."""
    import pyzipper.zipfile_aes as zaes

    class _Stream:
        def __init__(self) -> None:
            self.counter = 0

        def read(self, n: int) -> bytes:
            self.counter += 1
            return hashlib.sha256(seed + self.counter.to_bytes(4, "big")).digest()[:n]

    class _Random:
        @staticmethod
        def new() -> _Stream:
            return _Stream()

    original = zaes.Random
    zaes.Random = _Random
    try:
        yield
    finally:
        zaes.Random = original


def build_aes_zip(members: Sequence[tuple[str, bytes]], password: bytes) -> bytes:
    """A WinZip AES-256 zip (pyzipper), reproducible for the same members and password."""
    import pyzipper

    buf = io.BytesIO()
    seed = hashlib.sha256(b"".join(n.encode() + d for n, d in members) + password).digest()
    with _seeded_random(seed), pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                                                   encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password)
        for name, data in members:
            info = zf.zipinfo_cls(name, date_time=FIXED_TIME)
            info.compress_type = pyzipper.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def build_gzip(data: bytes, name: str = "") -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def build_tar(members: Sequence[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1793611800
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
