"""Worker processes that run dissectors in a sandbox under memory and CPU limits, so hostile input
kills (or at worst owns) a worker that can reach nothing, not us.

One **fork server** per sandbox mode loads the parsing libraries once, inside the
sandbox (:mod:`workbench.dissect.sandbox`: bubblewrap namespaces plus a seccomp filter),
and forks a worker for each connection to its Unix socket. The server is shared: the
CLI, the terminal UI and ``dissect --all`` of one user connect to the same one (it
leaves after ``WORKBENCH_DISSECT_IDLE`` seconds without workers, default 600), so a
command pays a fork, not a Python start-up and half a second of imports. Private
servers (``WorkerPool(shared=False)``) live and die with their pool.

A worker talks length-prefixed pickles over its socket (answers are unpickled with an
allow-list). Each call sends a task; the parent waits at most the wall-clock timeout and
kills the worker (through a pidfd the server hands over: the worker's PID lives in the
sandbox's PID namespace) when it is exceeded. A task may answer in steps (``node``: the
type first, then the dissector's result), each step with its own timeout. Inside,
``RLIMIT_AS`` caps the address space (baseline plus ``Limits.memory``) and
``RLIMIT_CPU`` is raised per task to the CPU time used so far plus the task's budget,
so a busy loop dies by SIGXCPU even if the parent is stuck. When a worker dies, the
server sends its cause of death (signal, exit code) down the same socket.

Payloads of SPOOL_MIN bytes and more (a node's bytes going in, extracted children
coming back) travel as memfd descriptors passed over the socket (SCM_RIGHTS) instead of
through it: one write and one read instead of a pickle copy and two socket copies. No
folder is shared, so a worker sees no other task's input or output, not even by name.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import gc
import hashlib
import importlib
import io
import os
import pickle
import queue
import resource
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from workbench.dissect import sandbox
from workbench.dissect.model import DissectResult, Fingerprint, Identity, Limits, MiB

if TYPE_CHECKING:
    from workbench.dissect.dissectors import NodePlan


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
    from workbench.dissect.dissectors import by_name

    return by_name(name).dissect(data, ctx)


def task_fingerprint(data: bytes, fuzzy_max: int) -> Fingerprint:
    from workbench.dissect.identify import fingerprint

    return fingerprint(data, fuzzy_max=fuzzy_max)


def task_node(data: bytes, plan: NodePlan) -> Iterator[tuple[Any, bool]]:
    """Classify, pick the dissector, run it: ``(magic, mime, name)`` first, then the result."""
    import dataclasses

    from workbench.dissect.dissectors import HEAD_BYTES, by_name
    from workbench.dissect.identify import classify

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


def task_probe_escape(keys_path: str, port: int, outside: list[str], marker: str) -> list[tuple[str, bool, str]]:
    """Behave like an exploited parser: try every way out (see :mod:`workbench.dissect.probe`)."""
    from workbench.dissect.probe import attempt_escapes

    return attempt_escapes(keys_path, port, outside, marker)


def task_probe_hold(data: bytes, seconds: float) -> str:
    """Hold an input in memory for a while (the task another worker's probe tries to read)."""
    time.sleep(seconds)
    return f"{len(data)}"


TASKS: dict[str, Callable[..., Any]] = {"identify": task_identify, "fingerprint": task_fingerprint,
                                        "dissect": task_dissect, "node": task_node, "probe": task_probe,
                                        "probe_digest": task_probe_digest,
                                        "probe_steps": task_probe_steps, "probe_escape": task_probe_escape,
                                        "probe_hold": task_probe_hold}


_HEADER = struct.Struct("<Q")
_MAX_FDS = 64                          # descriptors one frame may carry
_SOCKET_BUFFER = 1 << 20
SPOOL_MIN = 256 << 10                  # payloads from this size travel as memfd descriptors


@dataclass(frozen=True)
class Spooled:
    """Bytes waiting in a memfd that travels with the frame; only this goes through the socket.
    ``slot`` is its place among the frame's descriptors."""

    slot: int
    size: int


def _write_memfd(data: bytes) -> int:
    fd = os.memfd_create("workbench-payload", os.MFD_CLOEXEC)
    try:
        with memoryview(data) as view:
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_memfd(fd: int, size: int) -> bytes:
    """The ``size`` bytes of a passed descriptor, which must be a regular file of that size
    (a pipe or socket could block us forever; a longer file is refused)."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("a passed payload is not a regular file")
        if info.st_size != size:
            raise ValueError(f"passed payload: {info.st_size} bytes, {size} announced")
        chunks = []
        done = 0
        while done < size:
            chunk = os.pread(fd, min(size - done, 1 << 24), done)
            if not chunk:
                raise ValueError("passed payload shorter than announced")
            chunks.append(chunk)
            done += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


class _Channel:
    """Length-prefixed pickles over a Unix stream socket, with descriptors (SCM_RIGHTS) in order.

    Descriptors arrive with the first bytes of the frame they belong to; they wait in a
    queue until the frame that announces them is read. Bytes past a frame stay for the
    next call: a task answering in steps may have sent two replies at once.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.fds: list[int] = []
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)

    def send(self, value: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        data = _HEADER.pack(len(blob)) + blob
        if fds:
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            if sent < len(data):
                self.sock.sendall(memoryview(data)[sent:])
        else:
            self.sock.sendall(data)

    def _fill(self, want: int, deadline: float | None) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise WorkerTimeout("no answer in time")
        data, ancillary, flags, _ = self.sock.recvmsg(max(want, 1 << 16), socket.CMSG_SPACE(_MAX_FDS * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            raise ValueError("too many descriptors in one frame")
        if not data:
            raise EOFError("the other end closed the connection")
        self.buf += data

    def receive(self, loads: Callable[[memoryview], Any], timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        buf = self.buf
        while True:
            if len(buf) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buf)
                end = _HEADER.size + length
                if len(buf) >= end:
                    with memoryview(buf) as view:
                        blob = bytes(view[_HEADER.size:end])
                    del buf[:end]                   # a frame that fails to load is gone all the same
                    return loads(memoryview(blob))
                want = end - len(buf)
            else:
                want = _HEADER.size - len(buf)
            self._fill(want, deadline)

    def take_fds(self, count: int) -> list[int]:
        if count > len(self.fds):
            raise ValueError(f"a frame announced {count} descriptors, {len(self.fds)} arrived")
        taken, self.fds = self.fds[:count], self.fds[count:]
        return taken

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        with contextlib.suppress(OSError):
            self.sock.close()


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




def _run_steps(kind: str, args: tuple[Any, ...], memory: int) -> Iterator[tuple[str, Any]]:
    """The replies of one task: ``("more", v)`` for every step but the last, then ``("ok", v)``
    or ``("error", why)``."""
    try:
        value: Any = TASKS[kind](*args)
        if not isinstance(value, types.GeneratorType):
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




def _spool_children(value: Any, fds: list[int]) -> dict[int, Spooled]:
    """Move the big children of a dissector's result into memfds (appended to ``fds``):
    ``{child index: Spooled}``. Should that fail (out of memory, descriptors), every child
    stays in the answer instead."""
    if not isinstance(value, DissectResult):
        return {}
    spooled: dict[int, Spooled] = {}
    mine: list[int] = []
    try:
        for index, child in enumerate(value.children):
            if len(child.data) >= SPOOL_MIN and len(fds) + len(mine) < _MAX_FDS:
                mine.append(_write_memfd(child.data))
                spooled[index] = Spooled(len(fds) + len(mine) - 1, len(child.data))
    except (OSError, MemoryError):
        for fd in mine:
            os.close(fd)
        return {}
    fds.extend(mine)
    for index in spooled:
        value.children[index].data = b""
    return spooled


# Imported by the dissectors on first use (the parent never needs them); the server loads them
# before it forks and before it measures its memory baseline, so no task pays an import and
# the memory limit counts only what a task allocates.
_PRELOAD = ("oletools.olevba", "oletools.mraptor", "oletools.oleobj", "oletools.rtfobj", "olefile",
            "msoffcrypto", "pefile", "cryptography.hazmat.primitives.serialization.pkcs7", "pyzipper",
            "py7zr", "tnefparse", "libarchive", "oletools.msodde", "oletools.ppt_record_parser", "pikepdf",
            "workbench.dissect.probe")


def _preload() -> None:
    from workbench.dissect.dissectors import registry
    from workbench.dissect.identify import identify

    registry()                                         # import every format before limits apply
    identify(b"warm-up " * 16, fuzzy_max=1 << 20)      # numpy, libfuzzy, tlsh, the magic database too
    for name in _PRELOAD:                              # what dissectors import on first use
        # libarchive-c raises AttributeError or OSError, not ImportError, without its library
        with contextlib.suppress(ImportError, OSError, AttributeError):
            importlib.import_module(name)


def _worker_loop(conn: socket.socket, baseline: int) -> None:
    """One worker (a child of the fork server): read tasks from ``conn``, answer, until it closes."""
    channel = _Channel(conn)
    while True:
        try:
            kind, args, timeout, memory = channel.receive(pickle.loads)
        except (EOFError, OSError):
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(usage.ru_utime + usage.ru_stime + timeout) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        if memory and baseline:
            resource.setrlimit(resource.RLIMIT_AS, (baseline + memory, resource.RLIM_INFINITY))
        try:
            passed = channel.take_fds(sum(isinstance(a, Spooled) for a in args))
            args = tuple(_read_memfd(passed[a.slot], a.size) if isinstance(a, Spooled) else a for a in args)
            steps = _run_steps(kind, args, memory)
        except (OSError, ValueError, MemoryError, IndexError) as exc:
            steps = iter([("error", f"payload unreadable: {type(exc).__name__}: {exc}"[:500])])
        for status, value in steps:
            fds: list[int] = []
            try:
                spooled = _spool_children(value, fds) if status != "error" else {}
                channel.send((status, value, spooled), fds)
            except (MemoryError, OSError) as exc:
                channel.send(("error", f"could not return the result: {type(exc).__name__}", {}))
                break
            finally:
                for fd in fds:
                    os.close(fd)
        del args
        if memory and baseline:
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed)", "SIGSEGV": " (native crash)"}
        return f"worker died by {name}{hint.get(name, '')}"
    return f"worker exited with code {os.waitstatus_to_exitcode(status)}"


def serve(listener: socket.socket, ready: int, *, idle: float, sandboxed: bool, parent: int) -> None:
    """The fork server: load the parsers once, then fork a worker per connection on ``listener``.

    Each new connection first gets ``("hello", isolation, pid)`` with a pidfd of its worker
    (the parent kills through it), and at the end ``("dead", why, {})`` once the worker is
    reaped. Leaves after ``idle`` seconds without a worker (0: never; a private server dies
    with its parent instead).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the parent's business
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if parent:
        sandbox.die_with_parent(signal.SIGKILL)
        if os.getppid() != parent:
            return
    sys.stdout = sys.stderr                            # stray prints go nowhere useful, not into a frame
    _preload()
    problem = sandbox.apply_seccomp() if sandboxed else ""
    sandbox.not_dumpable()
    isolation = sandbox.describe(sandboxed, problem)
    # Everything loaded so far lives as long as the server: out of the collector's sight, so
    # a worker's collections neither walk it nor copy its pages (copy-on-write) by touching it.
    gc.collect()
    gc.freeze()
    baseline = _vm_size()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    os.write(ready, f"ready {isolation}\n".encode())
    os.close(ready)
    # The launcher has read what start-up had to say; from here on, what the parsers print
    # (oletools logs warnings) would only grow a file nobody reads.
    with contextlib.suppress(OSError):
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 2)
        os.close(quiet)
    workers: dict[int, socket.socket] = {}
    quiet_since = time.monotonic()
    while True:
        timeout = None if not idle or workers else max(0.0, quiet_since + idle - time.monotonic())
        if timeout == 0.0:
            return
        try:
            readable: list[int] = select.select([listener.fileno(), wake_r], [], [], timeout)[0]
        except InterruptedError:
            readable = []
        if wake_r in readable:
            with contextlib.suppress(OSError):
                os.read(wake_r, 4096)
        while workers:                                  # reap, and tell each parent why
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = workers.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.send(_frame(("dead", _death(status), {})), socket.MSG_DONTWAIT)
                conn.close()
            if not workers:
                quiet_since = time.monotonic()
        if listener.fileno() not in readable:
            continue
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        try:
            pid = os.fork()
        except OSError:                                 # out of processes or memory: this one waits
            conn.close()
            continue
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_DFL)
                listener.close()
                os.close(wake_r)
                os.close(wake_w)
                for other in workers.values():          # no worker holds another's connection
                    other.close()
                sandbox.die_with_parent(signal.SIGKILL)
                _worker_loop(conn, baseline)
            finally:
                os._exit(0)
        try:
            pidfd = os.pidfd_open(pid)
            try:
                _Channel(conn).send(("hello", isolation, pid), [pidfd])
            finally:
                os.close(pidfd)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        workers[pid] = conn


def _frame(value: Any) -> bytes:
    blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(blob)) + blob


# -- in the workbench ------------------------------------------------------------------------

IDLE_ENV = "WORKBENCH_DISSECT_IDLE"    # seconds a shared server waits without workers (default 600)
SERVER_ENV = "WORKBENCH_DISSECT_SERVER"  # "private": every pool starts its own server (tests, CI)
_STARTUP_TIMEOUT = 120.0               # loading the parsers on a busy machine


def _fdinfo_pid(pidfd: int) -> int:
    """The worker's PID as this process sees it (the server's namespace has its own numbers)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as fh:
            for line in fh:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Worker:
    """One connection to the fork server, and the worker it forked for it."""

    def __init__(self, address: str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        self.channel = _Channel(sock)
        self.pidfd = -1
        try:
            hello = self.channel.receive(_safe_loads, _STARTUP_TIMEOUT)
            if not (isinstance(hello, tuple) and len(hello) == 3 and hello[0] == "hello"):
                raise WorkerFailed(f"the fork server answered {hello!r:.80}")
            (self.pidfd,) = self.channel.take_fds(1)
        except BaseException:
            self.channel.close()
            raise
        self.isolation: str = str(hello[1])
        self.pid = _fdinfo_pid(self.pidfd)
        self.dead = ""

    def send(self, message: tuple[Any, ...], fds: list[int]) -> None:
        self.channel.send(message, fds)

    def receive(self, timeout: float) -> tuple[str, Any]:
        """The next reply, within ``timeout`` seconds."""
        try:
            status, value, spooled = self.channel.receive(_safe_loads, timeout)
        except WorkerTimeout:
            raise WorkerTimeout(f"no answer within {timeout:g} s; worker killed") from None
        if status == "dead":                    # the server's word: the worker is gone
            self.dead = str(value)
            raise EOFError(self.dead)
        if spooled:
            self._unspool(value, spooled)
        elif self.channel.fds:
            raise ValueError("descriptors with an answer that announced none")
        return status, value

    def _unspool(self, value: Any, spooled: Any) -> None:
        """Put back the children the worker passed as memfds."""
        if not isinstance(value, DissectResult) or not isinstance(spooled, dict):
            raise ValueError("passed payloads in an answer that cannot have them")
        fds = self.channel.take_fds(len(spooled))
        try:
            for index, item in spooled.items():
                if not isinstance(index, int) or not 0 <= index < len(value.children):
                    raise ValueError(f"passed payload for child {index!r}")
                if not isinstance(item, Spooled) or not 0 <= item.slot < len(fds) or item.size < 0:
                    raise ValueError(f"not a passed payload: {item!r}")
                fd, fds[item.slot] = fds[item.slot], -1
                if fd < 0:
                    raise ValueError("one descriptor announced twice")
                value.children[index].data = _read_memfd(fd, item.size)
        finally:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def kill(self) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = -1
        self.channel.close()

    def describe_death(self) -> str:
        """Why the worker is gone, as its server reported it (a few seconds at most)."""
        deadline = time.monotonic() + 3
        while not self.dead:
            try:
                frame = self.channel.receive(_safe_loads, max(0.01, deadline - time.monotonic()))
                if isinstance(frame, tuple) and len(frame) == 3 and frame[0] == "dead":
                    self.dead = str(frame[1])
            except EOFError:
                break
            except WorkerTimeout:
                return "worker stopped answering"
            except Exception:
                continue
        return self.dead or "worker closed its connection"


def _safe_loads(blob: memoryview) -> Any:
    return _ResultUnpickler(io.BytesIO(blob)).load()


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
        self._generator = self._value if isinstance(self._value, types.GeneratorType) else None

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


_SERVERS_LOCK = threading.Lock()


def _code_key(mode: str) -> str:
    """Which fork server a pool may share: the same Python, package, sandbox mode and code."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [os.path.realpath(sys.executable), package, mode, sandbox.bwrap_binary() or ""]
    for folder, _dirs, files in os.walk(os.path.join(package, "dissect")):
        for name in sorted(files):
            if name.endswith(".py"):
                info = os.stat(os.path.join(folder, name))
                parts.append(f"{name}:{info.st_mtime_ns}:{info.st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _runtime_dir() -> str:
    """A folder only this user can enter, for the shared servers' sockets."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = os.path.join(base, f"workbench-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user")
    return folder


class _Server:
    """A fork server this process started (private) or found (shared)."""

    def __init__(self, address: str, isolation: str, process: subprocess.Popen[bytes] | None,
                 folder: str | None, first: _Worker | None = None):
        self.address = address
        self.isolation = isolation
        self.process = process
        self.folder = folder
        self.first = first                  # the worker that answered when we looked for the server

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.folder is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.address)
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)


