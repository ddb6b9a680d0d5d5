"""The whole loop's world: a demo quarantine, a git signature repository, a server and two towers.

Built for the end-to-end test and the walkthrough's screenshots: the demo's quarantine
(with the unknown "WbStealer" sample) and corpora, the house signatures in a fresh
git repository released once as serial 1 and published, a real ``workbench serve``
app under uvicorn on a loopback port, and two real tower agents polling it in threads.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.live_server import LiveServer
from tests.support.signatures import HOUSE, init_repo
from workbench.demo.seed import seed_demo
from workbench.distribute.agent import TowerAgent
from workbench.distribute.fleet import FleetState, FleetStore
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.release.service import make_release
from workbench.workspace import Workspace

TOWERS = (("ams-t03", "mx01"), ("fra-t07", "mx02"))
POLL = 0.2          # seconds between agent polls: the board sees a new serial within a second


@dataclass
class Loop:
    workspace: Workspace
    signatures: Path
    server: LiveServer
    agents: list[TowerAgent] = field(default_factory=list)

    def fleet(self) -> FleetState:
        repository = UpdateRepository.for_workspace(self.workspace)
        with FleetStore.for_workspace(self.workspace) as store:
            return store.state(repository.newest_serial())


def wait_for(condition: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():          # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.05)


@contextmanager
def running_loop(base: Path) -> Iterator[Loop]:
    """Everything up: serial 1 published and both towers on it; stopped and joined on exit."""
    signatures = base / "signatures"
    shutil.copytree(HOUSE, signatures, ignore=shutil.ignore_patterns("CHANGELOG.md"))
    init_repo(signatures, "house rules")
    workspace = Workspace.resolve(base / "home", signatures=signatures).ensure()
    seed_demo(workspace, messages=0)          # every threat family once, WbStealer included
    repository = UpdateRepository.for_workspace(workspace)
    repository.init(RepositorySettings())
    first = make_release(workspace, message="house rules")
    publish_bundle(repository, Path(first.bundle_path))
    server = LiveServer(workspace).start()
    loop = Loop(workspace, signatures, server)
    stop = threading.Event()
    threads = []
    tokens = TokenStore.for_workspace(workspace)
    try:
        for tower, name in TOWERS:
            pinned = base / tower / "root.json"
            pinned.parent.mkdir(parents=True)
            pinned.write_bytes(repository.trusted_root.read_bytes())
            config = TowerConfig(repository_url=server.repository_url, trusted_root=pinned,
                                 install_dir=base / tower / "install", tower=tower, server=name,
                                 token=tokens.add(tower)[1], poll_seconds=POLL, timeout_seconds=5.0)
            agent = TowerAgent(config)
            loop.agents.append(agent)
            thread = threading.Thread(target=agent.run, args=(stop,), daemon=True,
                                      name=f"agent-{tower}")
            thread.start()
            threads.append(thread)
        wait_for(lambda: [s.serial for s in loop.fleet().servers] == [1, 1], what="both towers on serial 1")
        yield loop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        server.stop()
