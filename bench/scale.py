"""A day's work at 100,000 messages (issue 21): the figures an analyst feels, against the
previous release's (docs/benchmarks.md, "Scale").

The 100,000-message quarantine is built once and kept between runs outside the repository
(``$XDG_CACHE_HOME/workbench-bench/scale-100k``, else ``/tmp/workbench-bench/...``): index
rows for every message (as ``bench/tui.py`` makes them) plus real stored messages that the
UI opens and ``dissect --all`` takes apart. Each part runs on its own:

    python bench/scale.py                 # everything (soak: 100 opens)
    python bench/scale.py --soak 500      # the full soak
    python bench/scale.py --only launch,list,dissect,open
    python bench/scale.py --only launch,open --baseline /tmp/main-src   # A/B, alternating

``--baseline DIR`` names the source tree of an earlier version (e.g. ``git archive main |
tar -x -C DIR``): launch rounds and soaks then alternate between it and this tree in the
same run, each soak in a process of its own, and the report gives both.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import pty
import select
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# WORKBENCH_TREE: the source tree whose workbench a child process measures (--baseline)
sys.path.insert(0, os.environ.get("WORKBENCH_TREE") or str(Path(__file__).resolve().parent.parent))

from bench.procstat import in_tree, process_table
from bench.tui import build_index
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.samples.archives import build_zip
from workbench.samples.mail import Attachment, Mail
from workbench.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = 100_000
REAL = 400                    # real stored messages among them (the ones opened and dissected)
# the previous release's figures (issue 21, measured in tmux at 160x50 on 101,734 messages)
BEFORE = {
    "launch_ms": "600-700", "open_ms": "120-430", "back_ms": "120-360",
    "list_ms": "91-201 (always counted)", "dissect_msg_s": "65-77 (one at a time)",
    "soak_rss_mb": "69 -> 198 over 200 opens", "soak_gc_ms": "305 -> 636",
    "soak_stalls": "17-25 over 200 ms per 50 opens",
}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or tempfile.gettempdir()
    return Path(base) / "workbench-bench" / "scale-100k"


def real_mail(n: int) -> bytes:
    when = dt.datetime(2027, 2, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
    attachments = []
    if n % 3 == 0:
        attachments.append(Attachment(f"invoice-{n}.zip", build_zip([(f"inv{n}.txt", b"x" * (n % 500))]),
                                      content_type="application/zip"))
    return Mail(f"billing{n % 17}@acme.example", "analyst@corp.example", f"Scale message {n}",
                text=f"Hello,\nsee http://evil-{n}.example/x\n" * 4, attachments=attachments,
                date=when).build()


def build(root: Path) -> Workspace:
    workspace = Workspace(root)
    marker = root / ".built"
    if marker.exists():
        return workspace
    if root.exists():
        shutil.rmtree(root)
    print(f"building the {MESSAGES:,}-message quarantine in {root} (once)...", flush=True)
    seconds = build_index(workspace, MESSAGES - REAL)
    with Quarantine.open(workspace) as q:
        for n in range(REAL):
            ingest_bytes(q, real_mail(n), tower=f"t{n % 40:02d}", server="mx01",
                         reason="unknown-virus" if n % 4 else "stuck", source="bench",
                         received_at=dt.datetime(2027, 2, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n))
    # the UI opens messages an analyst has seen before: their dissections are cached
    from workbench.dissect.catalog import catalog_all
    catalog_all(workspace, jobs=os.cpu_count() or 1)
    db = sqlite3.connect(workspace.quarantine / "index.sqlite")
    db.execute("UPDATE messages SET status='triaged' WHERE rowid % 20 = 1")
    db.execute("UPDATE messages SET status='dismissed' WHERE rowid % 30 = 2")
    db.execute("UPDATE messages SET defects='[\"x\"]', defect_count=1 WHERE rowid % 97 = 3")
    db.commit()
    db.close()
    marker.write_text(f"built in {seconds:.0f}s\n")
    return workspace


def workbench_cmd() -> list[str]:
    """The installed ``workbench`` script, as an analyst starts it."""
    return [str(Path(sys.executable).with_name("workbench"))]


# -- launch to first rows, in a pseudo-terminal ---------------------------------------------

LAUNCH = "import sys; sys.path.insert(0, sys.argv.pop(1)); from workbench.cli import main; sys.exit(main())"
# the floor: a minimal Textual app (a header, a line of text, a footer) drawing the same subject
MINIMAL_TEXTUAL = """
import sys
from textual.app import App
from textual.widgets import Footer, Header, Static
class Minimal(App):
    def compose(self):
        yield Header()
        yield Static(sys.argv[1])
        yield Footer()
