"""Archives: zip (ZipCrypto and AES), 7z, gzip, bzip2, xz, tar; rar through libarchive, flagged without it.

Member names are reported, sanitised for display, and never used as paths: every
member is read into memory with a cap, never extracted to disk.
"""

from __future__ import annotations

import bz2
import ctypes
import functools
import gzip
import io
import itertools
import logging
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.model import LIMIT_HIT, PARSER_ERROR, PARTIAL, Child, DissectResult, MiB

_READ = 1 << 20


@dataclass
class Member:
    name: str                     # raw, as stored (may hold ../ or RTLO)
    size: int                     # declared uncompressed size
    compressed_size: int
    ratio: float
    crc: str
    method: str
    flags: int = 0
    encrypted: bool = False
    is_dir: bool = False
    kind: str = "file"            # tar: file, dir, symlink, hardlink, device, fifo
    link_target: str = ""
    extracted: bool = False
    note: str = ""
    passwords_tried: int = 0      # for this member (zip: each encrypted member may have its own)


@dataclass
class ArchiveReport:
    format: str
    member_count: int = 0
    members: list[Member] = field(default_factory=list)
    encrypted: bool = False
    password: str | None = None           # the one that worked (zip: the last one that did)
    passwords_tried: int = 0              # attempts over the whole archive (a running total)
    overlapping: list[str] = field(default_factory=list)
    high_ratio: list[str] = field(default_factory=list)
    comment: str = ""
    inner_name: str = ""                  # gzip FNAME
    notes: list[str] = field(default_factory=list)

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath an archive, in the CLI and the UI alike."""
        line = f"{self.format}: {self.member_count} members"
        if self.encrypted:
            line += (f", encrypted, password {self.password!r}" if self.password
                     else f", encrypted, no password found ({self.passwords_tried} tried)"
                     if self.passwords_tried
                     else ", encrypted, no password tried")
        if self.notes:
            line += f" ({'; '.join(self.notes[:3])})"
        out = [line]
        out += [f"high ratio: {r}" for r in self.high_ratio[:5]]
        if self.overlapping:
            out.append(f"overlapping entries: {', '.join(self.overlapping[:5])}")
        out += [f"link: {m.name} -> {m.link_target}" for m in self.members if m.kind == "symlink"][:5]
        return out


class _Budget:
    """Bytes this dissector may still extract, with the per-child cap."""

    def __init__(self, ctx: DissectContext, result: DissectResult):
        self.left = ctx.budget
        self.child_max = ctx.limits.max_child
        self.children_left = ctx.children_left
        self.result = result

    def cap(self) -> int:
        return min(self.child_max, self.left)

    def admit(self, member: Member) -> bool:
        """Whether the member's declared size and the children count let it be read; when not,
        the member and the node say which limit stopped it."""
        if self.children_left <= 0:
            member.note = "children limit"
            if "children limit" not in self.result.reason:
                self.result.problem(LIMIT_HIT, "children limit reached: the rest listed, not extracted")
            return False
        if member.size > self.child_max:
            member.note = "declared size over the child limit"
            self.result.problem(LIMIT_HIT, f"{member.name}: declares {member.size} bytes, over the "
                                           f"child limit {self.child_max}")
            return False
        if member.size > self.left:
            member.note = "total expanded bytes limit"
            if "total expanded bytes limit" not in self.result.reason:    # once, not per member
                self.result.problem(LIMIT_HIT, f"{member.name}: total expanded bytes limit reached: "
                                               "what does not fit listed, not extracted")
            return False
        return True

    def take(self, name: str, data: bytes, note: str) -> None:
        self.left -= len(data)
        self.children_left -= 1
        self.result.children.append(Child(name, data, note=note))


class _TooBig(Exception):
    pass


def _read_capped(stream: Any, cap: int) -> bytes:
    out = bytearray()
    while chunk := stream.read(min(_READ, cap + 1 - len(out))):
        out += chunk
        if len(out) > cap:
            raise _TooBig(len(out))
    return bytes(out)


def _ratio(size: int, packed: int) -> float:
    return round(size / packed, 1) if packed else (float(size) if size else 0.0)


# -- zip -------------------------------------------------------------------------------------


def _local_header_end(data: bytes, offset: int) -> int:
    if data[offset:offset + 4] != b"PK\x03\x04" or offset + 30 > len(data):
        return offset + 30
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    return offset + 30 + name_len + extra_len


def _overlaps(data: bytes, infos: list[zipfile.ZipInfo]) -> set[str]:
    spans = sorted((i.header_offset, _local_header_end(data, i.header_offset) + i.compress_size, i.filename)
                   for i in infos if not i.is_dir())
    bad: set[str] = set()
    for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(spans):
        if s2 < e1:
            bad.update((n1, n2))
    return bad


MAX_LINK_TARGET = 4096
S_IFMT, S_IFLNK = 0o170000, 0o120000


def _zip_symlink(info: zipfile.ZipInfo) -> bool:
    """A member unzip would restore as a symbolic link (unix mode in the external attributes)."""
    return info.create_system in (3, 19) and (info.external_attr >> 16) & S_IFMT == S_IFLNK


_METHODS = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 99: "aes"}


class ZipDissector(Dissector):
    name = "zip"
    version = 2
    uses_passwords = True
    mimes = ("application/zip", "application/x-zip-compressed", "application/java-archive")
    prefixes = (b"PK\x03\x04", b"PK\x05\x06")
    report_type = ArchiveReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        import pyzipper

        result = DissectResult()
        report = ArchiveReport("zip")
        result.report = report
        try:
            zf = pyzipper.AESZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, pyzipper.BadZipFile, ValueError, OSError, EOFError, struct.error) as exc:
            result.problem(PARSER_ERROR, f"not a readable zip: {exc}")
            return result
        with zf:
            infos = zf.infolist()
            report.member_count = len(infos)
            report.comment = zf.comment.decode("utf-8", "replace")[:1000]
            limit = ctx.limits.max_archive_entries
            if len(infos) > limit:
                result.problem(LIMIT_HIT, f"{len(infos)} entries over the limit {limit}: first {limit} read")
                infos = infos[:limit]
            overlapping = _overlaps(data, infos)
            report.overlapping = sorted(overlapping)
            if overlapping:
                result.problem(PARTIAL, f"{len(overlapping)} overlapping entries (a zip bomb technique): "
                                        "not extracted")
            budget = _Budget(ctx, result)
            password: bytes | None = None
            for info in infos:
                member = Member(info.filename, info.file_size, info.compress_size,
                                _ratio(info.file_size, info.compress_size), f"{info.CRC:08x}",
                                _METHODS.get(info.compress_type, str(info.compress_type)), info.flag_bits,
                                bool(info.flag_bits & 1), info.is_dir())
                report.members.append(member)
                if member.encrypted:
                    report.encrypted = True
                if member.ratio >= ctx.limits.ratio_flag:
                    report.high_ratio.append(f"{info.filename}: {member.ratio}:1")
                if member.is_dir:
                    member.kind = "dir"
                if member.is_dir or info.filename in overlapping:
                    continue
                if _zip_symlink(info):
                    # unzip would make a link: its content is the target path, not a file to dissect.
                    member.kind = "symlink"
                    member.link_target, member.note = self._link_target(zf, info, password)
                    continue
                if not budget.admit(member):
                    continue
                if member.encrypted and not self._opens(zf, info, password):
                    # Each encrypted member gets the whole list: members may have different passwords.
                    found = self._find_password(zf, info, ctx, report, member)
                    if found is None:
                        member.note = "encrypted; no password worked"
                        result.problem(PARTIAL, f"{info.filename}: encrypted, none of "
                                                f"{member.passwords_tried} passwords worked")
                        continue
                    password = found
                try:
                    with zf.open(info, pwd=password if member.encrypted else None) as fh:
                        content = _read_capped(fh, budget.cap())
                except _TooBig:
                    member.note = "expands past the limit"
                    result.problem(LIMIT_HIT, f"{info.filename}: expands past {budget.cap()} bytes "
                                              f"(declared {info.file_size})")
                    continue
                except (RuntimeError, zipfile.BadZipFile, pyzipper.BadZipFile, zlib.error, ValueError,
                        OSError, EOFError, NotImplementedError, lzma.LZMAError) as exc:
                    member.note = f"unreadable: {exc}"
                    result.problem(PARTIAL, f"{info.filename}: {exc}")
                    continue
                member.extracted = True
                budget.take(info.filename, content, "zip member" + (
                    f", password {report.password!r}" if member.encrypted else ""))
        return result

    @staticmethod
    def _opens(zf: Any, info: zipfile.ZipInfo, password: bytes | None) -> bool:
        """Whether the password found so far opens this member too (one read, capped)."""
        if password is None:
            return False
        try:
            with zf.open(info, pwd=password) as fh:
                _read_capped(fh, _READ)
        except _TooBig:
            return True
        except Exception:          # wrong password: RuntimeError, BadZipFile (CRC), zlib.error ...
            return False
        return True

    @staticmethod
    def _link_target(zf: Any, info: zipfile.ZipInfo, password: bytes | None) -> tuple[str, str]:
        try:
            with zf.open(info, pwd=password if info.flag_bits & 1 else None) as fh:
                target = _read_capped(fh, MAX_LINK_TARGET)
        except _TooBig:
            return "", f"symbolic link; target over {MAX_LINK_TARGET} bytes, not read"
        except Exception as exc:
            return "", f"symbolic link; target unreadable: {type(exc).__name__}"
        return target.decode("utf-8", "replace"), "symbolic link: not extracted"

    def _find_password(self, zf: Any, info: zipfile.ZipInfo, ctx: DissectContext,
                       report: ArchiveReport, member: Member) -> bytes | None:
        for word in ctx.passwords:
            report.passwords_tried += 1
            member.passwords_tried += 1
            pwd = word.encode("utf-8")
            try:
                with zf.open(info, pwd=pwd) as fh:
                    # Reading the whole member checks the CRC (ZipCrypto's check byte alone
                    # lets one wrong password in 256 through); capped like any extraction.
                    _read_capped(fh, ctx.limits.max_child)
            except _TooBig:
                pass
            except Exception:      # wrong password: RuntimeError, BadZipFile (CRC), zlib.error ...
                continue
            report.password = word
            return pwd
        return None


# -- single-stream compressors ------------------------------------------------------------------


class _StreamDissector(Dissector):
    opener: Any = None
    fmt = ""

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = ArchiveReport(self.fmt, member_count=1)
        result.report = report
        name = ctx.filename.rsplit(".", 1)[0] if "." in ctx.filename else f"{ctx.filename or 'data'}.out"
        if self.fmt == "gzip" and len(data) > 10 and data[3] & 0x08:
            end = data.find(b"\x00", 10)
            if end > 0:
                report.inner_name = data[10:end].decode("latin-1")[:255]
                name = report.inner_name
        cap = min(ctx.limits.max_child, ctx.budget)
        member = Member(name, 0, len(data), 0.0, "", self.fmt)
        report.members.append(member)
        try:
            content = _read_capped(self.opener(io.BytesIO(data)), cap)
        except _TooBig:
            member.note = "expands past the limit"
            result.problem(LIMIT_HIT, f"expands past {cap} bytes ({len(data)} compressed)")
            return result
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
            result.problem(PARSER_ERROR, f"{self.fmt}: {exc}")
            return result
        member.size = len(content)
        member.ratio = _ratio(len(content), len(data))
        if member.ratio >= ctx.limits.ratio_flag:
            report.high_ratio.append(f"{name}: {member.ratio}:1")
        member.extracted = True
        result.children.append(Child(name, content, note=f"{self.fmt} content"))
        return result


class GzipDissector(_StreamDissector):
    name = "gzip"
    fmt = "gzip"
    mimes = ("application/gzip", "application/x-gzip")
    prefixes = (b"\x1f\x8b",)
    opener = staticmethod(lambda f: gzip.GzipFile(fileobj=f))
    report_type = ArchiveReport


class Bzip2Dissector(_StreamDissector):
    name = "bzip2"
    fmt = "bzip2"
    mimes = ("application/x-bzip2",)
    prefixes = (b"BZh",)
    opener = staticmethod(lambda f: bz2.BZ2File(f))
    report_type = ArchiveReport


class XzDissector(_StreamDissector):
    name = "xz"
    fmt = "xz"
    mimes = ("application/x-xz", "application/x-lzma")
    prefixes = (b"\xfd7zXZ\x00",)
    opener = staticmethod(lambda f: lzma.LZMAFile(f))  # noqa: SIM115 (closed with the BytesIO)
    report_type = ArchiveReport


# -- tar -----------------------------------------------------------------------------------------


class TarDissector(Dissector):
    name = "tar"
    version = 1
    mimes = ("application/x-tar", "application/x-gtar", "application/x-ustar")
    magic_words = ("tar archive",)
    report_type = ArchiveReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = ArchiveReport("tar")
        result.report = report
        budget = _Budget(ctx, result)
        limit = ctx.limits.max_archive_entries
        try:
            tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 (used with `with` below)
        except (tarfile.TarError, OSError, ValueError) as exc:
            result.problem(PARSER_ERROR, f"not a readable tar: {exc}")
            return result
        with tf:
            try:
                for info in tf:
                    report.member_count += 1
                    if report.member_count > limit:
                        result.problem(LIMIT_HIT, f"more than {limit} entries: the rest not read")
                        break
                    kind = ("file" if info.isfile() else "dir" if info.isdir() else "symlink" if info.issym()
                            else "hardlink" if info.islnk() else "device" if info.isdev() else "fifo"
                            if info.isfifo() else "other")
                    member = Member(info.name, info.size, info.size, 1.0, "", "tar", is_dir=info.isdir(),
                                    kind=kind, link_target=info.linkname)
                    report.members.append(member)
                    if kind != "file":
                        continue
                    if info.size > ctx.limits.max_child or info.size > budget.left:
                        member.note = "over the size limits"
                        result.problem(LIMIT_HIT, f"{info.name}: {info.size} bytes over the size limits")
                        continue
                    if budget.children_left <= 0:
                        result.problem(LIMIT_HIT, "children limit reached")
                        break
                    fh = tf.extractfile(info)
                    if fh is None:
                        continue
                    member.extracted = True
                    budget.take(info.name, fh.read(info.size), "tar member")
            except (tarfile.TarError, OSError, EOFError) as exc:
                result.problem(PARTIAL, f"tar stream damaged after {report.member_count} entries: {exc}")
        return result


# -- 7z --------------------------------------------------------------------------------------------


class _CappedFactory:
    """py7zr writer factory that stops decompression once the cap is passed."""

    def __init__(self, cap: int):
        self.cap = cap
        self.products: dict[str, io.BytesIO] = {}
        factory = self

        class Writer(io.BytesIO):
            def write(self, b: Any) -> int:
                if self.tell() + len(b) > factory.cap:
                    raise _TooBig(self.tell() + len(b))
                return super().write(b)

            def size(self) -> int:
                return len(self.getbuffer())

            def close(self) -> None:
                pass               # py7zr closes its writers; the bytes are read afterwards

        self._writer = Writer

    def create(self, filename: str) -> Any:
        product = self._writer()
        self.products[filename] = product
        return product


class SevenZipDissector(Dissector):
    name = "7z"
    version = 1
    slow = True
    uses_passwords = True
    mimes = ("application/x-7z-compressed",)
    prefixes = (b"7z\xbc\xaf\x27\x1c",)
    report_type = ArchiveReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        import py7zr

        result = DissectResult()
        report = ArchiveReport("7z")
        result.report = report
        try:
            with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
                report.encrypted = archive.needs_password()
                entries = archive.list()
        except py7zr.exceptions.PasswordRequired:
            report.encrypted = True
            entries = None
        except Exception as exc:   # py7zr raises many kinds on damaged input
            result.problem(PARSER_ERROR, f"not a readable 7z: {type(exc).__name__}: {exc}")
            return result
        password: str | None = None
        if report.encrypted:
            for word in ctx.passwords:
                report.passwords_tried += 1
                try:
                    with py7zr.SevenZipFile(io.BytesIO(data), password=word) as archive:
                        entries = archive.list()
                        archive.test()
                except Exception:
                    continue
                password = report.password = word
                break
            if password is None:
                result.problem(PARTIAL, f"encrypted, none of {report.passwords_tried} passwords worked")
                return result
        assert entries is not None
        report.member_count = len(entries)
        limit = ctx.limits.max_archive_entries
        if len(entries) > limit:
            result.problem(LIMIT_HIT, f"{len(entries)} entries over the limit {limit}: not extracted")
        wanted = []
        budget = _Budget(ctx, result)
        total = 0
        for e in entries[:limit]:
            size = e.uncompressed or 0
            member = Member(e.filename, size, e.compressed or 0, _ratio(size, e.compressed or 0),
                            f"{e.crc32:08x}" if e.crc32 is not None else "", "7z", is_dir=e.is_directory,
                            encrypted=report.encrypted)
            report.members.append(member)
            if member.ratio >= ctx.limits.ratio_flag and e.compressed:
                report.high_ratio.append(f"{e.filename}: {member.ratio}:1")
            if e.is_directory:
                continue
            if size > ctx.limits.max_child or total + size > budget.left:
                member.note = "over the size limits"
                result.problem(LIMIT_HIT, f"{e.filename}: {size} bytes over the size limits")
                continue
            total += size
            wanted.append(e.filename)
        if len(entries) > limit or not wanted:
            return result
        factory = _CappedFactory(ctx.limits.max_child)
        try:
            with py7zr.SevenZipFile(io.BytesIO(data), password=password) as archive:
                archive.extract(targets=wanted, factory=factory)
        except _TooBig:
            result.problem(LIMIT_HIT, "a member expands past its declared size and the child limit")
        except Exception as exc:
            result.problem(PARTIAL, f"extraction failed: {type(exc).__name__}: {exc}")
        by_name = {m.name: m for m in report.members}
        for name in wanted:
            product = factory.products.get(name)
            if product is None or budget.children_left <= 0:
                continue
            by_name[name].extracted = True
            budget.take(name, product.getvalue(), "7z member" + (f", password {password!r}" if password else ""))
        return result


# -- rar ---------------------------------------------------------------------------------------------
#
# libarchive reads the members (RAR 4 and RAR 5, not encrypted ones). What it does not
# expose (packed size, CRC, method, the password flags) comes from a walk over the RAR
# headers, which needs no backend: the table is there even when libarchive is missing.

_RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"
_RAR_METHODS = ("store", "fastest", "fast", "normal", "good", "best")
_RAR_WALK_FACTOR = 100        # file headers counted past the entry limit before the walk gives up
_RAR_HEADER_MAX = 2 * MiB     # RAR 5's own limit on one header


@dataclass
class _RarHeader:
    """One file header as the archive declares it."""

    name: str | None          # "/"-separated; None: a RAR 4 name in its packed Unicode form
    size: int
    packed: int
    crc: str
    method: str
    flags: int
    encrypted: bool
    is_dir: bool
    split: bool = False       # continues in the next volume: its CRC is of this part only


@dataclass
class _RarHeaders:
    version: int
    members: list[_RarHeader] = field(default_factory=list)     # up to the entry limit
    count: int = 0                                               # file headers seen
    solid: bool = False
    headers_encrypted: bool = False
    damaged: str = ""                                            # why the walk stopped early


def _rar_method(number: int) -> str:
    return _RAR_METHODS[number] if 0 <= number < len(_RAR_METHODS) else f"method {number}"


def _walk_rar4(data: bytes, keep: int) -> _RarHeaders:
    """Blocks of a RAR 1.5-4.x archive (RARLAB's technote.txt): a 7-byte base header, ADD_SIZE
    bytes of data after it when flag 0x8000 is set (always for file headers)."""
    out = _RarHeaders(4)
    pos = 7
    try:
        while pos < len(data):
            if pos + 7 > len(data):
                out.damaged = f"truncated block header at offset {pos}"
                break
            head_type, flags, size = struct.unpack_from("<BHH", data, pos + 2)
            if size < 7:
                out.damaged = f"block header of {size} bytes at offset {pos}"
                break
            add = struct.unpack_from("<I", data, pos + 7)[0] if flags & 0x8000 and size >= 11 else 0
            if head_type == 0x73:                            # archive header
                out.solid = bool(flags & 0x0008)
                if flags & 0x0080:                           # MHD_PASSWORD: headers encrypted
                    out.headers_encrypted = True
                    break
            elif head_type == 0x74 and not flags & 0x0001:   # a file (not a volume's continuation)
                if size < 32 or pos + size > len(data):
                    out.damaged = f"truncated file header at offset {pos}"
                    break
                packed, unpacked, _host, crc, _time, _ver, method, name_len, _attr = struct.unpack_from(
                    "<IIBIIBBHI", data, pos + 7)
                name_at = pos + 32
                if flags & 0x0100 and size >= 40:            # LHD_LARGE: high 32 bits follow
                    high_packed, high_unpacked = struct.unpack_from("<II", data, pos + 32)
                    packed, unpacked = packed | high_packed << 32, unpacked | high_unpacked << 32
                    name_at = pos + 40
                add = packed                                 # the data follows, flag 0x8000 or not
                raw = data[name_at:min(name_at + name_len, pos + size)]
                if flags & 0x0200 and b"\x00" in raw:
                    name = None                              # RAR's packed Unicode: left to libarchive
                else:
                    name = raw.decode("utf-8", "replace").replace("\\", "/")
                out.count += 1
                if len(out.members) < keep:
                    out.members.append(_RarHeader(name, unpacked, packed, f"{crc:08x}",
                                                  _rar_method(method - 0x30), flags, bool(flags & 0x0004),
                                                  flags & 0x00E0 == 0x00E0, bool(flags & 0x0002)))
                elif out.count > keep * _RAR_WALK_FACTOR:
                    break
            elif head_type == 0x7B:                          # end of archive
                break
            pos += size + add
        else:
            if pos > len(data):
                out.damaged = "truncated: the last block runs past the end of the file"
    except struct.error as exc:
        out.damaged = f"header unreadable at offset {pos}: {exc}"
    return out


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(10):
        byte = data[pos + i]                                     # IndexError past the end
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError(f"variable-length integer too long at offset {pos}")


def _walk_rar5(data: bytes, keep: int) -> _RarHeaders:
    """Headers of a RAR 5 archive (RARLAB's "RAR 5.0 archive format"): CRC32, size, type and
    flags as variable-length integers, then an optional extra area and data area."""
    out = _RarHeaders(5)
    pos = len(_RAR5_SIGNATURE)
    try:
        while pos < len(data):
            size, body = _vint(data, pos + 4)
            end = body + size
            if not 0 < size <= _RAR_HEADER_MAX or end > len(data):
                out.damaged = f"bad or truncated header at offset {pos}"
                break
            head_type, p = _vint(data, body)
            flags, p = _vint(data, p)
            extra = data_size = 0
            if flags & 0x0001:
                extra, p = _vint(data, p)
            if flags & 0x0002:
                data_size, p = _vint(data, p)
            if head_type == 4:                                   # archive encryption header
                out.headers_encrypted = True
                break
            if head_type == 1:                                   # main archive header
                archive_flags, p = _vint(data, p)
                out.solid = bool(archive_flags & 0x0004)
            elif head_type == 2 and not flags & 0x0008:          # a file (not a continuation)
                file_flags, p = _vint(data, p)
                unpacked, p = _vint(data, p)
                _attr, p = _vint(data, p)
                if file_flags & 0x0002:
                    p += 4                                       # mtime
                crc = ""
                if file_flags & 0x0004:
                    crc = f"{struct.unpack_from('<I', data, p)[0]:08x}"
                    p += 4
                compression, p = _vint(data, p)
                _host, p = _vint(data, p)
                name_len, p = _vint(data, p)
                name = data[p:min(p + name_len, end)].decode("utf-8", "replace")
                encrypted = False
                q = end - extra                                  # extra area: size, type, data records
                while extra and q < end:
                    record, r = _vint(data, q)
                    record_type, _ = _vint(data, r)
                    encrypted |= record_type == 0x01             # file encryption record
                    q = r + max(record, 1)
                out.count += 1
                if len(out.members) < keep:
                    out.members.append(_RarHeader(name, unpacked, data_size, crc,
                                                  _rar_method((compression >> 7) & 7), file_flags,
                                                  encrypted, bool(file_flags & 0x0001), bool(flags & 0x0010)))
                elif out.count > keep * _RAR_WALK_FACTOR:
                    break
            elif head_type == 5:                                 # end of archive
                break
            pos = end + data_size
    except (IndexError, ValueError, struct.error) as exc:
        out.damaged = f"header unreadable at offset {pos}: {exc or type(exc).__name__}"
    if pos > len(data) and not out.damaged:
        out.damaged = "truncated: the last block runs past the end of the file"
    return out


def _walk_rar(data: bytes, keep: int) -> _RarHeaders:
    return _walk_rar5(data, keep) if data.startswith(_RAR5_SIGNATURE) else _walk_rar4(data, keep)


@functools.cache
def _load_libarchive() -> tuple[Any, str]:
    """libarchive-c, or None and why: its import fails (AttributeError or OSError, not only
    ImportError) when the shared library is missing."""
    try:
        import libarchive
        import libarchive.ffi
    except (ImportError, OSError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return libarchive, ""


def _archive_message(exc: Exception) -> str:
    """libarchive's own words (libarchive-c's str() adds a pointer; some errors come without any)."""
    msg = getattr(exc, "msg", None)
    if not msg:
        return f"damaged (libarchive gave no message, code {getattr(exc, 'retcode', '?')})"
    return (msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg))[:300]


class _LibarchiveWarnings(logging.Handler):
    """libarchive-c logs ARCHIVE_WARN results instead of raising: keep them for the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.logger = logging.getLogger("libarchive")

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 20:
            self.messages.append(str(record.getMessage())[:300])

    def __enter__(self) -> _LibarchiveWarnings:
        self.logger.addHandler(self)
        self.propagate, self.logger.propagate = self.logger.propagate, False
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.propagate = self.propagate


def _text(value: str | bytes | None) -> str:
    """libarchive-c hands back bytes when a name is not valid in its codec."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _read_blocks_capped(blocks: Iterator[bytes], cap: int) -> bytes:
    out = bytearray()
    for block in blocks:
        out += block
        if len(out) > cap:
            raise _TooBig(len(out))
    return bytes(out)


def _data_encrypted(backend: Any, entry: Any) -> bool:
    """libarchive's own verdict (3.2 and later; libarchive-c does not bind it)."""
    check = getattr(backend.ffi.libarchive, "archive_entry_is_data_encrypted", None)
    if check is None:
        return False
    check.argtypes, check.restype = [ctypes.c_void_p], ctypes.c_int
    return bool(check(entry._entry_p) > 0)


class RarDissector(Dissector):
    name = "rar"
    version = 2
    mimes = ("application/x-rar", "application/vnd.rar", "application/x-rar-compressed")
    prefixes = (b"Rar!\x1a\x07",)
    report_type = ArchiveReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = ArchiveReport("rar")
        result.report = report
        limit = ctx.limits.max_archive_entries
        headers = _walk_rar(data, limit)
        report.notes.append(f"RAR {headers.version} archive" + (", solid" if headers.solid else ""))
        report.member_count = headers.count
        if headers.headers_encrypted:
            report.encrypted = True
            result.problem(PARTIAL, "rar: headers encrypted (rar -hp): members cannot be listed without "
                                    "the password, and libarchive cannot decrypt RAR (no password tried)")
            return result
        if headers.count > limit:
            more = "more than " if headers.count > limit * _RAR_WALK_FACTOR else ""
            result.problem(LIMIT_HIT, f"{more}{headers.count} entries over the limit {limit}: first {limit} read")
        backend, why = _load_libarchive()
        if backend is None:
            result.cacheable = False
            for h in headers.members:
                report.members.append(self._member(h.name or "?", h, note="listed from the headers"))
            result.problem(PARTIAL, f"rar: no backend: libarchive could not be loaded ({why}); install "
                                    "Debian's libarchive13 (./dev does) and the libarchive-c package; "
                                    "members listed from the headers, not extracted")
            if headers.damaged:
                report.notes.append(f"headers: {headers.damaged}")
            self._flag(report, result, ctx)
            return result
        report.notes.append(f"read by libarchive {self._libarchive_version(backend)}")
        self._read(backend, data, headers, ctx, result, report)
        report.member_count = max(report.member_count, len(report.members))
        if headers.damaged:
            report.notes.append(f"headers: {headers.damaged}")
        self._flag(report, result, ctx)
        return result

    def _read(self, backend: Any, data: bytes, headers: _RarHeaders, ctx: DissectContext,
              result: DissectResult, report: ArchiveReport) -> None:
        limit = ctx.limits.max_archive_entries
        unclaimed = list(headers.members)
        budget = _Budget(ctx, result)
        fmt = "rar5" if headers.version == 5 else "rar"
        seen = 0
        stopped = False
        with _LibarchiveWarnings() as warnings:
            try:
                # Only the RAR readers and no decompression filter: a file that claims to be
                # RAR is parsed as nothing else.
                with backend.memory_reader(data, format_name=fmt, filter_name="none") as archive:
                    for entry in archive:
                        seen += 1
                        if seen > limit:
                            if headers.count <= limit:       # the walk missed them: say so here
                                result.problem(LIMIT_HIT, f"more than {limit} entries: the rest not read")
                            break
                        self._entry(backend, entry, unclaimed, budget, result, report)
            except backend.ArchiveError as exc:
                stopped = True
                status = PARTIAL if report.members else PARSER_ERROR
                result.problem(status, f"rar: {_archive_message(exc)}"
                                       + (f" (after {len(report.members)} members)" if report.members else ""))
            report.notes.extend(f"libarchive: {m}" for m in warnings.messages)
        if stopped:       # what the headers declare past the point where libarchive gave up
            for h in unclaimed[:max(0, limit - len(report.members))]:
                report.members.append(self._member(h.name or "?", h, note="not reached: the archive is "
                                                                          "damaged before it"))

    def _entry(self, backend: Any, entry: Any, unclaimed: list[_RarHeader], budget: _Budget,
               result: DissectResult, report: ArchiveReport) -> None:
        name = _text(entry.pathname)
        wanted = name.replace("\\", "/")
        header = next((h for h in unclaimed if h.name is not None and h.name.replace("\\", "/") == wanted),
                      None)
        if header is None and unclaimed and unclaimed[0].name is None:
            header = unclaimed[0]                 # a packed Unicode name: matched by its place
        if header is not None:
            unclaimed.remove(header)
        kind = ("dir" if entry.isdir else "hardlink" if entry.islnk else "file" if entry.isreg
                else "symlink" if entry.issym else "other")
        member = self._member(name, header, size=entry.size)
        member.kind, member.is_dir = kind, kind == "dir"
        member.link_target = _text(entry.linkpath) if kind in ("symlink", "hardlink") else ""
        member.encrypted = member.encrypted or _data_encrypted(backend, entry)
        report.members.append(member)
        if kind != "file":
            return
        if member.encrypted:
            # libarchive would hand back the ciphertext of a stored member as if it were the file
            member.note = "encrypted: not extracted (libarchive cannot decrypt RAR)"
            return
        if not budget.admit(member):
            return
        try:
            # get_blocks allocates its whole buffer per member and copies all of it per block:
            # sized to the declared size, small members cost no megabyte each (a lie only
            # means more, smaller blocks, still capped)
            block = min(_READ, max(4096, member.size + 1))
            content = _read_blocks_capped(entry.get_blocks(block), budget.cap())
        except _TooBig:
            member.note = "expands past the limit"
            result.problem(LIMIT_HIT, f"{name}: expands past {budget.cap()} bytes (declared {member.size})")
            return
        except backend.ArchiveError as exc:
            member.note = f"unreadable: {_archive_message(exc)}"
            result.problem(PARTIAL, f"{name}: {_archive_message(exc)}")
            return
        member.extracted = True
        note = "rar member"
        crc = f"{zlib.crc32(content) & 0xFFFFFFFF:08x}"
        if header is not None and header.crc and not header.split and crc != header.crc:
            # libarchive stops a stored member at its declared size without a word
            member.note, note = f"CRC mismatch: read {len(content)} bytes, CRC {crc}", "rar member, CRC mismatch"
            result.problem(PARTIAL, f"{name}: CRC mismatch (header {header.crc}, data {crc}; "
                                    f"{len(content)} bytes read, {member.size} declared)")
        budget.take(name, content, note)

    @staticmethod
    def _member(name: str, header: _RarHeader | None, *, size: int | None = None, note: str = "") -> Member:
        if header is None:
            declared = size or 0
            return Member(name, declared, 0, 0.0, "", "", note=note)
        declared = header.size if size is None else size
        return Member(name, declared, header.packed, _ratio(declared, header.packed), header.crc, header.method,
                      header.flags, header.encrypted, header.is_dir, "dir" if header.is_dir else "file",
                      note=note)

    @staticmethod
    def _flag(report: ArchiveReport, result: DissectResult, ctx: DissectContext) -> None:
        for m in report.members:
            if m.ratio >= ctx.limits.ratio_flag and m.compressed_size:
                report.high_ratio.append(f"{m.name}: {m.ratio}:1")
        locked = [m.name for m in report.members if m.encrypted]
        if locked:
            report.encrypted = True
            result.problem(PARTIAL, f"{len(locked)} encrypted member{'s' if len(locked) > 1 else ''} not "
                                    "extracted: libarchive cannot decrypt RAR (no password tried)")

    @staticmethod
    def _libarchive_version(backend: Any) -> str:
        number = int(backend.ffi.version_number())
        return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


DISSECTORS = [ZipDissector, SevenZipDissector, RarDissector, GzipDissector, Bzip2Dissector,
              XzDissector, TarDissector]
