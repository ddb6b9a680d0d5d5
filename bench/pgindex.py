"""The quarantine index on PostgreSQL against SQLite (issue 18), in the same run.

Part 1, queries: one set of index rows (bench/tui.py's generator; every 89th message with a
defect, every 100th given a triage status through ``apply_status``) bulk-loaded into an
SQLite index and a PostgreSQL index (``bulk_load``: the rows ``record`` writes, indexes built
after the load); then list (the UI's first page, 100 rows) and count for the benchmark's
queries and the UI's (default list, a status, ``-status:dismissed``, ``has:defects``, text,
sorts), each the median of several runs, on both. The built indexes are cached under
``$WORKBENCH_BENCH_CACHE`` (/tmp/workbench-bench-pgindex), the PostgreSQL one in its own
server folder, so a second run only queries. ``--explain`` prints both plans of each query.

Part 2, ingest: 1, 2 and 4 processes at once, each ingesting its own folder of real
messages into one quarantine (one object store, one index): PostgreSQL, and SQLite beside
it as the peer.

    python bench/pgindex.py                      # 1,000,000 rows, ingest 4,000 messages
    nice -n 15 python bench/pgindex.py --rows 10000000 --only queries --runs 3
    python bench/pgindex.py --only ingest
    python bench/pgindex.py --rows 10000000 --drop-cache     # remove that size's cache
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tui import synthetic_row
from workbench.humanize import stamp
from workbench.quarantine.index import STATUSES, NewMessage, QuarantineIndex, Sighting
from workbench.quarantine.pgindex import PostgresIndex, order_by, to_postgres
from workbench.quarantine.pgserver import LocalPostgres
from workbench.quarantine.query import parse_query
from workbench.samples.mail import Attachment, Mail

QUERIES = ["", "tower:t07", "reason:phish has:attachment", "invoice", "from:globex",
           "-status:new", "subject:\"meeting report\"", "after:2026-06-02 before:2026-06-03",
           # what the UI asks besides: a status, the negation, defects, sorts
           "status:dismissed", "-status:dismissed", "has:defects", "sort:from", "sort:+size"]
PAGE = 100               # the UI's page (workbench/tui/pages.py PAGE_SIZE)
DEFECT_EVERY = 89        # every 89th message has a defect
STATUS_EVERY = 100       # every 100th gets a status other than new
CACHE = Path(os.environ.get("WORKBENCH_BENCH_CACHE", "/tmp/workbench-bench-pgindex"))
ROWS_VERSION = 1         # bump when the generated rows change: the cache is rebuilt


def timed(fn: Callable[[], object], runs: int, *, slow: float = 5.0) -> tuple[float, int, object]:
    """(median ms, runs done, result) of ``runs`` calls after one warm-up call; a call that
    takes more than ``slow`` seconds is run once more only (a 10M-row LIKE count)."""
    start = time.perf_counter()
    result = fn()
    if time.perf_counter() - start > slow:
        runs = 1
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), runs, result


def entries(count: int, marked: list[tuple[str, str]],
            seed: int = 11) -> Iterator[tuple[NewMessage, list[Sighting]]]:
    """``count`` messages with one sighting each, as bench/tui.py makes them, 13 s apart;
    every STATUS_EVERY-th is put in ``marked`` with the status it is to get."""
    rng = random.Random(seed)
    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    for n in range(count):
        message, sighting = synthetic_row(rng, n, stamp(base + dt.timedelta(seconds=n * 13)))
        if n % DEFECT_EVERY == 0:
            message.defects = ["header: malformed Date"]
        if n % STATUS_EVERY == 0:
            marked.append((message.sha256,
                           STATUSES[1 + (n // STATUS_EVERY) % (len(STATUSES) - 1)]))
        yield message, [sighting]


def build(index: QuarantineIndex | PostgresIndex, rows: int, name: str) -> dict[str, float]:
    """Bulk-load ``rows`` messages, then give every STATUS_EVERY-th a status the real way
    (``apply_status``: the row and an audit entry, one transaction each)."""
    start = time.perf_counter()
    last = start
    marked: list[tuple[str, str]] = []

    def progress() -> Iterator[tuple[NewMessage, list[Sighting]]]:
        nonlocal last
        for n, entry in enumerate(entries(rows, marked), 1):
            if n % 1_000_000 == 0:
                now = time.perf_counter()
                print(f"    {name}: {n:,} rows sent, {now - start:.0f} s "
                      f"(+{now - last:.0f} s, cpu {time.process_time():.0f} s)", flush=True)
                last = now
            yield entry

    assert index.bulk_load(progress(), actor="bench") == rows
    load_s = time.perf_counter() - start
    print(f"    {name}: loaded and indexed in {load_s:.0f} s; statuses ...", flush=True)
    start = time.perf_counter()
    for sha, status in marked:
        index.apply_status(sha, status, actor="bench", at="2027-01-01T00:00:00.000000Z")
    return {"load_s": round(load_s, 1), "status_s": round(time.perf_counter() - start, 1),
            "statuses": len(marked), "client_cpu_s": round(time.process_time(), 1)}


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def cached(rows: int, folder: Path, pg: LocalPostgres) -> dict[str, object]:
    """Both indexes of ``rows`` messages (SQLite in ``folder``, PostgreSQL on ``pg``), built
    unless the cache has them; the build's figures."""
    marker = folder / "built.json"
    if marker.exists():
        figures: dict[str, object] = json.loads(marker.read_text())
        print(f"cached indexes in {folder}: {figures}", flush=True)
        return figures
    for stale in folder.glob("index.sqlite*"):
        stale.unlink()
    figures = {"rows": rows, "load_before": os.getloadavg()}
    # the two builds at once, SQLite's in a child process: each is one Python process
    # generating rows (plus PostgreSQL's server), so two share the cores better than one
    print(f"building {rows:,} index rows in SQLite and PostgreSQL (bulk_load) ...", flush=True)
    child = multiprocessing.get_context("fork").Process(
        target=build_sqlite, args=(folder / "index.sqlite", rows, folder / "sqlite.json"))
    start = time.perf_counter()
    child.start()
    try:
        with psycopg_admin(pg) as db:
            db.execute("DROP DATABASE IF EXISTS bench")
        pgx = PostgresIndex(pg.create_database("bench"))
        figures["postgresql"] = build(pgx, rows, "PostgreSQL")
        pgx.close()
        print(f"  PostgreSQL built: {figures['postgresql']}", flush=True)
        child.join()
    finally:
        if child.is_alive():
            child.terminate()
            child.join()
    if child.exitcode != 0:
        raise SystemExit(f"the SQLite build failed (exit {child.exitcode})")
    figures["sqlite"] = json.loads((folder / "sqlite.json").read_text())
    figures["both_s"] = round(time.perf_counter() - start, 1)
    figures["load_after"] = os.getloadavg()
    figures["built_at"] = stamp()
    marker.write_text(json.dumps(figures, indent=1))
    return figures


