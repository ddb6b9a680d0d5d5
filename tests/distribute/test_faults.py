"""Fault injection on real processes: kill -9 at every durable step of publish, keys rotate and
tower pull, and a full disk on a tower (a real tmpfs when the test may mount one, else ENOSPC
injected at the step).

Each asserts what docs/distribution.md ("Guarantees") promises: the server keeps answering
polls, the tower keeps scanning with a valid bundle, and the next ordinary run finishes or
undoes what was interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.disks import fill, small_tmpfs
from tests.support.live_server import LiveServer
from workbench.distribute.agent import TowerAgent, load_current
from workbench.distribute.crashpoints import CRASH_ENV, DISK_FULL_ENV
from workbench.distribute.fleet import FleetStore, ServerRecord
from workbench.distribute.install import InstallDir
from workbench.distribute.keys import KeyRing, write_private_key
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.exitcodes import E_FINDINGS, E_LOCAL, E_OK
from workbench.samples.mail import EICAR
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

WORKBENCH = Path(sys.executable).with_name("workbench")       # the installed entry point
KILLED = -9


def workbench(workspace: Workspace, *args: str | Path, crash: str = "", disk_full: str = "",
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, DISK_FULL_ENV)}
    if crash:
        env[CRASH_ENV] = crash
    if disk_full:
        env[DISK_FULL_ENV] = disk_full
    return subprocess.run([str(WORKBENCH), "--home", str(workspace.home), *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def scanning(config: TowerConfig) -> int:
    """The tower's current rules load, pass their self-tests and catch EICAR; their serial."""
    loaded = load_current(config.install_dir)
    assert "eicar_test_file" in {m.rule for m in loaded.rules.match(data=EICAR)}
    return loaded.manifest.serial


def polls_answered(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.get("/repository/metadata/timestamp.json")
        assert first.status_code == 200
        assert client.get("/repository/metadata/timestamp.json",
                          headers={"if-none-match": first.headers["etag"]}).status_code == 304
        assert client.get("/v1/health").status_code == 200


def fleet_record(workspace: Workspace) -> ServerRecord:
    with FleetStore.for_workspace(workspace) as store:
        return {r.server: r for r in store.records()}["s01"]


@pytest.fixture
def reload_log(tmp_path: Path) -> Path:
    return tmp_path / "reloads.log"


@pytest.fixture
def config_file(tmp_path: Path, tower_config: TowerConfig, reload_log: Path) -> Path:
    """The tower's config on disk, with a reload command that logs the serial it loads."""
    command = [sys.executable, "-c",
               f"import os; open({str(reload_log)!r}, 'a').write(os.environ['WORKBENCH_SERIAL'] + '\\n')"]
    path = tmp_path / "tower.toml"
    dataclasses.replace(tower_config, reload_command=command).write(path)
    return path


def reloaded(reload_log: Path) -> list[str]:
    return reload_log.read_text().split() if reload_log.exists() else []


# --- publish ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["publish:target-stored", "publish:targets-written",
                                  "publish:snapshot-written", "publish:timestamp-written"])
def test_publish_killed_at_each_step(step: str, workspace: Workspace, repo: UpdateRepository,
                                     bundles: dict, live_server: LiveServer,
                                     tower_config: TowerConfig) -> None:
    publish_bundle(repo, bundles[1])
    assert TowerAgent(tower_config).pull().serial == 1
    killed = workbench(workspace, "publish", "--bundle", bundles[2], crash=step)
    assert killed.returncode == KILLED, killed.stderr
    polls_answered(live_server)
    after = TowerAgent(tower_config).pull()
    assert after.state == "ok", after.error              # old or new: always a valid bundle
    assert scanning(tower_config) in (1, 2)
    assert workbench(workspace, "publish", "--bundle", bundles[2]).returncode == E_OK
    status = workbench(workspace, "keys", "status")
    assert status.returncode == E_OK and "verified" in status.stdout, status.stdout + status.stderr
    assert TowerAgent(tower_config).pull().serial == 2
    assert scanning(tower_config) == 2


# --- keys rotate -----------------------------------------------------------------------------------


ROTATE_STEPS = ["rotate:staged", "rotate:committed", "rotate:key-installed", "rotate:root-written",
                "rotate:metadata-written"]


@pytest.mark.parametrize(("step", "role"), [(step, "targets") for step in ROTATE_STEPS]
                         + [("rotate:root-written", "timestamp"), ("rotate:committed", "root")])
def test_keys_rotate_killed_at_each_step_completes_or_rolls_back(
        step: str, role: str, workspace: Workspace, repo: UpdateRepository, bundles: dict,
        live_server: LiveServer, tower_config: TowerConfig) -> None:
    publish_bundle(repo, bundles[1])
    assert TowerAgent(tower_config).pull().serial == 1
    old_key = repo.keys.path(role).read_bytes()
    killed = workbench(workspace, "keys", "rotate", role, crash=step)
    assert killed.returncode == KILLED, killed.stderr
    polls_answered(live_server)
    status = workbench(workspace, "keys", "status")
    assert "rotation" in status.stderr, status.stderr            # the interruption is named
    if step == "rotate:root-written":
        # the live root trusts the new key while the rest is still signed by the old one:
        # a tower refuses it, and keys status says so instead of "online"
        assert status.returncode == E_FINDINGS and "REFUSED" in status.stdout
    attempt = TowerAgent(tower_config).pull()                      # refused or not: still scanning
    assert scanning(tower_config) == 1, attempt.error
    # the next ordinary run (cron's publish --refresh) finishes or rolls back
    assert workbench(workspace, "publish", "--refresh").returncode == E_OK
    status = workbench(workspace, "keys", "status")
    assert status.returncode == E_OK and "verified" in status.stdout, status.stdout + status.stderr
    assert "rotation" not in status.stderr
    assert not (repo.root / ".rotation").exists() and not (repo.keys.folder / ".rotating").exists()
    committed = step != "rotate:staged"
    assert (repo.keys.path(role).read_bytes() != old_key) == committed
    assert repo.root_md().signed.version == (2 if committed else 1)
    publish_bundle(repo, bundles[2])
    assert TowerAgent(tower_config).pull().serial == 2, "towers follow the rotation"


