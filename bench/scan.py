"""Benchmark: ``workbench test`` (the core API) against the ``yara`` command-line tool.

Generates, deterministically from a seed, at least 1,000 rules and a corpus of at
least 200 MB in several thousand files, then in one run:

1. ``corpus add`` (which also builds the n-gram index), and the index built alone
   from the stored files, against one ``yara`` CLI scan of the corpus;
2. interleaved rounds of ``yara -r -p T -C`` (rules compiled by Debian's own
   ``yarac``; apt-get install -y yara, done here if missing) and ``run_rule_tests``
   cold (empty result cache) with T threads, best of each;
3. ``run_rule_tests`` fully cached;
4. re-tests after editing one rule, for several different rules: prefiltered by the
   index (the normal path), and a few without the index (the old path);
5. after each edit, an uncached, unindexed run of the edited ruleset: the re-tested
   results must equal it, and the cold results must equal the cached ones (exit 1
   otherwise).

Both scanners see a warm page cache. Prints throughput, times and the ratios.

    python bench/scan.py [--files 4000] [--mb 200] [--rules 1000] [--threads 2]
                         [--rounds 3] [--edits 5] [--workdir DIR]

With ``--real``, the same questions on a real public ruleset (``--ruleset``, default the
ReversingLabs rules in ../shared/rulesets) over ~300 MB of the system's own files, asked
the way a user meets them: the ``workbench test`` command line (Python start-up
included) against ``yara -p 2 -r`` given the rule sources, alternating, medians; the
re-test with nothing changed and after one-rule edits; and the three engines
(yara-python, YARA-X, boreal) side by side in one process on identical results.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.corpus.gramindex import INDEX_DIR, GramIndex
from workbench.corpus.rule_testing import RuleTestReport, run_rule_tests
from workbench.document import to_data
from workbench.workspace import Workspace

SEED = 20261102
T = TypeVar("T")
RULES_PER_FILE = 20


def words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(n)]


def make_rules(rng: random.Random, count: int, vocab: list[str]) -> tuple[list[str], list[bytes]]:
    """Rules in the house shape: header check, filesize bound, text/hex/regex strings.

    Returns the rule texts and a list of byte strings worth planting in the corpus.
    """
    rules, plant = [], []
    headers = ["uint16(0) == 0x5A4D", "uint32(0) == 0x46445025", "uint32(0) == 0x04034B50", ""]
    for i in range(count):
        strings = []
        for j in range(rng.randint(2, 6)):
            kind = rng.random()
            if kind < 0.55:
                text = " ".join(rng.sample(vocab, 2)) + rng.choice(["", ".dll", ".exe", "://x"])
                mods = rng.choice(["", " ascii wide", " nocase", " ascii", " wide", " fullword"])
                strings.append(f'$s{j} = "{text}"{mods}')
                plant.append(text.encode())
            elif kind < 0.9:
                raw = bytes(rng.randrange(256) for _ in range(rng.randint(6, 14)))
                body = " ".join(f"{b:02X}" for b in raw)
                if rng.random() < 0.4:       # wildcards and a jump in the middle
                    parts = body.split()
                    parts[len(parts) // 2] = "??"
                    parts.insert(len(parts) // 2, "[0-4]")
                    body = " ".join(parts)
                strings.append(f"$h{j} = {{ {body} }}")
                plant.append(raw)
            else:
                strings.append(f"$r{j} = /{rng.choice(vocab)}[0-9]{{2,6}}\\.{rng.choice(vocab)}/")
        header = rng.choice(headers)
        quantifier = rng.choice(["any of them", "2 of them", "all of them", "1 of ($s*) or 1 of ($h*)"])
        prefixes = {s[:2] for s in strings}
        if quantifier.startswith("1 of") and prefixes != {"$s", "$h"}:
            quantifier = "any of them"     # every string must be referenced
        parts = [p for p in (header, f"filesize < {rng.choice([2, 5, 10])}MB", quantifier) if p]
        cond = " and ".join([*parts[:-1], f"({parts[-1]})"]) if len(parts) > 1 else parts[0]
        rules.append(
            f"rule BENCH_Family{i:04d}_Detail {{\n"
            f"  meta:\n    description = \"generated benchmark rule {i}\"\n    version = 1\n"
            f"  strings:\n    " + "\n    ".join(strings) + f"\n  condition:\n    {cond}\n}}\n")
    return rules, plant


def make_corpus(rng: random.Random, folder: Path, files: int, total_mb: int, vocab: list[str],
                plant: list[bytes]) -> int:
    """Files of several kinds (PE-, PDF-, ZIP-headed binary, text) with rule strings planted."""
    target = total_mb * 1_000_000
    mean = target // files
    written = 0
    heads = [b"MZ\x90\x00", b"%PDF-1.7\n", b"PK\x03\x04", b""]
    for n in range(files):
        left = files - n
        size = max(512, min(int(rng.lognormvariate(0, 0.9) * mean * 0.67), 6 * mean))
        if left == 1:
            size = max(512, target - written)
        if rng.random() < 0.5:
            data = bytearray(rng.randbytes(size))
        else:
            chunk = " ".join(rng.choices(vocab, k=size // 6 + 8)).encode()
            data = bytearray(chunk[:size])
        head = rng.choice(heads)
        data[:len(head)] = head
        for _ in range(rng.randint(0, 3)):            # planted strings make matches happen
            s = rng.choice(plant)
            at = rng.randrange(max(1, len(data) - len(s)))
            data[at:at + len(s)] = s
        path = folder / f"{n % 64:02d}" / f"sample{n:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(data))
        written += len(data)
    return written


def ensure_yara() -> None:
    if shutil.which("yara") and shutil.which("yarac"):
        return
    print("installing Debian's yara (apt-get install -y yara) ...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "yara"], check=True,
                   stdout=subprocess.DEVNULL)


def warm(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.read_bytes()


def compile_for_cli(rule_files: list[Path], work: Path) -> Path:
    compiled = work / "rules.yarc"
    subprocess.run(["yarac", *map(str, rule_files), str(compiled)], check=True)
    return compiled


def yara_cli(compiled: Path, corpus: Path, threads: int) -> tuple[float, set[tuple[str, str]]]:
    t0 = time.perf_counter()
    proc = subprocess.run(["yara", "-r", "-p", str(threads), "-C", str(compiled), str(corpus)],
                          check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    pairs = set()
    for line in proc.stdout.splitlines():
        rule, _, path = line.partition(" ")
        pairs.add((rule, Path(path).name))
    return seconds, pairs


def clear_cache(workspace: Workspace) -> None:
    cache_file = workspace.state / "scan-cache.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(cache_file) + suffix).unlink(missing_ok=True)


def timed(run: Callable[[], T]) -> tuple[T, float]:
    """``run()`` and its seconds, timed from a collected heap.

    A ``workbench test`` runs in a fresh process: the previous run's report, and the
    garbage collector's debt from it, are not its cost. Every timed run of either
    kind (cold, cached, re-test) starts the same way.
    """
    gc.collect()
    t0 = time.perf_counter()
    out = run()
    return out, time.perf_counter() - t0


def results(report: RuleTestReport) -> object:
    """Everything a report says about the rules and corpora (not how it was obtained)."""
    data = to_data(report)
    data.pop("stats")
    return data


def edit_rule(rule_files: list[Path], number: int, tag: int) -> str:
    """Tighten rule ``number``'s condition (a new fingerprint, the same matches); returns its name."""
    path = rule_files[number // RULES_PER_FILE]
    text = path.read_text()
    at = -1
    for _ in range(number % RULES_PER_FILE + 1):
        at = text.index("  condition:\n    ", at + 1)
    head = "  condition:\n    "
    path.write_text(text[:at] + head + f"filesize > {16 + tag} and " + text[at + len(head):])
    return re.findall(r"^rule (\w+)", text[:at], re.M)[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best kept)")
    ap.add_argument("--edits", type=int, default=5, help="rules edited and re-tested, one at a time")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--real", action="store_true", help="the real-ruleset benchmark (see above)")
    ap.add_argument("--ruleset", type=Path, default=None, help="a real ruleset folder (implies --real)")
    ap.add_argument("--clean-mb", type=int, default=300, help="--real: MB of system files")
    ap.add_argument("--no-engines", action="store_true", help="--real: skip the engines side by side")
    args = ap.parse_args()
    ensure_yara()
    if args.real or args.ruleset:
        import real_scan

        work = args.workdir or Path(tempfile.mkdtemp(prefix="wb-bench-real-"))
        return real_scan.main(args, work)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="wb-bench-scan-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    rng = random.Random(SEED)
    vocab = words(rng, 6000)
    rules, plant = make_rules(rng, args.rules, vocab)
    rules_dir = work / "rules"
    shutil.rmtree(rules_dir, ignore_errors=True)          # edits of an earlier run undone
    rules_dir.mkdir()
    rule_files = []
    for k in range(0, len(rules), RULES_PER_FILE):
        path = rules_dir / f"bench_{k // RULES_PER_FILE:03d}.yar"
        path.write_text("\n".join(rules[k:k + RULES_PER_FILE]))
        rule_files.append(path)
    corpus = work / "corpus"
    if not corpus.exists():
        t0 = time.perf_counter()
        size = make_corpus(rng, corpus, args.files, args.mb, vocab, plant)
        print(f"generated {args.files} files, {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    size = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    mb = size / 1e6
    shutil.rmtree(work / "home", ignore_errors=True)       # every run adds and indexes afresh
    workspace = Workspace.resolve(work / "home").ensure()
    warm(corpus)
    compiled = compile_for_cli(rule_files, work)
    cli_first, cli_pairs = yara_cli(compiled, corpus, args.threads)

    t0 = time.perf_counter()
    with CorpusRegistry(workspace) as registry:
        added = registry.add("bench", corpus, "malicious")
        files = registry.files("bench")
    add_seconds = time.perf_counter() - t0
    with GramIndex(workspace.state / INDEX_DIR) as index:
        stats = index.stats()
    alone = GramIndex(work / "index-alone")
    alone.clear()
    built = alone.build([(f.sha256, f.path_in_store) for f in files], threads=args.threads)
    warm(workspace.quarantine / "objects")

    # Interleaved rounds, best of each: other work on the machine hits both alike.
    cli_seconds = cold_seconds = cached_seconds = float("inf")
    for _ in range(args.rounds):
        seconds, cli_pairs = yara_cli(compiled, corpus, args.threads)
        cli_seconds = min(cli_seconds, seconds)
        clear_cache(workspace)
        cold, seconds = timed(lambda: run_rule_tests(workspace, [rules_dir], ["bench"],
                                                 threads=args.threads))
        cold_seconds = min(cold_seconds, seconds)
    for _ in range(args.rounds):
        cached, seconds = timed(lambda: run_rule_tests(workspace, [rules_dir], ["bench"],
                                                   threads=args.threads))
        cached_seconds = min(cached_seconds, seconds)
    same_cached = results(cold) == results(cached)
    names = {f.sha256: Path(f.original_name).name for f in files}
    wb_pairs = {(r.rule, names[f.sha256]) for r in cold.rules
                for f in r.true_positives + r.other_hits}
    capped = any(r.tp_count > len(r.true_positives) for r in cold.rules)

    # Edit one rule at a time; each re-test must equal a run of the edited ruleset from scratch.
    retests: list[tuple[str, float, int, float]] = []     # rule, seconds, files read, index s
    plain: list[float] = []
    identical = True
    for e in range(args.edits):
        name = edit_rule(rule_files, (e * 397 + 500) % len(rules), e)
        retest, seconds = timed(lambda: run_rule_tests(workspace, [rules_dir], ["bench"],
                                                   threads=args.threads))
        retests.append((name, seconds, retest.stats.files_scanned, retest.stats.index_seconds))
        reference = run_rule_tests(workspace, [rules_dir], ["bench"], threads=args.threads,
                               use_cache=False, use_index=False)
        identical &= results(retest) == results(reference)
    for e in range(min(2, args.edits)):                   # the old path: every file read again
        edit_rule(rule_files, (e * 397 + 500) % len(rules), 100 + e)
        plain.append(timed(lambda: run_rule_tests(workspace, [rules_dir], ["bench"],
                                              threads=args.threads, use_index=False))[1])

    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, Python "
          f"{sys.version.split()[0]}, yara CLI "
          f"{subprocess.run(['yara', '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"ruleset: {len(rules)} rules in {len(rule_files)} files; corpus: {args.files} files, "
          f"{mb:.1f} MB; threads: {args.threads}")
    print(f"corpus add (store, hashes, index): {add_seconds:.2f} s, {mb / add_seconds:.0f} MB/s; "
          f"{added.indexed} files indexed")
    print(f"index built alone: {built.seconds:.2f} s, {mb / built.seconds:.0f} MB/s "
          f"({built.seconds / cli_first:.1f}x one yara CLI scan of {cli_first:.2f} s); "
          f"size {stats.index_bytes / 1e6:.1f} MB ({100 * stats.index_bytes / size:.0f}% of the "
          f"corpus), {stats.saturated} saturated files")
    print(f"yara CLI (yarac + yara -C -p {args.threads}, best of {args.rounds}): {cli_seconds:.2f} s, "
          f"{mb / cli_seconds:.1f} MB/s, {len(cli_pairs)} rule/file matches")
    print(f"workbench test, cold cache (best of {args.rounds}): {cold_seconds:.2f} s, "
          f"{mb / cold_seconds:.1f} MB/s, {len(wb_pairs)} rule/file matches "
          f"(compile {cold.stats.compile_seconds:.2f} s, scan {cold.stats.scan_seconds:.2f} s)")
    print(f"  cold throughput vs yara CLI: {cli_seconds / cold_seconds:.2f}x (target >= 0.9x)")
    same = wb_pairs == cli_pairs or capped
    print(f"  same matches as the yara CLI: {same}" +
          ("" if wb_pairs == cli_pairs else f" (CLI only {len(cli_pairs - wb_pairs)}, "
                                            f"workbench only {len(wb_pairs - cli_pairs)})"))
    print(f"workbench test, fully cached (best of {args.rounds}): {cached_seconds:.3f} s; "
          f"identical to cold: {same_cached}")
    for name, seconds, read, index_seconds in retests:
        print(f"  re-test after editing {name}: {seconds:.3f} s, {read} files read "
              f"(index {index_seconds * 1000:.0f} ms), {cold_seconds / seconds:.1f}x faster than cold")
    times = sorted(t for _, t, _, _ in retests)
    median = times[len(times) // 2]
    print(f"re-test after one edit, median of {len(times)}: {median:.3f} s "
          f"(range {times[0]:.3f}-{times[-1]:.3f}); speed-up vs cold: {cold_seconds / median:.1f}x "
          f"(target >= 20x); identical to uncached, unindexed runs: {identical}")
    if plain:
        print(f"  the same re-test without the index (every file read): "
              f"{', '.join(f'{t:.3f} s' for t in plain)} ({cold_seconds / min(plain):.1f}x)")
    return 0 if identical and same_cached else 1


if __name__ == "__main__":
    sys.exit(main())
