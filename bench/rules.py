"""Benchmark the rules core against its peers, in one run, and print the ratios.

1. Parsing 5,000 rules: workbench.rules.parse vs plyara (the usual Python YARA parser).
2. Linting the same ruleset: workbench lint (both engines + every house check) vs
   compiling it with yara-python and YARA-X alone (the floor lint cannot go under).
3. One file in the editor: lint_text on a 50-rule file (the TUI's budget is 200 ms).
4. Suggestions: ranking a 2 MiB binary's strings against a 2,000-file goodware database
   vs the bare strings extraction they start from.

5. With ``--ruleset PATH`` (or ``--real``: the ReversingLabs rules in ../shared/rulesets),
   ``workbench rule lint`` of that real ruleset through the command line (start-up
   included) against Debian's ``yarac`` compiling it, alternating, medians.

Usage: .venv/bin/python bench/rules.py [--rules 5000] [--real | --ruleset PATH] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plyara
import yara
import yara_x
from realset import (
    DEFAULT_RULESET,
    WORKBENCH,
    alternate,
    ensure_yara,
    load,
    median,
    rule_files,
    run,
)

from workbench.dissect.strings import extract_strings
from workbench.rules.goodware import GoodwareDB
from workbench.rules.lint import lint_paths, lint_text
from workbench.rules.parse import parse_file, parse_text
from workbench.rules.policy import Policy
from workbench.rules.suggest import rank_strings


def make_rule(i: int, rng: random.Random) -> str:
    words = ["invoice", "payload", "loader", "beacon", "config", "update", "stage", "gate"]
    w = rng.choice(words)
    body = f"""rule MAL_Bench{i // 100}_Rule{i}_Exe : bench {{
  meta:
    id = "{hashlib.md5(str(i).encode()).hexdigest()[:8]}-0000-4000-8000-000000000000"
    fingerprint = "{'0' * 64}"
    version = 1
    date = "2026-01-02"
    modified = "2026-01-03"
    status = "TESTING"
    author = "bench"
    description = "benchmark rule {i}"
    category = "MAL"
    family = "Bench{i // 100}"
    hash = "{hashlib.sha256(str(i).encode()).hexdigest()}"
    source = "{hashlib.sha256(b'm' + str(i).encode()).hexdigest()}"
  strings:
    $x1 = "WBBENCH-{w}-{i:06d}" ascii wide
    $s1 = {{ 4D 5A 90 00 {i % 256:02X} ?? [2-6] {(i * 7) % 256:02X} 50 45 }}
    $s2 = /{w}[0-9]{{2,8}}\\.example\\/gate{i}/
    $s3 = "{w}-{rng.randint(1000, 99999)}" nocase
  condition:
    uint16(0) == 0x5A4D and filesize < 4MB and (1 of ($x*) or 2 of ($s*))
}}
"""
    fp = parse_text(body).rules[0].fingerprint
    return body.replace("0" * 64, fp, 1)


def real_lint(ruleset: Path, rounds: int) -> None:
    """`workbench rule lint RULESET` (the command, start-up included) against `yarac` on it:
    cold (a new home, nothing remembered) and again (YARA-X's findings kept per file)."""
    ensure_yara()
    files = rule_files(ruleset)
    with tempfile.TemporaryDirectory() as tmp:
        run([*WORKBENCH, "--version"])          # .pyc files written first
        homes = iter(range(10_000))
        lint = [*WORKBENCH, "rule", "lint", str(ruleset)]

        def new_home() -> str:       # a --home that does not exist is refused (a typo)
            home = Path(tmp, f"cold{next(homes)}")
            home.mkdir()
            return str(home)

        Path(tmp, "warm").mkdir()
        run([*WORKBENCH, "--home", f"{tmp}/warm", *lint[len(WORKBENCH):]], ok=(0, 1))
        times = alternate(rounds, {
            "yarac": lambda: run(["yarac", *map(str, files), f"{tmp}/out.yarc"])[0],
            "cold": lambda: run([*WORKBENCH, "--home", new_home(), *lint[len(WORKBENCH):]],
                                ok=(0, 1))[0],
            "again": lambda: run([*WORKBENCH, "--home", f"{tmp}/warm", *lint[len(WORKBENCH):]], ok=(0, 1))[0]})
    peer = median(times["yarac"])
    for name in ("cold", "again"):
        ours = median(times[name])
        print(f"real ruleset {ruleset} ({len(files)} files): rule lint, {name}: "
              f"{', '.join(f'{t:.2f}' for t in times[name])} s, median {ours:.2f} s (target < 3 s); "
              f"yarac {', '.join(f'{t:.2f}' for t in times['yarac'])} s, median {peer:.2f} s; "
              f"lint = {ours / peer:.1f}x yarac; {load()}")


def timed(fn, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=5000)
    ap.add_argument("--real", action="store_true", help="also lint the real ruleset against yarac")
    ap.add_argument("--ruleset", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--real-only", action="store_true", help="the real ruleset only")
    args = ap.parse_args()
    if args.real or args.ruleset or args.real_only:
        real_lint(args.ruleset or DEFAULT_RULESET, args.rounds)
        if args.real_only:
            return 0
    rng = random.Random(7)
    policy = Policy()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"yara-python {yara.__version__}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rules"
        folder.mkdir()
        per_file = 50
        texts = []
        for f in range(args.rules // per_file):
            text = "".join(make_rule(f * per_file + i, rng) for i in range(per_file))
            (folder / f"bench_{f:03d}.yar").write_text(text)
            texts.append(text)
        files = sorted(folder.glob("*.yar"))
        n = len(files) * per_file
        print(f"ruleset: {n} rules in {len(files)} files")

        # 1. parsing
        ours = timed(lambda: [parse_file(p) for p in files], repeat=3)
        rules = sum(len(parse_file(p).rules) for p in files)
        assert rules == n

        def peer_parse() -> None:
            for t in texts:
                plyara.Plyara().parse_string(t)
        peer = timed(peer_parse)
        print(f"\n1. parse {n} rules: workbench {ours:.2f} s ({n / ours:,.0f} rules/s); "
              f"plyara {peer:.2f} s ({n / peer:,.0f} rules/s); workbench is {peer / ours:.1f}x faster")

        # 2. lint vs compile-only
        report = None

        def ours_lint() -> None:
            nonlocal report
            report = lint_paths([folder], policy)
        ours = timed(ours_lint)
        assert report is not None and report.rules == n

        def compile_only() -> None:
            for t in texts:
                yara.compile(source=t)
                c = yara_x.Compiler()
                c.add_source(t)
        floor = timed(compile_only)
        print(f"2. lint {n} rules: workbench {ours:.2f} s ({report.errors} errors, {report.warnings} warnings); "
              f"compile-only with both engines {floor:.2f} s; lint costs {ours / floor:.2f}x the bare compile")

        # 3. the editor's budget
        text = texts[0]
        lint_text(text, None, policy)
        one = timed(lambda: lint_text(text, None, policy), repeat=7)

        def compile_one() -> None:
            yara.compile(source=text)
            yara_x.compile(text)
        one_floor = timed(compile_one, repeat=7)
        print(f"3. lint_text on one {per_file}-rule file: {one * 1000:.0f} ms (budget 200 ms); "
              f"compile-only {one_floor * 1000:.0f} ms; ratio {one / one_floor:.2f}x")

        # 4. suggestions with a goodware database
        gw_path = Path(tmp) / "gw.sqlite"
        with GoodwareDB(gw_path) as gw:
            clean = []
            for i in range(2000):
                words = b"\x00".join(f"clean-{rng.randint(0, 5000)}-{w}".encode()
                                     for w in ("alpha", "beta", "gamma", "delta") for _ in range(5))
                clean.append((hashlib.sha256(words + str(i).encode()).hexdigest(), words))
            build = timed(lambda: gw.add_files(clean))
            sample = bytearray(os.urandom(2 * 1024 * 1024))
            for k in range(4000):
                marker = f"clean-{k}-alpha\x00http://c2-{k}.example/gate.php\x00".encode()
                pos = rng.randrange(0, len(sample) - len(marker))
                sample[pos:pos + len(marker)] = marker
            data = bytes(sample)
            extract = timed(lambda: extract_strings(data), repeat=3)
            rank = timed(lambda: rank_strings(extract_strings(data), gw, limit=50), repeat=3)
        print(f"4. goodware DB: 2,000 clean files added in {build:.2f} s ({2000 / build:,.0f} files/s); "
              f"suggest on 2 MiB: {rank * 1000:.0f} ms vs bare strings extraction {extract * 1000:.0f} ms "
              f"(ratio {rank / extract:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
