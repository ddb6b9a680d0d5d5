"""Worker processes that run dissectors under memory and CPU limits, so hostile input kills a worker, not us.

A worker is a fresh ``python -m workbench.dissect.worker`` talking length-prefixed
pickles over its stdin and stdout (results are unpickled with an allow-list). Each
call sends a task, the parent waits at most the wall-clock timeout and kills the
worker when it is exceeded. A task may answer in steps (``node``: the type first,
then the dissector's result), each step with its own timeout. Inside, ``RLIMIT_AS``
caps the address space (baseline plus ``Limits.memory``) and ``RLIMIT_CPU`` is raised
per task to the CPU time used so far plus the task's budget, so a busy loop dies by
SIGXCPU even if the parent is stuck.

Payloads of SPOOL_MIN bytes and more (a node's bytes going in, extracted children
coming back) travel as files in the pool's private spool folder on tmpfs instead of
through the pipe: one write and one read instead of a pickle copy, two pipe copies and
a context switch per MB. The pipe carries only their names.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import inspect
import io
import itertools
import os
import pickle
import queue
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from workbench.dissect.model import DissectResult, Fingerprint, Identity, Limits, MiB

if TYPE_CHECKING:
    from workbench.dissect.registry import NodePlan


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


def task_fingerprint(data: bytes, fuzzy_max: int) -> Fingerprint:
    from workbench.dissect.identify import fingerprint

    return fingerprint(data, fuzzy_max=fuzzy_max)


def task_node(data: bytes, plan: NodePlan) -> Iterator[tuple[Any, bool]]:
    """Classify, pick the dissector, run it: ``(magic, mime, name)`` first, then the result."""
    import dataclasses

    from workbench.dissect.identify import classify
    from workbench.dissect.registry import HEAD_BYTES, by_name

    description, mime = classify(data)
    name = plan.pick(mime=mime, magic=description, head=data[:HEAD_BYTES])
    runs = bool(name) and plan.may_dissect
    yield (description, mime, name), not runs
    if runs:
        ctx = dataclasses.replace(plan.ctx, mime=mime, magic=description)
        yield by_name(name).dissect(data, ctx), True


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


def task_probe_digest(data: bytes) -> str:
    """The sha256 of what arrived (tests of the payload transport)."""
    import hashlib

    return f"{len(data)}:{hashlib.sha256(data).hexdigest()}"


def task_probe_steps(steps: int, sleep_at: int = -1, amount: float = 0.0) -> Iterator[tuple[Any, bool]]:
    """Answer in ``steps`` steps, sleeping before step ``sleep_at`` (tests of the stepwise protocol)."""
    for i in range(steps):
        if i == sleep_at:
            time.sleep(amount)
        yield i, i == steps - 1


TASKS: dict[str, Callable[..., Any]] = {"identify": task_identify, "fingerprint": task_fingerprint,
                                        "dissect": task_dissect, "node": task_node, "probe": task_probe,
                                        "probe_digest": task_probe_digest,
                                        "probe_steps": task_probe_steps}


_HEADER = struct.Struct("<Q")
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_SIZE = 1 << 20
SPOOL_MIN = 256 << 10                  # payloads from this size go through the spool folder
_SPOOL_ENV = "WORKBENCH_DISSECT_SPOOL"
_SPOOL_NAME = re.compile(r"[ar]-[0-9]+-[0-9]+\Z")


@dataclass(frozen=True)
class Spooled:
    """Bytes waiting as a file in the spool folder; only this travels through the pipe."""

    name: str
    size: int


def _write_spool(folder: str, name: str, data: bytes) -> Spooled:
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with memoryview(data) as view:
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)                 # a tmpfs that filled up keeps no half file
        raise
    os.close(fd)
    return Spooled(name, len(data))


def _read_spool(folder: str, item: Spooled) -> bytes:
    if not isinstance(item, Spooled) or not _SPOOL_NAME.match(item.name) or item.size < 0:
        raise ValueError(f"not a spooled payload: {item!r}")
    fd = os.open(os.path.join(folder, item.name), os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        chunks = []
        left = item.size + 1              # one byte more: a file longer than announced is refused
        while left > 0 and (chunk := fh.read(left)):
            chunks.append(chunk)
            left -= len(chunk)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) != item.size:
        raise ValueError(f"spooled payload {item.name}: {len(data)} bytes, {item.size} announced")
    return data
_SAFE_MODULES = ("workbench.dissect.", "datetime", "collections", "copyreg", "_codecs")
_SAFE_BUILTINS = {"list", "dict", "set", "frozenset", "tuple", "bytes", "bytearray", "str", "int",
                  "float", "bool", "complex", "NoneType", "slice", "range"}


class _ResultUnpickler(pickle.Unpickler):
    """Only our own documents and plain data: a compromised worker cannot name other callables."""

    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in _SAFE_BUILTINS) or module.startswith(_SAFE_MODULES):
            found = super().find_class(module, name)
            # Our documents are classes; a function of ours (a task, the engine) is never data.
            if module.startswith("workbench.") and not isinstance(found, type):
                raise pickle.UnpicklingError(f"refused {module}.{name}: not a document class")
            return found
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def _send(fh: IO[bytes], value: Any) -> None:
    blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(blob)))
    fh.write(blob)
    fh.flush()


def _recv_exact(fh: IO[bytes], n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = fh.read(n - len(out))
        if not chunk:
            raise EOFError("pipe closed")
        out += chunk
    return bytes(out)


def _run_steps(kind: str, args: tuple[Any, ...], memory: int) -> Iterator[tuple[str, Any]]:
    """The replies of one task: ``("more", v)`` for every step but the last, then ``("ok", v)``
    or ``("error", why)``."""
    try:
        value: Any = TASKS[kind](*args)
        if not inspect.isgenerator(value):
            yield "ok", value
            return
        for step, last in cast(Iterator[tuple[Any, bool]], value):
            yield ("ok" if last else "more"), step
            if last:
                return
        yield "error", f"task {kind} ended without a last step"
    except MemoryError:
        yield "error", f"out of memory (worker limit {memory // MiB} MiB over its baseline)"
    except RecursionError:
        yield "error", "recursion too deep"
    except Exception as exc:
        yield "error", f"{type(exc).__name__}: {exc}"[:500]


def _spool_children(folder: str, value: Any, counter: Iterator[int]) -> dict[int, Spooled]:
    """Move the big children of a dissector's result into spool files: ``{child index: file}``.
    Should the folder fail (tmpfs full), every child stays in the answer instead."""
    if not isinstance(value, DissectResult):
        return {}
    spooled: dict[int, Spooled] = {}
    try:
        for index, child in enumerate(value.children):
            if len(child.data) >= SPOOL_MIN:
                spooled[index] = _write_spool(folder, f"r-{os.getpid()}-{next(counter)}", child.data)
    except OSError:
        for item in spooled.values():
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, item.name))
        return {}
    for index in spooled:
        value.children[index].data = b""
    return spooled


# Imported by the dissectors on first use (the parent never needs them); a worker loads them
# before it measures its memory baseline, so the first message pays no import and the
# memory limit counts only what a task allocates.
_PRELOAD = ("oletools.olevba", "oletools.mraptor", "oletools.oleobj", "oletools.rtfobj", "olefile",
            "msoffcrypto", "pefile", "cryptography.hazmat.primitives.serialization.pkcs7", "pyzipper",
            "py7zr", "tnefparse", "libarchive", "oletools.msodde", "oletools.ppt_record_parser", "pikepdf")


def worker_main() -> None:
    """The worker process: read tasks from stdin, answer on stdout, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the parent's business
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr                            # stray prints must not corrupt the pipe
    from workbench.dissect.identify import identify
    from workbench.dissect.registry import registry

    registry()                                         # import every format before limits apply
    identify(b"warm-up " * 16, fuzzy_max=1 << 20)      # numpy, libfuzzy, tlsh, the magic database too
    for name in _PRELOAD:                              # what dissectors import on first use
        # libarchive-c raises AttributeError or OSError, not ImportError, without its library
        with contextlib.suppress(ImportError, OSError, AttributeError):
            importlib.import_module(name)
    baseline = _vm_size()
    spool = os.environ.get(_SPOOL_ENV, "")
    replies = itertools.count(1)
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
            args = tuple(_read_spool(spool, a) if isinstance(a, Spooled) else a for a in args)
            steps = _run_steps(kind, args, memory)
        except (OSError, ValueError, MemoryError) as exc:
            steps = iter([("error", f"payload unreadable: {type(exc).__name__}: {exc}"[:500])])
        for status, value in steps:
            try:
                spooled = _spool_children(spool, value, replies) if spool and status != "error" else {}
                _send(stdout, (status, value, spooled))
            except (MemoryError, OSError) as exc:
                _send(stdout, ("error", f"could not return the result: {type(exc).__name__}", {}))
                break
        del args
        if memory and baseline:
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


