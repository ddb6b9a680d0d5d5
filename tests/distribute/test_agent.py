"""Real agents against a real server on loopback: every attack and accident is refused or survived,
the server keeps scanning with its current rules, and the fleet report says why."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import TargetFile

from tests.support.bundles import make_bundle
from tests.support.live_server import LiveServer
from workbench.distribute.agent import PullResult, TowerAgent, load_current, next_delay
from workbench.distribute.fleet import FleetEvent, FleetStore, ServerRecord
from workbench.distribute.install import AgentBusy, InstallDir
from workbench.distribute.keys import KeyRing
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.samples.mail import EICAR
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def scanning_with(config: TowerConfig, serial: int) -> None:
    """The install's current rules load, pass their self-tests and still catch EICAR."""
    loaded = load_current(config.install_dir)
    assert loaded.manifest.serial == serial
    assert "eicar_test_file" in {m.rule for m in loaded.rules.match(data=EICAR)}


def fleet_record(workspace: Workspace, server: str = "s01") -> ServerRecord:
    with FleetStore.for_workspace(workspace) as store:
        return {r.server: r for r in store.records()}[server]


def history(workspace: Workspace) -> list[FleetEvent]:
    with FleetStore.for_workspace(workspace) as store:
        return store.events(tower="t01", server="s01")


def installed(repo: UpdateRepository, bundles: dict, config: TowerConfig, serial: Any) -> PullResult:
    publish_bundle(repo, bundles[serial])
    result = TowerAgent(config).pull()
    assert result.state == "ok", result.error
    return result


# --- the normal path ------------------------------------------------------------------------------


def test_install_upgrade_and_a_no_change_poll(repo: UpdateRepository, bundles: dict,
                                              tower_config: TowerConfig, workspace: Workspace) -> None:
    agent = TowerAgent(tower_config)
    empty = agent.pull()
    assert empty.state == "ok" and empty.serial is None
    publish_bundle(repo, bundles[1])
    first = agent.pull()
    assert (first.state, first.serial, first.changed, first.loaded_from) == ("ok", 1, True, "compiled")
    assert first.bytes_downloaded > bundles[1].stat().st_size
    assert (tower_config.install_dir / "current").readlink() == Path("bundles/1")
    scanning_with(tower_config, 1)
    quiet = agent.pull()
    assert (quiet.checked, quiet.requests, quiet.bytes_downloaded, quiet.changed) == \
        ("not-modified", 1, 0, False)
    publish_bundle(repo, bundles[2])
    second = agent.pull()
    assert (second.serial, second.previous_serial, second.changed) == (2, 1, True)
    scanning_with(tower_config, 2)
    record = fleet_record(workspace)
    assert (record.state, record.serial, record.rule_count, record.error) == ("ok", 2, 2, "")
    assert [e.state for e in reversed(history(workspace))] == \
        ["ok", "updating", "ok", "updating", "ok"]


def test_keeps_three_bundles_and_runs_the_reload_command(repo: UpdateRepository, bundles: dict,
                                                         tower_config: TowerConfig,
                                                         tmp_path: Path) -> None:
    log = tmp_path / "reloads.log"
    script = ("import os; open(os.environ['LOG'], 'a').write("
              "os.environ['WORKBENCH_SERIAL'] + ' ' + os.path.realpath(os.environ['WORKBENCH_BUNDLE']) + '\\n')")
    config = dataclasses.replace(tower_config, reload_command=[sys.executable, "-c", script])
    import os
    os.environ["LOG"] = str(log)
    try:
        for serial in (1, 2, 3, 4):
            installed(repo, bundles, config, serial)
    finally:
        del os.environ["LOG"]
    install = InstallDir(config.install_dir)
    assert install.bundle_serials() == [4, 3, 2]
    assert sorted(p.name for p in install.downloads_dir.iterdir()) == \
        ["signatures-2.tar.gz", "signatures-3.tar.gz", "signatures-4.tar.gz"]
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4"]
    assert lines[-1].split()[1] == str((install.bundles_dir / "4").resolve())