Minimal().run()
"""


def launch(workspace: Workspace, rounds: int, tree: Path | None = None,
           minimal: bool = False) -> dict[str, object]:
    """Process start to the newest message's subject on the terminal, read from a pty.

    ``tree``: start the workbench of that source tree (``python -c`` with it first on the
    path, as the ``workbench`` script starts this one) instead of the installed script.
    ``minimal``: start a minimal Textual app that draws the same subject instead (the
    floor that Python and Textual set, whatever the workbench does).
    """
    newest = f"Scale message {REAL - 1}"
    times = []
    cpu: list[float] = []
    for _ in range(rounds):
        pid, fd = pty.fork()
        if pid == 0:
            os.environ.update(COLUMNS="160", LINES="50", TERM="xterm-256color")
            if minimal:
                os.execv(sys.executable, [sys.executable, "-c", MINIMAL_TEXTUAL, newest])
            if tree is not None:
                os.execv(sys.executable, [sys.executable, "-c", LAUNCH, str(tree),
                                          "--home", str(workspace.home), "ui"])
            os.execv(workbench_cmd()[0], [*workbench_cmd(), "--home", str(workspace.home), "ui"])
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        start = time.perf_counter()
        seen = b""
        found = None
        while time.perf_counter() - start < 20:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if newest.encode() in seen:
                    found = time.perf_counter() - start
                    break
        times.append(found)
        os.kill(pid, 9)
        _, _, usage = os.wait4(pid, 0)
        cpu.append(usage.ru_utime + usage.ru_stime)      # to the rows (and a few ms after)
        os.close(fd)
    ok = [t for t in times if t is not None]
    return {"launch_ms": [round(t * 1000) for t in ok], "launch_median_ms":
            round(statistics.median(ok) * 1000) if ok else None, "target_ms": 300,
            "cpu_ms": [round(c * 1000) for c in cpu]}


# -- the list on the command line ------------------------------------------------------------

def cli_list(workspace: Workspace) -> dict[str, object]:
    out: dict[str, object] = {}
    for label, extra in [("list", []), ("list --count", ["--count"]),
                         ("-status:new", ["-q", "-status:new"]),
                         ("-status:new --count", ["-q", "-status:new", "--count"]),
                         ("has:defects --count", ["-q", "has:defects", "--count"])]:
        best = None
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run([*workbench_cmd(), "--home", str(workspace.home), "quarantine",
                                   "list", *extra], capture_output=True, check=False)
            took = time.perf_counter() - start
            assert done.returncode == 0, done.stderr
            best = took if best is None else min(best, took)
        out[label] = round((best or 0) * 1000)
    with Quarantine.open(workspace) as q:
        for text in ("-status:new", "has:defects", "-status:dismissed"):
            start = time.perf_counter()
            q.index.list(text, limit=50)
            page = time.perf_counter() - start
            start = time.perf_counter()
            q.index.count(text)
            out[f"in-process {text} page / count ms"] = (round(page * 1000, 1),
                                                         round((time.perf_counter() - start) * 1000, 1))
    return out


# -- dissect --all, one job and every core -------------------------------------------------

def tree_cpu(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) of ``process`` and every descendant, polled from /proc
    until it exits: the last reading of each PID (a worker's last 50 ms can be missed)."""
    seen: dict[int, float] = {}
    while process.poll() is None:
        parents, times = process_table()
        for pid, value in times.items():
            if in_tree(pid, process.pid, parents):
                seen[pid] = value
        time.sleep(0.05)
    return sum(seen.values())


