"""Benchmark: ``workbench test`` (the core API) against the ``yara`` command-line tool.

Generates, deterministically from a seed, at least 1,000 rules and a corpus of at
least 200 MB in several thousand files, then in one run:

1. ``yara -r -p T -C`` with rules compiled by Debian's own ``yarac`` (apt-get
   install -y yara, done here if missing), best of two runs;
2. ``test_rules`` cold (empty result cache) with T threads;
3. ``test_rules`` again after editing one rule, compared with a cold run of the
   edited ruleset without the cache (the results must be identical).

Both scanners see a warm page cache. Prints throughput and the ratios.

    python bench/scan.py [--files 4000] [--mb 200] [--rules 1000] [--threads 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbench.corpus.registry import CorpusRegistry
from workbench.corpus.testing import test_rules
from workbench.document import to_data
from workbench.workspace import Workspace

SEED = 20261102
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best kept)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    ensure_yara()
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
    rules_dir.mkdir(exist_ok=True)
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
    workspace = Workspace.resolve(work / "home").ensure()
    t0 = time.perf_counter()
    with CorpusRegistry(workspace) as registry:
        registry.add("bench", corpus, "malicious")
    print(f"corpus add: {time.perf_counter() - t0:.1f} s")
    warm(corpus)
    warm(workspace.quarantine / "objects")

    # Interleaved rounds, best of each: other work on the machine hits both alike.
    compiled = compile_for_cli(rule_files, work)
    cli_seconds = cold_seconds = float("inf")
    for _ in range(args.rounds):
        seconds, cli_pairs = yara_cli(compiled, corpus, args.threads)
        cli_seconds = min(cli_seconds, seconds)
        clear_cache(workspace)
        t0 = time.perf_counter()
        cold = test_rules(workspace, [rules_dir], ["bench"], threads=args.threads)
        cold_seconds = min(cold_seconds, time.perf_counter() - t0)
    names = {f.sha256: Path(f.original_name).name for f in CorpusRegistry(workspace).files("bench")}
    wb_pairs = {(r.rule, names[f.sha256]) for r in cold.rules
                for f in r.true_positives + r.other_hits}
    capped = any(r.tp_count > len(r.true_positives) for r in cold.rules)

    # Edit one rule: tighten its condition (a new fingerprint, so a new cache key).
    edited_file = rule_files[len(rule_files) // 2]
    text = edited_file.read_text()
    edited_file.write_text(text.replace("  condition:\n    ", "  condition:\n    filesize > 16 and ", 1))
    t0 = time.perf_counter()
    retest = test_rules(workspace, [rules_dir], ["bench"], threads=args.threads)
    retest_seconds = time.perf_counter() - t0
    reference = test_rules(workspace, [rules_dir], ["bench"], threads=args.threads, use_cache=False)
    identical = to_data(retest.rules) == to_data(reference.rules)

    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"{subprocess.run(['yara', '--version'], capture_output=True, text=True).stdout.strip()} CLI")
    print(f"ruleset: {len(rules)} rules in {len(rule_files)} files; corpus: {args.files} files, "
          f"{mb:.1f} MB; threads: {args.threads}")
    print(f"yara CLI (yarac + yara -C -p {args.threads}, best of {args.rounds}): {cli_seconds:.2f} s, "
          f"{mb / cli_seconds:.1f} MB/s, {len(cli_pairs)} rule/file matches")
    print(f"workbench test, cold cache (best of {args.rounds}): {cold_seconds:.2f} s, {mb / cold_seconds:.1f} MB/s, "
          f"{len(wb_pairs)} rule/file matches (compile {cold.stats.compile_seconds:.2f} s)")
    print(f"  cold throughput vs yara CLI: {cli_seconds / cold_seconds:.2f}x (target >= 0.9x)")
    same = wb_pairs == cli_pairs or capped
    print(f"  same matches as the yara CLI: {same}" +
          ("" if wb_pairs == cli_pairs else f" (CLI only {len(cli_pairs - wb_pairs)}, "
                                            f"workbench only {len(wb_pairs - cli_pairs)})"))
    print(f"workbench test after editing one rule: {retest_seconds:.3f} s "
          f"(compiled {retest.stats.rules_compiled} rule(s), scanned {retest.stats.files_scanned} "
          "files)")
    print(f"  re-test speed-up vs cold: {cold_seconds / retest_seconds:.1f}x (target >= 20x); "
          f"identical to an uncached run: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
