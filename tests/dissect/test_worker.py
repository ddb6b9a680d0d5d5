"""Worker processes: a hang, a native crash or a memory blow-up kills one worker, and the pool recovers."""

from __future__ import annotations

import time

import pytest

from workbench.dissect.model import Limits, MiB
from workbench.dissect.worker import WorkerFailed, WorkerPool, WorkerTimeout, run_steps, run_task


def test_wall_clock_timeout_kills_the_worker_and_the_pool_recovers(pool: WorkerPool) -> None:
    before = pool.restarts
    started = time.monotonic()
    with pytest.raises(WorkerTimeout):
        pool.call("probe", ("sleep", 30), timeout=0.5, memory=0)
    assert time.monotonic() - started < 5
    assert pool.restarts == before + 1
    assert pool.call("probe", ("ok",), timeout=10, memory=0) == "ok"


def test_native_crash_is_reported_as_a_dead_worker(pool: WorkerPool) -> None:
    with pytest.raises(WorkerFailed, match="SIGSEGV"):
        pool.call("probe", ("crash",), timeout=10, memory=0)
    assert pool.call("probe", ("ok",), timeout=10, memory=0) == "ok"


def test_memory_limit_stops_an_allocation(pool: WorkerPool) -> None:
    with pytest.raises(WorkerFailed, match="out of memory"):
        pool.call("probe", ("allocate", 2048 * MiB), timeout=10, memory=256 * MiB)
    # the limit is per call: the same worker may allocate modestly afterwards
    assert pool.call("probe", ("allocate", 64 * MiB), timeout=10, memory=256 * MiB) == str(64 * MiB)


def test_inline_mode_runs_in_process() -> None:
    assert run_task("probe", ("inline",), limits=Limits(isolate=False), timeout=1) == "inline"


def test_a_task_answers_in_steps_and_the_worker_is_reused(pool: WorkerPool) -> None:
    before = pool.restarts
    with pool.steps("probe_steps", (3,), budget=10, memory=0) as steps:
        # the three answers arrive back to back: one read may hold several, none is lost
        assert [steps.next(5) for _ in range(3)] == [0, 1, 2]
        assert steps.done
        with pytest.raises(RuntimeError):
            steps.next(5)
    assert pool.restarts == before
    assert pool.call("probe", ("ok",), timeout=10, memory=0) == "ok"


def test_each_step_has_its_own_timeout(pool: WorkerPool) -> None:
    before = pool.restarts
    with pool.steps("probe_steps", (3, 1, 30.0), budget=60, memory=0) as steps:
        assert steps.next(5) == 0
        started = time.monotonic()
        with pytest.raises(WorkerTimeout):
            steps.next(0.3)
        assert time.monotonic() - started < 5
    assert pool.restarts == before + 1
    assert pool.call("probe", ("ok",), timeout=10, memory=0) == "ok"


def test_a_task_left_unfinished_costs_its_worker(pool: WorkerPool) -> None:
    before = pool.restarts
    with pool.steps("probe_steps", (2, 1, 30.0), budget=60, memory=0) as steps:
        assert steps.next(5) == 0
    assert pool.restarts == before + 1          # its pipe still owes an answer: never reused
    assert pool.call("probe", ("ok",), timeout=10, memory=0) == "ok"


def test_inline_steps_match_the_worker() -> None:
    with run_steps("probe_steps", (3,), limits=Limits(isolate=False), budget=1) as steps:
        assert [steps.next(1) for _ in range(3)] == [0, 1, 2] and steps.done
    with pytest.raises(WorkerFailed, match="KeyError"):
        run_task("dissect", ("no-such-dissector", b"x", None), limits=Limits(isolate=False), timeout=1)