def dissect_all(count: int, rounds: int = 1) -> dict[str, object]:
    """``dissect --all`` on ``count`` fresh messages with 1 job and with 2, alternating in the
    same run (``rounds`` times each), each in a fresh workspace; the CPU time of the command
    and its workers (children) and the machine's load are recorded beside each rate."""
    out: dict[str, object] = {"load before": round(os.getloadavg()[0], 2)}
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="wb-scale-dissect-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for n in range(count):
            (folder / f"{n}.eml").write_bytes(real_mail(n))
        for run in range(rounds):
            for jobs in (1, 2):
                home = Path(tmp) / f"h{jobs}-{run}"
                subprocess.run([*workbench_cmd(), "init", str(home)], check=True, capture_output=True)
                subprocess.run([*workbench_cmd(), "--home", str(home), "quarantine", "ingest",
                                str(folder)], check=True, capture_output=True)
                # a private fork server: it and its workers are the command's descendants, whose
                # CPU time tree_cpu adds up (a shared server outlives the command, and may be
                # another checkout's)
                command = subprocess.Popen([*workbench_cmd(), "--home", str(home), "dissect", "--all",
                                            "--jobs", str(jobs), "--json"], stdout=subprocess.PIPE,
                                           env={**os.environ, "WORKBENCH_DISSECT_SERVER": "private"})
                cpu = tree_cpu(command)
                doc = json.loads(command.stdout.read() if command.stdout else b"")
                if command.wait() != 0:
                    raise SystemExit("dissect --all failed")
                # msg/s over the dissection; the private server's start (bubblewrap, Python's
                # imports: paid once per shared server, not per message) is reported beside it
                rate = round(doc["dissected"] / doc["seconds"], 1)
                rates[jobs].append(rate)
                out[f"round {run + 1} jobs={jobs}"] = {
                    "msg/s": rate, "seconds": doc["seconds"], "server start s": doc["start seconds"],
                    "msg/s start included": round(doc["dissected"] / (doc["seconds"] + doc["start seconds"]), 1),
                    "load": round(os.getloadavg()[0], 2),
                    # the command, its fork server and workers, start-up included
                    "cpu s": round(cpu, 2), "cpu ms/message": round(cpu * 1000 / max(doc["dissected"], 1), 1),
                    "cores used": round(cpu / (doc["seconds"] + doc["start seconds"]), 2)}
                db = home / "state" / "dissect.sqlite"
                size = db.stat().st_size + sum(f.stat().st_size for f in db.parent.glob("dissect.sqlite-wal"))
                out[f"jobs={jobs} dissect.sqlite bytes/message"] = size // max(doc["dissected"], 1)
                shutil.rmtree(home, ignore_errors=True)
    one, two = max(rates[1]), max(rates[2])
    out["jobs=1 msg/s (best)"], out["jobs=2 msg/s (best)"] = one, two
    out["speed-up"] = round(two / one, 2)
    return out


