"""The spool watcher: mail towers copy in is ingested as it settles, never half-written, never lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer
from workbench.cli import main
from workbench.distribute.server import ServerSettings
from workbench.exitcodes import E_CONFLICT, E_OK
from workbench.quarantine.ingest import Ingester, ingest_paths, spool_lock
from workbench.quarantine.watch import SpoolWatcher


def drop(quarantine, tower: str, server: str, name: str, data: bytes, *, age: float = 60.0) -> Path:
    """A tower's copy: written as .tmp, renamed; ``age`` seconds old."""
    folder = quarantine.incoming / tower / server
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.tmp"
    tmp.write_bytes(data)
    when = time.time() - age
    os.utime(tmp, (when, when))
    return tmp.rename(folder / name)


def spool_files(quarantine) -> list[str]:
    return sorted(p.name for p in quarantine.incoming.rglob("*") if p.is_file())


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_a_file_still_being_written_is_left_until_it_settles(workspace, quarantine, mail):
    old = drop(quarantine, "t01", "mx01", "old.eml", mail(1))
    fresh = drop(quarantine, "t01", "mx01", "fresh.eml", mail(2), age=0)
    watcher = SpoolWatcher(workspace, settle=30)
    result = watcher.drain(quarantine)
    assert result.summary is not None and result.summary.accepted == 1
    assert not old.exists() and fresh.exists()
    assert quarantine.index.count() == 1

    os.utime(fresh, (time.time() - 60, time.time() - 60))      # the tower finished writing
    assert watcher.drain(quarantine).summary.accepted == 1
    assert spool_files(quarantine) == [] and quarantine.index.count() == 2
    assert watcher.totals.accepted == 2 and watcher.totals.messages == []


def test_a_held_spool_lock_means_no_drain_and_nothing_moves(workspace, quarantine, mail):
    drop(quarantine, "t01", "mx01", "a.eml", mail(1))
    with spool_lock(quarantine):
        result = SpoolWatcher(workspace).drain(quarantine)
    assert result.busy and result.summary is None
    assert spool_files(quarantine) == ["a.eml"]


def test_a_failed_drain_keeps_the_files_and_the_loop_retries(workspace, quarantine, mail, monkeypatch):
    drop(quarantine, "t02", "mx03", "a.eml", mail(1))
    real_run = Ingester.run
    calls = {"n": 0}

    def flaky(self, items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real_run(self, items)

    monkeypatch.setattr(Ingester, "run", flaky)
    seen = []
    watcher = SpoolWatcher(workspace, interval=0.05, settle=0)
    thread, stop = watcher.start(seen.append)
    try:
        wait_for(lambda: quarantine.index.count() == 1)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert "No space left on device" in seen[0].error and seen[1].summary.accepted == 1
    assert watcher.errors == 1 and spool_files(quarantine) == []


def test_the_loop_takes_mail_as_it_arrives_and_stops_promptly(workspace, quarantine, mail):
    watcher = SpoolWatcher(workspace, interval=0.05, settle=0)
    thread, stop = watcher.start()
    try:
        for n in range(5):
            drop(quarantine, f"t0{n % 2}", "mx01", f"{n}.eml", mail(n))
        drop(quarantine, "t01", "mx01", "junk", b"\x00\x01 not mail")
        wait_for(lambda: quarantine.index.count() == 5 and spool_files(quarantine) == [])
    finally:
        stop.set()
        thread.join(5)              # stops at all; how promptly is a speed claim, not a test's
    assert not thread.is_alive()
    assert watcher.totals.accepted == 5 and watcher.totals.failed == 1
    assert quarantine.index.failed()[0].source.endswith("junk")


def test_ingesting_the_spool_by_hand_waits_for_the_watcher(workspace, quarantine, mail):
    """Two readers of one spool would race for each file; the manual path takes the lock too."""
    drop(quarantine, "t01", "mx01", "a.eml", mail(1))
    done = threading.Event()

    def manual() -> None:
        ingest_paths(quarantine.__class__(quarantine.root), [quarantine.incoming])
        done.set()

    with spool_lock(quarantine):
        worker = threading.Thread(target=manual)
        worker.start()
        time.sleep(0.3)
        assert not done.is_set() and spool_files(quarantine) == ["a.eml"]
    worker.join(10)
    assert done.is_set() and spool_files(quarantine) == [] and quarantine.index.count() == 1


def test_watch_once_json_and_busy_exit_code(workspace, quarantine, mail, capsys):
    drop(quarantine, "t03", "mx07", "a.eml", b"X-Quarantine-Reason: stuck\n" + mail(1))
    home = str(workspace.home)
    assert main(["--home", home, "quarantine", "watch", "--once", "--settle", "0", "--json"]) == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["accepted"] == 1 and doc["error"] == "" and doc["busy"] is False
    assert quarantine.index.count("reason:stuck tower:t03") == 1

    with spool_lock(quarantine):
        assert main(["--home", home, "quarantine", "watch", "--once"]) == E_CONFLICT
    assert "spool.lock" in capsys.readouterr().err


def test_watch_runs_until_sigterm_and_reports_what_it_took(workspace, quarantine, mail):
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("workbench")), "--home", str(workspace.home), "quarantine", "watch",
         "--interval", "0.1", "--settle", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "watching" in proc.stderr.readline()
        drop(quarantine, "t01", "mx02", "a.eml", mail(7))
        line = proc.stdout.readline()
        assert "accepted 1" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == E_OK
    assert "stopped after" in err and "accepted 1" in err
    assert quarantine.index.count() == 1


def test_serve_drains_the_spool_and_counts_it_in_metrics(workspace, quarantine, mail):
    server = LiveServer(workspace, settings=ServerSettings(spool_interval=0.05, spool_settle=0)).start()
    try:
        drop(quarantine, "t05", "mx11", "a.eml", mail(1))
        drop(quarantine, "t05", "mx11", "b.eml", mail(1))      # the same message again
        metrics = ""

        def counted() -> bool:
            nonlocal metrics
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
                metrics = response.read().decode()
            return 'workbench_spool_messages_total{result="duplicate"} 1.0' in metrics

        wait_for(counted)
    finally:
        server.stop()
    assert spool_files(quarantine) == []
    assert 'workbench_spool_messages_total{result="accepted"} 1.0' in metrics
    [row] = quarantine.index.list("tower:t05")
    assert row.sightings == 2


@pytest.mark.parametrize("interval", [0, -1])
def test_a_watcher_needs_a_positive_interval(workspace, interval):
    with pytest.raises(ValueError):
        SpoolWatcher(workspace, interval=interval)
