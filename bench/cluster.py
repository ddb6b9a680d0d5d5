"""A corpus scan on a local thread pool against a 2-worker Dask cluster (issue 18), same run.

The same compiled ruleset and files: ``scan_files`` on 2 threads here, then on a
``distributed.LocalCluster`` of 2 worker processes (1 thread each) on loopback. Prints
both times, the ratio and the cluster's overhead per file, and checks the results agree.
The per-file figures feed the scaling model in docs/benchmarks.md.

    python bench/cluster.py [--files 2000] [--size 65536] [--rules 200]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yara
from distributed import Client, LocalCluster

from workbench.corpus.scanner import ScanTarget, scan_files


def make_corpus(folder: Path, files: int, size: int) -> list[ScanTarget]:
    rng = random.Random(7)
    targets = []
    for n in range(files):
        data = rng.randbytes(rng.randint(size // 4, size * 2))
        path = folder / f"{n:06d}.bin"
        path.write_bytes(data)
        targets.append(ScanTarget(f"{n:064x}", path, len(data)))
    return targets


def make_rules(count: int) -> yara.Rules:
    rng = random.Random(3)
    source = []
    for n in range(count):
        hexes = " ".join(f"{rng.randrange(256):02X}" for _ in range(6))
        source.append(f'rule R{n} {{ strings: $a = {{ {hexes} }} $b = "word{n}xyz" '
                      f'condition: any of them }}')
    return yara.compile(source="\n".join(source))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=65536, help="mean file size, bytes")
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    work = Path(tempfile.mkdtemp(prefix="workbench-bench-cluster-"))
    try:
        targets = make_corpus(work, args.files, args.size)
        total = sum(t.size for t in targets)
        rules = make_rules(args.rules)
        print(f"{len(targets):,} files, {total / 2**20:.0f} MiB, {args.rules} rules", flush=True)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(2)
            address = cluster.scheduler_address
            scan_files(rules, targets[:20], threads=2, cluster=address)      # warm both
            for _ in range(args.rounds):
                start = time.perf_counter()
                local = scan_files(rules, targets, threads=2, cluster="")
                local_s = time.perf_counter() - start
                start = time.perf_counter()
                remote = scan_files(rules, targets, threads=2, cluster=address)
                remote_s = time.perf_counter() - start
                assert remote.results == local.results
                scan_per_file = sum(local.seconds.values()) / len(targets)
                print(f"local 2 threads {local_s:6.2f} s | cluster 2 workers {remote_s:6.2f} s | "
                      f"cluster/local {remote_s / local_s:4.2f}x | scan {scan_per_file * 1e3:.2f} "
                      f"ms/file/thread | cluster overhead "
                      f"{(remote_s - local_s) / len(targets) * 1e3:+.2f} ms/file", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
