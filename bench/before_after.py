"""Before/after, alternating in one run: the issue 19 speed targets for two trees of the code.

The same questions ``bench/scan.py --real``, ``bench/rules.py --real`` and
``bench/validate.py --real`` ask, for two source trees of ``workbench`` run by one
Python (``--before SRC``, e.g. ``git archive c23cc23 workbench | tar -x -C SRC``; the
other tree is this checkout), each step taking turns so the machine's load hits both
alike. Every figure is a fresh command-line process: wall time (start to exit, what the
user waits for) and CPU time (user + system, from ``getrusage`` of the children);
``python -c pass`` is measured in the same rounds as the floor. Each tree works in its
own copy of the workspace (their caches' formats differ), on the same rule files.

    python bench/before_after.py --before /tmp/before --work DIR [--rounds 5] [--edits 5]

DIR must hold ``home`` (a workspace with the clean corpus registered as ``clean``, as
``bench/scan.py --real --workdir DIR`` leaves it) and ``rules`` (a writable copy of the
real ruleset). Validation is measured on ``bench/validate.py --real``'s layout, made here.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from realset import DEFAULT_RULESET, bytecode_env, clean_corpus, load, rule_files

HERE = Path(__file__).resolve().parents[1]
MAIN = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"


class Side:
    def __init__(self, name: str, src: Path, home: Path):
        self.name, self.src, self.home = name, src, home
        self.env = bytecode_env()
        self.env["PYTHONPATH"] = str(src)

    def run(self, *args: str, ok: tuple[int, ...] = (0, 1), home: Path | None = None) -> tuple[float, float]:
        # -P: the current folder is not put first on sys.path (run from a checkout, it would
        # shadow PYTHONPATH, and both sides would import that checkout's code)
        return timed([sys.executable, "-P", "-c", MAIN, "--home", str(home or self.home), *args],
                     self.env, ok)

    def check_imports(self) -> None:
        """Exit unless this side's processes import ``workbench`` from its own tree."""
        done = subprocess.run([sys.executable, "-P", "-c", "import workbench; print(workbench.__file__)"],
                              capture_output=True, text=True, env=self.env, check=True)
        where = Path(done.stdout.strip()).resolve()
        if not where.is_relative_to(self.src.resolve()):
            sys.exit(f"{self.name}: workbench comes from {where}, not from {self.src}")
        print(f"{self.name}: workbench from {where.parent}", flush=True)


