"""``workbench test`` with nothing changed: the text the same command printed, checked by ``stat``.

A re-test whose inputs did not change gets its report from the run memo
(``corpus/runmemo.py``), but the process still paid for Python importing the CLI,
the report's classes, the rule parser and libyara, and for rendering a 1,200-row
table: most of a second on a loaded machine, for a run that itself took 30 ms. So
the text a ``test`` command line printed is kept under that command line, with the
``stat`` (size, mtime, ctime, inode, device) of every file and folder the result
depends on: the rule files and the folders they were found in, the files they
include, the corpora registry and the dissect catalog (the quarantine corpus), the
signature repository's policy and vendor records, and the code (each loaded
``workbench`` module, libyara, boreal). When every one of them is as it was, this
module prints the text again; nothing else is imported. Any difference, or a file
changed within ``RACY_SECONDS`` of the run (its stat could still change unseen, as
git's "racily clean" entries), and the command runs as before.

Only plain command lines are replayed: global options ``--home``, ``--signatures``,
``--index`` as separate words, then ``test`` with options from ``_REPLAYABLE``
(``--json``, ``--no-cache``, an abbreviated or ``=`` spelling: the full command).
The time on the last line is this process's own.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from typing import TYPE_CHECKING

from workbench.corpus.stamps import RACY_SECONDS, stat_key

if TYPE_CHECKING:
    from typing import TextIO

FOLDER = "test-replay"      # under state/
KEPT = 8                    # command lines remembered per workspace
_FORMAT = "wb-replay-1"
_GLOBAL = ("--home", "--signatures", "--index")
_ENVIRONMENT = ("WORKBENCH_HOME", "WORKBENCH_SIGNATURES", "WORKBENCH_INDEX", "WORKBENCH_CLUSTER")
_REPLAYABLE = frozenset({"--corpus", "--threads", "--timeout", "--no-index", "--verbose", "-v",
                         "--cluster"})
SECONDS = "\0seconds\0"     # where the run's seconds go in the kept text

# The command line this process may save its text under (set by :func:`replay` on a miss).
pending: tuple[str, tuple[str, ...]] | None = None


def command_key(argv: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(the workspace's state folder, what the command line means here), or None when the
    command line is not one this module replays."""
    globals_: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] != "test":
        if argv[i] not in _GLOBAL or i + 1 >= len(argv):
            return None
        globals_[argv[i]] = argv[i + 1]
        i += 2
    if i >= len(argv):
        return None
    rest = argv[i + 1:]
    if any(a.startswith("-") and a not in _REPLAYABLE for a in rest):
        return None
    home = globals_.get("--home") or os.environ.get("WORKBENCH_HOME") or os.getcwd()
    state = os.path.join(os.path.realpath(os.path.expanduser(home)), "state")
    key = (_FORMAT, sys.executable, os.getcwd(), *argv,
           *(f"{name}={os.environ.get(name, chr(0))}" for name in _ENVIRONMENT))
    return state, key


def _entry_path(state: str, key: tuple[str, ...]) -> str:
    import hashlib

    return os.path.join(state, FOLDER, hashlib.sha256("\0".join(key).encode(
        "utf-8", "surrogateescape")).hexdigest()[:32])


def replay(argv: list[str], out: TextIO | None = None) -> int | None:
    """Print what this ``test`` command line printed last time, if nothing it depends on changed;
    its exit code, or None (and the command runs)."""
    global pending
    started = time.monotonic()
    pending = None
    try:
        found = command_key(argv)
    except OSError:                      # no current folder
        return None
    if found is None:
        return None
    state, key = found
    try:
        with open(_entry_path(state, key), "rb") as fh:
            saved_key, guards, text, code = marshal.load(fh)
    except (OSError, ValueError, EOFError, TypeError):
        pending = found
        return None
    now = time.time() - RACY_SECONDS
    if tuple(saved_key) != key or any((k := stat_key(p)) != g or (k is not None and k[1] / 1e9 > now)
                                      for p, g in guards):
        pending = found
        return None
    stream = out if out is not None else sys.stdout
    stream.write(text.replace(SECONDS, f"{time.monotonic() - started:.2f}", 1))
    return int(code)


def take_pending() -> tuple[str, tuple[str, ...]] | None:
    """The command line this process may keep its text under, once (set by a missed replay)."""
    global pending
    found, pending = pending, None
    return found


def save(found: tuple[str, tuple[str, ...]], inputs: list[str], text: str, code: int, *,
         started: float) -> bool:
    """Keep ``text`` (with :data:`SECONDS` where the time goes) for this command line, guarded
    by the stat of ``inputs`` and of the code; False when one changed within RACY_SECONDS of
    ``started`` (wall clock), so nothing is kept."""
    from workbench.durable import atomic_write

    state, key = found
    guards = []
    for path in dict.fromkeys([*inputs, *_code_files()]):
        k = stat_key(path)
        if k is not None and k[1] / 1e9 > started - RACY_SECONDS:
            return False
        guards.append((path, k))
    folder = os.path.join(state, FOLDER)
    os.makedirs(folder, exist_ok=True)
    target = _entry_path(state, key)
    atomic_write(target, marshal.dumps((key, tuple(guards), text, int(code))), mode=0o600, durable=False)
    kept = sorted((e for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")),
                  key=lambda e: e.stat().st_mtime_ns, reverse=True)
    for old in kept[KEPT:]:
        try:
            os.unlink(old.path)
        except OSError:
            pass
    return True


def _code_files() -> list[str]:
    """The files of the code that made the text: loaded workbench modules and the engines."""
    out = []
    for name, module in list(sys.modules.items()):
        if name == "workbench" or name.startswith(("workbench.", "yara", "boreal")):
            file = getattr(module, "__file__", None)
            if file:
                out.append(file)
    return sorted(out)
