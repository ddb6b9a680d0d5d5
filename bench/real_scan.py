"""``bench/scan.py --real``: ``workbench test`` against ``yara -p 2 -r`` on a real ruleset (see scan.py)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boreal
import yara
import yara_x
from realset import (
    DEFAULT_RULESET,
    WORKBENCH,
    alternate,
    clean_corpus,
    load,
    median,
    rule_files,
    run,
)


def engines_side_by_side(files: list[Path], corpus: Path, threads: int) -> None:
    """Compile and scan with each engine in this process, ``threads`` threads; same pairs?"""
    targets = sorted((str(p) for p in corpus.rglob("*") if p.is_file()), key=lambda p: -os.path.getsize(p))
    boreal.set_config(yara_compatibility=True)

    def pool(make: Callable[[], Callable[[str], list[str]]]) -> set[tuple[str, str]]:
        it, lock, out = iter(targets), threading.Lock(), set()

        def work() -> None:
            scan = make()
            while True:
                with lock:
                    path = next(it, None)
                if path is None:
                    return
                names = scan(path)
                with lock:
                    out.update((r, os.path.basename(path)) for r in names)
        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return out

    spaces = {f"n{i}": str(f) for i, f in enumerate(files)}
    results: dict[str, set[tuple[str, str]]] = {}
    for name in ("yara-python", "boreal", "yara-x"):
        t0 = time.perf_counter()
        if name == "yara-python":
            rules = yara.compile(filepaths=spaces)
            compiled = time.perf_counter() - t0
            pairs = pool(lambda r=rules: lambda p: [m.rule for m in r.match(p, timeout=120)])
        elif name == "boreal":
            scanner = boreal.compile(filepaths=spaces)
            compiled = time.perf_counter() - t0
            pairs = pool(lambda r=scanner: lambda p: [m.rule for m in r.match(p, timeout=120)])
        else:
            compiler = yara_x.Compiler()
            for ns, f in spaces.items():
                compiler.new_namespace(ns)
                compiler.add_source(Path(f).read_text(errors="replace"), origin=f)
            built = compiler.build()
            compiled = time.perf_counter() - t0

            def make(built: yara_x.Rules = built) -> Callable[[str], list[str]]:
                s = yara_x.Scanner(built)
                s.set_timeout(120)
                return lambda p: [r.identifier for r in s.scan_file(p).matching_rules]
            pairs = pool(make)
        seconds = time.perf_counter() - t0
        results[name] = pairs
        same = "" if name == "yara-python" else f"; identical to yara-python: {pairs == results['yara-python']}"
        print(f"  {name:12} compile {compiled:5.2f} s, compile + scan {seconds:6.2f} s, "
              f"{len(pairs)} rule/file matches{same}", flush=True)


def edit(rules: Path, number: int, tag: int) -> Path:
    """Tighten one rule's condition (a new key, the same matches)."""
    path = rule_files(rules)[number]
    text = path.read_text()
    at = text.index("condition:")
    eol = text.index("\n", at)
    path.write_text(text[:eol + 1] + f"        filesize > {16 + tag} and\n" + text[eol + 1:])
    return path


def main(args: argparse.Namespace, work: Path) -> int:
    ruleset = (args.ruleset or DEFAULT_RULESET).resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "clean"
    size = clean_corpus(corpus, args.clean_mb)
    rules = work / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    shutil.copytree(ruleset, rules)
    files = rule_files(rules)
    home = work / "home"
    wb = [*WORKBENCH, "--home", str(home)]
    if not (home / "state" / "corpora.sqlite").exists():
        added, _ = run([*wb, "corpus", "add", "clean", str(corpus), "--label", "clean"])
        print(f"corpus add: {added:.1f} s")
    test = [*wb, "test", str(rules), "--corpus", "clean", "--threads", str(args.threads)]
    cli = ["yara", "-p", str(args.threads), "-r", *map(str, files), str(corpus)]
    cache = home / "state" / "scan-cache.sqlite"
    run([*WORKBENCH, "--version"])          # .pyc files written before anything is timed
    print(f"ruleset {ruleset}: {len(files)} files; clean corpus {size / 1e6:.0f} MB in "
          f"{sum(1 for p in corpus.rglob('*') if p.is_file())} files; threads {args.threads}; {load()}")
    start_up = median([run([sys.executable, "-c", "pass"])[0] for _ in range(5)])

    def cold() -> float:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{cache}{suffix}").unlink(missing_ok=True)
        return run(test, ok=(0, 1))[0]

    times = alternate(args.rounds, {"yara": lambda: run(cli)[0], "cold": cold})
    cli_s, cold_s = median(times["yara"]), median(times["cold"])
    print(f"yara -p {args.threads} -r (rule sources): {', '.join(f'{t:.2f}' for t in times['yara'])} s; "
          f"median {cli_s:.2f} s = {size / 1e6 / cli_s:.1f} MB/s")
    print(f"workbench test, cold (start-up included): {', '.join(f'{t:.2f}' for t in times['cold'])} s; "
          f"median {cold_s:.2f} s = {size / 1e6 / cold_s:.1f} MB/s")
    print(f"  cold throughput vs the yara CLI: {cli_s / cold_s:.2f}x (target >= 1.0x); {load()}")
    time.sleep(2.1)                          # the run memo trusts no file changed < 2 s ago
    same = [run(test, ok=(0, 1))[0] for _ in range(max(5, args.rounds))]
    print(f"re-test, nothing changed: median {median(same) * 1000:.0f} ms "
          f"({', '.join(f'{t * 1000:.0f}' for t in same)}; target < 150 ms); "
          f"python -c pass: {start_up * 1000:.0f} ms; {cold_s / median(same):.0f}x faster than cold")
    edited = []
    for e in range(args.edits):
        edit(rules, (e * 97 + 13) % len(files), e)
        time.sleep(2.1)
        edited.append(run(test, ok=(0, 1))[0])
    print(f"re-test after one-rule edits: median {median(edited) * 1000:.0f} ms "
          f"({', '.join(f'{t * 1000:.0f}' for t in edited)}); "
          f"{cold_s / median(edited):.1f}x faster than cold (target >= 20x); {load()}")
    if not args.no_engines:
        print("engines side by side (one process, same files, compile + scan):")
        engines_side_by_side(files, corpus, args.threads)
    return 0
