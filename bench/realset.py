"""Shared by the benchmarks: a real public ruleset, a clean corpus of system files, the peers.

The ruleset is read where it is (``--ruleset``, default the ReversingLabs rules under
``../shared/rulesets/``): it is data, never copied into the repository; benchmarks that
edit rules edit a copy in their work folder. The clean corpus is copied from the
system's own libraries and programs (deterministic: sorted, round-robin over the
roots), so it does not change under a run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RULESET = REPO.parent / "shared" / "rulesets" / "reversinglabs" / "yara"
if not DEFAULT_RULESET.is_dir():                  # a worktree sits one level deeper
    DEFAULT_RULESET = Path("/work/shared/rulesets/reversinglabs/yara")
CLEAN_ROOTS = ("/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib/python3/dist-packages",
               sys.prefix + "/lib")
MAX_FILE = 16_000_000
# a command line as an installed `workbench` runs it, .pyc files allowed
WORKBENCH = [sys.executable, "-c", "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"]


def rule_files(ruleset: Path) -> list[Path]:
    return sorted(p for p in ruleset.rglob("*") if p.suffix.lower() in (".yar", ".yara") and p.is_file())


def clean_corpus(folder: Path, megabytes: int = 300) -> int:
    """Copy about ``megabytes`` of system files into ``folder`` once; returns its bytes."""
    if folder.is_dir() and any(folder.iterdir()):
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    per_root: list[list[tuple[str, int]]] = []
    for root in CLEAN_ROOTS:
        found = []
        for d, dirs, names in os.walk(root):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                if not os.path.islink(p) and os.path.isfile(p) and 0 < os.path.getsize(p) <= MAX_FILE:
                    found.append((p, os.path.getsize(p)))
        per_root.append(found)
    target, total = megabytes * 1_000_000, 0
    picked: list[tuple[str, int]] = []
    for k in range(max(map(len, per_root))):          # round-robin: binaries, libraries, Python
        for found in per_root:
            if k < len(found) and total + found[k][1] <= target:
                picked.append(found[k])
                total += found[k][1]
    for n, (p, _) in enumerate(picked):
        dst = folder / f"{n % 64:02d}" / f"{n:05d}_{os.path.basename(p)}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
    return total


def ensure_yara() -> None:
    if shutil.which("yara") and shutil.which("yarac"):
        return
    print("installing Debian's yara (apt-get install -y yara) ...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "yara"], check=True, stdout=subprocess.DEVNULL)


def bytecode_env() -> dict[str, str]:
    """The environment of an installed command: .pyc files written and used."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(cmd: Sequence[str], *, ok: Sequence[int] = (0,), env: dict[str, str] | None = None
        ) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env or bytecode_env())
    seconds = time.perf_counter() - t0
    if done.returncode not in ok:
        sys.exit(f"{' '.join(map(str, cmd))[:200]} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def alternate(rounds: int, steps: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run the steps in turns, ``rounds`` times: load on the machine hits each alike."""
    out: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            out[name].append(step())
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {len(os.sched_getaffinity(0))} cores"
