"""What search may know of a dissected message: text of its text parts, names, strings, hashes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.dissect.model import Artifact
from workbench.dissect.strings import iter_strings

# Bounds, so that one huge message cannot swell the index: what a search can reach in a
# message is its first BODY_MAX characters of text and STRINGS_MAX of strings.
BODY_MAX = 256 * 1024
STRINGS_MAX = 512 * 1024
READ_MAX = 8 * 1024 * 1024            # bytes of one artifact read for its text or strings
MIN_STRING = 5


@dataclass
class SearchableContent:
    body: str = ""
    names: str = ""
    strings: str = ""
    hashes: list[tuple[str, str]] = field(default_factory=list)   # (kind, value)


def _is_text(node: Artifact) -> bool:
    return node.mime.startswith("text/") or node.declared_type.startswith("text/")


_PACKED = ("zip", "rar", "7z", "compressed", "gzip", "bzip2", "x-xz", "x-tar", "cab",
           "ms-tnef", "ole-storage")


def _is_packed(node: Artifact) -> bool:
    """A container whose bytes hold its children compressed or encoded (their strings are
    searched in the children); a PE or a document with children keeps its own strings."""
    mime = node.mime.lower()
    return mime.startswith(("multipart/", "message/")) or any(k in mime for k in _PACKED)


def searchable_content(root: Artifact, read: Callable[[str, int], bytes]) -> SearchableContent:
    """The content of a dissected message's tree; ``read(sha256, limit)`` gives an artifact's
    bytes (the quarantine's object store)."""
    out = SearchableContent()
    bodies: list[str] = []
    names: list[str] = []
    strings: list[str] = []
    body_left, strings_left = BODY_MAX, STRINGS_MAX
    seen: set[str] = set()
    for node in root.walk():
        if node is root:
            continue
        for kind in ("sha256", "sha1", "md5", "ssdeep"):
            value = getattr(node, kind, "")
            if value:
                out.hashes.append((kind, value.lower() if kind != "ssdeep" else value))
        imphash = getattr(node.report, "imphash", "") if node.report is not None else ""
        if isinstance(imphash, str) and imphash:
            out.hashes.append(("imphash", imphash.lower()))
        if node.filename:
            names.append(node.filename)
        if node.sha256 in seen or (node.children and _is_packed(node)):
            continue            # an archive's own bytes are its children's, compressed
        seen.add(node.sha256)
        if _is_text(node) and body_left > 0:
            text = read(node.sha256, min(READ_MAX, body_left * 4)).decode("utf-8", "replace")
            bodies.append(text[:body_left])
            body_left -= len(bodies[-1])
        elif not _is_text(node) and strings_left > 0:
            data = read(node.sha256, READ_MAX)
            for found in iter_strings(data, min_len=MIN_STRING):
                strings.append(found.text)
                strings_left -= len(found.text) + 1
                if strings_left <= 0:
                    break
    out.body = "\n".join(bodies)
    out.names = "\n".join(names)
    out.strings = "\n".join(strings)
    return out
