"""Archives: zip (ZipCrypto and AES), 7z, gzip, bzip2, xz, tar; rar is flagged when no backend exists.

Member names are reported, sanitised for display, and never used as paths: every
member is read into memory with a cap, never extracted to disk.
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from workbench.dissect.model import LIMIT_HIT, PARSER_ERROR, PARTIAL, Child, DissectResult
from workbench.dissect.registry import DissectContext, Dissector

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


@dataclass
class ArchiveReport:
    format: str
    member_count: int = 0
    members: list[Member] = field(default_factory=list)
    encrypted: bool = False
    password: str | None = None           # the one that worked
    passwords_tried: int = 0
    overlapping: list[str] = field(default_factory=list)
    high_ratio: list[str] = field(default_factory=list)
    comment: str = ""
    inner_name: str = ""                  # gzip FNAME
    notes: list[str] = field(default_factory=list)


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
            self.result.problem(LIMIT_HIT, f"{member.name}: total expanded bytes limit reached")
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


_METHODS = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 99: "aes"}


class ZipDissector(Dissector):
    name = "zip"
    version = 1
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
                if member.is_dir or info.filename in overlapping:
                    continue
                if not budget.admit(member):
                    continue
                if member.encrypted and password is None:
                    password = self._find_password(zf, info, ctx, report)
                    if password is None:
                        member.note = "encrypted; no password worked"
                        result.problem(PARTIAL, f"{info.filename}: encrypted, none of "
                                                f"{report.passwords_tried} passwords worked")
                        continue
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

    def _find_password(self, zf: Any, info: zipfile.ZipInfo, ctx: DissectContext,
                       report: ArchiveReport) -> bytes | None:
        for word in ctx.passwords:
            report.passwords_tried += 1
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


class RarDissector(Dissector):
    name = "rar"
    version = 1
    mimes = ("application/x-rar", "application/vnd.rar", "application/x-rar-compressed")
    prefixes = (b"Rar!\x1a\x07",)
    report_type = ArchiveReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = ArchiveReport("rar")
        result.report = report
        version = "5" if data.startswith(b"Rar!\x1a\x07\x01\x00") else "4"
        report.notes.append(f"RAR {version} archive")
        result.problem(PARTIAL, "rar: no backend installed (rarfile with unrar, unar or bsdtar); "
                                "members not listed or extracted")
        return result


DISSECTORS = [ZipDissector, SevenZipDissector, RarDissector, GzipDissector, Bzip2Dissector,
              XzDissector, TarDissector]
