"""Overlapping test runs pause the cyclic collector together and bring it back once."""

from __future__ import annotations

import gc
import threading

import pytest

from workbench.corpus.incremental import paused_gc


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    yield
    gc.enable()


def test_overlapping_runs_restore_the_collector_only_after_the_last():
    first, second = paused_gc(), paused_gc()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)           # the first run ends while the second goes on
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()


def test_runs_in_threads_leave_it_on():
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        for _ in range(200):
            with paused_gc():
                pass

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gc.isenabled()