def timed(cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in ok:
        sys.exit(f"{' '.join(cmd)[:300]} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def show(label: str, values: list[tuple[float, float]]) -> tuple[float, float]:
    walls, cpus = [w for w, _ in values], [c for _, c in values]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"  {label:44} wall median {wall * 1000:7.0f} ms ({', '.join(f'{w * 1000:.0f}' for w in walls)}); "
          f"CPU median {cpu * 1000:6.0f} ms", flush=True)
    return wall, cpu


def alternate(rounds: int, steps: dict[str, Callable[[], tuple[float, float]]]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            out[name].append(step())
    return out


def edit(rules: Path, number: int, tag: int) -> None:
    path = rule_files(rules)[number % len(rule_files(rules))]
    text = path.read_text()
    at = text.index("condition:")
    eol = text.index("\n", at)
    path.write_text(text[:eol + 1] + f"        filesize > {16 + tag} and\n" + text[eol + 1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the other source tree (holds workbench/)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--cold-rounds", type=int, default=2)
    ap.add_argument("--skip", action="append", default=[], choices=["test", "lint", "validate"])
    args = ap.parse_args()
    work = args.work.resolve()
    rules = work / "rules"
    homes = {"before": work / "home-before", "after": work / "home-after"}
    for home in homes.values():
        if not home.exists():
            shutil.copytree(work / "home", home, symlinks=True)
    sides = [Side("before", args.before.resolve(), homes["before"]), Side("after", HERE, homes["after"])]
    floor_env = bytecode_env()
    floor = lambda: timed([sys.executable, "-c", "pass"], floor_env)  # noqa: E731
    for s in sides:
        s.check_imports()
        s.run("--version", ok=(0,))
    print(f"{len(rule_files(rules))} rule files; {load()}", flush=True)
    test = ["test", str(rules), "--corpus", "clean", "--threads", "2"]

    if "test" not in args.skip:
        for s in sides:                  # caches filled, then nothing changed
            s.run(*test)
        time.sleep(2.1)
        for s in sides:
            s.run(*test)
        time.sleep(2.1)
        print(f"nothing changed ({args.rounds} rounds, alternating); {load()}")
        got = alternate(args.rounds, {"python -c pass": floor,
                                      **{f"test, nothing changed: {s.name}": (lambda s=s: s.run(*test))
                                         for s in sides}})
        for name, values in got.items():
            show(name, values)
        print(f"one-rule edits ({args.edits}, each re-tested by both); {load()}")
        edited: dict[str, list[tuple[float, float]]] = {s.name: [] for s in sides}
        for e in range(args.edits):
            edit(rules, e * 97 + 31, 100 + e)
            time.sleep(2.1)
            for s in (sides if e % 2 == 0 else sides[::-1]):
                edited[s.name].append(s.run(*test))
        edit_medians = {name: show(f"test after a one-rule edit: {name}", v) for name, v in edited.items()}
        print(f"cold ({args.cold_rounds} rounds: the scan cache deleted); {load()}")

        def cold(s: Side) -> tuple[float, float]:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{s.home}/state/scan-cache.sqlite{suffix}").unlink(missing_ok=True)
            return s.run(*test)
        colds = alternate(args.cold_rounds, {s.name: (lambda s=s: cold(s)) for s in sides})
        for name, values in colds.items():
            wall, cpu = show(f"test, cold: {name}", values)
            ew, ec = edit_medians[name]
            print(f"    {name}: one-rule edit {wall / ew:.1f}x faster than cold in wall time, "
                  f"{cpu / ec:.1f}x in CPU time")
        print(f"  {load()}")

    if "lint" not in args.skip:
        print(f"rule lint of {DEFAULT_RULESET} ({args.rounds} rounds; cold: a new home each time); {load()}")
        tmp = Path(tempfile.mkdtemp(prefix="lint-", dir=work))
        n = iter(range(10_000))

        def lint_cold(s: Side) -> tuple[float, float]:
            home = tmp / f"{s.name}-cold{next(n)}"
            home.mkdir()
            return s.run("rule", "lint", str(DEFAULT_RULESET), home=home)

        for s in sides:
            (tmp / f"{s.name}-warm").mkdir()
            s.run("rule", "lint", str(DEFAULT_RULESET), home=tmp / f"{s.name}-warm")
        got = alternate(args.rounds, {
            "python -c pass": floor,
            "yarac": lambda: timed(["yarac", *map(str, rule_files(DEFAULT_RULESET)), str(tmp / "out.yarc")],
                                   floor_env),
            **{f"rule lint, cold: {s.name}": (lambda s=s: lint_cold(s)) for s in sides},
            **{f"rule lint, again: {s.name}": (lambda s=s: s.run("rule", "lint", str(DEFAULT_RULESET),
                                                                 home=tmp / f"{s.name}-warm")) for s in sides}})
        for name, values in got.items():
            show(name, values)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"  {load()}")

    if "validate" not in args.skip:
        validate(work, sides, floor, args.rounds)
    return 0


def validate(work: Path, sides: list[Side], floor: Callable[[], tuple[float, float]], rounds: int) -> None:
    import git

    root = work / "signatures"
    if not root.exists():
        shutil.copytree(DEFAULT_RULESET, root / "rules" / "vendor")
        shutil.copy(HERE / "signatures" / "workbench.toml", root / "workbench.toml")
        (root / "corpora" / "malicious").mkdir(parents=True)
        clean_corpus(root / "corpora" / "clean", 100)
        repo = git.Repo.init(root)
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "bench")
            cw.set_value("user", "email", "bench@example.invalid")
        (root / ".gitignore").write_text("corpora/\n")
        repo.git.add("rules", "workbench.toml", ".gitignore")
        repo.index.commit("vendor rules")
        files = rule_files(root / "rules")
        path = files[len(files) // 2]
        text = path.read_text()
        at = text.index("condition:")
        eol = text.index("\n", at)
        path.write_text(text[:eol + 1] + "        filesize > 16 and\n" + text[eol + 1:])
    files = rule_files(root / "rules")
    print(f"validate --changed-since HEAD (one rule changed; 100 MB clean corpus; {rounds} rounds); {load()}")
    for s in sides:                      # each tree's caches filled once
        s.run("--signatures", str(root), "validate", "--changed-since", "HEAD")
    got = alternate(rounds, {
        "python -c pass": floor,
        "yarac": lambda: timed(["yarac", *map(str, files), str(work / "out.yarc")], bytecode_env()),
        **{f"validate --changed-since: {s.name}": (lambda s=s: s.run("--signatures", str(root), "validate",
                                                                     "--changed-since", "HEAD"))
           for s in sides}})
    for name, values in got.items():
        show(name, values)
    print(f"  {load()}")
    if os.environ.get("BENCH_FULL_VALIDATE"):
        for s in sides[::-1]:
            show(f"validate (full): {s.name}", [s.run("--signatures", str(root), "validate")])
        print(f"  {load()}")


if __name__ == "__main__":
    sys.exit(main())
