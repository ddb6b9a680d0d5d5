"""The sandbox: an exploited worker reaches nothing; without the sandbox, every node says so."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.cli import main
from workbench.dissect import worker as worker_module
from workbench.dissect.model import PARSER_ERROR, Limits
from workbench.dissect.probe import (
    ATTEMPTS,
    CONNECT_LOOPBACK,
    EXEC_SHELL,
    READ_KEYS,
    WRITE_OUTSIDE,
    run_hostile_probe,
)
from workbench.dissect.sandbox import LIMITS_ONLY, SandboxUnavailable, bwrap_binary, is_sandboxed
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import TaskSteps, WorkerFailed, WorkerPool
from workbench.exitcodes import E_CONFLICT, E_OK
from workbench.samples import hostile
from workbench.samples.archives import build_zip
from workbench.samples.mail import EICAR

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

needs_bwrap = pytest.mark.skipif(bwrap_binary() is None, reason="bubblewrap is not installed (./dev installs it)")


@pytest.fixture
def fresh_default_pools(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, WorkerPool]]:
    """The CLI's per-process pools, started afresh under this test's environment and closed after."""
    pools: dict[str, WorkerPool] = {}
    monkeypatch.setattr(worker_module, "_DEFAULT", pools)
    yield pools
    for pool in pools.values():
        pool.close()


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine without a usable bubblewrap, by configuration."""
    monkeypatch.setenv("WORKBENCH_BWRAP", str(tmp_path / "no-such-bwrap"))


