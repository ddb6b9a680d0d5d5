"""Fixtures for distribution tests: bundles built in code, a repository, a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bundles import make_bundle, make_failing_selftest_bundle
from tests.support.live_server import LiveServer
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository
from workbench.workspace import Workspace


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Path]:
    """Serials 1-4 (1 rule, 2 and 3 with two rules) and a signed bundle that fails its self-test."""
    folder = tmp_path_factory.mktemp("bundles")
    built: dict[Any, Path] = {1: make_bundle(folder / "1", 1)}
    for serial in (2, 3, 4):
        built[serial] = make_bundle(folder / str(serial), serial, ("eicar_test_file", "gtube_test_mail"))
    built["selftest"] = make_failing_selftest_bundle(folder / "bad", 5)
    return built


@pytest.fixture
def repo(workspace: Workspace) -> UpdateRepository:
    repository = UpdateRepository.for_workspace(workspace)
    repository.init(RepositorySettings())
    return repository


@pytest.fixture
def live_server(workspace: Workspace, repo: UpdateRepository) -> Iterator[LiveServer]:
    server = LiveServer(workspace).start()
    yield server
    server.stop()


@pytest.fixture
def tower_token(workspace: Workspace) -> str:
    return TokenStore.for_workspace(workspace).add("t01")[1]


@pytest.fixture
def tower_config(tmp_path: Path, live_server: LiveServer, repo: UpdateRepository,
                 tower_token: str) -> TowerConfig:
    """An agent config for tower t01, server s01, pinning a copy of the repository's root."""
    pinned = tmp_path / "tower" / "root.json"
    pinned.parent.mkdir(parents=True)
    pinned.write_bytes(repo.trusted_root.read_bytes())
    return TowerConfig(repository_url=live_server.repository_url, trusted_root=pinned,
                       install_dir=tmp_path / "tower" / "install", tower="t01", server="s01",
                       token=tower_token, poll_seconds=0.05, timeout_seconds=5.0)
