"""What an analyst's target names: a quarantined message, a stored object, or a file on disk.

One resolver for every command and screen that takes "an id or a file" (``dissect``,
``strings``, ``rule draft --from``, the UI opening a matched sample): a quarantine
id (full sha256 or a unique prefix), then a stored object (an extracted artifact or a
corpus file, full or a unique prefix of 4+ characters), then, where files are allowed, a
path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import Kind, WorkbenchError

if TYPE_CHECKING:
    from workbench.quarantine.service import Quarantine

_HEX = re.compile(r"[0-9a-fA-F]{1,64}")

MESSAGE = "message"
OBJECT = "object"
FILE = "file"


class TargetNotFound(WorkbenchError, LookupError):
    """Nothing answers to the target, or a prefix answers to more than one thing."""

    kind = Kind.NOT_FOUND

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Target:
    """A resolved target: ``kind`` is "message", "object" or "file"; ``sha256`` is "" for a file."""

    kind: str
    sha256: str
    path: Path


def may_be_id(ident: str) -> bool:
    """Whether ``ident`` could be a sha256 or a prefix of one (hex, at most 64 characters)."""
    return bool(_HEX.fullmatch(ident.strip()))


def plain_file(ident: str) -> Path | None:
    """The file ``ident`` names when it cannot be an id: resolved without the quarantine
    (dissecting a small file is otherwise mostly the quarantine's start-up)."""
    path = Path(ident)
    return path if not may_be_id(ident) and path.is_file() else None


def resolve_target(q: Quarantine, ident: str, *, files: bool = False) -> Target:
    """A message id, else a stored object's id, else (with ``files``) a file path.

    Raises TargetNotFound when nothing answers, or when a prefix answers to several
    messages (``ambiguous``): the error says which.
    """
    from workbench.quarantine.index import AmbiguousId, UnknownId
    from workbench.quarantine.object_store import ObjectNotFound

    ident = ident.strip()
    why = f"{ident!r} is not a sha256 or an id prefix"
    if may_be_id(ident):
        try:
            sha = q.resolve(ident)
            return Target(MESSAGE, sha, q.store.path_for(sha))
        except AmbiguousId as exc:
            raise TargetNotFound(str(exc.args[0]), ambiguous=True) from None
        except UnknownId:
            pass
        try:
            sha = q.store.resolve(ident)
            return Target(OBJECT, sha, q.store.path_for(sha))
        except ObjectNotFound as exc:
            # a prefix too short or matching several objects says so; else: nothing has that id
            why = str(exc) if len(ident) < 4 or "matches" in str(exc) else ""
    if files:
        path = Path(ident)
        if path.is_file():
            return Target(FILE, "", path)
        raise TargetNotFound(f"{ident}: not a quarantine ID, a stored sha256 or a file")
    raise TargetNotFound(f"{ident}: {why}" if why else
                         f"{ident}: no such object in the quarantine (no message or stored file has that id)")