def build_sqlite(path: Path, rows: int, out: Path) -> None:
    """The SQLite build (a child process's target); its figures to ``out``."""
    lite = QuarantineIndex(path)
    figures = build(lite, rows, "SQLite")
    lite.close()
    print(f"  SQLite built: {figures}", flush=True)
    out.write_text(json.dumps(figures))


def psycopg_admin(pg: LocalPostgres):  # type: ignore[no-untyped-def]
    import psycopg
    return psycopg.connect(pg.address(), autocommit=True)


def sizes(folder: Path, pgx: PostgresIndex, rows: int) -> None:
    lite = sum(p.stat().st_size for p in folder.glob("index.sqlite*"))
    db = pgx.db.execute("SELECT pg_database_size(current_database()) AS n").fetchone()
    pg_bytes = int(db["n"]) if db else 0
    print(f"size on disk: SQLite {lite / 2**30:.2f} GiB ({lite / rows:.0f} B/row), "
          f"PostgreSQL database {pg_bytes / 2**30:.2f} GiB ({pg_bytes / rows:.0f} B/row), "
          f"its server folder {folder_size(folder / 'pg') / 2**30:.2f} GiB", flush=True)
    for r in pgx.db.execute(
            "SELECT relname, pg_total_relation_size(oid) AS n FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace ORDER BY n DESC LIMIT 4"):
        print(f"  PostgreSQL {r['relname']}: {int(r['n']) / 2**30:.2f} GiB", flush=True)


