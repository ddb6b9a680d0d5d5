"""The sandbox the dissect workers run in: bubblewrap namespaces outside, a seccomp filter inside.

bubblewrap (Debian's ``bubblewrap``) starts the fork server in new user, mount, PID,
network, IPC, UTS and cgroup namespaces, as uid/gid 65534, with every capability dropped
and ``no_new_privs`` set, in a new session. Its file system is built from nothing: the
shared libraries, libmagic's database, the Python install, the virtual environment and
the ``workbench`` package, all read-only, plus a private ``/tmp`` tmpfs, a minimal
``/dev`` and its own ``/proc``. The workspace, the home folder and the rest of the
machine are not there at all. The network namespace has only its own loopback.

Inside, once the parsing libraries are loaded, the server installs a seccomp filter
(libseccomp through ``pyseccomp``) that refuses ``execve``, sockets other than Unix
ones, ``ptrace`` and the other calls a parser never needs, and makes itself (and every
worker it forks) non-dumpable, so one worker cannot read another's memory or
descriptors through ``/proc``.

Where bubblewrap cannot run (no user namespaces, not installed), the workers run with
their resource limits only: :data:`LIMITS_ONLY` is recorded on every node, and the
``require`` mode refuses to dissect.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import Kind, WorkbenchError

if TYPE_CHECKING:
    from workbench.workspace import Workspace

AUTO, REQUIRE, OFF = "auto", "require", "off"
MODES = (AUTO, REQUIRE, OFF)
LIMITS_ONLY = "limits only"
IN_PROCESS = "none (in process)"
SANDBOX_UID = 65534                       # nobody: owns nothing on the host
BWRAP_ENV = "WORKBENCH_BWRAP"             # another bubblewrap binary (or a missing one, to test)
SETTINGS_FILE = "workbench.toml"          # HOME/workbench.toml: [dissect] sandbox = "require"

log = logging.getLogger("workbench.dissect")


class SandboxUnavailable(WorkbenchError):
    """The sandbox is required (``--require-sandbox`` or the workspace setting) but cannot run here."""

    kind = Kind.CONFLICT
    topic = "refused"


def is_sandboxed(isolation: str) -> bool:
    return isolation.startswith("sandbox")


def workspace_mode(workspace: Workspace) -> str:
    """The workspace's ``[dissect] sandbox`` setting (``auto`` when unset)."""
    import tomllib

    path = workspace.home / SETTINGS_FILE
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AUTO
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SandboxUnavailable(f"{path}: unreadable settings ({exc}); refusing to guess the sandbox mode") from None
    mode = settings.get("dissect", {}).get("sandbox", AUTO)
    if mode not in MODES:
        raise SandboxUnavailable(f"{path}: [dissect] sandbox must be one of {', '.join(MODES)}, not {mode!r}")
    return str(mode)


def bwrap_binary() -> str | None:
    configured = os.environ.get(BWRAP_ENV)
    if configured is not None:
        return configured if os.access(configured, os.X_OK) else None
    import shutil

    return shutil.which("bwrap")


def _package_root() -> Path:
    import workbench

    return Path(workbench.__file__).resolve().parent


def read_only_paths() -> list[str]:
    """What the sandbox sees, read-only: libraries, the magic database, Python, the package."""
    wanted = ["/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/usr/share/file", "/usr/share/misc",
              "/etc/ld.so.cache", "/etc/magic", "/usr/sbin/ldconfig",
              # ctypes.util.find_library (python-magic, libarchive-c, pyseccomp) runs ldconfig -p
              os.path.realpath(sys.executable), sys.base_prefix, sys.prefix, sys.exec_prefix]
    package = _package_root()
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        # Installed packages only: never the current folder or a source checkout (which may be
        # the workspace itself); the package is bound on its own below.
        if Path(real).name in ("site-packages", "dist-packages"):
            wanted.append(real)
    wanted.append(str(package))
    seen: list[str] = []
    for path in wanted:
        path = os.path.realpath(path)
        if path in ("/", "/usr", "/etc") or not os.path.exists(path):
            continue
        if any(path == s or path.startswith(s + "/") for s in seen):
            continue
        # a folder that holds one we already bind replaces it
        seen = [s for s in seen if not s.startswith(path + "/")]
        seen.append(path)
    return sorted(seen)


def bwrap_command(*, die_with_parent: bool) -> list[str] | None:
    """The bubblewrap command line that wraps the fork server, or None without bubblewrap."""
    binary = bwrap_binary()
    if binary is None:
        return None
    argv = [binary, "--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--cap-drop", "ALL", "--new-session", "--as-pid-1", "--hostname", "dissect", "--clearenv",
            "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "PATH", "/usr/sbin",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin"]
    if die_with_parent:
        argv.append("--die-with-parent")
    for path in read_only_paths():
        argv += ["--ro-bind", path, path]
    return argv


# -- inside the sandbox --------------------------------------------------------------------

# Calls a parser never needs and an intruder wants: running programs, other processes'
# memory, kernel attack surface, leaving the namespaces.
_DENIED_CALLS = ("execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
                 "pivot_root", "chroot", "unshare", "setns", "bpf", "perf_event_open", "keyctl", "add_key",
                 "request_key", "userfaultfd", "kexec_load", "kexec_file_load", "init_module",
                 "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at", "acct",
                 "swapon", "swapoff", "reboot", "syslog", "quotactl", "io_uring_setup")


def apply_seccomp() -> str:
    """Install the filter in this process (inherited by its children): '' or why it could not."""
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError, OSError) as exc:      # RuntimeError: libseccomp not found
        return f"pyseccomp unavailable: {exc}"
    import socket

    try:
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        deny = seccomp.ERRNO(errno.EPERM)
        for name in _DENIED_CALLS:
            with contextlib.suppress(ValueError, RuntimeError, OSError):   # unknown on this architecture
                rules.add_rule(deny, name)
        rules.add_rule(deny, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
        rules.load()
    except (RuntimeError, OSError, ValueError) as exc:
        return f"seccomp filter not loaded: {exc}"
    return ""


_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl failed")


def not_dumpable() -> None:
    """No core dumps, and /proc/PID/{mem,fd,environ} of this process closed to its peers."""
    _prctl(_PR_SET_DUMPABLE, 0)


def die_with_parent(signal_number: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal_number)


def describe(bwrap: bool, seccomp_problem: str) -> str:
    """The isolation a worker actually has, as recorded on every node it dissects."""
    if not bwrap:
        return LIMITS_ONLY
    if seccomp_problem:
        return "sandbox (bubblewrap; no seccomp filter)"
    return "sandbox (bubblewrap + seccomp)"
