"""The dissector interface and the registry that picks one from the detected and declared type."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import ClassVar

from workbench.dissect.model import DissectResult, Limits

# Dissector modules, in priority order (the first that accepts a file wins).
DISSECTOR_MODULES = (
    "workbench.dissect.formats.message",
    "workbench.dissect.formats.tnef",
    "workbench.dissect.formats.office",
    "workbench.dissect.formats.archive",
    "workbench.dissect.formats.pdf",
    "workbench.dissect.formats.pe",
    "workbench.dissect.formats.html",
)
# How much of a file a dissector sees to decide (readers find "%PDF-" within the first 1,024 bytes,
# Office XML names its program in a processing instruction after the XML declaration).
HEAD_BYTES = 4096


@dataclass
class DissectContext:
    """What a dissector knows besides the bytes (it runs in a worker and sees nothing else)."""

    filename: str
    declared_type: str
    mime: str
    magic: str
    limits: Limits
    passwords: list[str] = field(default_factory=list)   # archive passwords: defaults + words from the body
    budget: int = 0                       # expanded bytes this message may still produce
    children_left: int = 0                # children this message may still produce


class Dissector:
    """One format. Subclasses set the class attributes and implement :meth:`dissect`."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    slow: ClassVar[bool] = False          # gets ``Limits.slow_timeout`` (7z, PDF)
    uses_passwords: ClassVar[bool] = False
    mimes: ClassVar[tuple[str, ...]] = ()            # exact detected/declared MIME types
    mime_prefixes: ClassVar[tuple[str, ...]] = ()
    magic_words: ClassVar[tuple[str, ...]] = ()      # substrings of libmagic's description
    extensions: ClassVar[tuple[str, ...]] = ()       # used only when the content is text or unknown
    prefixes: ClassVar[tuple[bytes, ...]] = ()       # leading bytes

    def accepts(self, *, mime: str, magic: str, declared: str, extension: str, head: bytes) -> bool:
        if mime in self.mimes or any(mime.startswith(p) for p in self.mime_prefixes):
            return True
        if any(w in magic for w in self.magic_words):
            return True
        if self.prefixes and any(head.startswith(p) for p in self.prefixes):
            return True
        vague = mime in ("text/plain", "application/octet-stream", "") or mime.startswith("text/")
        if vague and declared in self.mimes:
            return True
        return bool(vague and extension and extension in self.extensions)

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:  # pragma: no cover
        raise NotImplementedError


_REGISTRY: list[Dissector] | None = None


def registry() -> list[Dissector]:
    """Every dissector, in priority order (imported on first use: the formats pull in oletools etc.)."""
    global _REGISTRY
    if _REGISTRY is None:
        found: list[Dissector] = []
        for name in DISSECTOR_MODULES:
            module = importlib.import_module(name)
            found.extend(cls() for cls in module.DISSECTORS)
        _REGISTRY = found
    return _REGISTRY


def by_name(name: str) -> Dissector:
    for d in registry():
        if d.name == name:
            return d
    raise KeyError(name)


def choose(*, mime: str, magic: str, declared: str, extension: str, head: bytes,
           is_root: bool = False) -> Dissector | None:
    declared = declared.split(";")[0].strip().lower()
    if is_root:
        return by_name("message")
    for d in registry():
        if d.accepts(mime=mime, magic=magic, declared=declared, extension=extension, head=head):
            return d
    return None


@dataclass
class NodePlan:
    """How a node's dissector is picked and run once its type is known.

    The engine sends it to the worker with the bytes, so identification, the choice and
    the dissection take one trip (``task_node``); the same rules apply in the parent when
    the identity came from a cache.
    """

    declared: str                         # declared Content-Type
    extension: str
    ctx: DissectContext                   # mime and magic are filled in once known
    force: str = ""                       # a dissector the caller insists on (the message at the root)
    may_dissect: bool = True              # False at the depth limit: the dissector is named, not run

    def pick(self, *, mime: str, magic: str, head: bytes) -> str:
        if self.force:
            return by_name(self.force).name
        d = choose(mime=mime, magic=magic, declared=self.declared, extension=self.extension, head=head)
        return d.name if d is not None else ""


def versions() -> dict[str, int]:
    return {d.name: d.version for d in registry()}