# -- opening messages, and the soak ----------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def soak(workspace: Workspace, opens: int) -> dict[str, object]:
    from textual.widgets import Static

    from workbench.tui.app import freeze_startup_objects, make_app
    from workbench.tui.screens.message import MessageScreen
    from workbench.tui.screens.quarantine import QuarantineScreen

    pauses: list[float] = []
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            pauses.append(time.perf_counter() - started.pop("t"))

    stalls: list[float] = []

    async def watch_loop() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            stalls.append(time.perf_counter() - before - 0.01)

    # freeze_startup as the command line starts the app
    app = make_app(workspace, query="subject:\"Scale message\"", list_refresh=0, freeze_startup=True)
    open_ms: list[float] = []
    back_ms: list[float] = []
    open_cpu: list[float] = []      # the event loop thread's CPU time: what the load does not inflate
    back_cpu: list[float] = []
    rss: list[float] = []
    async with app.run_test(size=(160, 50)) as pilot:
        while not isinstance(app.screen, QuarantineScreen) or app.screen.listing is None \
                or app.screen.listing.row(0) is None:
            await pilot.pause(0.01)
        freeze_startup_objects()                 # as `workbench ui` does once started
        gc.callbacks.append(on_gc)
        watcher = asyncio.create_task(watch_loop())
        cpu_start = time.process_time()
        for n in range(opens):
            start, cpu = time.perf_counter(), time.thread_time()
            await pilot.press("enter")
            while not isinstance(app.screen, MessageScreen) or app.screen.dissection is None:
                await pilot.pause(0.001)
            open_ms.append((time.perf_counter() - start) * 1000)
            open_cpu.append((time.thread_time() - cpu) * 1000)
            start, cpu = time.perf_counter(), time.thread_time()
            await pilot.press("escape")
            while not isinstance(app.screen, QuarantineScreen):
                await pilot.pause(0.001)
            await pilot.pause()
            back_ms.append((time.perf_counter() - start) * 1000)
            back_cpu.append((time.thread_time() - cpu) * 1000)
            await pilot.press("down" if (n // REAL) % 2 == 0 else "up")
            if n % 50 == 49:
                rss.append(round(rss_mb(), 1))
        watcher.cancel()
        gc.callbacks.remove(on_gc)
        cpu_total = time.process_time() - cpu_start
        del Static
    warm = open_ms[10:] or open_ms
    back = back_ms[10:] or back_ms
    after_50 = stalls[len(stalls) // 10:]

    def median_p95(values: list[float]) -> tuple[int, int]:
        values = values[10:] or values
        return round(statistics.median(values)), round(sorted(values)[int(len(values) * .95)])

    return {
        "opens": opens,
        "open_ms median/p95": (round(statistics.median(warm)), round(sorted(warm)[int(len(warm) * .95)])),
        "back_ms median/p95": (round(statistics.median(back)), round(sorted(back)[int(len(back) * .95)])),
        "open main-thread cpu_ms median/p95": median_p95(open_cpu),
        "back main-thread cpu_ms median/p95": median_p95(back_cpu),
        "process cpu s": round(cpu_total, 1),
        "gc pauses > 50 ms": sum(1 for p in pauses if p > 0.05),
        "rss_mb every 50 opens": rss,
        "rss growth after the first 50 (MB)": round(rss[-1] - rss[0], 1) if len(rss) > 1 else None,
        "worst gc pause ms": round(max(pauses) * 1000, 1) if pauses else 0,
        "event-loop stalls > 100 ms": sum(1 for s in after_50 if s > 0.1),
        "worst stall ms": round(max(after_50) * 1000) if after_50 else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak", type=int, default=100, help="messages opened and closed")
    parser.add_argument("--launch-rounds", type=int, default=5)
    parser.add_argument("--dissect", type=int, default=300, help="messages for dissect --all")
    parser.add_argument("--dissect-rounds", type=int, default=2,
                        help="1-job and 2-job runs of dissect --all, alternating")
    parser.add_argument("--only", default="launch,list,dissect,open")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="source tree of an earlier version: launch and soak alternate with it")
    parser.add_argument("--rounds", type=int, default=2, help="soaks per tree with --baseline")
    parser.add_argument("--soak-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.soak_only:          # a child of --baseline: one soak, its JSON on the last line
        print(json.dumps(asyncio.run(soak(build(cache_root()), args.soak))))
        return 0
    if args.baseline is not None:
        return compare(args)
    parts = set(args.only.split(","))
    workspace = build(cache_root())
    load = os.getloadavg()
    report: dict[str, object] = {"load before": [round(x, 2) for x in load],
                                 "previous release": BEFORE}
    if "launch" in parts:
        ours: list[int] = []
        floor: list[int] = []
        cpus: dict[str, list[int]] = {"workbench": [], "minimal Textual app": []}
        for _ in range(args.launch_rounds):          # alternating: the machine is shared
            one, bare = launch(workspace, 1), launch(workspace, 1, minimal=True)
            ours += one["launch_ms"]  # type: ignore[arg-type]
            floor += bare["launch_ms"]  # type: ignore[arg-type]
            cpus["workbench"] += one["cpu_ms"]  # type: ignore[arg-type]
            cpus["minimal Textual app"] += bare["cpu_ms"]  # type: ignore[arg-type]
        report["launch"] = {
            "launch_ms": ours, "launch_median_ms": statistics.median(ours) if ours else None,
            "target_ms": 300, "cpu_ms median": statistics.median(cpus["workbench"]),
            "minimal Textual app launch_ms": floor,
            "minimal Textual app median_ms": statistics.median(floor) if floor else None,
            "minimal Textual app cpu_ms median": statistics.median(cpus["minimal Textual app"])}
        print(json.dumps({"launch": report["launch"]}), flush=True)
    if "list" in parts:
        report["list"] = cli_list(workspace)
        print(json.dumps({"list": report["list"]}), flush=True)
    if "dissect" in parts:
        report["dissect"] = dissect_all(args.dissect, args.dissect_rounds)
        print(json.dumps({"dissect": report["dissect"]}), flush=True)
    if "open" in parts:
        report["open"] = asyncio.run(soak(workspace, args.soak))
    report["load after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


def compare(args: argparse.Namespace) -> int:
    """This tree against ``args.baseline``, alternating in one run (the machine is shared)."""
    workspace = build(cache_root())
    parts = set(args.only.split(","))
    trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    report: dict[str, object] = {"load before": [round(x, 2) for x in os.getloadavg()],
                                 "baseline": str(trees["baseline"])}
    if "launch" in parts:
        names = [*trees, "minimal Textual app"]
        launches: dict[str, list[int]] = {name: [] for name in names}
        cpus: dict[str, list[int]] = {name: [] for name in names}
        for _ in range(args.launch_rounds):
            for name in names:
                tree = trees.get(name)
                one = launch(workspace, 1, tree, minimal=tree is None)
                launches[name] += one["launch_ms"]  # type: ignore[operator]
                cpus[name] += one["cpu_ms"]  # type: ignore[operator]
        report["launch_ms"] = {name: {"runs": runs, "median": statistics.median(runs) if runs else None,
                                      "cpu_ms median": statistics.median(cpus[name])}
                               for name, runs in launches.items()}
        print(json.dumps({"launch_ms": report["launch_ms"]}), flush=True)
    if "open" in parts:
        soaks: dict[str, list[object]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                before = os.getloadavg()[0]
                done = subprocess.run([sys.executable, __file__, "--soak-only", "--soak", str(args.soak)],
                                      env={**os.environ, "WORKBENCH_TREE": str(tree)},
                                      capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["load 1-min before/after"] = (round(before, 2), round(os.getloadavg()[0], 2))
                soaks[name].append(result)
                print(json.dumps({name: result}), flush=True)
        report["soak"] = soaks
    report["load after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