# -- in the workbench ------------------------------------------------------------------------


class _Worker:
    """A ``python -m workbench.dissect.worker`` child: a fresh interpreter, no inherited state."""

    def __init__(self, spool: str | None = None) -> None:
        # numpy's OpenBLAS would start a thread per core (and ~100 MB of address space) for
        # nothing: entropy needs no BLAS, and the worker's memory limit counts address space.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", _SPOOL_ENV: spool or ""}
        self.spool = spool
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.dissect.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True,
            env=env)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        self._pending = bytearray()
        for fh in (self.stdin, self.stdout):       # bigger pipes: fewer switches per MB of payload
            with contextlib.suppress(OSError):
                fcntl.fcntl(fh.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)

    def send(self, message: tuple[Any, ...]) -> None:
        _send(self.stdin, message)

    def receive(self, timeout: float) -> tuple[str, Any]:
        """The next reply, within ``timeout`` seconds. Bytes past it stay for the next call: a
        task answering in steps may have sent two replies by the time the parent reads."""
        deadline = time.monotonic() + timeout
        fd = self.stdout.fileno()
        buf = self._pending
        while True:
            if len(buf) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buf)
                end = _HEADER.size + length
                if len(buf) >= end:
                    with memoryview(buf) as view, view[_HEADER.size:end] as blob:
                        status, value, spooled = _ResultUnpickler(io.BytesIO(blob)).load()
                    del buf[:end]
                    if spooled:
                        try:
                            self._unspool(value, spooled)
                        except OSError as exc:          # the worker's file, not its pipe, failed
                            raise ValueError(f"spooled payload unreadable: {exc}") from None
                    return status, value
                want = end - len(buf)
            else:
                want = _HEADER.size - len(buf)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerTimeout(f"no answer within {timeout:g} s; worker killed")
            chunk = os.read(fd, max(want, 1 << 16))
            if not chunk:
                raise EOFError("worker closed its pipe")
            buf += chunk

    def _unspool(self, value: Any, spooled: Any) -> None:
        """Put back the children the worker wrote to the spool folder (and remove the files)."""
        if self.spool is None or not isinstance(value, DissectResult) or not isinstance(spooled, dict):
            raise ValueError("spooled payloads in an answer that cannot have them")
        for index, item in spooled.items():
            if not isinstance(index, int) or not 0 <= index < len(value.children):
                raise ValueError(f"spooled payload for child {index!r}")
            try:
                value.children[index].data = _read_spool(self.spool, item)
            finally:
                with contextlib.suppress(OSError, TypeError, AttributeError):
                    os.unlink(os.path.join(self.spool, item.name))

    def forget_replies(self) -> None:
        """Remove the spool files of answers this worker wrote but nobody read (it was killed)."""
        if self.spool is not None:
            for leftover in Path(self.spool).glob(f"r-{self.process.pid}-*"):
                leftover.unlink(missing_ok=True)

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


