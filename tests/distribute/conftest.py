"""Fixtures for distribution tests: bundles built in code, a repository, a real server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.distribute.bundles import make_bundle, make_failing_selftest_bundle
from workbench.distribute.repository import UpdateRepository
from workbench.distribute.server import ServerSettings, make_app, uvicorn_config
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.tower_config import TowerConfig
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``make_app`` under a real uvicorn on a loopback port, in a thread; stoppable and restartable."""

    def __init__(self, workspace: Workspace, *, settings: ServerSettings | None = None,
                 wrap: Callable[[Any], Any] | None = None):
        self.workspace = workspace
        self.settings = settings
        self.wrap = wrap
        self.port = free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.app: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repository_url(self) -> str:
        return f"{self.url}/repository"

    def start(self) -> LiveServer:
        self.app = make_app(self.workspace, self.settings)
        config = uvicorn_config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                wrapped=self.wrap(self.app) if self.wrap else None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.server = self.thread = None


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
