"""The dissection documents: artifact nodes, the whole tree, limits, and what a dissector returns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OK = "ok"
PARTIAL = "partial"
LIMIT_HIT = "limit-hit"
TIMED_OUT = "timed-out"
PARSER_ERROR = "parser-error"
STATUSES = (OK, PARTIAL, LIMIT_HIT, TIMED_OUT, PARSER_ERROR)
# The worse of two statuses wins when a node collects several problems.
_SEVERITY = {OK: 0, PARTIAL: 1, LIMIT_HIT: 2, TIMED_OUT: 3, PARSER_ERROR: 4}

MiB = 1 << 20


def worse(a: str, b: str) -> str:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


@dataclass(frozen=True)
class Limits:
    """What one dissection may spend; every hit shows on the node that hit it."""

    max_input: int = 100 * MiB            # the message (or file) itself
    max_child: int = 25 * MiB             # one extracted child
    max_total: int = 100 * MiB            # all expanded bytes of one message
    max_depth: int = 6                    # nesting of artifacts below the root
    max_children: int = 500               # extracted artifacts per message
    max_archive_entries: int = 1000
    max_mime_parts: int = 10_000
    max_mime_depth: int = 100             # multipart nesting inside one message
    max_pdf_objects: int = 250
    ratio_flag: float = 100.0             # compression ratio that gets a flag
    timeout: float = 10.0                 # seconds per dissector call
    slow_timeout: float = 60.0            # 7z and PDF
    memory: int = 512 * MiB               # address space a worker may add to its baseline
    fuzzy_max: int = 100 * MiB            # ssdeep up to this size (libfuzzy: ~100 MB/s)
    isolate: bool = True                  # run dissectors in worker processes
    sandbox: str = "auto"                 # auto | require | off: see workbench.dissect.sandbox

    HARD_MAX_DEPTH = 15

    def __post_init__(self) -> None:
        if not 0 <= self.max_depth <= self.HARD_MAX_DEPTH:
            raise ValueError(f"depth must be 0..{self.HARD_MAX_DEPTH}, not {self.max_depth}")
        if self.sandbox not in ("auto", "require", "off"):
            raise ValueError(f"sandbox must be auto, require or off, not {self.sandbox!r}")

    def fingerprint(self) -> str:
        """Identifies the limits that change a dissector's output (for the report cache)."""
        relevant = {k: v for k, v in dataclasses.asdict(self).items()
                    if k not in ("timeout", "slow_timeout", "memory", "isolate", "sandbox", "max_depth",
                                 "max_total", "max_children", "fuzzy_max")}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Fingerprint:
    """What a file's bytes hash to, and their entropy: computed without parsing anything."""

    md5: str
    sha1: str
    ssdeep: str
    tlsh: str
    entropy: float
    entropy_window: int                   # bytes per point of ``entropy_windows``
    entropy_windows: list[float]
    notes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Identity(Fingerprint):
    """What any file is, whatever its format: the fingerprint, the sha256 and the detected type."""

    size: int
    sha256: str
    magic: str
    mime: str

    @classmethod
    def of(cls, *, size: int, sha256: str, magic: str, mime: str, fingerprint: Fingerprint,
           notes: list[str] | None = None) -> Identity:
        shared = {f.name: getattr(fingerprint, f.name) for f in dataclasses.fields(Fingerprint)}
        shared["notes"] = [*fingerprint.notes, *(notes or [])]
        return cls(size=size, sha256=sha256, magic=magic, mime=mime, **shared)


@dataclass
class Child:
    """One artifact a dissector extracted (inside the worker: bytes travel back with it)."""

    name: str                             # raw name as found (member name, filename parameter)
    data: bytes = field(repr=False, metadata={"internal": True})
    declared_type: str = ""               # e.g. the part's Content-Type
    segment: str = ""                     # path segment; defaults to the sanitised name
    note: str = ""                        # how it was found: "zip member", "overlay", "password: infected"


@dataclass
class ChildRef:
    """A child as the report cache keeps it: the bytes are in the object store."""

    name: str
    sha256: str
    size: int
    declared_type: str = ""
    segment: str = ""
    note: str = ""


@dataclass
class DissectResult:
    report: Any = None
    children: list[Child] = field(default_factory=list)
    status: str = OK
    reason: str = ""
    # False when the answer says more about this machine than about the bytes (a backend
    # library missing): the report cache must not keep it once the library is installed.
    cacheable: bool = True

    def problem(self, status: str, reason: str) -> None:
        """Record a problem; the worst status stays, reasons accumulate."""
        self.status = worse(self.status, status)
        self.reason = f"{self.reason}; {reason}" if self.reason else reason


@dataclass
class Artifact:
    """One node of the tree: a message, a MIME part, an archive member, an embedded object ..."""

    path: str                             # message/part 2/invoice.zip/payload.exe
    filename: str                         # raw, as declared (may hold RTLO and ../)
    safe_name: str                        # what the workbench shows and would save as
    declared_type: str
    magic: str
    mime: str
    extension: str
    flags: list[str]                      # extension-mismatch, declared-mismatch, double-extension, rtlo ...
    size: int
    md5: str
    sha1: str
    sha256: str
    ssdeep: str
    tlsh: str
    entropy: float
    entropy_window: int
    entropy_windows: list[float]
    depth: int = 0
    dissector: str = ""                   # "" when no dissector applies
    dissector_version: int = 0
    status: str = OK
    reason: str = ""
    note: str = ""                        # how the parent found it
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    isolation: str = ""                   # what the parsers of this node ran in (sandbox, limits only ...)
    elapsed_ms: float = 0.0
    report: Any = None
    children: list[Artifact] = field(default_factory=list)

    def walk(self) -> Iterator[Artifact]:
        """This node and every descendant, depth first (iteratively: trees can be deep)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, path: str) -> Artifact | None:
        return next((n for n in self.walk() if n.path == path), None)


@dataclass
class Dissection:
    """A whole dissection: the tree plus what it cost and which limits applied."""

    root: Artifact
    message_sha256: str
    nodes: int
    expanded_bytes: int
    elapsed_ms: float
    limits: Limits
    problems: list[str] = field(default_factory=list)   # "path: status: reason" for every non-ok node

    @property
    def status(self) -> str:
        worst = OK
        for node in self.root.walk():
            worst = worse(worst, node.status)
        return worst