@pytest.fixture
def traps(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "home" / "state" / "keys"
    keys.mkdir(parents=True)
    (keys / "root.key").write_bytes(b"-----BEGIN PRIVATE KEY----- not really\n")
    return keys, tmp_path / "home"


@needs_bwrap
def test_every_escape_is_denied_in_a_real_worker(pool: WorkerPool, traps: tuple[Path, Path]) -> None:
    keys, home = traps
    assert is_sandboxed(pool.isolation), pool.isolation
    report = run_hostile_probe(pool, keys, home)
    assert [a.name for a in report.attempts] == list(ATTEMPTS)
    for attempt in report.attempts:
        assert attempt.denied, f"{attempt.name}: {attempt.detail}"
    assert report.contained
    assert sorted(p.name for p in home.iterdir()) == ["state"]      # nothing was written outside
    assert pool.call("probe", ("still working",), timeout=30, memory=0) == "still working"


def test_the_probe_has_teeth_without_the_sandbox(traps: tuple[Path, Path]) -> None:
    """The same probe, limits only: the attempts that need no privileges succeed, so a denial
    above means the sandbox stopped them, not that the probe is broken."""
    keys, home = traps
    unsandboxed = WorkerPool(size=2, sandbox="off")
    try:
        assert unsandboxed.isolation == LIMITS_ONLY
        report = run_hostile_probe(unsandboxed, keys, home)
    finally:
        unsandboxed.close()
    escaped = {a.name for a in report.attempts if not a.denied}
    assert {READ_KEYS, CONNECT_LOOPBACK, WRITE_OUTSIDE, EXEC_SHELL} <= escaped
    assert not report.contained
    assert sorted(p.name for p in home.iterdir()) == ["state"]      # the probe's files were cleaned up


@needs_bwrap
def test_a_worker_cannot_name_the_workspace(pool: WorkerPool, tmp_path: Path) -> None:
    """Seen from inside: no workspace, no home folder, no other worker's spool; only what is bound."""
    (tmp_path / "quarantine" / "objects").mkdir(parents=True)
    seen = pool.call("probe_escape", (str(tmp_path / "quarantine" / "objects"), 9, [], "-"), timeout=60,
                     memory=0)
    assert dict((name, denied) for name, denied, _ in seen)[READ_KEYS]
    assert not os.listdir(tmp_path / "quarantine" / "objects")


def test_fallback_records_limits_only_on_every_node() -> None:
    unsandboxed = WorkerPool(size=2, sandbox="off")
    try:
        result = dissect_bytes(build_zip([("a.com", EICAR), ("b.txt", b"hello")]), "x.zip", pool=unsandboxed)
    finally:
        unsandboxed.close()
    nodes = list(result.root.walk())
    assert len(nodes) == 3 and {n.isolation for n in nodes} == {LIMITS_ONLY}
    assert result.root.children[0].sha256 == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


@needs_bwrap
def test_the_sandbox_is_recorded_on_every_node(pool: WorkerPool) -> None:
    result = dissect_bytes(build_zip([("a.com", EICAR)]), "x.zip", pool=pool)
    assert {n.isolation for n in result.root.walk()} == {"sandbox (bubblewrap + seccomp)"}
    assert dissect_bytes(b"inline", "x.txt", limits=Limits(isolate=False)).root.isolation == "none (in process)"


def test_require_refuses_when_the_machine_cannot_sandbox(no_bwrap: None) -> None:
    refusing = WorkerPool(size=1, sandbox="require")
    try:
        with pytest.raises(SandboxUnavailable, match="bubblewrap not installed"):
            _ = refusing.isolation
    finally:
        refusing.close()
    fallback = WorkerPool(size=1, sandbox="auto")         # auto: the same machine falls back, loudly
    try:
        assert fallback.isolation == LIMITS_ONLY
        with pytest.raises(SandboxUnavailable):
            dissect_bytes(b"x", "x.txt", pool=fallback, limits=Limits(sandbox="require"))
    finally:
        fallback.close()


def test_cli_without_a_sandbox_warns_records_and_refuses_on_request(
        no_bwrap: None, fresh_default_pools: dict[str, WorkerPool], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sample = tmp_path / "note.txt"
    sample.write_bytes(b"hello")
    home = tmp_path / "home"
    home.mkdir()
    assert main(["--home", str(home), "dissect", str(sample), "--json"]) == E_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["root"]["isolation"] == LIMITS_ONLY
    assert "WITHOUT the sandbox" in captured.err
    assert main(["--home", str(home), "dissect", str(sample), "--require-sandbox"]) == E_CONFLICT
    captured = capsys.readouterr()
    assert captured.out == "" and "refused" in captured.err
    # the workspace setting does the same without the flag
    home.mkdir(exist_ok=True)
    (home / "workbench.toml").write_text('[dissect]\nsandbox = "require"\n')
    assert main(["--home", str(home), "dissect", str(sample)]) == E_CONFLICT
    (home / "workbench.toml").write_text('[dissect]\nsandbox = "sometimes"\n')
    assert main(["--home", str(home), "dissect", str(sample)]) == E_CONFLICT
    assert "must be one of" in capsys.readouterr().err


def test_a_worker_killed_mid_dissection_is_a_parser_error_and_the_pool_goes_on(
        pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    real_next = TaskSteps.next
    killed: list[int] = []

    def kill_after_the_type(self: TaskSteps, timeout: float) -> Any:
        value = real_next(self, timeout)
        if self.kind == "node" and not self.done and not killed:
            killed.append(self._worker.pid)
            os.kill(self._worker.pid, signal.SIGKILL)    # the dissector is running now
        return value

    monkeypatch.setattr(TaskSteps, "next", kill_after_the_type)
    result = dissect_bytes(hostile.nested_mime(1000), as_message=True, pool=pool)
    assert killed
    assert result.root.status == PARSER_ERROR and "SIGKILL" in result.root.reason
    assert result.root.md5 and result.root.mime                 # the node keeps its hashes and type
    monkeypatch.setattr(TaskSteps, "next", real_next)
    again = dissect_bytes(build_zip([("a.com", EICAR)]), "x.zip", pool=pool)
    assert again.status == "ok" and again.root.children[0].size == len(EICAR)


def test_a_killed_worker_reports_its_death(pool: WorkerPool) -> None:
    with pool.steps("probe_steps", (3, 1, 30.0), budget=60, memory=0) as steps:
        assert steps.next(10) == 0
        os.kill(steps._worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerFailed, match="SIGKILL"):
            steps.next(10)
    assert pool.call("probe", ("ok",), timeout=30, memory=0) == "ok"


def test_two_pools_share_one_server_which_leaves_when_idle(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import time

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_DISSECT_IDLE", "1")
    first, second = WorkerPool(size=1, shared=True), WorkerPool(size=1, shared=True)
    try:
        assert first.call("probe", ("a",), timeout=60, memory=0) == "a"
        assert second.call("probe", ("b",), timeout=60, memory=0) == "b"
        assert first._server is not None and second._server is not None
        assert first._server.address == second._server.address
        assert first.isolation == second.isolation
    finally:
        first.close()
        second.close()
    address = str(next(tmp_path.glob("workbench-*/dissect-*.sock")))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(3)                                 # longer than the idle time: a look is a worker too
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(address)
        except OSError:
            break                                     # nobody listens: the server left
        finally:
            probe.close()
    else:
        pytest.fail(f"the shared server at {address} did not leave when idle")


def test_a_private_server_that_dies_is_replaced() -> None:
    private = WorkerPool(size=1, sandbox="off")
    try:
        assert private.call("probe", ("a",), timeout=60, memory=0) == "a"
        assert private._server is not None and private._server.process is not None
        private._server.process.kill()               # unwrapped: the server itself
        private._server.process.wait()
        with pytest.raises(WorkerFailed):              # its worker went with it
            private.call("probe", ("b",), timeout=60, memory=0)
        assert private.call("probe", ("c",), timeout=60, memory=0) == "c"
    finally:
        private.close()


def test_a_bubblewrap_that_cannot_create_namespaces_falls_back_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """What a machine with user namespaces disabled looks like: bwrap is there but refuses."""
    refusing = tmp_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    refusing.chmod(0o755)
    monkeypatch.setenv("WORKBENCH_BWRAP", str(refusing))
    fallback = WorkerPool(size=1)
    try:
        with caplog.at_level("WARNING", logger="workbench.dissect"):
            assert fallback.isolation == LIMITS_ONLY
        assert "NOT sandboxed" in caplog.text and "No permissions to creating new namespace" in caplog.text
        assert fallback.call("probe", ("works",), timeout=60, memory=0) == "works"
    finally:
        fallback.close()
    strict = WorkerPool(size=1, sandbox="require")
    try:
        with pytest.raises(SandboxUnavailable, match="No permissions"):
            _ = strict.isolation
    finally:
        strict.close()
