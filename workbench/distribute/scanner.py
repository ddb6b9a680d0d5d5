"""The tower scanner's engine: decode a message, run the bundle's rules, judge it, count it.

No SMTP here (``smtp_filter`` wraps it): ``MessageScanner.scan(raw)`` takes the bytes
of one message and returns a ``ScanVerdict``. The rules come from the agent's
``install_dir/current``; a new bundle behind that link is loaded between messages, so
a message is always scanned by exactly one ruleset and nothing waits for a restart.

What is scanned: the whole message, every decoded MIME leaf (base64, quoted-printable),
and one level of members of zip, tar and gzip attachments, within the configured size,
count and time limits. What is judged: rule matches, and (for mail that matches
nothing) what looks like an unknown virus: executables, Office macros, double file
extensions, archives holding executables.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import io
import json
import os
import tarfile
import threading
import time
import tomllib
import zipfile
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yara

from workbench.durable import atomic_write
from workbench.errors import Kind, WorkbenchError
from workbench.humanize import parse_duration
from workbench.release.bundle import BundleError, LoadedRuleset, load_extracted

ACTIONS = ("deliver", "tag", "hold")
ERROR_ACTIONS = (*ACTIONS, "tempfail")
EXECUTABLE_EXTENSIONS = (
    "exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta",
    "ps1", "msi", "dll", "cpl", "jar", "lnk", "iso", "img",
)
MACRO_EXTENSIONS = ("docm", "xlsm", "pptm", "dotm", "xltm", "xlam", "ppam")
DOCUMENT_EXTENSIONS = (
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "rtf", "txt", "jpg", "jpeg", "png", "gif",
    "zip", "htm", "html", "csv", "odt",
)


class ScanConfigError(WorkbenchError):
    """A scanner setting that is missing, unreadable or wrong; the message names it."""

    kind = Kind.USAGE


@dataclass(frozen=True)
class ScanConfig:
    """``scanner.toml`` (every key optional): where to listen, where to re-inject, what to do."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 10025
    next_hop_host: str = "127.0.0.1"
    next_hop_port: int = 10026
    on_match: str = "tag"                  # deliver | tag | hold
    on_unknown: str = "tag"                # matched nothing, looks like an unknown virus
    on_error: str = "tag"                  # could not be scanned (limits, damage): + tempfail
    tag_header: str = "X-Workbench-Scan"
    copy_matches: bool = False             # also copy matched mail to the quarantine ("match: RULES"),
                                           # so analysts can dismiss false positives (rules health)
    max_message_bytes: int = 25 * 1024 * 1024   # larger: not scanned, judged as on_error
    max_part_bytes: int = 10 * 1024 * 1024      # larger decoded parts are cut to this
    max_parts: int = 200                        # MIME leaves and archive members together
    scan_timeout_seconds: float = 10.0          # all rules over all parts of one message
    unknown_executables: bool = True
    unknown_macros: bool = True
    unknown_double_extensions: bool = True
    unknown_archive_executables: bool = True
    executable_extensions: tuple[str, ...] = EXECUTABLE_EXTENSIONS
    stuck_after_seconds: float = 1800.0     # re-injection failing this long: copy to quarantine
    reinject_timeout_seconds: float = 60.0
    outbox_retry_seconds: float = 30.0      # between attempts to send the outbox
    stats_interval_seconds: float = 5.0     # how often the counters are written for the agent

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScanConfig:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ScanConfigError(f"{path}: no such scanner config") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScanConfigError(f"{path}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ScanConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_data(raw, base=path.parent, where=str(path))

    @classmethod
    def from_data(cls, raw: dict[str, Any], *, base: Path | None = None,
                  where: str = "scanner config") -> ScanConfig:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise ScanConfigError(f"{where}: unknown setting {key!r}")
            default = getattr(cls, key, None)
            if key.endswith("_seconds"):
                try:
                    value = parse_duration(value).total_seconds()
                except (ValueError, TypeError) as exc:
                    raise ScanConfigError(f"{where}: {key}: {exc}") from None
            elif key == "executable_extensions":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ScanConfigError(f"{where}: {key} must be a list of strings")
                value = tuple(v.lower().lstrip(".") for v in value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ScanConfigError(f"{where}: {key} must be true or false")
            elif isinstance(default, int):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ScanConfigError(f"{where}: {key} must be a non-negative integer")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ScanConfigError(f"{where}: {key} must be a string")
            values[key] = value
        config = cls(**values)
        config.check(where)
        return config

    def check(self, where: str = "scanner config") -> None:
        for name in ("on_match", "on_unknown"):
            if getattr(self, name) not in ACTIONS:
                raise ScanConfigError(f"{where}: {name} must be one of {', '.join(ACTIONS)}")
        if self.on_error not in ERROR_ACTIONS:
            raise ScanConfigError(f"{where}: on_error must be one of {', '.join(ERROR_ACTIONS)}")
        if not self.tag_header or any(c in self.tag_header for c in ": \r\n"):
            raise ScanConfigError(f"{where}: tag_header must be a header name")


# --- decoding ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One thing the rules run over: the message, a MIME leaf, or an archive member."""

    name: str                 # file name ("" for the message itself and unnamed leaves)
    where: str                # "message", "part 2", "part 2/member.exe"
    data: bytes
    content_type: str = ""
    in_archive: bool = False


@dataclass
class Decoded:
    parts: list[Part]
    problems: list[str]        # limits reached, damaged archives: scanned as far as possible


def decode_message(raw: bytes, config: ScanConfig) -> Decoded:
    """The message and its decoded parts, one level into archives, within the limits."""
    problems: list[str] = []
    parts = [Part("", "message", raw)]
    try:
        # compat32 (the default policy) parses several times faster than policy.default
        msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    except Exception as exc:                    # the stdlib parser can raise almost anything
        return Decoded(parts, [f"cannot parse the MIME structure: {exc}"])
    index = 0
    for leaf in msg.walk():
        if leaf.is_multipart():
            continue
        index += 1
        if len(parts) >= config.max_parts:
            problems.append(f"more than {config.max_parts} parts: the rest not scanned")
            break
        if leaf is msg and not msg.get("content-transfer-encoding"):
            continue                            # a single-part plain message: already scanned
        try:
            payload = leaf.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            name = leaf.get_filename() or ""
        except Exception as exc:
            problems.append(f"part {index}: cannot decode: {exc}")
            continue
        if len(data) > config.max_part_bytes:
            problems.append(f"part {index}: {len(data)} bytes, scanned the first "
                            f"{config.max_part_bytes}")
            data = data[:config.max_part_bytes]
        where = f"part {index}"
        parts.append(Part(str(name), where, data, leaf.get_content_type()))
        for member in _archive_members(data, str(name), where, config, problems,
                                       room=config.max_parts - len(parts)):
            parts.append(member)
    return Decoded(parts, problems)


def _archive_members(data: bytes, name: str, where: str, config: ScanConfig,
                     problems: list[str], *, room: int) -> list[Part]:
    """Members of a zip, tar or gzip part (one level: members are not opened in turn)."""
    out: list[Part] = []
    try:
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    if len(out) >= room:
                        problems.append(f"{where}: archive members over the part limit")
                        break
                    if info.flag_bits & 0x1:
                        out.append(Part(info.filename, f"{where}/{info.filename}", b"",
                                        in_archive=True))      # encrypted: the name still counts
                        continue
                    with zf.open(info) as fh:
                        body = fh.read(config.max_part_bytes + 1)
                    out.append(Part(info.filename, f"{where}/{info.filename}",
                                    body[:config.max_part_bytes], in_archive=True))
        elif data[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                inner = gz.read(config.max_part_bytes + 1)[:config.max_part_bytes]
            if len(inner) > 262 and inner[257:262] == b"ustar":
                return _tar_members(inner, where, config, problems, room)
            stem = name[:-3] if name.lower().endswith(".gz") else name
            out.append(Part(stem, f"{where}/{stem or 'gzip'}", inner, in_archive=True))
        elif len(data) > 262 and data[257:262] == b"ustar":
            return _tar_members(data, where, config, problems, room)
    except (zipfile.BadZipFile, OSError, EOFError, tarfile.TarError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        problems.append(f"{where}: damaged archive: {exc}")
    return out


def _tar_members(data: bytes, where: str, config: ScanConfig, problems: list[str],
                 room: int) -> list[Part]:
    out: list[Part] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for info in tf:
            if not info.isfile():
                continue
            if len(out) >= room:
                problems.append(f"{where}: archive members over the part limit")
                break
            fh = tf.extractfile(info)
            body = fh.read(config.max_part_bytes) if fh else b""
            out.append(Part(info.name, f"{where}/{info.name}", body, in_archive=True))
    return out


# --- what looks like an unknown virus ------------------------------------------------------------


def _extensions(name: str) -> list[str]:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower().strip(" .")
    return [e.strip() for e in base.split(".")[1:]]


def is_executable(part: Part, config: ScanConfig) -> bool:
    exts = _extensions(part.name)
    return (part.data[:2] == b"MZ" or part.data[:4] == b"\x7fELF"
            or bool(exts and exts[-1] in config.executable_extensions))


def has_macros(part: Part) -> bool:
    data = part.data
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":        # OLE2: a VBA storage in its directory
        return b"V\x00B\x00A\x00" in data or b"_\x00V\x00B\x00A\x00_\x00P" in data
    if data[:4] == b"PK\x03\x04":
        return b"vbaProject.bin" in data
    exts = _extensions(part.name)
    return bool(exts and exts[-1] in MACRO_EXTENSIONS)


def unknown_virus_reasons(parts: list[Part], config: ScanConfig) -> list[str]:
    """Why this mail looks like an unknown virus (empty: it does not), per the configuration."""
    reasons: list[str] = []
    for part in parts[1:]:
        label = part.name or part.where
        exts = _extensions(part.name)
        if (config.unknown_double_extensions and len(exts) >= 2 and exts[-2] in DOCUMENT_EXTENSIONS
                and exts[-1] in config.executable_extensions):
            reasons.append(f"double extension: {label}")
        elif part.in_archive and config.unknown_archive_executables and is_executable(part, config):
            reasons.append(f"archive holds an executable: {part.where}")
        elif not part.in_archive and config.unknown_executables and is_executable(part, config):
            reasons.append(f"executable: {label}")
        elif config.unknown_macros and has_macros(part):
            reasons.append(f"macros: {label}")
    return reasons


# --- rules and verdicts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanVerdict:
    """What the scanner decided about one message."""

    action: str                         # deliver | tag | hold | tempfail
    verdict: str                        # clean | match | unknown | error
    serial: int | None                  # the ruleset that judged it
    rules: tuple[str, ...] = ()         # matched rule names, sorted
    where: dict[str, list[str]] = field(default_factory=dict)   # rule -> parts it matched in
    unknown: tuple[str, ...] = ()       # why it looks like an unknown virus
    problems: tuple[str, ...] = ()      # limits reached, damage, timeouts
    parts: int = 0
    seconds: float = 0.0

    def quarantine_reason(self, config: ScanConfig) -> str:
        """Why a copy goes to the central quarantine ('' if none): unmatched unknown-virus mail,
        and matched mail when ``copy_matches`` is set."""
        if self.verdict == "unknown":
            return "unknown-virus: " + "; ".join(self.unknown)[:180]
        if self.verdict == "match" and config.copy_matches:
            return ("match: " + ",".join(self.rules))[:200]
        return ""

    def header_value(self) -> str:
        serial = f"serial={self.serial}" if self.serial is not None else "serial=none"
        if self.verdict == "match":
            return f"match; rules={','.join(self.rules)}; {serial}"
        if self.verdict == "unknown":
            return f"suspicious; {'; '.join(self.unknown)[:200]}; {serial}"
        if self.verdict == "error":
            return f"not-scanned; {'; '.join(self.problems)[:200]}; {serial}"
        return f"clean; {serial}"


class CurrentRules:
    """The rules behind ``install_dir/current``, re-loaded when the link moves.

    ``get()`` is called at the start of each message: a ``readlink`` (microseconds)
    tells whether the agent switched; a new bundle is loaded (verified and self-tested
    by ``load_extracted``) before that message, and a bundle that does not load leaves
    the old rules in service.
    """

    def __init__(self, install_dir: Path, *, log: Any = None):
        self.install_dir = Path(install_dir)
        self.log = log or (lambda _msg: None)
        self._lock = threading.Lock()
        self._target = ""
        self._failed_target = ""
        self.loaded: LoadedRuleset | None = None
        self.error = ""

    @property
    def serial(self) -> int | None:
        return self.loaded.manifest.serial if self.loaded else None

    def get(self) -> LoadedRuleset | None:
        try:
            target = os.readlink(self.install_dir / "current")
        except OSError:
            target = ""
        if target == self._target or target == self._failed_target or not target:
            return self.loaded
        with self._lock:
            if target != self._target and target != self._failed_target:
                try:
                    loaded = load_extracted((self.install_dir / target).resolve())
                except BundleError as exc:
                    self._failed_target = target
                    self.error = f"bundle {target} not loaded, kept serial {self.serial}: {exc.reason}"
                    self.log(self.error)
                else:
                    previous = self.serial
                    self.loaded, self._target, self.error = loaded, target, ""
                    self.log(f"rules: serial {loaded.manifest.serial} (was {previous})")
        return self.loaded


class MessageScanner:
    """Judge messages with the current rules; thread-safe (yara releases the GIL while matching)."""

    def __init__(self, rules: CurrentRules, config: ScanConfig, stats: ScanStats | None = None):
        self.rules = rules
        self.config = config
        self.stats = stats or ScanStats()

    def scan(self, raw: bytes) -> ScanVerdict:
        started = time.perf_counter()
        loaded = self.rules.get()
        serial = loaded.manifest.serial if loaded else None
        config = self.config
        if len(raw) > config.max_message_bytes:
            verdict = ScanVerdict(action=config.on_error, verdict="error", serial=serial,
                                  problems=(f"message of {len(raw)} bytes is over the "
                                            f"{config.max_message_bytes}-byte limit",))
            return self._count(verdict, started)
        decoded = decode_message(raw, config)
        problems = list(decoded.problems)
        where: dict[str, list[str]] = {}
        errors = False
        if loaded is None:
            problems.append("no rules installed")
            errors = True
        else:
            deadline = started + config.scan_timeout_seconds
            for part in decoded.parts:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    problems.append(f"scan time limit ({config.scan_timeout_seconds:g} s) reached "
                                    f"at {part.where}")
                    errors = True
                    break
                if not part.data:
                    continue
                try:
                    matches = loaded.rules.match(data=part.data, timeout=max(1, int(remaining + 0.999)),
                                                 fast=True)
                except yara.TimeoutError:
                    problems.append(f"scan time limit reached in {part.where}")
                    errors = True
                    break
                except yara.Error as exc:
                    problems.append(f"{part.where}: {exc}")
                    errors = True
                    continue
                for m in matches:
                    where.setdefault(m.rule, []).append(part.where)
        if where:
            verdict = ScanVerdict(action=config.on_match, verdict="match", serial=serial,
                                  rules=tuple(sorted(where)), where=where,
                                  problems=tuple(problems), parts=len(decoded.parts))
        else:
            unknown = unknown_virus_reasons(decoded.parts, config)
            if unknown:
                verdict = ScanVerdict(action=config.on_unknown, verdict="unknown", serial=serial,
                                      unknown=tuple(unknown), problems=tuple(problems),
                                      parts=len(decoded.parts))
            elif errors:
                verdict = ScanVerdict(action=config.on_error, verdict="error", serial=serial,
                                      problems=tuple(problems), parts=len(decoded.parts))
            else:
                verdict = ScanVerdict(action="deliver", verdict="clean", serial=serial,
                                      problems=tuple(problems), parts=len(decoded.parts))
        return self._count(verdict, started)

    def _count(self, verdict: ScanVerdict, started: float) -> ScanVerdict:
        seconds = time.perf_counter() - started
        self.stats.add(verdict, seconds)
        return ScanVerdict(**{**verdict.__dict__, "seconds": round(seconds, 6)})


def tag_message(raw: bytes, header: str, value: str) -> bytes:
    """The message with one header line added at the top (the rest byte for byte)."""
    eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    clean = value.replace("\r", " ").replace("\n", " ")
    return f"{header}: {clean}".encode("utf-8", "replace") + eol + raw


# --- counters for the fleet report ---------------------------------------------------------------------


@dataclass
class ScanStats:
    """Cumulative counters since the scanner started (``started`` tells a restart apart)."""

    started: str = ""
    messages: int = 0
    scan_seconds: float = 0.0
    errors: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    rule_hits: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    held: int = 0
    stuck: int = 0
    serial: int | None = None
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, verdict: ScanVerdict, seconds: float) -> None:
        with self._lock:
            self.messages += 1
            self.scan_seconds += seconds
            self.verdicts[verdict.verdict] += 1
            self.serial = verdict.serial
            if verdict.verdict == "error":
                self.errors += 1
                self.last_error = "; ".join(verdict.problems)[:300]
            for rule in verdict.rules:
                self.rule_hits[rule] += 1

    def bump(self, name: str, by: int = 1, *, error: str = "") -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)
            if error:
                self.last_error = error[:300]

    def to_data(self) -> dict[str, Any]:
        with self._lock:
            return {"started": self.started, "messages": self.messages,
                    "scan_seconds": round(self.scan_seconds, 6), "errors": self.errors,
                    "verdicts": dict(self.verdicts), "rule_hits": dict(self.rule_hits),
                    "quarantined": self.quarantined, "held": self.held, "stuck": self.stuck,
                    "serial": self.serial, "last_error": self.last_error}

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.to_data(), sort_keys=True) + "\n")


STATS_NAME = "stats.json"


def scanner_dir(install_dir: Path) -> Path:
    """Where the scanner keeps its outbox, held mail, stuck records and counters."""
    return Path(install_dir) / "scanner"


def read_stats(state_dir: Path) -> dict[str, Any] | None:
    """The scanner's newest counters (what the agent puts in its fleet report), or None."""
    try:
        data = json.loads((Path(state_dir) / STATS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