def _launch(address: str, mode: str, *, shared: bool) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a fork server listening at ``address``; returns its isolation once it is ready."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address)
        listener.listen(64)
        os.chmod(address, 0o600)
        wrapper = None if mode == sandbox.OFF else sandbox.bwrap_command(die_with_parent=not shared)
        attempts = [wrapper, None] if wrapper is not None else [None]
        failure = "bubblewrap not installed" if wrapper is None and mode != sandbox.OFF else ""
        for wrap in attempts:
            if wrap is None and mode == sandbox.REQUIRE:
                raise sandbox.SandboxUnavailable(f"the dissect sandbox cannot start here: {failure}")
            if wrap is None and mode == sandbox.AUTO:
                sandbox.log.warning("dissect workers are NOT sandboxed (%s): parsers run with resource "
                                    "limits only, as this user", failure)
            started = _spawn(listener, wrap, shared=shared)
            if started[0] is not None:
                return started[0], started[1]
            failure = started[2]
        raise WorkerFailed(f"the dissect fork server did not start: {failure}")
    finally:
        listener.close()


def _spawn(listener: socket.socket, wrap: list[str] | None, *, shared: bool
           ) -> tuple[str | None, subprocess.Popen[bytes], str]:
    ready_r, ready_w = os.pipe()
    idle = os.environ.get(IDLE_ENV, "600") if shared else "0"
    command = [sys.executable, "-m", "workbench.dissect.worker", "--serve", str(listener.fileno()),
               "--ready", str(ready_w), "--idle", idle,
               # bubblewrap kills a private server with its parent (--die-with-parent); unwrapped, it watches itself
               "--parent", str(os.getpid()) if not shared and wrap is None else "0"]
    if wrap is not None:
        command = [*wrap, "--", *command, "--sandboxed"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=errors, pass_fds=(listener.fileno(), ready_w),
                                       start_new_session=True, cwd="/", env=env)
        finally:
            os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            line = ready.readline()           # EOF: the server (or bubblewrap) died before it was ready
        if line.startswith(b"ready "):
            return line[6:].decode(errors="replace").strip(), process, ""
        process.wait()
        errors.seek(0)
        why = errors.read(2000).decode(errors="replace").strip().splitlines()
    return None, process, (why[-1] if why else f"exit code {process.returncode}")


