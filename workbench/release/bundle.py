"""Release bundles: one reproducible ``signatures-<serial>.tar.gz`` a tower can check before loading.

Layout of the archive (see docs/release.md, "The bundle"):

``manifest.json``   first member, so a streaming reader can check every later member
``compiled.yarc``   the shipped rules compiled by yara-python (``Rules.save``)
``rules/...``       the shipped rule sources (only rules whose status ships)
``selftest/<sha>``  inputs the loaded rules must match (``manifest.selftest``)

Every other member is listed in the manifest with its size and sha256. The archive is
reproducible: members in a fixed order, mtimes from the commit time, uid/gid 0, no
user names, a gzip header without name or time. Reading never unpacks blindly: no
links, devices, directories, absolute names or ``..``; sizes are capped.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yara

import workbench
from workbench.document import to_data
from workbench.durable import atomic_output
from workbench.errors import Kind, WorkbenchError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
COMPILED_NAME = "compiled.yarc"
RULES_DIR = "rules"
SELFTEST_DIR = "selftest"
SELFTEST_TIMEOUT = 30          # seconds per self-test input

ExternalValue = str | int | float | bool

# A member name: relative, slash-separated, no empty, hidden, ``.`` or ``..`` parts,
# and nothing a YARA ``include "..."`` line would have to escape.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@ -]*(?:/[A-Za-z0-9_][A-Za-z0-9._+@ -]*)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(WorkbenchError):
    """A bundle that must not be loaded (or cannot be built); ``reason`` says why."""

    kind = Kind.INPUT

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Caps that keep a hostile or broken archive from filling a disk or memory."""

    max_files: int = 50_000
    max_file_size: int = 256 * 1024 * 1024
    max_total_size: int = 1024 * 1024 * 1024
    max_manifest_size: int = 64 * 1024 * 1024


DEFAULT_LIMITS = Limits()


# --- the manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestRule:
    name: str
    namespace: str
    fingerprint: str
    status: str
    file: str                   # the source member that defines it, ``rules/...``


@dataclass(frozen=True)
class ManifestFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SourceEntry:
    """A source file compiled as an entry point (files only included by others are not)."""

    path: str
    namespace: str


@dataclass(frozen=True)
class SelfTestVector:
    file: str                   # ``selftest/<sha256>``
    rules: tuple[str, ...]      # rule names that must match it


