"""Worker processes: a hang, a native crash or a memory blow-up kills one worker, and the pool recovers."""

from __future__ import annotations

import time
from typing import Any

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


def test_big_payloads_go_through_the_spool_folder_and_leave_nothing(
        pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import workbench.dissect.worker as worker_module

    writes: list[str] = []

    def slow_write(folder: str, name: str, data: bytes) -> Any:
        # half now, the rest a little later: a task that did not wait would read half a file
        writes.append(name)
        with open(os.path.join(folder, name), "xb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(0.3)
            fh.write(data[len(data) // 2:])
        return worker_module.Spooled(name, len(data))

    monkeypatch.setattr(worker_module, "_write_spool", slow_write)
    assert pool.spool is not None and os.path.isdir(pool.spool)
    payload = os.urandom(4 * worker_module.SPOOL_MIN + 3)
    want = f"{len(payload)}:{hashlib.sha256(payload).hexdigest()}"
    together = threading.Barrier(2)
    with ThreadPoolExecutor(2) as threads:     # two live workers first: no start-up in between
        list(threads.map(lambda _: pool.call("probe", ("sleep", 0.2), timeout=10, memory=0), range(2)))

    def digest_in_a_worker(_: int) -> str:
        together.wait()
        return str(pool.call("probe_digest", (payload,), timeout=30, memory=0))

    # The same bytes object from two threads at once share one spool file: the second task
    # waits until the first has written it, and the file goes when the last is done.
    with ThreadPoolExecutor(2) as threads:
        assert list(threads.map(digest_in_a_worker, range(2))) == [want, want]
    assert len(writes) == 1 and os.listdir(pool.spool) == []


def test_big_children_come_back_through_the_spool_folder(pool: WorkerPool) -> None:
    import hashlib
    import os

    from workbench.dissect.engine import dissect_bytes
    from workbench.samples.archives import build_zip

    member = os.urandom(3 << 20)
    result = dissect_bytes(build_zip([("big.bin", member)], compress=False), "big.zip", pool=pool)
    child = result.root.children[0]
    assert child.sha256 == hashlib.sha256(member).hexdigest() and child.size == len(member)
    assert child.ssdeep and not child.notes
    assert pool.spool is not None and os.listdir(pool.spool) == []


def test_without_a_spool_folder_everything_goes_by_pipe() -> None:
    import os

    payload = os.urandom(1 << 20)
    piped = WorkerPool(size=1, spool=False)
    try:
        assert piped.spool is None
        assert piped.call("fingerprint", (payload, 1 << 30), timeout=30, memory=0).ssdeep
    finally:
        piped.close()


def test_spool_names_and_sizes_are_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from workbench.dissect.worker import Spooled, _read_spool, _write_spool

    item = _write_spool(str(tmp_path), "r-1-1", b"x" * 10)
    assert _read_spool(str(tmp_path), item) == b"x" * 10
    with pytest.raises(ValueError, match="announced"):
        _read_spool(str(tmp_path), Spooled("r-1-1", 9))
    (tmp_path.parent / "secret").write_bytes(b"s")
    with pytest.raises(ValueError, match="not a spooled payload"):
        _read_spool(str(tmp_path), Spooled("../secret", 1))


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


def test_spool_folders_of_dead_processes_are_removed() -> None:
    import os

    from workbench.dissect.worker import _SPOOL_PREFIX, _TMPFS

    if not os.access(_TMPFS, os.W_OK):
        pytest.skip("no writable tmpfs")
    orphan = os.path.join(_TMPFS, f"{_SPOOL_PREFIX}999999999-test")    # above any pid_max
    os.makedirs(orphan, exist_ok=True)
    open(os.path.join(orphan, "a-999999999-1"), "wb").close()
    fresh = WorkerPool(size=1)
    try:
        assert not os.path.exists(orphan)
    finally:
        fresh.close()


def test_warm_starts_every_worker_at_once() -> None:
    fresh = WorkerPool(size=2)
    try:
        fresh.warm()
        assert len(fresh._all) == 2 and len({w.process.pid for w in fresh._all}) == 2
        assert [fresh.call("probe", (str(i),), timeout=30, memory=0) for i in range(3)] == ["0", "1", "2"]
        fresh.warm()                                  # already full: starts nothing more
        assert len(fresh._all) == 2 and fresh.restarts == 0
    finally:
        fresh.close()


def test_children_stay_in_the_answer_when_the_spool_folder_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import itertools

    from workbench.dissect.model import Child, DissectResult
    from workbench.dissect.worker import SPOOL_MIN, _spool_children

    big, small = b"b" * SPOOL_MIN, b"s"
    result = DissectResult(children=[Child("big", big), Child("small", small), Child("big2", big)])
    assert _spool_children(str(tmp_path / "gone"), result, itertools.count()) == {}
    assert [c.data for c in result.children] == [big, small, big]
    spooled = _spool_children(str(tmp_path), result, itertools.count())
    assert sorted(spooled) == [0, 2] and [c.data for c in result.children] == [b"", small, b""]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(item.name for item in spooled.values())


def test_a_full_spool_folder_keeps_no_half_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import errno
    import os

    import workbench.dissect.worker as worker_module

    real_write = os.write

    def full_after_a_bit(fd: int, data: Any) -> int:
        if len(data) <= 2000:                 # the device fills up after 3,000 bytes
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[:1000])

    monkeypatch.setattr(worker_module.os, "write", full_after_a_bit)
    with pytest.raises(OSError, match="No space"):
        worker_module._write_spool(str(tmp_path), "a-1-1", b"x" * 5000)
    assert list(tmp_path.iterdir()) == []