class TaskSteps:
    """The answers of one task in a worker, read one step at a time."""

    def __init__(self, worker: _Worker, kind: str):
        self._worker = worker
        self.kind = kind
        self.done = False                   # the last answer (or an error) has been read
        self.broken = False                 # the worker timed out, died or sent garbage

    def next(self, timeout: float) -> Any:
        """The next answer; raises WorkerTimeout or WorkerFailed (the task's own error or a dead worker)."""
        if self.done:
            raise RuntimeError(f"task {self.kind} has no more answers")
        try:
            status, value = self._worker.receive(timeout)
        except WorkerTimeout:
            self.broken = True
            raise
        except (EOFError, OSError) as exc:
            self.broken = True
            raise WorkerFailed(self._worker.describe_death()) from exc
        except (pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
            self.broken = True
            raise WorkerFailed(f"unreadable answer from the worker: {exc}") from None
        if status == "more":
            return value
        self.done = True
        if status == "error":
            raise WorkerFailed(value)
        return value


class _InlineSteps:
    """TaskSteps for ``Limits(isolate=False)``: the task runs in this process, step by step."""

    def __init__(self, kind: str, args: tuple[Any, ...]):
        self.kind = kind
        self.done = False
        self._value = _inline(TASKS[kind], *args)
        self._generator = self._value if inspect.isgenerator(self._value) else None

    def next(self, timeout: float) -> Any:
        if self.done:
            raise RuntimeError(f"task {self.kind} has no more answers")
        if self._generator is None:
            self.done = True
            return self._value
        try:
            step, last = _inline(next, self._generator)
        except BaseException:
            self.done = True
            raise
        self.done = last
        return step


def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except StopIteration:
        raise WorkerFailed("task ended without a last step") from None
    except MemoryError:
        raise WorkerFailed("out of memory") from None
    except RecursionError:
        raise WorkerFailed("recursion too deep") from None
    except Exception as exc:
        raise WorkerFailed(f"{type(exc).__name__}: {exc}"[:500]) from None


_TMPFS = "/dev/shm"
_SPOOL_PREFIX = "workbench-dissect-"


def _remove_orphaned_spools() -> None:
    """Spool folders of workbench processes that died without cleaning up (SIGKILL): they hold RAM."""
    for folder in Path(_TMPFS).glob(f"{_SPOOL_PREFIX}*-*"):
        pid = folder.name[len(_SPOOL_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


class _Outgoing:
    """One payload in the spool folder and the tasks that still need it."""

    def __init__(self, data: bytes, spooled: Spooled):
        self.data = data
        self.spooled = spooled
        self.users = 0
        self.written = False
        self.ready = threading.Event()


class WorkerPool:
    """Up to ``size`` long-lived workers; a call borrows one, and a dead one is replaced.

    ``spool``: pass big payloads as files in a private folder on tmpfs (``/dev/shm``)
    rather than through the pipes; without a writable tmpfs everything goes by pipe.
    """

    def __init__(self, size: int | None = None, *, spool: bool = True):
        self.size = size or max(2, min(4, os.cpu_count() or 2))
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: list[_Worker] = []
        self.restarts = 0
        self.spool: str | None = None
        if spool and os.path.isdir(_TMPFS) and os.access(_TMPFS, os.W_OK):
            _remove_orphaned_spools()
            self.spool = tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-", dir=_TMPFS)
        # Outgoing payloads by the identity of their bytes object (kept alive while in use,
        # so the id cannot be reused): the fingerprint and the dissector of a node share a file.
        self._outgoing: dict[int, _Outgoing] = {}
        self._names = itertools.count(1)

    def _acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._started < self.size:
                self._started += 1
                try:
                    worker = _Worker(self.spool)
                except BaseException:
                    self._started -= 1
                    raise
                self._all.append(worker)
                return worker
        return self._idle.get()

    def warm(self) -> None:
        """Start every worker now rather than on first use: each takes ~0.5 s to load its
        libraries, and they load side by side while the caller goes on."""
        with self._lock:
            while self._started < self.size:
                worker = _Worker(self.spool)
                self._started += 1
                self._all.append(worker)
                self._idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        worker.forget_replies()
        with self._lock:
            self._started -= 1
            self.restarts += 1
            if worker in self._all:
                self._all.remove(worker)

    def _spool_args(self, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[int]]:
        """``args`` with big bytes replaced by spool files, and the keys to release afterwards."""
        if self.spool is None:
            return args, []
        out: list[Any] = []
        keys: list[int] = []
        for arg in args:
            if type(arg) is not bytes or len(arg) < SPOOL_MIN:
                out.append(arg)
                continue
            with self._lock:
                entry = self._outgoing.get(id(arg))
                fresh = entry is None
                if entry is None:
                    entry = self._outgoing[id(arg)] = _Outgoing(
                        arg, Spooled(f"a-{os.getpid()}-{next(self._names)}", len(arg)))
                entry.users += 1
            keys.append(id(arg))
            if fresh:
                try:
                    _write_spool(self.spool, entry.spooled.name, arg)
                    entry.written = True
                except OSError:
                    pass                        # tmpfs full or gone: this payload goes by pipe
                finally:
                    entry.ready.set()
            else:
                entry.ready.wait()              # another task of the same node is writing it
            out.append(entry.spooled if entry.written else arg)
        return tuple(out), keys

    def _release(self, keys: list[int]) -> None:
        for key in keys:
            with self._lock:
                entry = self._outgoing[key]
                entry.users -= 1
                if entry.users > 0:
                    continue
                del self._outgoing[key]
            if self.spool is not None and entry.written:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.spool, entry.spooled.name))

    def call(self, kind: str, args: tuple[Any, ...], *, timeout: float, memory: int) -> Any:
        with self.steps(kind, args, budget=timeout, memory=memory) as steps:
            return steps.next(timeout)

    @contextlib.contextmanager
    def steps(self, kind: str, args: tuple[Any, ...], *, budget: float, memory: int) -> Iterator[TaskSteps]:
        """Start a task on a borrowed worker and read its answers step by step.

        ``budget`` is the CPU time the whole task may use (the worker's own backstop);
        each :meth:`TaskSteps.next` has its own wall-clock timeout. A worker whose task
        was left unfinished, timed out or died is discarded, never reused.
        """
        worker = self._acquire()
        steps = TaskSteps(worker, kind)
        wire_args, keys = self._spool_args(args)
        try:
            try:
                worker.send((kind, wire_args, budget, memory))
            except OSError:
                steps.broken = True
                raise WorkerFailed(worker.describe_death()) from None
            yield steps
        finally:
            self._release(keys)
            # Reuse only a worker that finished its task; one interrupted mid-call (a timeout,
            # a death, an exception in the caller) has an unknown pipe state.
            if steps.done and not steps.broken:
                self._idle.put(worker)
            else:
                self._discard(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
            self._started = 0
        for worker in workers:
            worker.kill()
        while not self._idle.empty():
            self._idle.get_nowait()
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None


_DEFAULT: WorkerPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> WorkerPool:
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = WorkerPool()
            atexit.register(_DEFAULT.close)
            _DEFAULT.warm()                 # a dissection soon keeps two workers busy
        return _DEFAULT


def run_task(kind: str, args: tuple[Any, ...], *, limits: Limits, timeout: float,
             pool: WorkerPool | None = None) -> Any:
    """Run a task in a worker (or inline when ``limits.isolate`` is False: no time or memory cap)."""
    if not limits.isolate:
        return _InlineSteps(kind, args).next(timeout)
    return (pool or default_pool()).call(kind, args, timeout=timeout, memory=limits.memory)


@contextlib.contextmanager
def run_steps(kind: str, args: tuple[Any, ...], *, limits: Limits, budget: float,
              pool: WorkerPool | None = None) -> Iterator[TaskSteps | _InlineSteps]:
    """Start a task that answers in steps (see :meth:`WorkerPool.steps`); inline without isolation."""
    if not limits.isolate:
        yield _InlineSteps(kind, args)
        return
    with (pool or default_pool()).steps(kind, args, budget=budget, memory=limits.memory) as steps:
        yield steps


if __name__ == "__main__":
    # Run the imported module's copy, not this __main__ one: the classes that arrive pickled
    # (Spooled, the documents) are the importable module's, and isinstance must agree.
    from workbench.dissect.worker import worker_main as _worker_main

    _worker_main()
