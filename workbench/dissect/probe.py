"""The hostile probe: a real worker tries every way out of its sandbox, and we check none worked.

``attempt_escapes`` runs inside a worker, as an exploited parser would: it tries to
read the workspace's keys, reach a loopback server, write outside (into the workspace
and the machine's ``/tmp``), read another worker's input through ``/proc``, and run a
shell. :func:`run_hostile_probe` sets the traps from outside (a key file, a listening
socket, a secret held by a second worker) and judges each attempt by what it sees
outside, not only by what the worker says.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.dissect.worker import WorkerPool

READ_KEYS = "read state/keys"
CONNECT_LOOPBACK = "connect to loopback"
WRITE_OUTSIDE = "write outside its output"
READ_OTHER_TASK = "read another task's input"
EXEC_SHELL = "execve a shell"
ATTEMPTS = (READ_KEYS, CONNECT_LOOPBACK, WRITE_OUTSIDE, READ_OTHER_TASK, EXEC_SHELL)


@dataclass
class Attempt:
    """One escape attempt and whether the sandbox stopped it."""

    name: str
    denied: bool
    detail: str


@dataclass
class ProbeReport:
    isolation: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def contained(self) -> bool:
        return bool(self.attempts) and all(a.denied for a in self.attempts)


# -- inside the worker ---------------------------------------------------------------------


def _try_read_keys(keys_path: str) -> tuple[bool, str]:
    try:
        found = []
        for entry in os.scandir(keys_path):
            with open(entry.path, "rb") as fh:
                found.append(f"{entry.name} ({len(fh.read())} bytes)")
        return False, f"read {', '.join(found) or 'the folder listing'}"
    except OSError as exc:
        return True, f"{type(exc).__name__}: {exc.strerror}"


def _try_connect(port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"escaped\n")
        return False, f"connected to 127.0.0.1:{port}"
    except OSError as exc:
        return True, f"{type(exc).__name__}: {exc.strerror or exc}"


def _try_write(paths: list[str]) -> tuple[bool, str]:
    wrote, refused = [], []
    for path in paths:
        try:
            with open(path, "xb") as fh:
                fh.write(b"escaped\n")
            wrote.append(path)
        except OSError as exc:
            refused.append(f"{path}: {exc.strerror}")
    # What a write inside the sandbox leaves outside is judged by the caller.
    return not wrote, "; ".join([*(f"wrote {p} (its own view)" for p in wrote), *refused])


def _try_read_other(marker: str) -> tuple[bool, str]:
    """Look through the memory, files and environment of every Python process in view for the
    marker (another worker's input, or the parent that sent it)."""
    want = marker.encode()
    opened: list[str] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        base = f"/proc/{entry.name}"
        try:
            with open(f"{base}/cmdline", "rb") as fh:
                if b"python" not in fh.read():
                    continue                     # an attacker goes for the workbench's processes
        except OSError:
            continue
        with contextlib.suppress(OSError), open(f"{base}/environ", "rb") as fh:
            if want in fh.read():
                return False, f"found it in {base}/environ"
        with contextlib.suppress(OSError):
            maps = Path(f"{base}/maps").read_text().splitlines()
            with open(f"{base}/mem", "rb", buffering=0) as mem:
                opened.append(f"{base}/mem")
                for line in maps:
                    fields = line.split()
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    if not fields[1].startswith("r") or end - start > 1 << 28:
                        continue
                    with contextlib.suppress(OSError, ValueError, OverflowError):
                        mem.seek(start)
                        if want in mem.read(end - start):
                            return False, f"found it in {base}/mem"
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"{base}/fd"):
                path = f"{base}/fd/{fd}"
                with contextlib.suppress(OSError):
                    if not stat.S_ISREG(os.stat(path).st_mode):
                        continue                 # a pipe or socket would block the probe
                    with open(path, "rb") as fh:
                        opened.append(path)
                        if want in fh.read(64 << 20):
                            return False, f"found it in {path}"
    if opened:
        return False, f"not found, but opened {', '.join(opened[:3])}{' ...' if len(opened) > 3 else ''}"
    return True, "no other process's memory or descriptors could be opened"


def _try_exec() -> tuple[bool, str]:
    for shell in ("/bin/sh", "/usr/bin/sh", "/bin/bash"):
        try:
            done = subprocess.run([shell, "-c", "exit 7"], capture_output=True, timeout=5, check=False)
        except FileNotFoundError:
            continue
        except (OSError, subprocess.SubprocessError) as exc:
            return True, f"{shell}: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        if done.returncode == 7:
            return False, f"ran {shell}"
        return True, f"{shell} exited {done.returncode}"
    return True, "no shell in view"


def attempt_escapes(keys_path: str, port: int, outside: list[str], marker: str) -> list[tuple[str, bool, str]]:
    return [(READ_KEYS, *_try_read_keys(keys_path)), (CONNECT_LOOPBACK, *_try_connect(port)),
            (WRITE_OUTSIDE, *_try_write(outside)), (READ_OTHER_TASK, *_try_read_other(marker)),
            (EXEC_SHELL, *_try_exec())]


# -- outside ---------------------------------------------------------------------------------


def run_hostile_probe(pool: WorkerPool, keys_dir: Path, scratch: Path) -> ProbeReport:
    """Run the probe in a real worker of ``pool`` and judge each attempt from outside.

    ``keys_dir`` is the workspace's ``state/keys`` (a decoy key is written there if it is
    empty); ``scratch`` is a folder outside the sandbox the worker must not be able to
    write to.
    """
    isolation = pool.isolation
    keys_dir.mkdir(parents=True, exist_ok=True)
    decoy = None
    if not any(keys_dir.iterdir()):
        decoy = keys_dir / "probe-decoy.key"
        decoy.write_bytes(b"decoy key of the hostile probe\n")
    scratch.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    outside = [str(scratch / f"escaped-{token}"), f"/tmp/workbench-escaped-{token}"]
    marker = f"SECRET-INPUT-{secrets.token_hex(16)}"
    # Another task's input: a second worker holds it (big enough to travel as a memfd).
    held = (marker.encode() + b"\0") * ((300 << 10) // (len(marker) + 1))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                accepted.append("a connection arrived")
                conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    holder_started = threading.Event()
    holder_error: list[str] = []

    def hold() -> None:
        holder_started.set()
        try:
            pool.call("probe_hold", (held, 3.0), timeout=30, memory=0)
        except Exception as exc:
            holder_error.append(str(exc))

    holder = threading.Thread(target=hold, daemon=True)
    try:
        pool.warm()
        holder.start()
        holder_started.wait()
        import time

        time.sleep(0.5)                               # the holder has its input in memory by now
        raw = pool.call("probe_escape", (str(keys_dir), listener.getsockname()[1], outside, marker),
                        timeout=60, memory=0)
    finally:
        stop.set()
        watcher.join(2)
        listener.close()
        holder.join(30)
        if decoy is not None:
            decoy.unlink(missing_ok=True)
    report = ProbeReport(isolation=isolation)
    for name, denied, detail in raw:
        if name == CONNECT_LOOPBACK and accepted:
            denied, detail = False, f"{detail}; the listener saw {accepted[0]}"
        if name == WRITE_OUTSIDE:
            leaked = [p for p in outside if os.path.exists(p)]
            for path in leaked:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            denied = not leaked
            detail = f"{detail}; outside: {'written: ' + ', '.join(leaked) if leaked else 'nothing appeared'}"
        report.attempts.append(Attempt(str(name), bool(denied), str(detail)))
    return report
