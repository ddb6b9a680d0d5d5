"""Canary rollout: signed repository state decides which towers get a release, and when all do."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import LiveServer
from workbench.cli import main
from workbench.distribute.agent import TowerAgent
from workbench.distribute.fleet import FleetReport
from workbench.distribute.server import ServerSettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.exitcodes import E_OK
from workbench.workspace import Workspace


@pytest.fixture
def server(workspace: Workspace, repo: UpdateRepository) -> Iterator[LiveServer]:
    # the watcher is off: the test calls judge_rollout itself, with no soak time
    live = LiveServer(workspace, settings=ServerSettings(canary_check_interval=0, canary_soak=0)).start()
    yield live
    live.stop()


def agent(tmp_path: Path, workspace: Workspace, repo: UpdateRepository, server: LiveServer,
          tower: str) -> TowerAgent:
    pinned = tmp_path / tower / "root.json"
    pinned.parent.mkdir(parents=True, exist_ok=True)
    pinned.write_bytes(repo.trusted_root.read_bytes())
    token = TokenStore.for_workspace(workspace).add(tower)[1]
    return TowerAgent(TowerConfig(repository_url=server.repository_url, trusted_root=pinned,
                                  install_dir=tmp_path / tower / "install", tower=tower, server="mx01",
                                  token=token, timeout_seconds=5.0))


def test_canary_first_then_promoted_to_all(tmp_path: Path, workspace: Workspace, repo: UpdateRepository,
                                          server: LiveServer, bundles: dict[Any, Path], capsys) -> None:   # type: ignore[no-untyped-def]
    publish_bundle(repo, bundles[1])
    canary, other = (agent(tmp_path, workspace, repo, server, t) for t in ("t01", "t02"))
    assert canary.pull().serial == 1 and other.pull().serial == 1
    published = publish_bundle(repo, bundles[2], canaries=("t01",))
    assert published.target.rollout is not None and published.target.rollout.stage == "canary"
    assert canary.pull().serial == 2
    assert other.pull().serial == 1                       # not offered to t02 yet
    state = server.app.state.workbench
    fleet = state.fleet_state()
    assert fleet.newest_serial == 1 and fleet.rollout is not None
    by = {s.tower: s for s in fleet.servers}
    assert (by["t01"].health.value, by["t01"].reason) == ("green", "on canary serial 2")
    assert by["t02"].health.value == "green"

    decision = state.judge_rollout()
    assert decision is not None and decision.stage == "all"
    assert repo.newest_for_all() is not None and repo.newest_for_all().serial == 2
    assert other.pull().serial == 2
    promoted = state.fleet_state().rollout                # still shown, with why it was promoted
    assert promoted is not None and promoted.stage == "all" and "canary servers green" in promoted.reason
    assert main(["--home", str(workspace.home), "rollout", "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)[0]["stage"] == "all"


def test_a_failing_canary_halts_the_release_and_says_why(
        tmp_path: Path, workspace: Workspace, repo: UpdateRepository, server: LiveServer,
        bundles: dict[Any, Path], capsys) -> None:   # type: ignore[no-untyped-def]
    publish_bundle(repo, bundles[1])
    canary, other = (agent(tmp_path, workspace, repo, server, t) for t in ("t01", "t02"))
    canary.pull()
    other.pull()
    publish_bundle(repo, bundles["selftest"], canaries=("t01",))      # serial 5, fails its self-test
    failed = canary.pull()
    assert failed.state == "failed" and failed.serial == 1
    state = server.app.state.workbench
    decision = state.judge_rollout()
    assert decision is not None and decision.stage == "halted"
    assert "canary t01/mx01 failed on serial 5" in decision.reason
    assert other.pull().serial == 1                        # never offered to the fleet
    assert main(["--home", str(workspace.home), "fleet"]) in (E_OK, 1)
    out = capsys.readouterr().out
    assert "rollout: serial 5 HALTED on its canaries (t01)" in out and "self-test" in out


def test_a_storming_rule_halts_the_canary(tmp_path: Path, workspace: Workspace, repo: UpdateRepository,
                                         server: LiveServer, bundles: dict[Any, Path]) -> None:
    import time

    publish_bundle(repo, bundles[1])
    publish_bundle(repo, bundles[2], canaries=("t01",))
    state = server.app.state.workbench
    state.fleet.record("t01", FleetReport(server="mx01", state="ok", serial=2, scanner={
        "started": "a", "messages": 500, "rule_hits": {"gtube_test_mail": 400}}), received_at=time.time())
    decision = state.judge_rollout()
    assert decision is not None and decision.stage == "halted"
    assert "gtube_test_mail looks like a false-positive storm" in decision.reason


def test_the_rollout_cannot_be_changed_without_the_keys(tmp_path: Path, workspace: Workspace,
                                                       repo: UpdateRepository, server: LiveServer,
                                                       bundles: dict[Any, Path]) -> None:
    publish_bundle(repo, bundles[1])
    other = agent(tmp_path, workspace, repo, server, "t02")
    other.pull()
    publish_bundle(repo, bundles[2], canaries=("t01",))
    # an attacker on the server adds t02 to the canaries in the newest targets metadata
    newest = max(repo.metadata_dir.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    data = json.loads(newest.read_text())
    for info in data["signed"]["targets"].values():
        if "rollout" in info.get("custom", {}):
            info["custom"]["rollout"]["canaries"].append("t02")
    newest.write_text(json.dumps(data))
    result = dataclasses.replace(other.pull())
    assert result.serial == 1 and result.state == "failed"
    assert "refused" in result.error
