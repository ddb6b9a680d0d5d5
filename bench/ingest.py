"""Ingest and listing speed, against named peers in the same run.

1. Spool ingest: 10,000 messages of mixed size (1 KiB .. 256 KiB) from
   quarantine/incoming, durable (objects synced, journal fsynced, index committed,
   spool files removed). Peer: the standard library's ``mailbox.Maildir`` delivering
   the same messages (tmp + rename, the MTA way) followed by one ``os.sync()``, i.e.
   the same durability without an index. Target: >= 1,000 messages/s.
2. ``quarantine list --query`` first page on a 100,000-message index. Peer: the same
   query as plain SQL run directly with sqlite3 (LIKE for the words: the floor without the
   text index; with it, rare words beat that floor). Target: < 50 ms.

3. ``--steady N``: spool ingest at scale, steady state. The quarantine already holds N
   messages (index rows, built once and kept in $XDG_CACHE_HOME/workbench-bench, and every
   split folder of the store), and ``--messages`` new ones arrive in sweeps of ``--sweep``
   (what ``quarantine watch`` takes at a time); each sweep's rate is printed, and the
   steady-state figure is the median of the sweeps after the first. The peer is the same
   Maildir + sync delivery of the same messages, in the same run.

Run: python bench/ingest.py [--messages 10000] [--index 100000]
     python bench/ingest.py --steady 100000 --messages 100000 [--sweep 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import mailbox
import os
import random
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from workbench.humanize import stamp
from workbench.quarantine.index import NewMessage, QuarantineIndex, Sighting
from workbench.quarantine.ingest import ingest_spool
from workbench.quarantine.query import parse_query
from workbench.quarantine.service import Quarantine
from workbench.samples.mail import Attachment, Mail


def make_messages(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [1024, 4096, 16384, 65536, 262144]
    weights = [40, 30, 18, 9, 3]
    out = []
    for n in range(count):
        size = rng.choices(sizes, weights)[0]
        payload = rng.randbytes(size)
        out.append(Mail(f"user{n % 97}@sender{n % 13}.example", f"rcpt{n}@corp.example",
                        f"Bench message {n} invoice {rng.randint(1, 9999)}", text="hello\n",
                        attachments=[Attachment(f"file{n}.bin", payload)],
                        date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n)).build())
    return out


def bench_ingest(messages: list[bytes], work: Path, *, warm: bool = False) -> tuple[float, float]:
    """``warm``: the store's 65,536 split folders exist already, as in a quarantine that has
    taken a few hundred thousand messages; a fresh store makes one or two per object."""
    q = Quarantine(work / "quarantine")
    if warm:
        for a in range(256):
            for b in range(256):
                (q.store.objects / f"{a:02x}" / f"{b:02x}").mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(messages):
        folder = q.incoming / f"t{n % 10:02d}" / f"mx{n % 24:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n:06d}.eml").write_bytes(data)
    os.sync()
    start = time.perf_counter()
    summary = ingest_spool(q)
    ours = time.perf_counter() - start
    assert summary.accepted == len(set(messages)), summary
    q.close()

    maildir = mailbox.Maildir(work / ("Maildir-warm" if warm else "Maildir"), create=True)
    start = time.perf_counter()
    for data in messages:
        maildir.add(data)
    os.sync()
    peer = time.perf_counter() - start
    return ours, peer


def prefilled_index(count: int) -> Path:
    """An index of ``count`` messages as ingest leaves it (one sighting each), built once."""
    base = os.environ.get("XDG_CACHE_HOME") or tempfile.gettempdir()
    path = Path(base) / "workbench-bench" / f"ingest-steady-{count}" / "index.sqlite"
    if path.with_suffix(".built").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"building a {count:,}-message index in {path.parent} (once)...", flush=True)
    index = QuarantineIndex(path)
    rng = random.Random(5)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for first in range(0, count, 5000):
        batch_m, batch_s = [], []
        for n in range(first, min(count, first + 5000)):
            sha = hashlib.sha256(b"steady %d" % n).hexdigest()
            batch_m.append(NewMessage(sha256=sha, size=rng.randint(1000, 300_000),
                                      from_addr=f"user{n % 500}@d{n % 40}.example", to_addrs="rcpt@corp.example",
                                      subject=f"Earlier message {n} invoice {rng.randint(1, 9999)}",
                                      attachment_names=[f"file{n}.bin"]))
            batch_s.append(Sighting(id=sha[:32], sha256=sha, tower=f"t{n % 10:02d}", server=f"mx{n % 24:02d}",
                                    reason="unknown-virus", seen_at=stamp(start + dt.timedelta(seconds=n * 20)),
                                    source=f"incoming/t{n % 10:02d}/mx{n % 24:02d}/{n:06d}.eml"))
        index.record(batch_m, batch_s)
    index.close()
    path.with_suffix(".built").write_text(f"{count}\n")
    return path


def bench_steady(messages: list[bytes], work: Path, *, prefill: int, sweep: int,
                 peer: bool = True) -> dict[str, object]:
    """``messages`` through the spool in sweeps into a quarantine of ``prefill`` messages."""
    q = Quarantine(work / "steady" / "quarantine")
    q.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(prefilled_index(prefill), q.root / "index.sqlite")
    for a in range(256):
        for b in range(256):
            (q.store.objects / f"{a:02x}" / f"{b:02x}").mkdir(parents=True, exist_ok=True)
    rates: list[float] = []
    cpu = main = 0.0
    for first in range(0, len(messages), sweep):
        chunk = messages[first:first + sweep]
        for n, data in enumerate(chunk, start=first):
            folder = q.incoming / f"t{n % 10:02d}" / f"mx{n % 24:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{n:06d}.eml").write_bytes(data)
        os.sync()                                 # the towers' writes are not the ingest's time
        start, c0, m0, k0 = time.perf_counter(), time.process_time(), time.thread_time(), _children_cpu()
        summary = ingest_spool(q)
        seconds = time.perf_counter() - start
        # every thread of this process plus any worker processes; the main thread alone is
        # the serial part (what one more core cannot take off)
        cpu += time.process_time() - c0 + _children_cpu() - k0
        main += time.thread_time() - m0
        assert summary.accepted == len(set(chunk)), summary
        rates.append(len(chunk) / seconds)
        print(f"    sweep {first // sweep + 1}: {len(chunk):,} messages into {prefill + first:,}: "
              f"{rates[-1]:,.0f} msg/s  (load {os.getloadavg()[0]:.1f})", flush=True)
    total = q.index.count()
    q.close()
    shutil.rmtree(work / "steady", ignore_errors=True)
    steady = statistics.median(rates[1:] or rates)
    per = {"cpu ms/message": cpu * 1000 / len(messages), "main-thread ms/message": main * 1000 / len(messages)}
    if not peer:
        return {"messages at the end": total, "steady msg/s": steady, **per, "peer msg/s": 0.0}
    maildir = mailbox.Maildir(work / "Maildir-steady", create=True)
    start = time.perf_counter()
    for data in messages:
        maildir.add(data)
    os.sync()
    peer = len(messages) / (time.perf_counter() - start)
    shutil.rmtree(work / "Maildir-steady", ignore_errors=True)
    return {"messages at the end": total, "steady msg/s": steady, **per, "peer msg/s": peer}


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (ingest workers, if any)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_list(count: int, work: Path, dissected: int = 0) -> dict[str, float]:
    index = QuarantineIndex(work / "big.sqlite")
    rng = random.Random(3)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    batch_m, batch_s = [], []
    for n in range(count):
        sha = hashlib.sha256(b"%d" % n).hexdigest()
        batch_m.append(NewMessage(sha256=sha, size=rng.randint(1000, 10**6),
                                  from_addr=f"user{n % 500}@d{n % 40}.example",
                                  subject=f"subject {n} {'invoice' if n % 50 == 0 else 'hello'}",
                                  attachment_names=["a.zip"] if n % 3 == 0 else []))
        batch_s.append(Sighting(id=sha[:32], sha256=sha, tower=f"t{n % 100:02d}",
                                server=f"mx{n % 36:02d}",
                                reason="unknown-virus" if n % 4 == 0 else "stuck",
                                seen_at=stamp(base + dt.timedelta(seconds=n * 30))))
        if len(batch_m) == 5000:
            index.record(batch_m, batch_s)
            batch_m, batch_s = [], []
    if batch_m:
        index.record(batch_m, batch_s)
    # what dissection leaves for search (bodies, inner names, strings, hashes), for one
    # message in ``dissected``: absent from an index that predates content search
    if dissected and hasattr(index, "record_content"):
        words = ["invoice", "payment", "kernel32.dll", "GetProcAddress", "http://cdn.example/x",
                 "Please find attached", "WbStealer/2.1", "Software\\Microsoft\\Windows"]
        for n in range(0, count, dissected):
            sha = hashlib.sha256(b"%d" % n).hexdigest()
            index.record_content(
                sha, body=" ".join(rng.choice(words) for _ in range(200)) + f" body{n}",
                names=f"a.zip\npayload{n}.exe",
                strings="\n".join(rng.choice(words) + str(rng.randint(0, 10**6)) for _ in range(300)),
                hashes=[("md5", hashlib.md5(b"%d" % n).hexdigest()),
                        ("sha256", hashlib.sha256(b"x%d" % n).hexdigest())])
    results = {}
    for text in ["", "tower:t12 reason:unknown-virus", "has:attachment status:new", "invoice",
                 "from:@d7.example sort:subject", "subject 4242", "nosuchword", "WbStealer",
                 hashlib.md5(b"%d" % (count // 2 // max(dissected, 1) * max(dissected, 1))).hexdigest()]:
        q = parse_query(text)
        ours, peer = [], []
        raw = sqlite3.connect(work / "big.sqlite")
        sql = f"SELECT * FROM messages WHERE {q.where} ORDER BY {q.order_by} LIMIT 50"
        for _ in range(7):
            t = time.perf_counter()
            index.list(text, limit=50)
            index.count(text) if text == "" else None
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            raw.execute(sql, q.params).fetchall()
            peer.append(time.perf_counter() - t)
        raw.close()
        results[text or "(all)"] = (statistics.median(ours), statistics.median(peer))
    index.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--index", type=int, default=100_000)
    parser.add_argument("--dissected", type=int, default=10, metavar="N",
                        help="every Nth message of the list index has dissected content (0: none)")
    parser.add_argument("--only-list", action="store_true", help="skip the ingest part")
    parser.add_argument("--steady", type=int, default=0, metavar="N",
                        help="spool ingest into a quarantine of N messages, in sweeps (only this part)")
    parser.add_argument("--sweep", type=int, default=5000, metavar="N", help="messages per sweep with --steady")
    parser.add_argument("--previous", type=Path, default=None, metavar="DIR",
                        help="with --steady: then the same run with the workbench package in DIR (e.g. "
                             "`git archive OLD workbench | tar -x -C DIR`), for the previous figure")
    parser.add_argument("--no-peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-bench-ingest-"))
    try:
        if args.steady:
            messages = make_messages(args.messages)
            print(f"spool ingest, steady state: {len(messages):,} messages "
                  f"({sum(map(len, messages)) / 2**20:,.0f} MiB) in sweeps of {args.sweep:,} into a "
                  f"quarantine of {args.steady:,} (load {os.getloadavg()[0]:.1f})", flush=True)
            import workbench
            print(f"  workbench from {Path(workbench.__file__).parent}", flush=True)
            got = bench_steady(messages, work, prefill=args.steady, sweep=args.sweep, peer=not args.no_peer)
            print(f"  workbench spool ingest (durable), median sweep after the first: "
                  f"{got['steady msg/s']:,.0f} msg/s, {got['cpu ms/message']:.2f} ms CPU per message "
                  f"({got['main-thread ms/message']:.2f} ms of it on the main thread)")
            if got["peer msg/s"]:
                print(f"  peer mailbox.Maildir + os.sync (no index), same messages:      "
                      f"{got['peer msg/s']:,.0f} msg/s")
                print(f"  ratio workbench/peer: {got['steady msg/s'] / got['peer msg/s']:.2f}x  "  # type: ignore[operator]
                      f"(target >= 1,000 msg/s; {got['messages at the end']:,} messages at the end; "
                      f"load {os.getloadavg()[0]:.1f})")
            if args.previous is not None:
                import subprocess
                import sys
                print("\nthe same with the previous workbench:", flush=True)
                subprocess.run([sys.executable, __file__, "--steady", str(args.steady), "--messages",
                                str(args.messages), "--sweep", str(args.sweep), "--no-peer"], check=True,
                               env={**os.environ, "PYTHONPATH": str(args.previous.resolve())})
            return
        if args.only_list:
            _print_list(args, work)
            return
        messages = make_messages(args.messages)
        total = sum(map(len, messages))
        print(f"spool ingest: {len(messages)} messages, {total / 2**20:.0f} MiB")
        for warm in (False, True):
            ours, peer = bench_ingest(messages, work / ("warm" if warm else "fresh"), warm=warm)
            print("  into a store whose split folders exist (steady state):" if warm else
                  "  into a fresh store (every objects/ab/cd/ folder made on the way):")
            print(f"    workbench ingest (objects + journal + index, durable): {ours:.2f} s "
                  f"= {len(messages) / ours:,.0f} msg/s")
            print(f"    peer mailbox.Maildir + os.sync (no index):            {peer:.2f} s "
                  f"= {len(messages) / peer:,.0f} msg/s")
            print(f"    ratio workbench/peer throughput: {peer / ours:.2f}x  (target >= 1,000 msg/s)")
        _print_list(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_list(args: argparse.Namespace, work: Path) -> None:
    content = (f", every {args.dissected}th message with dissected content"
               if args.dissected else "")
    print(f"\nlist first page on a {args.index:,}-message index{content} (median of 7):")
    for text, (o, p) in bench_list(args.index, work, args.dissected).items():
        print(f"  {text:36s} workbench {o * 1000:6.1f} ms   raw sqlite3 {p * 1000:6.1f} ms   "
              f"ratio {o / p:.2f}x")


if __name__ == "__main__":
    main()
