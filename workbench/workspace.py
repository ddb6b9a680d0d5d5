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
    host_name: str | None = None  # ``serve --host-name``: the name this host journals as

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

    def missing(self) -> str:
        """Why this is not a workspace a command may use ("" when it is one): a home folder
        that does not exist is a typo until ``workbench init`` creates it."""
        if not self.home.exists():
            return f"no workspace at {self.home}"
        if not self.home.is_dir():
            return f"{self.home} is not a folder"
        return ""


@dataclass(frozen=True)
class CreatedWorkspace:
    """What ``workbench init`` made (or found already there)."""

    home: str
    signatures: str
    signatures_created: bool        # a new git repository (seeded from ``seeded_from`` if given)
    seeded_from: str = ""
    commit: str = ""                # its first commit, when it was seeded


def create_workspace(workspace: Workspace, *, signatures_from: Path | None = None) -> CreatedWorkspace:
    """Create the home, its quarantine and state folders and, unless one is there, a
    signature repository that is a git repository of its own (a copy of
    ``signatures_from``, committed once), so that commits and release tags made in this
    workspace never land in another repository's history."""
    import shutil
    import subprocess

    workspace.ensure()
    sig = workspace.signatures
    if (sig / ".git").exists():
        return CreatedWorkspace(str(workspace.home), str(sig), False)
    if sig.exists() and any(sig.iterdir()):
        raise FileExistsError(f"{sig} exists and is not a git repository of its own: "
                              "make it one (git init) or name another with --signatures")
    if signatures_from is not None:
        source = Path(signatures_from).resolve()
        if not (source / "workbench.toml").is_file():
            raise FileNotFoundError(f"{source} is not a signature repository (no workbench.toml)")
        # the copy starts its own history: the source's changelog belongs to the source's releases
        shutil.copytree(source, sig, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", "CHANGELOG.md"))
    else:
        (sig / "rules").mkdir(parents=True, exist_ok=True)
    git = ["git", "-C", str(sig), "-c", f"user.name={current_actor()}",
           "-c", "user.email=workbench@localhost"]
    subprocess.run([*git, "init", "-q"], check=True, capture_output=True)
    commit = ""
    if signatures_from is not None:
        subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-q", "-m", f"Signatures from {signatures_from}"],
                       check=True, capture_output=True)
        commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                                text=True).stdout.strip()
    return CreatedWorkspace(str(workspace.home), str(sig), True,
                            str(Path(signatures_from).resolve()) if signatures_from else "", commit)


def current_actor() -> str:
    """Who is acting, for the audit log: ``$WORKBENCH_ACTOR`` or the login name."""
    actor = os.environ.get(ACTOR_ENV)
    if actor:
        return actor
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid{os.getuid()}"