def test_a_failing_reload_switches_back(repo: UpdateRepository, bundles: dict,
                                        tower_config: TowerConfig, workspace: Workspace,
                                        tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    script = (f"import os, sys; open({str(marker)!r}, 'a').write(os.environ['WORKBENCH_SERIAL'] + ' ');"
              "sys.exit(3 if os.environ['WORKBENCH_SERIAL'] == '2' else 0)")
    config = dataclasses.replace(tower_config, reload_command=[sys.executable, "-c", script])
    installed(repo, bundles, config, 1)
    publish_bundle(repo, bundles[2])
    result = TowerAgent(config).pull()
    assert result.state == "failed" and result.transient
    assert "reload command failed (exit 3)" in result.error and "switched back" in result.error
    assert marker.read_text().split() == ["1", "2", "1"]
    scanning_with(config, 1)
    assert fleet_record(workspace).state == "failed"


def test_an_unfinished_reload_whose_retry_fails_is_red_and_switches_back(
        repo: UpdateRepository, bundles: dict, tower_config: TowerConfig, workspace: Workspace,
        tmp_path: Path) -> None:
    """The state a kill between the switch and the reload leaves (see test_faults for the kill):
    the next run reloads; when that fails it reports red and puts the previous bundle back."""
    installed(repo, bundles, tower_config, 1)
    install = InstallDir(tower_config.install_dir)
    installed(repo, bundles, tower_config, 2)
    state = install.load_state()
    state.reload_pending, state.reload_previous, state.installed_serial = 2, 1, 1
    install.save_state(state)
    marker = tmp_path / "reloaded"
    script = (f"import os, sys; open({str(marker)!r}, 'a').write(os.environ['WORKBENCH_SERIAL'] + ' ');"
              "sys.exit(3 if os.environ['WORKBENCH_SERIAL'] == '2' else 0)")
    config = dataclasses.replace(tower_config, reload_command=[sys.executable, "-c", script])
    result = TowerAgent(config).pull()
    assert result.state == "failed" and result.serial == 1
    assert "serial 2 installed, not reloaded" in result.error and "switched back to serial 1" in result.error
    assert marker.read_text().split() == ["2", "1"]
    scanning_with(config, 1)
    record = fleet_record(workspace)
    assert record.state == "failed" and "not reloaded" in record.error     # red on the board
    assert install.load_state().reload_pending is None


def test_an_unfinished_reload_with_nothing_to_go_back_to_stays_red(
        repo: UpdateRepository, bundles: dict, tower_config: TowerConfig, workspace: Workspace) -> None:
    installed(repo, bundles, tower_config, 1)
    install = InstallDir(tower_config.install_dir)
    state = install.load_state()
    state.reload_pending, state.reload_previous = 1, None
    install.save_state(state)
    config = dataclasses.replace(tower_config, reload_command=[sys.executable, "-c", "raise SystemExit(5)"])
    for _ in range(2):
        result = TowerAgent(config).pull()
        assert result.state == "failed" and "serial 1 installed, not reloaded" in result.error
        assert install.load_state().reload_pending == 1
    assert fleet_record(workspace).state == "failed"
    assert TowerAgent(tower_config).pull().state == "ok"          # a reload that works ends it
    assert install.load_state().reload_pending is None


# --- refused: tampering, foreign keys, rollback, freeze, bad self-test ---------------------------------


def test_tampered_bundle_is_refused(repo: UpdateRepository, bundles: dict,
                                    tower_config: TowerConfig, workspace: Workspace) -> None:
    installed(repo, bundles, tower_config, 1)
    target = publish_bundle(repo, bundles[2]).target
    served = repo.targets_dir / target.file_name
    original = served.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    served.write_bytes(bytes(tampered))
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and result.serial == 1
    assert "does not match its signed length and hash" in result.error
    scanning_with(tower_config, 1)
    record = fleet_record(workspace)
    assert record.state == "failed" and record.target_serial == 2 and "hash" in record.error
    served.write_bytes(original)             # the mirror is fixed: the next poll installs it
    assert TowerAgent(tower_config).pull().serial == 2


def test_repository_signed_by_unknown_keys_is_refused(repo: UpdateRepository, bundles: dict,
                                                      tower_config: TowerConfig,
                                                      workspace: Workspace, tmp_path: Path) -> None:
    installed(repo, bundles, tower_config, 1)
    impostor = UpdateRepository(tmp_path / "impostor", KeyRing(tmp_path / "impostor-keys"))
    impostor.init(RepositorySettings())
    publish_bundle(impostor, bundles[2])
    for folder in ("metadata", "targets"):
        shutil.rmtree(repo.root / folder)
        shutil.copytree(impostor.root / folder, repo.root / folder)
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and not result.transient
    assert "not signed by the keys the pinned root trusts" in result.error
    scanning_with(tower_config, 1)
    assert "pinned root" in fleet_record(workspace).error


def test_targets_signed_by_an_unknown_key_are_refused(repo: UpdateRepository, bundles: dict,
                                                      tower_config: TowerConfig) -> None:
    """Even with the snapshot and timestamp keys stolen, a foreign targets key gets nowhere."""
    installed(repo, bundles, tower_config, 1)
    shutil.copy(bundles[2], repo.targets_dir / "x")
    info = TargetFile.from_file("signatures-2.tar.gz", str(repo.targets_dir / "x"), ["sha256"])
    (repo.targets_dir / "x").rename(repo.targets_dir / f"{info.hashes['sha256']}.signatures-2.tar.gz")
    info.unrecognized_fields["custom"] = {"serial": 2}
    targets_md = repo.targets_md()
    targets_md.signed.targets[info.path] = info
    targets_md.signed.version += 1
    targets_md.sign(CryptoSigner.generate_ed25519())
    repo._write(f"{targets_md.signed.version}.targets.json", targets_md)
    repo._snapshot_and_timestamp(repo.root_md().signed, targets_md, repo.settings,
                                 dt_now())
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and "targets" in result.error
    assert "not signed by the keys the pinned root trusts" in result.error
    scanning_with(tower_config, 1)


def test_replayed_old_metadata_is_a_rollback(repo: UpdateRepository, bundles: dict,
                                             tower_config: TowerConfig, workspace: Workspace,
                                             tmp_path: Path) -> None:
    installed(repo, bundles, tower_config, 1)
    saved = tmp_path / "old-metadata"
    shutil.copytree(repo.metadata_dir, saved)
    installed(repo, bundles, tower_config, 2)
    shutil.rmtree(repo.metadata_dir)
    shutil.copytree(saved, repo.metadata_dir)
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and "rollback attack" in result.error
    scanning_with(tower_config, 2)
    assert "rollback" in fleet_record(workspace).error


def test_a_signed_older_serial_is_refused(repo: UpdateRepository, bundles: dict,
                                          tower_config: TowerConfig, workspace: Workspace) -> None:
    installed(repo, bundles, tower_config, 1)
    installed(repo, bundles, tower_config, 2)
    # the repository (validly signed) now offers only serial 1: e.g. restored from an old backup
    targets_md = repo.targets_md()
    del targets_md.signed.targets["signatures-2.tar.gz"]
    targets_md.signed.version += 1
    root = repo.root_md().signed
    repo._sign(targets_md, [repo._online_signer("targets", root)])
    repo._write(f"{targets_md.signed.version}.targets.json", targets_md)
    repo._snapshot_and_timestamp(root, targets_md, repo.settings, dt_now())
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and result.target_serial == 1
    assert "refused rollback" in result.error and "already ran 2" in result.error
    scanning_with(tower_config, 2)
    assert fleet_record(workspace).serial == 2
    again = TowerAgent(tower_config).pull()          # still refused, not "nothing changed"
    assert again.state == "failed" and "refused rollback" in again.error


def test_expired_timestamp_is_a_freeze(repo: UpdateRepository, bundles: dict,
                                       tower_config: TowerConfig, workspace: Workspace) -> None:
    installed(repo, bundles, tower_config, 1)
    publish_bundle(repo, bundles[2], now=dt_now(days=-3))     # signed three days ago: expired
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and "expired" in result.error and "freeze" in result.error
    scanning_with(tower_config, 1)
    assert "freeze" in fleet_record(workspace).error


def test_nothing_new_for_days_is_a_freeze_too(repo: UpdateRepository, bundles: dict,
                                              tower_config: TowerConfig) -> None:
    """The 304 shortcut still checks the trusted metadata's expiry against the clock."""
    config = dataclasses.replace(tower_config, full_refresh_seconds=30 * 86400)
    installed(repo, bundles, config, 1)
    half_a_day_on = time.time() + 12 * 3600
    result = TowerAgent(config, clock=lambda: half_a_day_on).pull()
    assert result.checked == "not-modified" and result.state == "ok"
    later = TowerAgent(config, clock=lambda: half_a_day_on + 36 * 3600).pull()
    assert later.state == "failed" and "timestamp metadata expired" in later.error
    assert later.requests == 1
    scanning_with(config, 1)


def test_lost_local_metadata_means_a_full_refresh(repo: UpdateRepository, bundles: dict,
                                                  tower_config: TowerConfig) -> None:
    installed(repo, bundles, tower_config, 1)
    (tower_config.install_dir / "metadata" / "snapshot.json").unlink()
    result = TowerAgent(tower_config).pull()
    assert (result.state, result.checked, result.serial) == ("ok", "refreshed", 1)
    assert TowerAgent(tower_config).pull().checked == "not-modified"


def test_bundle_failing_its_self_test_is_refused_once(repo: UpdateRepository, bundles: dict,
                                                      tower_config: TowerConfig,
                                                      workspace: Workspace, tmp_path: Path) -> None:
    installed(repo, bundles, tower_config, 1)
    publish_bundle(repo, bundles["selftest"])
    agent = TowerAgent(tower_config)
    result = agent.pull()
    assert result.state == "failed" and not result.transient and result.target_serial == 5
    assert "refused serial 5: self-test failed" in result.error
    scanning_with(tower_config, 1)
    record = fleet_record(workspace)
    assert (record.state, record.serial, record.target_serial) == ("failed", 1, 5)
    assert "self-test failed" in record.error
    again = agent.pull()                       # not downloaded again, still reported
    assert again.state == "failed" and again.bytes_downloaded == 0 and again.requests == 1
    assert "self-test failed" in again.error
    assert not list(InstallDir(tower_config.install_dir).staging_dir.iterdir())
    publish_bundle(repo, make_bundle(tmp_path, 6))
    fixed = agent.pull()
    assert fixed.state == "ok" and fixed.serial == 6
    assert fleet_record(workspace).error == ""


# --- survived: truncated downloads, the server going away, a damaged install -----------------------


class Truncating:
    """ASGI wrapper: while ``on``, bundle downloads stop halfway (the connection drops)."""

    def __init__(self, app: Any):
        self.app = app
        self.on = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not (self.on and scope["type"] == "http" and "/repository/targets/" in scope["path"]):
            await self.app(scope, receive, send)
            return

        async def cut(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": message["body"][: len(message["body"]) // 2],
                           "more_body": False}
            await send(message)

        await self.app(scope, receive, cut)


def test_truncated_download_is_retried(workspace: Workspace, repo: UpdateRepository, bundles: dict,
                                       tower_config: TowerConfig) -> None:
    wrappers: list[Truncating] = []
    server = LiveServer(workspace, wrap=lambda app: wrappers.append(Truncating(app)) or wrappers[-1])
    server.start()
    try:
        config = dataclasses.replace(tower_config, repository_url=server.repository_url)
        installed(repo, bundles, config, 1)
        publish_bundle(repo, bundles[2])
        wrappers[0].on = True
        result = TowerAgent(config).pull()
        assert result.state == "failed" and result.transient
        assert "broke off" in result.error and "complete message body" in result.error
        scanning_with(config, 1)
        wrappers[0].on = False
        assert TowerAgent(config).pull().serial == 2
    finally:
        server.stop()


def test_server_down_then_back(repo: UpdateRepository, bundles: dict, tower_config: TowerConfig,
                               live_server: LiveServer, workspace: Workspace) -> None:
    installed(repo, bundles, tower_config, 1)
    live_server.stop()
    publish_bundle(repo, bundles[2])
    agent = TowerAgent(tower_config)
    for attempt in (1, 2):
        down = agent.pull()
        assert down.state == "failed" and down.transient and "cannot reach" in down.error
        assert not down.reported
        state = InstallDir(tower_config.install_dir).load_state()
        assert state.consecutive_failures == attempt
        scanning_with(tower_config, 1)
    assert len(state.pending_reports) == 2
    live_server.start()
    back = agent.pull()
    assert back.state == "ok" and back.serial == 2 and back.reported
    state = InstallDir(tower_config.install_dir).load_state()
    assert state.consecutive_failures == 0 and state.pending_reports == []
    events = history(workspace)
    assert any(e.state == "failed" and "cannot reach" in e.error for e in events)
    assert (events[0].state, events[0].serial) == ("ok", 2)


def test_corrupted_install_is_reinstalled(repo: UpdateRepository, bundles: dict,
                                          tower_config: TowerConfig, workspace: Workspace) -> None:
    installed(repo, bundles, tower_config, 1)
    compiled = tower_config.install_dir / "current" / "compiled.yarc"
    compiled.write_bytes(compiled.read_bytes()[:-7] + b"garbage")
    result = TowerAgent(tower_config).pull()
    assert result.state == "ok" and result.serial == 1
    assert "damaged" in result.repaired and "reinstalled serial 1" in result.repaired
    scanning_with(tower_config, 1)
    assert any(e.state == "updating" and "damaged" in e.error for e in history(workspace))


def test_damaged_install_falls_back_when_the_server_is_gone(repo: UpdateRepository, bundles: dict,
                                                            tower_config: TowerConfig,
                                                            live_server: LiveServer) -> None:
    installed(repo, bundles, tower_config, 1)
    installed(repo, bundles, tower_config, 2)
    shutil.rmtree(tower_config.install_dir / "bundles" / "2" / "rules")
    live_server.stop()
    result = TowerAgent(tower_config).pull()
    assert result.state == "failed" and result.serial == 1
    assert "switched to intact serial 1" in result.error and "cannot reach" in result.error
    scanning_with(tower_config, 1)


def test_after_a_fall_back_the_next_run_is_not_a_304(repo: UpdateRepository, bundles: dict,
                                                    tower_config: TowerConfig,
                                                    live_server: LiveServer) -> None:
    installed(repo, bundles, tower_config, 1)
    installed(repo, bundles, tower_config, 2)
    shutil.rmtree(tower_config.install_dir / "bundles" / "2" / "rules")
    live_server.stop()
    assert TowerAgent(tower_config).pull().serial == 1          # fell back to the intact 1
    live_server.start()                                         # timestamp.json is unchanged
    back = TowerAgent(tower_config).pull()
    assert back.state == "ok" and back.checked == "refreshed" and back.serial == 2, back
    scanning_with(tower_config, 2)


def test_dangling_current_link_is_repaired(repo: UpdateRepository, bundles: dict,
                                           tower_config: TowerConfig) -> None:
    installed(repo, bundles, tower_config, 1)
    shutil.rmtree(tower_config.install_dir / "bundles" / "1")
    result = TowerAgent(tower_config).pull()
    assert result.state == "ok" and "missing" in result.repaired
    scanning_with(tower_config, 1)


# --- the loop and the lock ------------------------------------------------------------------------------


def test_one_agent_per_install_folder(repo: UpdateRepository, tower_config: TowerConfig) -> None:
    install = InstallDir(tower_config.install_dir)
    with install.locked():
        assert install.lock_holder() is not None
        with pytest.raises(AgentBusy, match="another agent"):
            TowerAgent(tower_config).pull()
    assert install.lock_holder() is None
    assert TowerAgent(tower_config).pull().state == "ok"


def test_run_survives_an_unexpected_error(repo: UpdateRepository,
                                          tower_config: TowerConfig) -> None:
    agent = TowerAgent(tower_config)
    lines: list[str] = []
    agent.log = lines.append
    real_attempt = agent._attempt
    calls = iter([RuntimeError("disk on fire")])

    def flaky() -> PullResult:
        for exc in calls:
            raise exc
        return real_attempt()

    agent._attempt = flaky                    # type: ignore[method-assign]
    results: list[PullResult] = []
    agent.run(max_attempts=2, on_result=results.append)
    assert any("attempt crashed: RuntimeError('disk on fire')" in line for line in lines)
    assert [r.state for r in results] == ["ok"]


def test_run_polls_until_stopped(repo: UpdateRepository, bundles: dict,
                                 tower_config: TowerConfig) -> None:
    publish_bundle(repo, bundles[1])
    results: list[PullResult] = []
    stop = threading.Event()

    def collect(result: PullResult) -> None:
        results.append(result)
        if len(results) == 3:
            publish_bundle(repo, bundles[2])
        if len(results) == 5:
            stop.set()

    TowerAgent(tower_config).run(stop, on_result=collect)
    assert [r.serial for r in results] == [1, 1, 1, 2, 2]
    assert [r.checked for r in results][1:3] == ["not-modified", "not-modified"]


def dt_now(days: float = 0) -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


# --- the waiting between attempts (pure) -------------------------------------------------------------


def test_next_delay_backs_off_and_is_capped() -> None:
    import random

    rng = random.Random(7)
    assert next_delay(60, 0, jitter=0, rng=rng) == 60
    assert [next_delay(60, n, jitter=0, max_backoff=900, rng=rng) for n in (1, 2, 3, 4, 5, 40)] == \
        [120, 240, 480, 900, 900, 900]
    delays = [next_delay(60, 0, jitter=0.1, rng=rng) for _ in range(500)]
    assert 54 <= min(delays) < 56 and 64 < max(delays) <= 66      # spread over +-10 %
    assert next_delay(1200, 3, jitter=0, max_backoff=900, rng=rng) == 1200   # never below the poll