def test_a_key_file_the_root_does_not_trust_is_not_called_online(
        workspace: Workspace, repo: UpdateRepository, tmp_path: Path) -> None:
    stranger = KeyRing(tmp_path / "stranger").generate("timestamp")
    write_private_key(repo.keys.path("timestamp"), stranger.private_bytes, overwrite=True)
    status = workbench(workspace, "keys", "status", "--json")
    assert status.returncode == E_OK           # what is published still verifies ...
    roles = {r["role"]: r for r in json.loads(status.stdout)["roles"]}
    assert roles["timestamp"]["key_online"] and roles["timestamp"]["key_trusted"] is False
    assert roles["targets"]["key_trusted"] is True
    assert any("not a key the root trusts" in w for w in json.loads(status.stdout)["warnings"])
    assert workbench(workspace, "publish", "--refresh").returncode != E_OK   # ... re-signing fails


# --- tower pull ------------------------------------------------------------------------------------


PULL_STEPS = ["pull:lock-written", "pull:downloaded", "pull:extracting", "pull:committed",
              "pull:reload-recorded", "pull:switched", "pull:reloaded"]


@pytest.mark.parametrize("step", PULL_STEPS)
def test_tower_pull_killed_at_each_step(step: str, workspace: Workspace, repo: UpdateRepository,
                                        bundles: dict, live_server: LiveServer,
                                        tower_config: TowerConfig, config_file: Path,
                                        reload_log: Path) -> None:
    publish_bundle(repo, bundles[1])
    assert workbench(workspace, "tower", "pull", "--config", config_file).returncode == E_OK
    publish_bundle(repo, bundles[2])
    killed = workbench(workspace, "tower", "pull", "--config", config_file, crash=step)
    assert killed.returncode == KILLED, killed.stderr
    assert scanning(tower_config) in (1, 2)                  # a valid bundle, whatever happened
    polls_answered(live_server)
    status = workbench(workspace, "tower", "status", "--config", config_file)
    assert status.returncode == E_OK, status.stdout
    done = workbench(workspace, "tower", "pull", "--config", config_file)
    assert done.returncode == E_OK, done.stdout + done.stderr
    assert scanning(tower_config) == 2
    # the scanner was told: its last reload is of serial 2, and nothing is left pending
    assert reloaded(reload_log)[-1] == "2"
    state = InstallDir(tower_config.install_dir).load_state()
    assert state.reload_pending is None and state.installed_serial == 2
    assert state.highest_serial == 2                                # the rollback floor moved
    record = fleet_record(workspace)
    assert (record.state, record.serial) == ("ok", 2)


# --- a full disk on the tower ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only); skipped where mounting is not allowed."""
    with small_tmpfs(tmp_path / "disk", "1m") as folder:
        yield folder


def test_a_full_disk_on_the_tower_is_reported_red_and_the_bundle_kept(
        small_disk: Path, workspace: Workspace, repo: UpdateRepository, bundles: dict,
        live_server: LiveServer, tower_config: TowerConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(tower_config, install_dir=small_disk / "install")
    config_file = config.write(tmp_path / "tower-small.toml")
    publish_bundle(repo, bundles[1])
    assert workbench(workspace, "tower", "pull", "--config", config_file).returncode == E_OK
    publish_bundle(repo, bundles[2])
    filler = fill(small_disk)
    full = workbench(workspace, "tower", "pull", "--config", config_file)
    assert full.returncode == E_LOCAL, full.stdout + full.stderr
    assert "Traceback" not in full.stderr and "No space left on device" in full.stdout
    record = fleet_record(workspace)
    assert record.state == "failed" and "No space left on device" in record.error
    assert record.serial == 1
    assert scanning(config) == 1
    looping = workbench(workspace, "tower", "run", "--config", config_file, "--max-attempts", "2")
    assert looping.returncode == E_OK and "Traceback" not in looping.stderr, looping.stderr
    filler.unlink()
    assert workbench(workspace, "tower", "pull", "--config", config_file).returncode == E_OK
    assert scanning(config) == 2


@pytest.mark.parametrize("step", ["pull:lock-written", "pull:extracting"])
def test_enospc_injected_at_a_step_is_a_red_report_not_a_crash(
        step: str, workspace: Workspace, repo: UpdateRepository, bundles: dict,
        live_server: LiveServer, tower_config: TowerConfig, config_file: Path) -> None:
    """The same promise where no tmpfs can be mounted: ENOSPC raised at the named step."""
    publish_bundle(repo, bundles[1])
    assert workbench(workspace, "tower", "pull", "--config", config_file).returncode == E_OK
    publish_bundle(repo, bundles[2])
    full = workbench(workspace, "tower", "pull", "--config", config_file, disk_full=step)
    assert "Traceback" not in full.stderr, full.stderr
    if step == "pull:lock-written":      # only the pid note is lost: the pull goes on
        assert full.returncode == E_OK and scanning(tower_config) == 2
        return
    assert full.returncode == E_LOCAL and "No space left on device" in full.stdout
    record = fleet_record(workspace)
    assert record.state == "failed" and "No space left on device" in record.error
    assert scanning(tower_config) == 1
    assert not any((tower_config.install_dir / "staging").iterdir())   # the space is given back
