"""Signature repositories for the release tests: a copy of the house tree in a fresh git repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.signatures import HOUSE, SigRepo, init_repo
from workbench.workspace import Workspace


@pytest.fixture
def sig(tmp_path: Path) -> SigRepo:
    """The house signatures, committed once, in a repository of their own."""
    root = tmp_path / "signatures"
    shutil.copytree(HOUSE, root, ignore=shutil.ignore_patterns("CHANGELOG.md"))
    repo = init_repo(root, "house rules")
    workspace = Workspace.resolve(tmp_path / "home", signatures=root).ensure()
    return SigRepo(root, repo, workspace)