def _forget_dead_servers(runtime: str) -> None:
    """Remove the sockets (and lock files) of servers of other code versions that have left."""
    for name in os.listdir(runtime):
        if not (name.startswith("dissect-") and name.endswith(".sock")):
            continue
        path = os.path.join(runtime, name)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.unlink(path[: -len(".sock")] + ".lock")
        except OSError:
            pass
        finally:
            probe.close()


def _start_server(mode: str, *, shared: bool) -> _Server:
    """The fork server for ``mode``: the user's shared one (started if need be) or a private one."""
    if not shared:
        folder = tempfile.mkdtemp(prefix="workbench-dissect-")
        address = os.path.join(folder, "server")
        isolation, process = _launch(address, mode, shared=False)
        return _Server(address, isolation, process, folder)
    import fcntl

    key = _code_key(mode)
    runtime = _runtime_dir()
    address = os.path.join(runtime, f"dissect-{key}.sock")
    with open(os.path.join(runtime, f"dissect-{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)            # one launcher at a time; the others connect
        try:
            probe = _Worker(address)
        except (FileNotFoundError, ConnectionRefusedError, EOFError):
            # EOFError: the server accepted nothing and left (its idle time ran out just now)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)                  # a server that left (idle) or died
            _forget_dead_servers(runtime)
            isolation, _process = _launch(address, mode, shared=True)
            return _Server(address, isolation, None, None)
        if mode == sandbox.REQUIRE and not sandbox.is_sandboxed(probe.isolation):
            probe.kill()
            raise sandbox.SandboxUnavailable(f"the dissect sandbox is not running ({probe.isolation})")
        return _Server(address, probe.isolation, None, None, first=probe)


class _Outgoing:
    """One payload in a memfd and the tasks that still need it."""

    def __init__(self, data: bytes):
        self.data = data
        self.fd = -1
        self.users = 0
        self.ready = threading.Event()


class WorkerPool:
    """Up to ``size`` workers forked by one fork server; a call borrows one, and a dead one is replaced.

    ``size`` workers run tasks at the same time (each task borrows one), so ``size`` is the
    pool's concurrency. ``sandbox``: ``auto`` (sandboxed where the machine allows, limits
    only elsewhere, with a warning), ``require`` (refuse to start without the sandbox) or
    ``off`` (limits only). ``shared``: use the user's long-lived fork server rather than
    starting a private one. ``spool``: pass big payloads as memfds rather than through the socket.
    """

    def __init__(self, size: int | None = None, *, spool: bool = True, sandbox: str = "auto",
                 shared: bool = False):
        from workbench.dissect.sandbox import MODES

        if sandbox not in MODES:
            raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, not {sandbox!r}")
        self.size = size or max(2, min(4, os.cpu_count() or 2))
        self.mode = sandbox
        self.shared = shared
        self.spool = spool
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._server_lock = threading.Lock()
        self._server: _Server | None = None
        self._all: list[_Worker] = []
        self.restarts = 0
        # Outgoing payloads by the identity of their bytes object (kept alive while in use,
        # so the id cannot be reused): the fingerprint and the dissector of a node share a memfd.
        self._outgoing: dict[int, _Outgoing] = {}

    @property
    def isolation(self) -> str:
        """What the workers actually run in (starts the server if need be)."""
        return self._ensure_server().isolation

    def _ensure_server(self) -> _Server:
        with self._server_lock:
            if self._server is None:
                self._server = _start_server(self.mode, shared=self.shared)
            return self._server

    def _connect(self) -> _Worker:
        server = self._ensure_server()
        with self._server_lock:
            first, server.first = server.first, None
        if first is not None:
            return first                    # forked already: do not fork another
        try:
            return _Worker(server.address)
        except (FileNotFoundError, ConnectionRefusedError, EOFError):
            pass
        # The server is gone (a shared one left when idle, a private one died): start or
        # find the next one, once.
        with self._server_lock:
            if self._server is server:
                self._server = None
                server.stop()
        try:
            return _Worker(self._ensure_server().address)
        except (FileNotFoundError, ConnectionRefusedError, EOFError) as exc:
            raise WorkerFailed(f"the dissect fork server is gone and could not be restarted: {exc}") from None

    def _acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._started < self.size:
                self._started += 1
                start = True
            else:
                start = False
        if not start:
            return self._idle.get()
        return self._new_worker()

    def _new_worker(self) -> _Worker:
        """A new worker in a place already counted in ``_started`` (given back if it fails)."""
        try:
            worker = self._connect()
        except BaseException:
            with self._lock:
                self._started -= 1
            raise
        with self._lock:
            self._all.append(worker)
        return worker

    def warm(self) -> None:
        """Fork every worker now rather than on first use."""
        with self._lock:
            missing = self.size - self._started
            self._started += missing
        for _ in range(missing):
            self._idle.put(self._new_worker())

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._started -= 1
            self.restarts += 1
            if worker in self._all:
                self._all.remove(worker)

    def _spool_args(self, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[int], list[int]]:
        """``args`` with big bytes replaced by memfds, the descriptors to pass, and the keys to release."""
        if not self.spool:
            return args, [], []
        out: list[Any] = []
        fds: list[int] = []
        keys: list[int] = []
        for arg in args:
            if type(arg) is not bytes or len(arg) < SPOOL_MIN:
                out.append(arg)
                continue
            with self._lock:
                entry = self._outgoing.get(id(arg))
                fresh = entry is None
                if entry is None:
                    entry = self._outgoing[id(arg)] = _Outgoing(arg)
                entry.users += 1
            keys.append(id(arg))
            if fresh:
                try:
                    entry.fd = _write_memfd(arg)
                except OSError:
                    pass                        # out of memory or descriptors: this payload goes inline
                finally:
                    entry.ready.set()
            else:
                entry.ready.wait()              # another task of the same node is writing it
            if entry.fd >= 0:
                out.append(Spooled(len(fds), len(arg)))
                fds.append(entry.fd)
            else:
                out.append(arg)
        return tuple(out), fds, keys

    def _release(self, keys: list[int]) -> None:
        for key in keys:
            with self._lock:
                entry = self._outgoing[key]
                entry.users -= 1
                if entry.users > 0:
                    continue
                del self._outgoing[key]
            if entry.fd >= 0:
                os.close(entry.fd)

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
        try:
            wire_args, fds, keys = self._spool_args(args)
            try:
                try:
                    worker.send((kind, wire_args, budget, memory), fds)
                except OSError:
                    steps.broken = True
                    raise WorkerFailed(worker.describe_death()) from None
                yield steps
            finally:
                self._release(keys)
        finally:
            # Reuse only a worker that finished its task; one interrupted mid-call (a timeout,
            # a death, an exception in the caller) has an unknown connection state.
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
        with self._server_lock:
            server, self._server = self._server, None
        if server is not None:
            if server.first is not None:
                server.first.kill()
            server.stop()


_DEFAULT: dict[str, WorkerPool] = {}
_DEFAULT_LOCK = threading.Lock()


def default_pool(mode: str = "auto") -> WorkerPool:
    """The process's pool for a sandbox mode, on the user's shared fork server (unless
    ``WORKBENCH_DISSECT_SERVER=private``)."""
    with _DEFAULT_LOCK:
        pool = _DEFAULT.get(mode)
        if pool is None:
            pool = _DEFAULT[mode] = WorkerPool(sandbox=mode, shared=os.environ.get(SERVER_ENV) != "private")
            atexit.register(pool.close)
        return pool


def run_task(kind: str, args: tuple[Any, ...], *, limits: Limits, timeout: float,
             pool: WorkerPool | None = None) -> Any:
    """Run a task in a worker (or inline when ``limits.isolate`` is False: no time or memory cap)."""
    if not limits.isolate:
        return _InlineSteps(kind, args).next(timeout)
    return (pool or default_pool(limits.sandbox)).call(kind, args, timeout=timeout, memory=limits.memory)


@contextlib.contextmanager
def run_steps(kind: str, args: tuple[Any, ...], *, limits: Limits, budget: float,
              pool: WorkerPool | None = None) -> Iterator[TaskSteps | _InlineSteps]:
    """Start a task that answers in steps (see :meth:`WorkerPool.steps`); inline without isolation."""
    if not limits.isolate:
        yield _InlineSteps(kind, args)
        return
    with (pool or default_pool(limits.sandbox)).steps(kind, args, budget=budget, memory=limits.memory) as steps:
        yield steps


def _main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workbench.dissect.worker")
    parser.add_argument("--serve", type=int, required=True, metavar="FD", help="the listening socket")
    parser.add_argument("--ready", type=int, required=True, metavar="FD")
    parser.add_argument("--idle", type=float, default=600.0)
    parser.add_argument("--parent", type=int, default=0, help="die with this process (a private server)")
    parser.add_argument("--sandboxed", action="store_true")
    args = parser.parse_args(argv)
    listener = socket.socket(fileno=args.serve)
    serve(listener, args.ready, idle=args.idle, sandboxed=args.sandboxed, parent=args.parent)


if __name__ == "__main__":
    # Run the imported module's copy, not this __main__ one: the classes that arrive pickled
    # (Spooled, the documents) are the importable module's, and isinstance must agree.
    from workbench.dissect.worker import _main as _worker_main

    _worker_main(sys.argv[1:])
