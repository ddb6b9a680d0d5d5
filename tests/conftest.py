"""Shared fixtures: a fresh workspace per test, and small synthetic messages built in code."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """An empty workspace home in a temporary folder."""
    return Workspace.resolve(tmp_path / "home").ensure()


@pytest.fixture
def quarantine(workspace: Workspace):
    q = Quarantine.open(workspace)
    yield q
    q.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's workspace or identity."""
    for name in ("WORKBENCH_HOME", "WORKBENCH_SIGNATURES", "WORKBENCH_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKBENCH_ACTOR", "tester")
    # Dissect workers come from a fork server of this test process, not the user's shared
    # one, which would outlive the run.
    monkeypatch.setenv("WORKBENCH_DISSECT_SERVER", "private")
