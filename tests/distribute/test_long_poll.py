"""Long-poll on new repository state: a publish reaches waiting towers without waiting a poll."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import LiveServer
from workbench.distribute.agent import PullResult, TowerAgent
from workbench.distribute.server import requested_wait
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle


def test_prefer_wait_is_parsed() -> None:
    assert requested_wait("wait=55") == 55
    assert requested_wait("respond-async, wait=10") == 10
    assert requested_wait("return=minimal") is None


def test_a_held_poll_answers_304_after_the_wait_and_200_on_a_change(
        live_server: LiveServer, repo: UpdateRepository, bundles: dict[Any, Path]) -> None:
    url = f"{live_server.repository_url}/metadata/timestamp.json"
    etag = httpx.get(url).headers["etag"]
    quiet = httpx.get(url, headers={"if-none-match": etag, "prefer": "wait=1"}, timeout=30)
    assert quiet.status_code == 304 and quiet.headers["preference-applied"] == "wait=1"
    plain = httpx.get(url, headers={"if-none-match": etag}, timeout=30)
    assert plain.status_code == 304 and "preference-applied" not in plain.headers

    answer: dict[str, httpx.Response] = {}
    waiting = threading.Thread(target=lambda: answer.update(r=httpx.get(
        url, headers={"if-none-match": etag, "prefer": "wait=100"}, timeout=200)))
    waiting.start()
    publish_bundle(repo, bundles[1])
    waiting.join(timeout=150)
    response = answer["r"]
    assert response.status_code == 200                       # woken by the publish, not the wait
    assert response.headers["etag"] != etag
    assert response.content == (repo.metadata_dir / "timestamp.json").read_bytes()
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert "workbench_repository_long_polls_total 2.0" in metrics


def test_agent_long_polls_and_gets_a_publish_within_one_notification(
        tower_config: TowerConfig, repo: UpdateRepository, bundles: dict[Any, Path],
        live_server: LiveServer) -> None:
    publish_bundle(repo, bundles[1])
    # a poll interval far longer than the test: only the notification can bring serial 2
    config = dataclasses.replace(tower_config, long_poll=True, poll_seconds=100.0)
    agent = TowerAgent(config)
    first = agent.pull()
    assert first.state == "ok" and first.serial == 1
    results: list[PullResult] = []
    stop = threading.Event()

    def on_result(result: PullResult) -> None:
        results.append(result)
        if result.serial == 2:
            stop.set()

    runner = threading.Thread(target=agent.run, args=(stop,), kwargs={"on_result": on_result})
    runner.start()
    try:
        changes = live_server.app.state.workbench.changes
        while changes.waiters < 1:                 # publish while the agent's poll is held
            assert runner.is_alive()
            stop.wait(0.02)
        publish_bundle(repo, bundles[2])
        runner.join(timeout=200)
    finally:
        stop.set()
        runner.join(timeout=30)
    # the held poll itself brought serial 2: one attempt, no poll interval in between
    assert len(results) == 1
    assert (results[0].serial, results[0].changed, results[0].long_polled) == (2, True, True)


def test_no_change_long_poll_is_one_request(tower_config: TowerConfig, repo: UpdateRepository,
                                            bundles: dict[Any, Path], live_server: LiveServer) -> None:
    publish_bundle(repo, bundles[1])
    live_server.app.state.workbench.settings = dataclasses.replace(
        live_server.app.state.workbench.settings, max_poll_wait=1)
    agent = TowerAgent(dataclasses.replace(tower_config, long_poll=True, poll_seconds=30.0))
    assert agent.pull().serial == 1
    quiet = agent.pull()
    assert (quiet.checked, quiet.requests, quiet.long_polled) == ("not-modified", 1, True)
