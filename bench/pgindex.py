"""The quarantine index on PostgreSQL against SQLite (issue 18), in the same run.

Part 1, queries: one set of index rows (bench/tui.py's generator) in an SQLite index and,
copied row for row, in a PostgreSQL index on a throwaway local server; then list (first
page) and count for a few queries, each the median of several runs, on both.

Part 2, ingest: 1, 2 and 4 processes at once, each ingesting its own folder of real
messages into one quarantine (one object store, one index): PostgreSQL, and SQLite beside
it as the peer.

    python bench/pgindex.py                      # 1,000,000 rows, ingest 4,000 messages
    python bench/pgindex.py --rows 10000000      # the issue's target (hours to build here)
    python bench/pgindex.py --only ingest
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tui import synthetic_row
from workbench.humanize import stamp
from workbench.quarantine.index import NewMessage, QuarantineIndex, Sighting
from workbench.quarantine.pgindex import PostgresIndex
from workbench.quarantine.pgserver import LocalPostgres
from workbench.quarantine.service import INDEX_NAME
from workbench.samples.mail import Attachment, Mail
from workbench.workspace import Workspace

QUERIES = ["", "tower:t07", "reason:phish has:attachment", "invoice", "from:globex",
           "-status:new", "subject:\"meeting report\"", "after:2026-06-02 before:2026-06-03"]


def timed(fn: object, runs: int) -> float:
    """The median of ``runs`` calls, in milliseconds (after one warm-up call)."""
    call = fn  # type: ignore[assignment]
    call()  # type: ignore[operator]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def build_rows(path: Path, count: int, seed: int = 11) -> float:
    """``count`` index rows as bench/tui.py makes them (no objects: queries read the index
    alone), through the index's own ``record`` in big batches without syncs (a scratch build)."""
    rng = random.Random(seed)
    start = time.perf_counter()
    index = QuarantineIndex(path)
    index.db.execute("PRAGMA synchronous=OFF")
    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    messages: list[NewMessage] = []
    sightings: list[Sighting] = []
    for n in range(count):
        message, sighting = synthetic_row(rng, n, stamp(base + dt.timedelta(seconds=n * 13)))
        messages.append(message)
        sightings.append(sighting)
        if len(messages) == 50_000:
            index.record(messages, sightings)
            messages, sightings = [], []
            print(f"  {n + 1:,} rows, {time.perf_counter() - start:.0f} s", flush=True)
    if messages:
        index.record(messages, sightings)
    index.close()
    return time.perf_counter() - start


def queries(rows: int, runs: int, pg: LocalPostgres, work: Path) -> None:
    workspace = Workspace(work / "home").ensure()
    print(f"building {rows:,} index rows in SQLite ...", flush=True)
    built = build_rows(workspace.quarantine / INDEX_NAME, rows)
    print(f"  {built:.1f} s ({rows / built:,.0f} rows/s)", flush=True)
    address = pg.create_database("bench")
    lite = QuarantineIndex(workspace.quarantine / INDEX_NAME)
    pgx = PostgresIndex(address)
    start = time.perf_counter()
    pgx.replace_from(workspace.quarantine / INDEX_NAME, {}, "{}", at="", actor="bench")
    pgx.db.execute("VACUUM ANALYZE")
    copied = time.perf_counter() - start
    print(f"  copied into PostgreSQL (COPY, indexes, ANALYZE) in {copied:.1f} s", flush=True)
    assert pgx.count("") == lite.count("") == rows
    print(f"\n{'query':42} {'op':5} {'SQLite ms':>10} {'PostgreSQL ms':>14} {'PG/SQLite':>10}")
    for text in QUERIES:
        assert [r.sha256 for r in pgx.list(text)] == [r.sha256 for r in lite.list(text)], text
        for op in ("list", "count"):
            if op == "list":
                lite_ms = timed(lambda t=text: lite.list(t), runs)
                pg_ms = timed(lambda t=text: pgx.list(t), runs)
            else:
                lite_ms = timed(lambda t=text: lite.count(t), runs)
                pg_ms = timed(lambda t=text: pgx.count(t), runs)
            print(f"{text or '(everything)':42} {op:5} {lite_ms:10.1f} {pg_ms:14.1f} "
                  f"{pg_ms / lite_ms:9.2f}x", flush=True)
    lite.close()
    pgx.close()


INGEST_CHILD = """
import sys, time
from pathlib import Path
from workbench.quarantine.ingest import ingest_paths
from workbench.quarantine.service import Quarantine
q = Quarantine(Path(sys.argv[1]), index=sys.argv[3])
q.index
start = time.perf_counter()
summary = ingest_paths(q, [Path(sys.argv[2])], tower="t01", server="mx01", reason="stuck")
print(summary.accepted, time.perf_counter() - start)
"""


def write_messages(folder: Path, first: int, count: int) -> None:
    folder.mkdir(parents=True)
    for n in range(first, first + count):
        attachments = [Attachment(f"doc{n}.pdf", os.urandom(2000 + n % 5000))] if n % 3 == 0 else []
        raw = Mail(f"user{n % 97}@acme.example", "analyst@corp.example",
                   f"Invoice {n} for the month", text="see attached\n" * (1 + n % 40),
                   attachments=attachments).build()
        (folder / f"{n:07d}.eml").write_bytes(raw)


def ingest(total: int, pg: LocalPostgres, work: Path) -> None:
    print(f"\ningest: {total:,} messages in all, split over N processes "
          f"(one store, one index)", flush=True)
    print(f"{'processes':>9} {'backend':11} {'seconds':>8} {'msg/s':>8}")
    for processes in (1, 2, 4):
        per = total // processes
        for backend in ("postgresql", "sqlite"):
            root = work / f"ingest-{backend}-{processes}"
            if backend == "postgresql":
                name = f"ingest{processes}"
                address = pg.create_database(name)
            else:
                address = "sqlite"
            folders = []
            for p in range(processes):
                folder = work / f"spool-{backend}-{processes}-{p}"
                write_messages(folder, p * per, per)
                folders.append(folder)
            os.sync()
            start = time.perf_counter()
            children = [subprocess.Popen([sys.executable, "-c", INGEST_CHILD, str(root),
                                          str(folder), address], stdout=subprocess.PIPE,
                                         text=True) for folder in folders]
            accepted = 0
            for child in children:
                out, _ = child.communicate()
                assert child.returncode == 0
                accepted += int(out.split()[0])
            elapsed = time.perf_counter() - start
            assert accepted == per * processes, accepted
            print(f"{processes:9} {backend:11} {elapsed:8.2f} {accepted / elapsed:8.0f}",
                  flush=True)
            for folder in folders:
                shutil.rmtree(folder)
            shutil.rmtree(root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=4000, help="ingested in all, per N")
    parser.add_argument("--only", default="queries,ingest")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    work = Path(tempfile.mkdtemp(prefix="workbench-bench-pg-"))
    # durable like a real server (fsync on), so ingest figures are honest
    with LocalPostgres(durable=True) as pg:
        try:
            if "queries" in parts:
                queries(args.rows, args.runs, pg, work)
            if "ingest" in parts:
                ingest(args.messages, pg, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
