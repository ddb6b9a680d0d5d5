"""The catalog of extracted artifacts: what dissection pulled out of which message, for corpora and rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.dissect.cache import DissectCache, cache_path
from workbench.dissect.model import Limits
from workbench.workspace import Workspace


@dataclass(frozen=True)
class ExtractedArtifact:
    sha256: str
    filename: str
    mime: str
    size: int
    message_sha256: str
    path: Path                    # the object in the quarantine store (read-only)
    tree_path: str = ""           # where it sat: message/part 2/invoice.zip/payload.exe
    depth: int = 0
    status: str = "ok"


def _object_path(workspace: Workspace, sha256: str) -> Path:
    return workspace.quarantine / "objects" / sha256[:2] / sha256[2:4] / sha256


def _open(workspace: Workspace) -> DissectCache | None:
    path = cache_path(workspace)
    return DissectCache(path, readonly=True) if path.exists() else None


def _rows(workspace: Workspace, sql: str, args: tuple[object, ...]) -> list[ExtractedArtifact]:
    cache = _open(workspace)
    if cache is None:
        return []
    try:
        rows = cache.query(sql, args)
    finally:
        cache.close()
    return [ExtractedArtifact(r["sha256"], r["filename"], r["mime"], r["size"], r["message_sha256"],
                              _object_path(workspace, r["sha256"]), r["path"], r["depth"], r["status"])
            for r in rows]


def iter_extracted(workspace: Workspace, *, unique: bool = True, batch: int = 1000) -> Iterator[ExtractedArtifact]:
    """Every extracted artifact of every dissected message (``unique``: each sha256 once, first seen)."""
    last = ("", "")
    seen: set[str] = set()
    while True:
        rows = _rows(workspace, "SELECT * FROM extracted WHERE (message_sha256, path) > (?, ?) "
                                "ORDER BY message_sha256, path LIMIT ?", (*last, batch))
        if not rows:
            return
        for row in rows:
            if unique:
                if row.sha256 in seen:
                    continue
                seen.add(row.sha256)
            yield row
        last = (rows[-1].message_sha256, rows[-1].tree_path)


def find_parents(workspace: Workspace, sha256: str) -> list[ExtractedArtifact]:
    """Where a file was found: one entry per (message, position) that held it."""
    return _rows(workspace, "SELECT * FROM extracted WHERE sha256 = ? ORDER BY message_sha256, path", (sha256,))


def undissected(workspace: Workspace) -> list[str]:
    """Quarantined messages the catalog does not cover yet."""
    from workbench.quarantine.service import Quarantine

    with Quarantine.open(workspace) as q:
        messages = q.index.all_shas()
    cache = _open(workspace)
    done = cache.dissected_messages() if cache else set()
    if cache:
        cache.close()
    return sorted(messages - done)


def catalog_all(workspace: Workspace, *, progress: Callable[[int, int, str], None] | None = None,
                limits: Limits | None = None) -> int:
    """Dissect every message not yet in the catalog; returns how many were dissected."""
    from workbench.dissect.engine import dissect_message
    from workbench.quarantine.service import Quarantine

    todo = undissected(workspace)
    with Quarantine.open(workspace) as q:
        for i, sha in enumerate(todo, start=1):
            dissect_message(q, sha, limits=limits)
            if progress is not None:
                progress(i, len(todo), sha)
    return len(todo)
