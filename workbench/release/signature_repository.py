"""The signature repository in git (through GitPython): changes, trees at a revision, commits, tags.

The signatures folder may be a whole repository or a folder inside a bigger one (as
``signatures/`` is inside the workbench's own repository); paths given to and returned
by this module are relative to the signatures folder unless said otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError
from git.objects import Blob

from workbench.errors import Kind, WorkbenchError
from workbench.workspace import current_actor

TAG_PATTERN = re.compile(r"signatures-([1-9][0-9]*)")
_SYMLINK_MODE = 0o120000


class SignatureRepositoryError(WorkbenchError):
    """A git operation the user can act on failed (unknown revision, no repository, dirty tree)."""

    kind = Kind.CONFLICT


@dataclass(frozen=True)
class TreeFile:
    path: str           # relative to the signatures folder, POSIX
    data: bytes


class SignatureRepository:
    """A signatures folder, and the git repository holding it (``None`` when it is not in one)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.repo: git.Repo | None
        try:
            self.repo = git.Repo(self.root, search_parent_directories=True)
        except (InvalidGitRepositoryError, NoSuchPathError):
            self.repo = None
        self.prefix = ""
        if self.repo is not None and self.repo.working_tree_dir:
            top = Path(self.repo.working_tree_dir).resolve()
            rel = self.root.relative_to(top).as_posix()
            self.prefix = "" if rel == "." else rel

    def require_git(self) -> git.Repo:
        if self.repo is None:
            raise SignatureRepositoryError(f"{self.root} is not inside a git repository")
        return self.repo

    def _top_path(self, rel: str) -> str:
        """A signatures-relative path as a path from the repository top."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _from_top(self, top_rel: str) -> str | None:
        if not self.prefix:
            return top_rel
        if top_rel.startswith(self.prefix + "/"):
            return top_rel[len(self.prefix) + 1:]
        return None

    # --- revisions

    def commit(self, rev: str = "HEAD") -> git.Commit:
        repo = self.require_git()
        try:
            return repo.commit(rev)
        except (BadName, ValueError, GitCommandError):
            raise SignatureRepositoryError(f"unknown revision {rev!r}", kind=Kind.NOT_FOUND) from None

    def has_commits(self) -> bool:
        repo = self.require_git()
        try:
            repo.head.commit  # noqa: B018 -- raises on an unborn branch
        except ValueError:
            return False
        return True

    def dirty_paths(self) -> list[str]:
        """Uncommitted changes and untracked files under the signatures folder."""
        repo = self.require_git()
        scope = self.prefix or "."
        out = repo.git.status("--porcelain", "-z", "--no-renames", "--untracked-files=all", "--", scope)
        paths = []
        for entry in out.split("\0"):
            if len(entry) > 3:
                rel = self._from_top(entry[3:])
                if rel is not None:
                    paths.append(rel)
        return sorted(set(paths))

    def changed_since(self, rev: str) -> list[str]:
        """Files under the signatures folder that differ between ``rev`` and the working tree.

        Committed, staged and unstaged changes, deletions and untracked files all count.
        """
        repo = self.require_git()
        base = self.commit(rev)
        scope = self.prefix or "."
        out = repo.git.diff("--name-only", "--no-renames", "-z", base.hexsha, "--", scope)
        untracked = repo.git.ls_files("--others", "--exclude-standard", "-z", "--", scope)
        paths = set()
        for top_rel in [*out.split("\0"), *untracked.split("\0")]:
            if top_rel:
                rel = self._from_top(top_rel)
                if rel is not None:
                    paths.add(rel)
        return sorted(paths)

    def files_at(self, rev: str, under: str = "") -> Iterator[TreeFile]:
        """Regular files of the signatures folder (or ``under`` in it) as committed at ``rev``."""
        commit = self.commit(rev)
        sub = self._top_path(under) if under else self.prefix
        try:
            tree = commit.tree / sub if sub else commit.tree
        except KeyError:
            return
        items = [tree] if isinstance(tree, Blob) else tree.traverse()
        for item in items:
            if not isinstance(item, Blob) or item.mode == _SYMLINK_MODE:
                continue
            rel = self._from_top(str(item.path))
            if rel is None:
                continue
            yield TreeFile(rel, item.data_stream.read())

    def export(self, rev: str, dest: Path) -> Path:
        """Write the signatures folder as committed at ``rev`` into ``dest`` (a fresh folder)."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for f in self.files_at(rev):
            target = dest.joinpath(*PurePosixPath(f.path).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.data)
        return dest

    # --- tags

    def release_tags(self) -> dict[int, git.TagReference]:
        repo = self.require_git()
        out = {}
        for tag in repo.tags:
            m = TAG_PATTERN.fullmatch(tag.name)
            if m:
                out[int(m.group(1))] = tag
        return out

    def max_tag_serial(self) -> int:
        if self.repo is None:
            return 0
        return max(self.release_tags(), default=0)

    def create_tag(self, name: str, commit: git.Commit, message: str) -> git.TagReference:
        repo = self.require_git()
        if name in [t.name for t in repo.tags]:
            raise SignatureRepositoryError(f"tag {name} already exists")
        # the message goes through a file: a big release's changelog is too long for a command line
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt") as fh:
            fh.write(message)
            fh.flush()
            with self._identity():
                repo.git.tag("-a", "-F", fh.name, "--", name, commit.hexsha)
        return next(t for t in repo.tags if t.name == name)

    def restore_path(self, rel: str) -> None:
        """Put ``rel`` (signatures-relative) back as committed at HEAD; removed if not there."""
        repo = self.require_git()
        top = self._top_path(rel)
        try:
            repo.head.commit.tree / top
        except KeyError:
            (self.root / rel).unlink(missing_ok=True)
            return
        repo.git.checkout("HEAD", "--", top)

    # --- commits

    def commit_paths(self, paths: list[str], message: str) -> git.Commit:
        """Commit exactly ``paths`` (signatures-relative), whatever else is staged."""
        repo = self.require_git()
        top = [self._top_path(p) for p in paths]
        # a deleted file is committed as deleted: only what still exists can be added
        repo.index.add([t for t, p in zip(top, paths, strict=True) if (self.root / p).exists()])
        with self._identity():
            repo.git.commit("--only", "--no-verify", "-m", message, "--", *top)
        return repo.head.commit

    @contextlib.contextmanager
    def _identity(self) -> Iterator[None]:
        """Use the configured git identity; fall back to the workbench actor when there is none."""
        repo = self.require_git()
        reader = repo.config_reader()
        env: dict[str, str] = {}
        if not (reader.has_option("user", "name") or os.environ.get("GIT_AUTHOR_NAME")):
            actor = current_actor()
            env.update(GIT_AUTHOR_NAME=actor, GIT_COMMITTER_NAME=actor)
        if not (reader.has_option("user", "email") or os.environ.get("GIT_AUTHOR_EMAIL")):
            email = f"{current_actor()}@workbench.invalid"
            env.update(GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_EMAIL=email)
        with repo.git.custom_environment(**env):
            yield


def commit_time(commit: git.Commit) -> dt.datetime:
    return commit.committed_datetime.astimezone(dt.UTC)
