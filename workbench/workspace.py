"""Where the workbench keeps its data: the home folder and the paths beneath it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "WORKBENCH_HOME"
SIGNATURES_ENV = "WORKBENCH_SIGNATURES"
ACTOR_ENV = "WORKBENCH_ACTOR"


@dataclass(frozen=True)
class Workspace:
    """A workbench home folder.

    ``home/quarantine`` is the central quarantine, ``home/signatures`` the
    signature repository (unless another one is named), ``home/state`` holds
    everything the workbench derives or keeps for itself: corpora registry,
    scan caches, releases, keys, the update repository and server tokens.
    """

    home: Path
    signatures_override: Path | None = None
    index: str | None = None      # ``--index``: the quarantine index's address, if not the default

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None,
                signatures: str | os.PathLike[str] | None = None,
                index: str | None = None) -> Workspace:
        """Pick the home: ``--home``, then ``$WORKBENCH_HOME``, then the current folder."""
        chosen = home or os.environ.get(HOME_ENV) or os.getcwd()
        sig = signatures or os.environ.get(SIGNATURES_ENV)
        return cls(Path(chosen).expanduser().resolve(),
                   Path(sig).expanduser().resolve() if sig else None, index or None)

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def signatures(self) -> Path:
        return self.signatures_override or (self.home / "signatures")

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def corpora(self) -> Path:
        """Folders of sample files the demo lays out for corpus registration."""
        return self.state / "corpora"

    def ensure(self) -> Workspace:
        for folder in (self.quarantine, self.state):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def current_actor() -> str:
    """Who is acting, for the audit log: ``$WORKBENCH_ACTOR`` or the login name."""
    actor = os.environ.get(ACTOR_ENV)
    if actor:
        return actor
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid{os.getuid()}"
