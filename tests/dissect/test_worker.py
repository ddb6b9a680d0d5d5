"""Worker processes: a hang, a native crash or a memory blow-up kills one worker, and the pool recovers."""

from __future__ import annotations

import time

import pytest

from workbench.dissect.model import Limits, MiB
from workbench.dissect.worker import WorkerFailed, WorkerPool, WorkerTimeout, run_steps, run_task

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def test_wall_clock_timeout_kills_the_worker_and_the_pool_recovers(pool: WorkerPool) -> None:
    before = pool.restarts
    with pytest.raises(WorkerTimeout):      # the probe would sleep 30 s: the timeout cut it
        pool.call("probe", ("sleep", 30), timeout=0.5, memory=0)
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
        with pytest.raises(WorkerTimeout):  # the step would sleep 30 s: its own timeout cut it
            steps.next(0.3)
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


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_big_payloads_go_as_one_memfd_and_leave_nothing(pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import workbench.dissect.worker as worker_module

    writes: list[int] = []
    real_write = worker_module._write_memfd

    def slow_write(data: bytes) -> int:
        # takes a while: a task that did not wait for it would pass an empty descriptor
        writes.append(len(data))
        time.sleep(0.3)
        return real_write(data)

    monkeypatch.setattr(worker_module, "_write_memfd", slow_write)
    payload = os.urandom(4 * worker_module.SPOOL_MIN + 3)
    want = f"{len(payload)}:{hashlib.sha256(payload).hexdigest()}"
    together = threading.Barrier(2)
    with ThreadPoolExecutor(2) as threads:     # two live workers first: no start-up in between
        list(threads.map(lambda _: pool.call("probe", ("sleep", 0.2), timeout=10, memory=0), range(2)))
    before = _open_fds()

    def digest_in_a_worker(_: int) -> str:
        together.wait()
        return str(pool.call("probe_digest", (payload,), timeout=30, memory=0))

    # The same bytes object from two threads at once share one memfd: the second task waits
    # until the first has written it, and the descriptor is closed when the last is done.
    with ThreadPoolExecutor(2) as threads:
        assert list(threads.map(digest_in_a_worker, range(2))) == [want, want]
    assert writes == [len(payload)] and pool._outgoing == {}
    assert _open_fds() == before


def test_big_children_come_back_as_memfds(pool: WorkerPool) -> None:
    import hashlib
    import os

    from workbench.dissect.walker import dissect_bytes
    from workbench.samples.archives import build_zip

    pool.warm()
    before = _open_fds()
    member = os.urandom(3 << 20)
    result = dissect_bytes(build_zip([("big.bin", member)], compress=False), "big.zip", pool=pool)
    child = result.root.children[0]
    assert child.sha256 == hashlib.sha256(member).hexdigest() and child.size == len(member)
    assert child.ssdeep and not child.notes
    assert _open_fds() == before                # every passed descriptor was closed


def test_without_memfds_everything_goes_through_the_socket() -> None:
    import os

    payload = os.urandom(1 << 20)
    inline = WorkerPool(size=1, spool=False)
    try:
        assert inline.call("fingerprint", (payload, 1 << 30), timeout=30, memory=0).ssdeep
    finally:
        inline.close()


def test_passed_payloads_must_be_regular_files_of_the_announced_size() -> None:
    import os

    from workbench.dissect.worker import _read_memfd, _write_memfd

    assert _read_memfd(_write_memfd(b"x" * 10), 10) == b"x" * 10
    with pytest.raises(ValueError, match="announced"):
        _read_memfd(_write_memfd(b"x" * 10), 9)
    r, w = os.pipe()                             # a pipe would block the reader forever
    os.close(w)
    with pytest.raises(ValueError, match="not a regular file"):
        _read_memfd(r, 1)


def test_answers_may_name_document_classes_but_no_functions() -> None:
    import io
    import pickle

    from workbench.dissect.model import Fingerprint
    from workbench.dissect.worker import _ResultUnpickler, task_probe

    fp = Fingerprint("a", "b", "", "", 0.0, 256, [])
    assert _ResultUnpickler(io.BytesIO(pickle.dumps(fp))).load() == fp

    class Call:
        def __reduce__(self) -> tuple[object, ...]:
            return task_probe, ("crash",)

    with pytest.raises(pickle.UnpicklingError, match="not a document class"):
        _ResultUnpickler(io.BytesIO(pickle.dumps(Call()))).load()


def test_warm_starts_every_worker_at_once() -> None:
    fresh = WorkerPool(size=2)
    try:
        fresh.warm()
        assert len(fresh._all) == 2 and len({w.pid for w in fresh._all}) == 2
        assert [fresh.call("probe", (str(i),), timeout=30, memory=0) for i in range(3)] == ["0", "1", "2"]
        fresh.warm()                                  # already full: starts nothing more
        assert len(fresh._all) == 2 and fresh.restarts == 0
    finally:
        fresh.close()


def test_children_stay_in_the_answer_when_memfds_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.dissect.worker as worker_module
    from workbench.dissect.model import Child, DissectResult

    def no_memory(data: bytes) -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(worker_module, "_write_memfd", no_memory)
    big, small = b"b" * worker_module.SPOOL_MIN, b"s"
    result = DissectResult(children=[Child("big", big), Child("small", small), Child("big2", big)])
    fds: list[int] = []
    assert worker_module._spool_children(result, fds) == {} and fds == []
    assert [c.data for c in result.children] == [big, small, big]
