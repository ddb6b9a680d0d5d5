"""The demo's local lab: an update repository, ``workbench serve`` on loopback and a few tower agents.

Publishing and the fleet board then work from the UI with no shell: the lab keeps its
keys, tokens, agent configs, install folders and logs under ``state/lab/`` of the demo
workspace, starts the server and the agents as real processes (the same commands an
operator runs) and stops them when the UI exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from workbench.workspace import Workspace

# (tower, server): towers of the demo quarantine, one mail server each
LAB_TOWERS = (("ams-t03", "mx01"), ("fra-t07", "mx02"), ("iad-t12", "mx03"), ("sin-t21", "mx04"))
LAB_POLL_SECONDS = 2.0
_RUN_WORKBENCH = "import sys; from workbench.cli import main; sys.exit(main())"


class LabError(Exception):
    """The lab could not be prepared or started; the message says why."""


@dataclass
class LabPrepared:
    """What ``prepare_lab`` did: keys and repository made, the first release published."""

    folder: str
    repository_created: bool = False
    released_serial: int | None = None
    published_serial: int | None = None
    towers: list[str] = field(default_factory=list)


def lab_folder(workspace: Workspace) -> Path:
    return workspace.state / "lab"


def prepare_lab(workspace: Workspace) -> LabPrepared:
    """Keys and the update repository (once), a first release of the signatures published
    (when nothing is published yet), and a token per lab tower (once)."""
    from workbench.distribute.settings import RepositorySettings
    from workbench.distribute.tokens import TokenStore
    from workbench.distribute.update_repository import UpdateRepository, publish_bundle
    from workbench.release.release_store import ReleaseStore
    from workbench.release.service import make_release

    folder = lab_folder(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    report = LabPrepared(str(folder))
    repository = UpdateRepository.for_workspace(workspace)
    if not repository.exists():
        repository.init(RepositorySettings())
        report.repository_created = True
    if repository.newest_serial() is None:
        store = ReleaseStore(workspace)
        latest = store.latest()
        if latest is None:
            outcome = make_release(workspace, message="Signatures as the demo found them")
            report.released_serial = outcome.serial
            bundle = Path(outcome.bundle_path)
        else:
            bundle = Path(latest.bundle_path)
        publish_bundle(repository, bundle)
        report.published_serial = repository.newest_serial()
    tokens_file = folder / "tokens.json"
    known: dict[str, str] = json.loads(tokens_file.read_text()) if tokens_file.exists() else {}
    for tower, _server in LAB_TOWERS:
        if tower not in known:
            known[tower] = TokenStore.for_workspace(workspace).add(tower, label="demo lab")[1]
    from workbench.durable import atomic_write

    atomic_write(tokens_file, json.dumps(known, indent=2).encode(), mode=0o600)
    report.towers = [t for t, _ in LAB_TOWERS]
    return report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Lab:
    """The running lab: the server's and the agents' processes."""

    workspace: Workspace
    port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = lab_folder(self.workspace) / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-c", _RUN_WORKBENCH, "--home", str(self.workspace.home),
                 *(["--signatures", str(self.workspace.signatures_override)]
                   if self.workspace.signatures_override else []), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)    # a ^C in the UI's terminal is the UI's, not theirs

    def start(self, *, timeout: float = 30.0) -> Lab:
        """Start ``workbench serve`` on a free loopback port and wait until it answers, then
        one agent per lab tower (its config rewritten for this port)."""
        from workbench.distribute.tower_config import TowerConfig
        from workbench.distribute.update_repository import UpdateRepository
        from workbench.durable import atomic_write

        folder = lab_folder(self.workspace)
        tokens = json.loads((folder / "tokens.json").read_text())
        stop_leftovers(self.workspace)
        self.port = self.port or _free_port()
        self._spawn("serve", ["serve", "--host", "127.0.0.1", "--port", str(self.port)])
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/repository/metadata/timestamp.json",
                                            timeout=2):
                    break
            except OSError:
                if self.processes["serve"].poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise LabError(f"workbench serve did not start on {self.url}; see "
                                   f"{folder / 'logs' / 'serve.log'}") from None
                time.sleep(0.1)
        root = UpdateRepository.for_workspace(self.workspace).trusted_root.read_bytes()
        for tower, server in LAB_TOWERS:
            home = folder / "towers" / tower
            pinned = home / "install" / "root.json"
            pinned.parent.mkdir(parents=True, exist_ok=True)
            if not pinned.exists():        # pinned once, like a real tower: later roots come by TUF
                atomic_write(pinned, root, mode=0o644)
            config = TowerConfig(repository_url=f"{self.url}/repository", trusted_root=pinned,
                                 install_dir=home / "install", tower=tower, server=server,
                                 token=tokens[tower], poll_seconds=LAB_POLL_SECONDS,
                                 timeout_seconds=5.0)
            path = config.write(home / "agent.toml", overwrite=True)
            self._spawn(f"agent-{tower}", ["tower", "run", "--config", str(path)])
        (folder / "lab.json").write_text(json.dumps(
            {"url": self.url, "pids": {n: p.pid for n, p in self.processes.items()}}, indent=2))
        return self

    def hold_signals(self) -> None:
        """Turn SIGHUP (the terminal closed) and SIGTERM into SystemExit in this process, so
        that ``with lab`` stops the lab instead of leaving its processes behind."""
        def leave(signum: int, _frame: object) -> None:
            raise SystemExit(128 + signum)

        for signum in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(signum, leave)

    def running(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.processes.items()}

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM each process (the agents finish their attempt), then wait; SIGKILL after
        ``timeout``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        (lab_folder(self.workspace) / "lab.json").unlink(missing_ok=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_leftovers(workspace: Workspace) -> list[int]:
    """Stop the processes of a lab whose owner died without stopping them (``lab.json``
    still names them): a leftover agent holds its install folder's lock, and a new one
    would wait for it forever. Only processes that still run this workspace's workbench."""
    record = lab_folder(workspace) / "lab.json"
    if not record.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(record.read_text()).get("pids", {}).values()]
    except (ValueError, AttributeError):
        pids = []
    stopped = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(workspace.home).encode() in cmdline and _RUN_WORKBENCH.encode() in cmdline:
            try:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + 10
    for pid in stopped:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    record.unlink(missing_ok=True)
    return stopped
