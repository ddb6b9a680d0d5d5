"""The commands: keys, publish, serve, tokens, tower and fleet, as an operator runs them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.bundles import prepared
from tests.support.live_server import LiveServer, free_port
from workbench.cli import main
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.exitcodes import E_CONFLICT, E_INPUT, E_NOT_FOUND, E_OK, E_REMOTE, E_USAGE
from workbench.release.changelog import Changelog
from workbench.release.release_store import ReleaseStore
from workbench.samples.mail import Mail
from workbench.workspace import Workspace


def run(workspace: Workspace, *args: str | Path) -> int:
    return main(["--home", str(workspace.home), *map(str, args)])


def test_keys_init_prints_the_root_to_pin(workspace: Workspace,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "keys", "init", "--timestamp-expiry", "6h") == E_OK
    out = capsys.readouterr().out
    root = Path(out.split("Distribute the FILE ")[1].split()[0])
    assert root == workspace.state / "repository" / "metadata" / "root.json" and root.is_file()
    assert "Never point a tower at this path" in out
    assert "move" in out and "offline" in out
    assert run(workspace, "keys", "init") == E_CONFLICT
    assert "already exists" in capsys.readouterr().err
    assert run(workspace, "keys", "status", "--json") == E_OK
    status = json.loads(capsys.readouterr().out)
    roles = {r["role"]: r for r in status["roles"]}
    assert roles["timestamp"]["version"] == 1 and all(r["key_online"] for r in roles.values())
    expires = dt.datetime.fromisoformat(roles["timestamp"]["expires"].replace("Z", "+00:00"))
    assert dt.timedelta(hours=5) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=6)


def test_keys_status_without_a_repository(workspace: Workspace,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "keys", "status") == E_NOT_FOUND
    assert "keys init" in capsys.readouterr().err


def test_keys_rotate_and_renew_with_an_offline_root(workspace: Workspace, repo: UpdateRepository,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    offline = tmp_path / "root.pem"
    repo.keys.path("root").rename(offline)
    assert run(workspace, "keys", "rotate", "snapshot") == E_CONFLICT
    assert "--root-key" in capsys.readouterr().err
    assert run(workspace, "keys", "rotate", "snapshot", "--root-key", offline) == E_OK
    assert "root version 2" in capsys.readouterr().out
    assert run(workspace, "keys", "renew-root", "--root-key", offline, "--json") == E_OK
    assert json.loads(capsys.readouterr().out)["version"] == 3
    assert run(workspace, "keys", "status") == E_OK
    assert "offline" in capsys.readouterr().out


def test_publish_bundle_refresh_and_refusals(workspace: Workspace, repo: UpdateRepository,
                                             bundles: dict, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "publish", "--bundle", bundles[2]) == E_OK
    assert "published serial 2" in capsys.readouterr().out
    assert run(workspace, "publish", "--bundle", bundles[2]) == E_OK
    assert "already published" in capsys.readouterr().out
    assert run(workspace, "publish", "--bundle", bundles[1]) == E_CONFLICT
    assert "release revert 1" in capsys.readouterr().err
    junk = tmp_path / "signatures-9.tar.gz"
    junk.write_bytes(b"junk")
    assert run(workspace, "publish", "--bundle", junk) == E_INPUT
    assert run(workspace, "publish", "--bundle", tmp_path / "missing.tar.gz") == E_NOT_FOUND
    assert run(workspace, "publish", "3", "--bundle", bundles[3]) == E_USAGE
    capsys.readouterr()
    assert run(workspace, "publish", "--refresh", "--json") == E_OK
    refreshed = json.loads(capsys.readouterr().out)
    assert refreshed["resigned"] == ["timestamp"] and refreshed["versions"]["timestamp"] == 3


def test_publish_from_the_release_store(workspace: Workspace, repo: UpdateRepository,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "publish") == E_NOT_FOUND
    assert "no releases yet" in capsys.readouterr().err
    store = ReleaseStore(workspace)
    for _ in (1, 2):
        serial = store.next_serial()
        store.add(prepared(serial), serial=serial, commit=f"{serial:040x}",
                  created=dt.datetime(2026, 11, 2, tzinfo=dt.UTC), message="test",
                  changelog=Changelog(previous_serial=None), ruleset=[])
    assert run(workspace, "publish", "1") == E_OK
    assert "published serial 1" in capsys.readouterr().out
    assert run(workspace, "publish") == E_OK                 # the newest release
    assert "published serial 2" in capsys.readouterr().out
    assert run(workspace, "publish", "7") == E_NOT_FOUND
    assert [t.serial for t in repo.targets()] == [1, 2]


def test_tokens_add_list_revoke(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "tokens", "add", "t42", "--label", "night shift") == E_OK
    token = capsys.readouterr().out.split()[-1]
    store = TokenStore.for_workspace(workspace)
    assert store.verify(token) == "t42"
    assert run(workspace, "tokens", "list") == E_OK
    listing = capsys.readouterr().out
    assert "t42" in listing and "night shift" in listing and token not in listing
    assert run(workspace, "tokens", "add", "bad/name") == E_USAGE
    assert run(workspace, "tokens", "revoke", "t42") == E_OK
    assert store.verify(token) is None
    assert run(workspace, "tokens", "revoke", "t42") == E_NOT_FOUND


def test_tower_commands_against_a_live_server(workspace: Workspace, repo: UpdateRepository,
                                              live_server: LiveServer, bundles: dict,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "tokens", "add", "t01") == E_OK
    token = capsys.readouterr().out.split()[-1]
    config = tmp_path / "tower.toml"
    init = ["tower", "init", "--config", config, "--repository-url", live_server.repository_url,
            "--trusted-root", repo.trusted_root, "--install-dir", tmp_path / "install",
            "--tower", "t01", "--server", "mx01", "--token", token, "--poll", "30s"]
    assert run(workspace, *init) == E_OK
    assert "tower run --config" in capsys.readouterr().out
    # the trust anchor is a copy in the tower's own state, never the path it was given
    pinned = tmp_path / "install" / "pinned-root.json"
    assert pinned.read_bytes() == repo.trusted_root.read_bytes()
    assert f'trusted_root = "{pinned}"' in config.read_text()
    assert run(workspace, *init) == E_USAGE                  # exists: --force to overwrite
    assert run(workspace, *init, "--force", "--trusted-root", repo.metadata_dir / "timestamp.json") \
        == E_INPUT
    assert "not root" in capsys.readouterr().err
    assert run(workspace, "publish", "--bundle", bundles[1]) == E_OK
    assert run(workspace, "tower", "pull", "--config", config) == E_OK
    assert "installed serial 1" in capsys.readouterr().out
    assert run(workspace, "tower", "status", "--config", config, "--json") == E_OK
    status = json.loads(capsys.readouterr().out)
    assert status["serial"] == 1 and status["kept"] == [1] and status["agent_pid"] is None
    assert run(workspace, "publish", "--bundle", bundles["selftest"]) == E_OK
    assert run(workspace, "tower", "pull", "--config", config) == E_INPUT
    assert "self-test failed" in capsys.readouterr().out
    assert run(workspace, "fleet") == E_OK
    board = capsys.readouterr().out
    assert "1 red" in board and "self-test failed" in board
    assert run(workspace, "fleet", "--url", live_server.url, "--json") == E_OK
    assert json.loads(capsys.readouterr().out)["servers"][0]["health"] == "red"
    assert run(workspace, "fleet", "history", "--json") == E_OK
    assert json.loads(capsys.readouterr().out)[0]["state"] == "failed"
    message = tmp_path / "stuck.eml"
    message.write_bytes(Mail(sender="a@example.test", to="b@example.test", subject="stuck",
                             text="hello").build())
    assert run(workspace, "tower", "send", "--config", config, message, "--reason", "stuck") == E_OK
    assert "stored" in capsys.readouterr().out
    live_server.stop()
    assert run(workspace, "tower", "pull", "--config", config) == E_REMOTE
    assert run(workspace, "fleet", "--url", live_server.url) == E_REMOTE
    assert run(workspace, "fleet", "forget", "t01", "mx01") == E_OK
    assert run(workspace, "fleet", "forget", "t01", "mx01") == E_NOT_FOUND


def test_fleet_inventory_commands(workspace: Workspace, live_server: LiveServer, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.distribute.fleet import FleetReport, FleetStore

    with FleetStore.for_workspace(workspace) as store:          # what `workbench serve` records
        store.record("t01", FleetReport(server="mx01", state="ok", serial=None))
        store.record("t01", FleetReport(server="mx07", state="ok", serial=None))
    assert run(workspace, "fleet") == E_OK
    out = capsys.readouterr().out
    assert "never reported" not in out and "EXPECTED" not in out          # no inventory yet
    assert run(workspace, "fleet", "inventory") == E_OK
    assert "no inventory" in capsys.readouterr().out

    assert run(workspace, "fleet", "expect", "t01", "mx01", "mx02", "mx03") == E_OK
    assert "t01: added mx01, mx02, mx03" in capsys.readouterr().out
    assert run(workspace, "fleet", "expect", "t02", "mx01", "--json") == E_OK
    change = json.loads(capsys.readouterr().out)
    assert change == {"added": [{"tower": "t02", "server": "mx01"}], "removed": [], "expected": 4,
                      "dry_run": False}
    assert run(workspace, "fleet") == E_OK
    out = capsys.readouterr().out
    assert "3 red (3 never reported)" in out and "1 reporting server is not in the inventory" in out
    assert "EXPECTED  NEVER" in out
    assert "t01    mx02    red     -       never reported" in out
    assert run(workspace, "fleet", "--json") == E_OK
    fleet = json.loads(capsys.readouterr().out)
    assert (fleet["expected"], fleet["never_reported"], fleet["not_in_inventory"]) == (4, 3, 1)
    assert [s["server"] for s in fleet["servers"] if s["state"] == "never_reported"] == ["mx02", "mx03", "mx01"]
    assert run(workspace, "fleet", "--url", live_server.url, "--json") == E_OK     # the same over HTTP
    assert json.loads(capsys.readouterr().out)["never_reported"] == 3

    # the reviewable file: written, edited, read back with --replace (a dry run first)
    assert run(workspace, "fleet", "inventory", "--toml") == E_OK
    toml = capsys.readouterr().out
    assert '"t01" = ["mx01", "mx02", "mx03"]' in toml
    edited = tmp_path / "inventory.toml"
    edited.write_text(toml.replace('"mx02", ', ""), encoding="utf-8")
    assert run(workspace, "fleet", "expect", "--from", edited, "--replace", "--dry-run") == E_OK
    assert "t01: would be removed mx02" in capsys.readouterr().out
    assert run(workspace, "fleet", "inventory", "--json") == E_OK
    assert json.loads(capsys.readouterr().out)["servers"] == 4                    # unchanged
    assert run(workspace, "fleet", "expect", "--from", edited, "--replace") == E_OK
    assert "t01: removed mx02" in capsys.readouterr().out
    assert run(workspace, "fleet", "inventory", "--json", "--tower", "t01") == E_OK
    assert json.loads(capsys.readouterr().out) == {
        "servers": 2, "towers": [{"tower": "t01", "servers": ["mx01", "mx03"]}]}
    # a CMDB export
    cmdb = tmp_path / "cmdb.csv"
    cmdb.write_text("hostname,tower,server,site\nh1,t03,mx01,dc1\nh2,t03,mx02,dc1\n", encoding="utf-8")
    assert run(workspace, "fleet", "expect", "--from", cmdb) == E_OK
    assert "2 added, 0 removed; 5 servers expected" in capsys.readouterr().out
    assert run(workspace, "fleet", "inventory") == E_OK
    assert "t03    2         mx01 mx02" in capsys.readouterr().out

    # mistakes: exit codes that say what kind
    capsys.readouterr()
    assert run(workspace, "fleet", "expect") == E_USAGE
    assert run(workspace, "fleet", "expect", "t01") == E_USAGE                  # no servers
    assert run(workspace, "fleet", "expect", "t01", "mx 9") == E_USAGE
    assert run(workspace, "fleet", "expect", "t01", "mx09", "--from", cmdb) == E_USAGE
    assert run(workspace, "fleet", "expect", "--from", tmp_path / "nope.toml") == E_NOT_FOUND
    bad = tmp_path / "bad.csv"
    bad.write_text("tower,server\nt04,mx/1\n", encoding="utf-8")
    assert run(workspace, "fleet", "expect", "--from", bad) == E_INPUT
    assert "bad.csv:2: server name 'mx/1'" in capsys.readouterr().err
    assert run(workspace, "fleet", "inventory", "--json") == E_OK
    assert json.loads(capsys.readouterr().out)["servers"] == 5                    # nothing half-done

    # forget: decommissioned servers leave the board and the inventory
    assert run(workspace, "fleet", "forget", "t01", "mx03", "mx99") == E_OK
    captured = capsys.readouterr()
    assert "forgot 1 server of t01: mx03" in captured.out and "mx99" in captured.err
    assert run(workspace, "fleet", "forget", "t02") == E_OK
    assert run(workspace, "fleet", "forget", "t02") == E_NOT_FOUND
    assert run(workspace, "fleet", "expect", "t01", "--replace") == E_OK          # empties t01's list
    assert "t01: removed mx01" in capsys.readouterr().out
    assert run(workspace, "fleet", "--json") == E_OK
    fleet = json.loads(capsys.readouterr().out)
    assert fleet["never_reported"] == 2 and "not_in_inventory" not in fleet       # t03's two; 0 left out
    assert [("expected" in s) for s in fleet["servers"] if s["tower"] == "t01"] == [False, False]


def test_tower_run_holds_the_lock(workspace: Workspace, tower_config, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tower_config.write(tower_config.install_dir.parent / "tower.toml")
    assert run(workspace, "tower", "run", "--config", config, "--max-attempts", "2") == E_OK
    log = capsys.readouterr().err
    assert log.count("ok: serial None") == 2
    from workbench.distribute.install import InstallDir

    with InstallDir(tower_config.install_dir).locked():
        assert run(workspace, "tower", "run", "--config", config, "--max-attempts", "1") == E_CONFLICT
        assert run(workspace, "tower", "pull", "--config", config) == E_CONFLICT
    assert "another agent" in capsys.readouterr().err


def test_tower_config_errors(workspace: Workspace, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "tower", "pull", "--config", tmp_path / "nope.toml") == E_NOT_FOUND
    (tmp_path / "bad.toml").write_text('repository_url = "http://x/repository"\n')
    assert run(workspace, "tower", "status", "--config", tmp_path / "bad.toml") == E_USAGE
    assert "is required" in capsys.readouterr().err


def test_serve_openapi(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workspace, "serve", "--openapi") == E_OK
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "workbench update server"


@pytest.mark.slow
def test_workbench_serve_runs_as_a_process(workspace: Workspace, repo: UpdateRepository) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = Path(sys.executable).with_name("workbench")      # the installed entry point
    proc = subprocess.Popen([str(command), "--home", str(workspace.home),
                             "serve", "--port", str(port), "--header-timeout", "1s"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        ts = httpx.get(f"http://127.0.0.1:{port}/repository/metadata/timestamp.json")
        assert ts.content == (repo.metadata_dir / "timestamp.json").read_bytes()
        # the process runs the guarded protocol: headers that never finish are cut off
        with socket.create_connection(("127.0.0.1", port), timeout=15) as slow:
            slow.sendall(b"GET /v1/health HTTP/1.1\r\nhost: test\r\nx-slow: ")
            assert slow.recv(100).startswith(b"HTTP/1.1 408")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_tower_run_stops_on_sigterm(workspace: Workspace, tower_config) -> None:  # type: ignore[no-untyped-def]
    import signal

    config = dataclasses.replace(tower_config, poll_seconds=30.0)
    path = config.write(config.install_dir.parent / "tower.toml")
    command = Path(sys.executable).with_name("workbench")
    proc = subprocess.Popen([str(command), "tower", "run", "--config", str(path)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        state = config.install_dir / "state.json"
        while not state.exists():                   # the first attempt is done
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == E_OK        # it does not sit out the 30 s wait
        assert "stopping" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