def explain(lite: QuarantineIndex, pgx: PostgresIndex, text: str) -> None:
    q = parse_query(text)
    where, params = lite._plan(q)
    plan = lite.db.execute(f"EXPLAIN QUERY PLAN SELECT * FROM messages WHERE {where} "
                           f"ORDER BY {q.order_by} LIMIT {PAGE}", params).fetchall()
    print("    SQLite list: " + "; ".join(r["detail"] for r in plan))
    plan = lite.db.execute(f"EXPLAIN QUERY PLAN SELECT count(*) FROM messages WHERE {where}",
                           params).fetchall()
    print("    SQLite count: " + "; ".join(r["detail"] for r in plan))
    for op, sql in (("list", f"SELECT * FROM messages WHERE {to_postgres(q.where)} "
                             f"ORDER BY {order_by(q)} LIMIT {PAGE}"),
                    ("count", f"SELECT count(*) FROM messages WHERE {to_postgres(q.where)}")):
        rows = pgx.db.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", q.params).fetchall()
        print(f"    PostgreSQL {op}:")
        for r in rows:
            print(f"      {r['QUERY PLAN']}")


def queries(rows: int, runs: int, explain_plans: bool) -> None:
    folder = CACHE / f"{rows}-v{ROWS_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    # the cached server: fsync off (a scratch build; queries read, they do not commit)
    with LocalPostgres(folder / "pg", keep=True) as pg:
        figures = cached(rows, folder, pg)
        lite = QuarantineIndex(folder / "index.sqlite", readonly=True)
        pgx = PostgresIndex(pg.address("bench"), readonly=True)
        try:
            sizes(folder, pgx, rows)
            print(f"load average {os.getloadavg()}", flush=True)
            print(f"\n{'query':42} {'op':5} {'SQLite ms':>10} {'PostgreSQL ms':>14} "
                  f"{'PG/SQLite':>10} runs", flush=True)
            for text in QUERIES:
                for op in ("list", "count"):
                    if op == "list":
                        lite_ms, lite_runs, lite_out = timed(lambda t=text: [
                            r.sha256 for r in lite.list(t, limit=PAGE)], runs)
                        pg_ms, pg_runs, pg_out = timed(lambda t=text: [
                            r.sha256 for r in pgx.list(t, limit=PAGE)], runs)
                    else:
                        lite_ms, lite_runs, lite_out = timed(lambda t=text: lite.count(t), runs)
                        pg_ms, pg_runs, pg_out = timed(lambda t=text: pgx.count(t), runs)
                    assert lite_out == pg_out, (text, op)       # the same answer on both
                    print(f"{text or '(everything)':42} {op:5} {lite_ms:10.1f} {pg_ms:14.1f} "
                          f"{pg_ms / lite_ms:9.2f}x {min(lite_runs, pg_runs)}"
                          + (f"  ({lite_out:,} messages)" if op == "count" else ""), flush=True)
                if explain_plans:
                    explain(lite, pgx, text)
        finally:
            lite.close()
            pgx.close()
    print(f"build figures: {json.dumps(figures)}", flush=True)


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
    parser.add_argument("--explain", action="store_true", help="print each query's plans")
    parser.add_argument("--drop-cache", action="store_true",
                        help="remove the cached indexes of --rows and stop")
    args = parser.parse_args()
    if args.drop_cache:
        shutil.rmtree(CACHE / f"{args.rows}-v{ROWS_VERSION}", ignore_errors=True)
        return 0
    parts = set(args.only.split(","))
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    if "queries" in parts:
        queries(args.rows, args.runs, args.explain)
    if "ingest" in parts:
        work = Path(tempfile.mkdtemp(prefix="workbench-bench-pg-"))
        # durable like a real server (fsync on), so ingest figures are honest
        with LocalPostgres(durable=True) as pg:
            try:
                ingest(args.messages, pg, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
