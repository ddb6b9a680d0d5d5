"""Worker processes that run dissectors under memory and CPU limits, so hostile input kills a worker, not us.

A worker is a fresh ``python -m workbench.dissect.worker`` talking length-prefixed
pickles over its stdin and stdout (results are unpickled with an allow-list). Each
call sends a task, the parent waits at most the wall-clock timeout and kills the
worker when it is exceeded. Inside, ``RLIMIT_AS`` caps the address space (baseline plus
``Limits.memory``) and ``RLIMIT_CPU`` is raised per task to the CPU time used so
far plus the timeout, so a busy loop dies by SIGXCPU even if the parent is stuck.
"""

from __future__ import annotations

import atexit
import io
import os
import pickle
import queue
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from workbench.dissect.model import DissectResult, Identity, Limits, MiB


class WorkerFailed(Exception):
    """The worker died (native crash, memory or CPU limit): the node gets ``parser-error``."""


class WorkerTimeout(Exception):
    """The call ran past its wall-clock timeout; the worker was killed."""


# -- inside the worker ---------------------------------------------------------------------


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def task_identify(data: bytes, fuzzy_max: int) -> Identity:
    from workbench.dissect.identify import identify

    return identify(data, fuzzy_max=fuzzy_max)


def task_dissect(name: str, data: bytes, ctx: Any) -> DissectResult:
    from workbench.dissect.registry import by_name

    return by_name(name).dissect(data, ctx)


def task_probe(mode: str, amount: int = 0) -> str:
    """Misbehave on purpose (sleep, spin, allocate, crash) so tests can see the limits hold."""
    if mode == "sleep":
        time.sleep(amount)
    elif mode == "spin":
        while True:
            pass
    elif mode == "allocate":
        return str(len(bytearray(amount)))
    elif mode == "crash":
        import ctypes

        ctypes.string_at(0)           # SIGSEGV: a native crash, as a buggy C parser would
    return mode


TASKS: dict[str, Callable[..., Any]] = {"identify": task_identify, "dissect": task_dissect,
                                        "probe": task_probe}


_HEADER = struct.Struct("<Q")
_SAFE_MODULES = ("workbench.dissect.", "datetime", "collections", "copyreg", "_codecs")
_SAFE_BUILTINS = {"list", "dict", "set", "frozenset", "tuple", "bytes", "bytearray", "str", "int",
                  "float", "bool", "complex", "NoneType", "slice", "range"}


class _ResultUnpickler(pickle.Unpickler):
    """Only our own documents and plain data: a compromised worker cannot name other callables."""

    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in _SAFE_BUILTINS) or module.startswith(_SAFE_MODULES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def _send(fh: IO[bytes], value: Any) -> None:
    blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(blob)) + blob)
    fh.flush()


def _recv_exact(fh: IO[bytes], n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = fh.read(n - len(out))
        if not chunk:
            raise EOFError("pipe closed")
        out += chunk
    return bytes(out)


def worker_main() -> None:
    """The worker process: read tasks from stdin, answer on stdout, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the parent's business
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr                            # stray prints must not corrupt the pipe
    from workbench.dissect.registry import registry

    registry()                                         # import every format before limits apply
    baseline = _vm_size()
    while True:
        try:
            (length,) = _HEADER.unpack(_recv_exact(stdin, _HEADER.size))
            kind, args, timeout, memory = pickle.loads(_recv_exact(stdin, length))
        except (EOFError, OSError):
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(usage.ru_utime + usage.ru_stime + timeout) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        if memory and baseline:
            resource.setrlimit(resource.RLIMIT_AS, (baseline + memory, resource.RLIM_INFINITY))
        try:
            reply: tuple[str, Any] = ("ok", TASKS[kind](*args))
        except MemoryError:
            reply = ("error", f"out of memory (worker limit {memory // MiB} MiB over its baseline)")
        except RecursionError:
            reply = ("error", "recursion too deep")
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}"[:500])
        try:
            _send(stdout, reply)
        except MemoryError:
            _send(stdout, ("error", "out of memory while returning the result"))
        if memory and baseline:
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


# -- in the workbench ------------------------------------------------------------------------


class _Worker:
    """A ``python -m workbench.dissect.worker`` child: a fresh interpreter, no inherited state."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.dissect.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout

    def call(self, message: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        _send(self.stdin, message)
        fd = self.stdout.fileno()
        buf = bytearray()
        need = _HEADER.size
        length: int | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerTimeout(f"no answer within {timeout:g} s; worker killed")
            chunk = os.read(fd, max(need - len(buf), 1 << 16) if length is None else need - len(buf))
            if not chunk:
                raise EOFError("worker closed its pipe")
            buf += chunk
            if length is None and len(buf) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buf)
                del buf[:_HEADER.size]
                need = length
            if length is not None and len(buf) >= need:
                value: tuple[str, Any] = _ResultUnpickler(io.BytesIO(bytes(buf))).load()
                return value

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for fh in (self.stdin, self.stdout):
            try:
                fh.close()
            except OSError:
                pass

    def describe_death(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "worker stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed)", "SIGSEGV": " (native crash)"}
            return f"worker died by {name}{hint.get(name, '')}"
        return f"worker exited with code {code}"


class WorkerPool:
    """Up to ``size`` long-lived workers; a call borrows one, and a dead one is replaced."""

    def __init__(self, size: int | None = None):
        self.size = size or max(2, min(4, os.cpu_count() or 2))
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: list[_Worker] = []
        self.restarts = 0

    def _acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._started < self.size:
                self._started += 1
                try:
                    worker = _Worker()
                except BaseException:
                    self._started -= 1
                    raise
                self._all.append(worker)
                return worker
        return self._idle.get()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._started -= 1
            self.restarts += 1
            if worker in self._all:
                self._all.remove(worker)

    def call(self, kind: str, args: tuple[Any, ...], *, timeout: float, memory: int) -> Any:
        worker = self._acquire()
        try:
            status, value = worker.call((kind, args, timeout, memory), timeout)
        except WorkerTimeout:
            self._discard(worker)
            raise
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            reason = worker.describe_death() if not isinstance(exc, pickle.UnpicklingError) else str(exc)
            self._discard(worker)
            raise WorkerFailed(reason) from None
        except BaseException:
            self._discard(worker)           # interrupted mid-call: its pipe state is unknown
            raise
        self._idle.put(worker)
        if status == "error":
            raise WorkerFailed(value)
        return value

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
            self._started = 0
        for worker in workers:
            worker.kill()
        while not self._idle.empty():
            self._idle.get_nowait()


_DEFAULT: WorkerPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> WorkerPool:
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = WorkerPool()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


def run_task(kind: str, args: tuple[Any, ...], *, limits: Limits, timeout: float,
             pool: WorkerPool | None = None) -> Any:
    """Run a task in a worker (or inline when ``limits.isolate`` is False: no time or memory cap)."""
    if not limits.isolate:
        try:
            return TASKS[kind](*args)
        except MemoryError:
            raise WorkerFailed("out of memory") from None
        except RecursionError:
            raise WorkerFailed("recursion too deep") from None
        except Exception as exc:
            raise WorkerFailed(f"{type(exc).__name__}: {exc}"[:500]) from None
    return (pool or default_pool()).call(kind, args, timeout=timeout, memory=limits.memory)


if __name__ == "__main__":
    worker_main()