@dataclass(frozen=True)
class Manifest:
    format: int
    serial: int
    created: str                # ISO 8601 UTC, the release commit's time
    commit: str
    tool_version: str
    libyara_version: str
    rule_count: int
    externals: dict[str, ExternalValue]
    sources: tuple[SourceEntry, ...]
    rules: tuple[ManifestRule, ...]
    files: tuple[ManifestFile, ...]
    selftest: tuple[SelfTestVector, ...]

    def to_bytes(self) -> bytes:
        """The canonical encoding: the same manifest always gives the same bytes."""
        return (json.dumps(to_data(self), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def file(self, path: str) -> ManifestFile | None:
        return self._files_by_path.get(path)

    @functools.cached_property
    def _files_by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"manifest.json is not valid JSON: {exc}") from None
        return cls.from_data(raw)

    @classmethod
    def from_data(cls, raw: Any) -> Manifest:
        """Check the shape and types strictly: a manifest is untrusted until its checks pass."""
        d = _Fields(raw, "manifest")
        fmt = d.integer("format")
        if fmt != FORMAT_VERSION:
            raise BundleError(f"manifest format {fmt} is not supported (this workbench reads {FORMAT_VERSION})")
        externals = d.table("externals")
        for key, value in externals.items():
            if not isinstance(value, str | int | float | bool):
                raise BundleError(f"manifest: external {key!r} has an unsupported value {value!r}")
        manifest = cls(
            format=fmt,
            serial=d.integer("serial"),
            created=d.text("created"),
            commit=d.text("commit"),
            tool_version=d.text("tool_version"),
            libyara_version=d.text("libyara_version"),
            rule_count=d.integer("rule_count"),
            externals=dict(externals),
            sources=tuple(SourceEntry(path=e.text("path"), namespace=e.text("namespace"))
                          for e in d.items("sources")),
            rules=tuple(ManifestRule(name=e.text("name"), namespace=e.text("namespace"),
                                     fingerprint=e.text("fingerprint"), status=e.text("status"),
                                     file=e.text("file"))
                        for e in d.items("rules")),
            files=tuple(ManifestFile(path=e.text("path"), sha256=e.text("sha256"), size=e.integer("size"))
                        for e in d.items("files")),
            selftest=tuple(SelfTestVector(file=e.text("file"), rules=tuple(e.texts("rules")))
                           for e in d.items("selftest")),
        )
        manifest._check_consistency()
        return manifest

    def _check_consistency(self) -> None:
        if self.serial < 1:
            raise BundleError(f"manifest: serial {self.serial} is not a positive integer")
        if self.rule_count != len(self.rules):
            raise BundleError(f"manifest: rule_count {self.rule_count} but {len(self.rules)} rules listed")
        paths = [f.path for f in self.files]
        dup = [p for p, n in Counter(paths).items() if n > 1]
        if dup:
            raise BundleError(f"manifest: file listed twice: {dup[0]}")
        for f in self.files:
            check_member_name(f.path)
            if f.path == MANIFEST_NAME:
                raise BundleError("manifest: lists itself among its files")
            if not _SHA256.fullmatch(f.sha256):
                raise BundleError(f"manifest: {f.path}: sha256 {f.sha256!r} is not 64 hex digits")
            if f.size < 0:
                raise BundleError(f"manifest: {f.path}: negative size")
        listed = set(paths)
        if COMPILED_NAME not in listed:
            raise BundleError(f"manifest: {COMPILED_NAME} is not listed")
        for entry in self.sources:
            if entry.path not in listed:
                raise BundleError(f"manifest: source {entry.path} is not among the files")
        for vector in self.selftest:
            if vector.file not in listed:
                raise BundleError(f"manifest: self-test input {vector.file} is not among the files")
        names = Counter(r.name for r in self.rules)
        dup = [n for n, c in names.items() if c > 1]
        if dup:
            raise BundleError(f"manifest: rule {dup[0]} listed twice")
        for vector in self.selftest:
            unknown = [r for r in vector.rules if r not in names]
            if unknown:
                raise BundleError(f"manifest: self-test {vector.file} names unknown rule {unknown[0]}")


class _Fields:
    """Typed access to one JSON object, with errors that say where."""

    def __init__(self, raw: Any, where: str):
        if not isinstance(raw, dict):
            raise BundleError(f"{where}: expected an object")
        self.raw, self.where = raw, where

    def _get(self, key: str, kind: type | tuple[type, ...], label: str) -> Any:
        if key not in self.raw:
            raise BundleError(f"{self.where}: missing {key!r}")
        value = self.raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleError(f"{self.where}: {key!r} must be {label}")
        return value

    def integer(self, key: str) -> int:
        return int(self._get(key, int, "an integer"))

    def text(self, key: str) -> str:
        return str(self._get(key, str, "a string"))

    def table(self, key: str) -> dict[str, Any]:
        return dict(self._get(key, dict, "an object"))

    def texts(self, key: str) -> list[str]:
        value = self._get(key, list, "a list of strings")
        if not all(isinstance(v, str) for v in value):
            raise BundleError(f"{self.where}: {key!r} must be a list of strings")
        return list(value)

    def items(self, key: str) -> Iterator[_Fields]:
        value = self._get(key, list, "a list")
        for i, item in enumerate(value):
            yield _Fields(item, f"{self.where}.{key}[{i}]")


def check_member_name(name: str) -> None:
    """Refuse names that could escape the folder or that a ruleset should not hold."""
    if not _SAFE_NAME.fullmatch(name) or len(name) > 400:
        raise BundleError(f"unsafe or unsupported member name {name!r}")
    top = name.split("/", 1)[0]
    if name not in (MANIFEST_NAME, COMPILED_NAME) and top not in (RULES_DIR, SELFTEST_DIR):
        raise BundleError(f"unexpected member {name!r}")


# --- opening and extracting -------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A bundle file whose manifest and every member were checked against each other."""

    path: Path
    manifest: Manifest
    sha256: str
    size: int

    def extract_to(self, folder: Path, *, limits: Limits = DEFAULT_LIMITS) -> Path:
        """Unpack into ``folder`` (absent or empty), checking every member again on the way.

        The file is read again rather than trusted from ``open_bundle``: it may have
        changed since. On any failure the files written so far are removed.
        """
        folder = Path(folder)
        if folder.is_symlink():
            raise BundleError(f"{folder} is a symbolic link")
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            raise BundleError(f"{folder} is not empty")
        written: list[Path] = []
        try:
            for name, stream, _member in _members(self.path, limits, self.manifest):
                if name == MANIFEST_NAME:
                    data = stream.read()
                    if data != self.manifest.to_bytes() and Manifest.from_bytes(data) != self.manifest:
                        raise BundleError("manifest.json changed since the bundle was opened")
                    stream = io.BytesIO(data)
                target = _safe_target(folder, name)
                written.append(target)
                _write_member(target, stream, self.manifest.file(name), name)
        except BaseException:
            for path in reversed(written):
                path.unlink(missing_ok=True)
            _remove_empty_dirs(folder)
            raise
        return folder


def open_bundle(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Read the manifest and check every member's name, type, size and sha256 (nothing is unpacked)."""
    path = Path(path)
    manifest: Manifest | None = None
    digest = hashlib.sha256()
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    for name, stream, _member in _members(path, limits, None):
        if name == MANIFEST_NAME:
            manifest = Manifest.from_bytes(stream.read())
            continue
        assert manifest is not None       # _members guarantees the manifest comes first
        _hash_member(stream, manifest.file(name), name)
    assert manifest is not None
    return Bundle(path=path, manifest=manifest, sha256=digest.hexdigest(), size=size)


def _members(path: Path, limits: Limits,
             manifest: Manifest | None) -> Iterator[tuple[str, IO[bytes], tarfile.TarInfo]]:
    """Yield (name, stream, member) in archive order, enforcing the layout rules.

    The manifest must come first. Every later member must be a regular file listed in
    the manifest with the same size; every listed file must be present exactly once.
    """
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(path, mode="r:gz") as tf:
            first = True
            for member in tf:
                name = member.name
                if not member.isreg():
                    kind = ("directory" if member.isdir() else "link" if member.issym() or member.islnk()
                            else "device or special file")
                    raise BundleError(f"member {name!r} is a {kind}; bundles hold regular files only")
                check_member_name(name)
                if name in seen:
                    raise BundleError(f"member {name!r} appears twice")
                seen.add(name)
                if len(seen) > limits.max_files:
                    raise BundleError(f"more than {limits.max_files} members")
                if first:
                    if name != MANIFEST_NAME:
                        raise BundleError(f"the first member is {name!r}, not {MANIFEST_NAME}")
                    if member.size > limits.max_manifest_size:
                        raise BundleError(f"manifest.json is {member.size} bytes, over the cap")
                    first = False
                    stream = tf.extractfile(member)
                    assert stream is not None
                    data = stream.read()
                    if manifest is None:
                        manifest = Manifest.from_bytes(data)
                    yield name, io.BytesIO(data), member
                    continue
                assert manifest is not None
                listed = manifest.file(name)
                if listed is None:
                    raise BundleError(f"member {name!r} is not listed in the manifest")
                if member.size != listed.size:
                    raise BundleError(f"{name}: {member.size} bytes, the manifest says {listed.size}")
                if member.size > limits.max_file_size:
                    raise BundleError(f"{name}: {member.size} bytes, over the {limits.max_file_size} cap")
                total += member.size
                if total > limits.max_total_size:
                    raise BundleError(f"unpacked size over the {limits.max_total_size} byte cap")
                stream = tf.extractfile(member)
                assert stream is not None
                yield name, stream, member
            if first:
                raise BundleError("the archive is empty")
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError(f"not a readable bundle (truncated or corrupt): {exc}") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    assert manifest is not None
    missing = sorted(f.path for f in manifest.files if f.path not in seen)
    if missing:
        raise BundleError(f"member {missing[0]!r} is listed in the manifest but missing")


def _hash_member(stream: IO[bytes], listed: ManifestFile | None, name: str,
                 sink: IO[bytes] | None = None) -> None:
    assert listed is not None
    digest = hashlib.sha256()
    count = 0
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
        count += len(chunk)
        if count > listed.size:
            break
        if sink is not None:
            sink.write(chunk)
    if count != listed.size:
        raise BundleError(f"{name}: {count if count <= listed.size else 'more than ' + str(listed.size)} "
                          f"bytes, the manifest says {listed.size}")
    if digest.hexdigest() != listed.sha256:
        raise BundleError(f"{name}: sha256 does not match the manifest (tampered or corrupt)")


def _safe_target(folder: Path, name: str) -> Path:
    target = folder.joinpath(*name.split("/"))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    # A symlinked folder planted between two extractions must not redirect writes.
    if not parent.resolve().is_relative_to(folder.resolve()) or parent.is_symlink():
        raise BundleError(f"member {name!r} would be written outside {folder}")
    return target


def _write_member(target: Path, stream: IO[bytes], listed: ManifestFile | None, name: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise BundleError(f"member {name!r} would overwrite an existing file") from None
    with os.fdopen(fd, "wb") as out:
        if name == MANIFEST_NAME:
            out.write(stream.read())
        else:
            _hash_member(stream, listed, name, sink=out)


def _remove_empty_dirs(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            try:
                path.rmdir()
            except OSError:
                pass


# --- loading what was extracted -----------------------------------------------------


@dataclass(frozen=True)
class SelfTestResult:
    file: str
    expected: tuple[str, ...]
    matched: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(r for r in self.expected if r not in self.matched)


@dataclass
class LoadedRuleset:
    """Rules ready to scan with, and how they were obtained."""

    folder: Path
    manifest: Manifest
    loaded_from: str                 # "compiled" or "sources"
    fallback_reason: str             # why the sources were compiled ("" when compiled.yarc loaded)
    selftest: list[SelfTestResult]
    rules: yara.Rules = field(metadata={"internal": True}, repr=False)

    @property
    def rule_count(self) -> int:
        return self.manifest.rule_count


def read_manifest(folder: Path, *, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    path = Path(folder) / MANIFEST_NAME
    try:
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"{path} is missing or not a regular file")
        if path.stat().st_size > limits.max_manifest_size:
            raise BundleError(f"{path} is over the manifest size cap")
        return Manifest.from_bytes(path.read_bytes())
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None


def verify_extracted(folder: Path, manifest: Manifest) -> None:
    """Every listed file present, regular, of the listed size and sha256 (a damaged install fails)."""
    for listed in manifest.files:
        path = Path(folder).joinpath(*listed.path.split("/"))
        try:
            st = path.lstat()
        except OSError:
            raise BundleError(f"{listed.path} is missing from {folder}") from None
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{listed.path} is not a regular file")
        with open(path, "rb") as fh:
            _hash_member(fh, listed, listed.path)


def load_extracted(folder: str | os.PathLike[str], *, verify: bool = True,
                   prefer_compiled: bool = True,
                   selftest_timeout: int = SELFTEST_TIMEOUT) -> LoadedRuleset:
    """Load an unpacked bundle the way a tower does, or raise ``BundleError`` saying why not.

    Loads ``compiled.yarc`` when it was built by this libyara version, else compiles the
    sources; then checks the rule count, names and fingerprints against the manifest and
    runs the self-test vectors.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if verify:
        verify_extracted(folder, manifest)
    reason = ""
    rules: yara.Rules | None = None
    if prefer_compiled and manifest.libyara_version == yara.YARA_VERSION:
        try:
            rules = yara.load(filepath=str(folder / COMPILED_NAME))
        except yara.Error as exc:
            reason = f"compiled rules did not load ({exc}); compiled the sources"
    elif not prefer_compiled:
        reason = "compiling the sources as asked"
    else:
        reason = (f"compiled by libyara {manifest.libyara_version}, this is {yara.YARA_VERSION}; "
                  "compiled the sources")
    if rules is None:
        rules = compile_sources(folder, manifest.sources, manifest.externals)
    check_rules(rules, manifest)
    results = run_selftest(rules, folder, manifest.selftest, timeout=selftest_timeout)
    return LoadedRuleset(folder=folder, manifest=manifest,
                         loaded_from="sources" if reason else "compiled",
                         fallback_reason=reason, selftest=results, rules=rules)


def compile_sources(folder: Path, sources: tuple[SourceEntry, ...] | list[SourceEntry],
                    externals: Mapping[str, ExternalValue]) -> yara.Rules:
    """Compile the entry points, each namespace from an index of ``include`` lines.

    Going through ``include`` with absolute paths keeps libyara's own resolution of
    relative includes inside the sources (relative to the including file).
    """
    if not sources:
        raise BundleError("the bundle lists no rule sources")
    by_namespace: dict[str, list[str]] = {}
    root = Path(folder).resolve()
    for entry in sources:
        check_member_name(entry.path)
        path = root.joinpath(*entry.path.split("/"))
        by_namespace.setdefault(entry.namespace, []).append(f'include "{path.as_posix()}"')
    try:
        return yara.compile(sources={ns: "\n".join(lines) + "\n" for ns, lines in by_namespace.items()},
                            externals=dict(externals), includes=True)
    except yara.SyntaxError as exc:
        raise BundleError(f"the rule sources do not compile: {exc}") from None
    except yara.Error as exc:
        raise BundleError(f"the rule sources do not compile: {exc}") from None


def check_rules(rules: yara.Rules, manifest: Manifest) -> None:
    """The loaded rules are exactly the manifest's rules, with the same fingerprints."""
    loaded = list(rules)
    if len(loaded) != manifest.rule_count:
        raise BundleError(f"{len(loaded)} rules loaded, the manifest says {manifest.rule_count}")
    expected = {r.name: r for r in manifest.rules}
    seen: set[str] = set()
    for rule in loaded:
        listed = expected.get(rule.identifier)
        if listed is None or rule.identifier in seen:
            raise BundleError(f"rule {rule.identifier} is not (or not once) in the manifest")
        seen.add(rule.identifier)
        actual = rule.meta.get("fingerprint", "")
        if actual != listed.fingerprint:
            raise BundleError(f"rule {rule.identifier}: fingerprint {actual or '(none)'} "
                              f"differs from the manifest's {listed.fingerprint}")


def run_selftest(rules: yara.Rules, folder: Path, vectors: tuple[SelfTestVector, ...],
                 *, timeout: int = SELFTEST_TIMEOUT) -> list[SelfTestResult]:
    results = []
    for vector in vectors:
        path = Path(folder).joinpath(*vector.file.split("/"))
        try:
            data = path.read_bytes()
            matched = tuple(sorted({m.rule for m in rules.match(data=data, timeout=timeout)}))
        except OSError as exc:
            raise BundleError(f"self-test input {vector.file}: {exc.strerror or exc}") from None
        except yara.TimeoutError:
            raise BundleError(f"self-test {vector.file} timed out after {timeout} s") from None
        except yara.Error as exc:
            raise BundleError(f"self-test {vector.file} could not be scanned: {exc}") from None
        result = SelfTestResult(file=vector.file, expected=vector.rules, matched=matched)
        if result.missing:
            raise BundleError(f"self-test failed: {vector.file} was not matched by "
                              f"{', '.join(result.missing)}")
        results.append(result)
    return results


# --- building -------------------------------------------------------------------------


@dataclass
class PreparedBundle:
    """Everything of a bundle except its serial, commit and time: compiled and self-tested.

    Preparing is the slow part (compile, self-test); ``write`` only packs, so a release
    can prepare first and fail before it commits or tags anything.
    """

    sources: dict[str, bytes]
    entrypoints: tuple[SourceEntry, ...]
    rules: tuple[ManifestRule, ...]
    externals: dict[str, ExternalValue]
    compiled: bytes
    samples: dict[str, bytes]            # member name -> content
    selftest: tuple[SelfTestVector, ...]

    def manifest(self, *, serial: int, created: dt.datetime, commit: str) -> Manifest:
        files = [ManifestFile(path=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
                 for name, data in self._members()]
        return Manifest(
            format=FORMAT_VERSION, serial=serial, created=_iso(created), commit=commit,
            tool_version=workbench.__version__, libyara_version=yara.YARA_VERSION,
            rule_count=len(self.rules), externals=dict(sorted(self.externals.items())),
            sources=self.entrypoints, rules=self.rules, files=tuple(files),
            selftest=self.selftest)

    def _members(self) -> list[tuple[str, bytes]]:
        members = [(COMPILED_NAME, self.compiled), *self.sources.items(), *self.samples.items()]
        return sorted(members)

    def write(self, out: str | os.PathLike[str], *, serial: int, created: dt.datetime,
              commit: str) -> Bundle:
        """Pack the archive atomically (temporary file, fsync, rename) and open it to check it."""
        out = Path(out)
        manifest = self.manifest(serial=serial, created=created, commit=commit)
        mtime = int(_utc(created).timestamp())
        # closed in reverse: the tar, the gzip stream, then the file is synced and renamed
        with atomic_output(out, mode=0o644) as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, data in [(MANIFEST_NAME, manifest.to_bytes()), *self._members()]:
                tf.addfile(_tarinfo(name, len(data), mtime), io.BytesIO(data))
        return open_bundle(out)


def prepare_bundle(*, sources: Mapping[str, bytes], entrypoints: list[SourceEntry],
                   rules: list[ManifestRule], externals: Mapping[str, ExternalValue],
                   samples: Mapping[str, bytes], expected: Mapping[str, list[str]],
                   selftest_timeout: int = SELFTEST_TIMEOUT) -> PreparedBundle:
    """Compile the shipped sources, check them against ``rules`` and build the self-test vectors.

    ``sources`` maps member names under ``rules/`` to their bytes; ``samples`` maps a
    label (e.g. the corpus file's sha256) to input bytes, and ``expected`` the same label
    to the rules that must match it. A vector records every shipped rule that matched,
    so the tower checks at least as much as the build saw; a sample an expected rule
    misses stops the build.
    """
    for name in sources:
        check_member_name(name)
        if not name.startswith(RULES_DIR + "/"):
            raise BundleError(f"source {name!r} must live under {RULES_DIR}/")
    entry_names = {e.path for e in entrypoints}
    missing = sorted(entry_names - set(sources))
    if missing:
        raise BundleError(f"entry point {missing[0]} is not among the sources")
    for rule in rules:
        if not rule.fingerprint:
            raise BundleError(f"rule {rule.name} has no fingerprint; it cannot be checked on a tower")
    ordered_rules = tuple(sorted(rules, key=lambda r: (r.namespace, r.name)))
    ordered_entries = tuple(entrypoints)         # compile order matters: the caller's
    with tempfile.TemporaryDirectory(prefix="wb-bundle-") as tmp:
        root = Path(tmp)
        for name, data in sources.items():
            target = root.joinpath(*name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        compiled_rules = compile_sources(root, ordered_entries, externals)
    # The compiled set must be what the manifest will promise, or every tower would refuse it.
    draft = Manifest(format=FORMAT_VERSION, serial=1, created="", commit="", tool_version="",
                     libyara_version="", rule_count=len(ordered_rules), externals={},
                     sources=ordered_entries, rules=ordered_rules, files=(), selftest=())
    check_rules(compiled_rules, draft)
    buf = io.BytesIO()
    compiled_rules.save(file=buf)
    members: dict[str, bytes] = {}
    vectors = []
    for label, data in sorted(samples.items()):
        member = f"{SELFTEST_DIR}/{label}"
        check_member_name(member)
        try:
            matched = sorted({m.rule for m in compiled_rules.match(data=data, timeout=selftest_timeout)})
        except yara.Error as exc:
            raise BundleError(f"self-test sample {label} could not be scanned: {exc}") from None
        need = sorted(set(expected.get(label, ())))
        missed = [r for r in need if r not in matched]
        if missed:
            raise BundleError(f"self-test sample {label} is not matched by {', '.join(missed)}")
        if not matched:
            continue          # nothing to assert about this input
        members[member] = data
        vectors.append(SelfTestVector(file=member, rules=tuple(matched)))
    return PreparedBundle(sources=dict(sorted(sources.items())), entrypoints=ordered_entries,
                          rules=ordered_rules, externals=dict(sorted(externals.items())),
                          compiled=buf.getvalue(), samples=members, selftest=tuple(vectors))


def bundle_name(serial: int) -> str:
    return f"signatures-{serial}.tar.gz"


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def _iso(ts: dt.datetime) -> str:
    return _utc(ts).replace(microsecond=0).isoformat().replace("+00:00", "Z")
