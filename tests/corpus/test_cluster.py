"""Corpus scans on a real Dask cluster (worker processes on loopback) give a local run's results."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yara

from tests.support.corpus_lab import Lab, write_files
from workbench.cli import main
from workbench.corpus.cluster import partition
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.corpus.rule_testing import run_rule_tests
from workbench.corpus.scanner import ScanCancelled, ScanProgress, ScanTarget, scan_files
from workbench.document import to_data

distributed = pytest.importorskip("distributed")

SLOW_RULE = ("rule SLOW_Loop { condition: for all i in (0..filesize-1) : "
             "(for all j in (0..50) : (uint8(i) != j + 300)) }\n"
             "rule ODD { strings: $a = { 01 01 01 } condition: $a }\n")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two worker processes, one thread each, on loopback."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  scheduler_port=0) as local:
        yield local.scheduler_address


def _without_timing(data: object) -> object:
    if isinstance(data, dict):
        return {k: _without_timing(v) for k, v in data.items()
                if not any(word in k for word in ("second", "elapsed", "took", "cached"))}
    if isinstance(data, list):
        return [_without_timing(v) for v in data]
    return data


def test_partitions_hold_every_file_once_and_balance_bytes() -> None:
    targets = [ScanTarget(f"{n:064x}", f"/f{n}", size) for n, size in
               enumerate([900, 10, 10, 500, 400, 300, 5, 5, 0, 250])]
    groups = partition(targets, 3)
    assert sorted(t.sha256 for g in groups for t in g) == sorted(t.sha256 for t in targets)
    weights = sorted(sum(t.size for t in g) for g in groups)
    assert weights[-1] == 900 and weights[0] >= 600     # the big file alone, the rest shared
    assert partition(targets[:2], 8) == [[targets[0]], [targets[1]]]


def test_test_on_a_cluster_equals_a_local_run(lab: Lab, cluster: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    local = run_rule_tests(lab.workspace, [lab.rules], use_cache=False)
    monkeypatch.setenv("WORKBENCH_CLUSTER", cluster)
    remote = run_rule_tests(lab.workspace, [lab.rules], use_cache=False)
    assert _without_timing(to_data(remote)) == _without_timing(to_data(local))
    assert local.rules and any(r.true_positives for r in local.rules)


def test_the_cluster_option_of_test(lab: Lab, cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(lab.workspace.home)
    main(["--home", home, "test", str(lab.rules), "--json", "--no-cache"])
    local = json.loads(capsys.readouterr().out)
    main(["--home", home, "test", str(lab.rules), "--json", "--no-cache", "--cluster", cluster])
    remote = json.loads(capsys.readouterr().out)
    assert _without_timing(remote) == _without_timing(local)
    assert "WORKBENCH_CLUSTER" not in os.environ


def _tasks_run(address: str) -> int:
    """How many task transitions the scheduler has made: it moves when work ran there."""
    with distributed.Client(address, timeout=30) as client:
        return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter))


def test_the_workspace_setting_sends_scans_to_the_cluster(lab: Lab, cluster: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """the workspace's ``settings.toml`` names the cluster once for every analyst of the workspace;
    ``--cluster local`` still scans here; a wrong setting is an error before anything runs."""
    home = str(lab.workspace.home)
    settings = lab.workspace.home / "settings.toml"
    settings.write_text(f'cluster = "{cluster}"\n')
    before = _tasks_run(cluster)
    assert main(["--home", home, "test", str(lab.rules), "--json", "--no-cache"]) in (0, 1)
    remote = json.loads(capsys.readouterr().out)
    ran = _tasks_run(cluster)
    assert ran > before, "the scan ran on the cluster"
    assert main(["--home", home, "test", str(lab.rules), "--json", "--no-cache",
                 "--cluster", "local"]) in (0, 1)
    local = json.loads(capsys.readouterr().out)
    assert _tasks_run(cluster) == ran, "--cluster local scanned here"
    assert _without_timing(remote) == _without_timing(local)
    settings.write_text('cluster = "scheduler-without-a-scheme"\n')
    assert main(["--home", home, "test", str(lab.rules), "--no-cache"]) == 2
    assert "tcp://scheduler:8786" in capsys.readouterr().err


@pytest.mark.slow
async def test_the_test_screen_runs_on_the_cluster_with_progress_and_cancel(
        lab: Lab, cluster: str, tmp_path: Path) -> None:
    """The UI's test screen on a workspace whose setting names the cluster: the same report
    as a local run, progress while it runs, and x cancels a slow scan there."""
    from textual.widgets import Static

    from tests.support.pilot import settle, static_text, until, waiting
    from workbench.tui.app import make_app
    from workbench.tui.screens.testing import RuleTestScreen

    local = run_rule_tests(lab.workspace, [lab.rules / "main.yar"], ["goodware", "mal"], use_cache=False)
    (lab.workspace.home / "settings.toml").write_text(f'cluster = "{cluster}"\n')
    before = _tasks_run(cluster)
    app = make_app(lab.workspace, open_rule=lab.rules / "main.yar")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RuleTestScreen)
        screen.use_cache = False
        await pilot.press("r")
        await until(pilot, lambda: screen.report is not None and not screen.running, timeout=120)
        assert _tasks_run(cluster) > before, "the test screen's scan ran on the cluster"
        assert screen.last_progress is not None and screen.last_progress.files_done > 0, \
            "progress came back from the cluster"
        assert _without_timing(to_data(screen.report)) == _without_timing(to_data(local))
        assert "WORKBENCH_CLUSTER" not in os.environ, "set for the run only"
        # a slow rule over big files, cancelled from the keyboard once files come back
        slow = write_files(tmp_path / "big", {f"f{i:02d}": bytes([i]) * 200_000 for i in range(24)})
        with CorpusRegistry(lab.workspace) as registry:
            registry.add("big", slow, "clean")
        (lab.rules / "main.yar").write_text(SLOW_RULE)
        screen.corpora_chosen = None          # every corpus, "big" included
        screen.load_corpora()
        await until(pilot, lambda: "big" in screen.chosen_corpora(), timeout=30)
        app.simulate_key("r")           # posted: press would wait for the progress bar's animation
        await waiting(pilot, lambda: bool(screen.running), timeout=10)
        await waiting(pilot, lambda: (screen.last_progress is not None
                      and screen.last_progress.files_done > 0) or not screen.running, timeout=120)
        assert screen.running == "test", "the slow scan ended before it could be cancelled"
        app.simulate_key("x")
        await waiting(pilot, lambda: not screen.running, timeout=60)
        assert "cancelled" in static_text(screen.query_one("#test-phase", Static))


def test_retrohunt_on_a_cluster_equals_a_local_run(hunted, cluster: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.corpus.retrohunt import retrohunt

    workspace, rules, *_ = hunted
    local = retrohunt(workspace, [rules], use_cache=False)
    monkeypatch.setenv("WORKBENCH_CLUSTER", cluster)
    remote = retrohunt(workspace, [rules], use_cache=False)
    assert _without_timing(to_data(remote)) == _without_timing(to_data(local))
    assert len(local.messages) == 3


def test_a_worker_killed_mid_scan_changes_nothing(tmp_path: Path, cluster: str) -> None:
    rules = yara.compile(source=SLOW_RULE)
    files = {f"f{i:02d}": bytes([i % 3]) * (60_000 + 5_000 * i) for i in range(16)}
    write_files(tmp_path, files)
    targets = [ScanTarget(f"{i:064x}", tmp_path / name, len(data))
               for i, (name, data) in enumerate(files.items())]
    local = scan_files(rules, targets, threads=2, cluster="")
    with distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    started = threading.Event()

    def kill_one() -> None:
        started.wait()
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    killer.start()
    seen: list[int] = []

    def progress(p: object) -> None:
        started.set()
        seen.append(getattr(p, "files_done", 0))

    remote = scan_files(rules, targets, timeout=120, cluster=cluster, progress=progress)
    killer.join()
    assert remote.results == local.results and not remote.errors and not remote.timeouts
    assert sorted(remote.seconds) == sorted(local.seconds)
    assert seen == sorted(seen)


def test_cancel_stops_a_cluster_scan_with_what_finished(tmp_path: Path, cluster: str) -> None:
    rules = yara.compile(source=SLOW_RULE)
    files = {f"f{i:02d}": bytes([i % 3]) * 200_000 for i in range(24)}
    write_files(tmp_path, files)
    targets = [ScanTarget(f"{i:064x}", tmp_path / name, len(data))
               for i, (name, data) in enumerate(files.items())]
    cancel = threading.Event()

    def progress(p: ScanProgress) -> None:
        if p.files_done:
            cancel.set()

    with pytest.raises(ScanCancelled) as raised:
        scan_files(rules, targets, timeout=120, cluster=cluster, progress=progress,
                   cancel=cancel)
    partial = raised.value.outcome
    assert partial is not None and 0 < len(partial.seconds) < len(targets)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_through_the_dask_scheduler_and_worker_commands(lab: Lab) -> None:
    dask = str(Path(sys.executable).with_name("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1",
                                       "--nworkers", "2", "--host", "127.0.0.1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        workbench = str(Path(sys.executable).with_name("workbench"))
        home = str(lab.workspace.home)
        runs = [subprocess.run([workbench, "--home", home, "test", str(lab.rules), "--json",
                                "--no-cache", *extra], capture_output=True, text=True,
                               timeout=300, env={**os.environ, "WORKBENCH_NO_TUI": "1"})
                for extra in ([], ["--cluster", address])]
        local, remote = (json.loads(r.stdout) for r in runs)
        assert _without_timing(remote) == _without_timing(local)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
