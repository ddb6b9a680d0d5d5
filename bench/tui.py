"""Terminal UI speed on a 100,000-message quarantine, against the naive DataTable, same run.

1. Start to first rows painted: ``make_app`` on the workspace until the quarantine list
   has drawn its first page (headless, 120x40). Target: < 1 s.
2. Keystroke in the filter bar to the updated list: one character typed (as the Input
   inserts it) until the new query's first page is drawn; median and worst over several
   filters. Target: < 150 ms.
3. Opening a message with a 5 MB attachment: summary from the index, then the headers
   (the root artifact), then the whole tree.

Peer for 1 and 2: the naive screen, a Textual ``DataTable`` loaded with every row of the
query (what a first version would do), timed the same way. The ratio is peer / ours.

Run: python bench/tui.py [--messages 100000] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input

from workbench.quarantine.index import NewMessage, QuarantineIndex, Sighting
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.query import parse_query
from workbench.quarantine.service import INDEX_NAME, Quarantine, stamp
from workbench.samples.mail import Attachment, Mail
from workbench.tui.app import make_app
from workbench.tui.screens.message import MessageScreen
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.tui.widgets.message_list import MessageList, row_cells
from workbench.workspace import Workspace

SIZE = (120, 40)
TOWERS = [f"t{n:02d}" for n in range(40)]
REASONS = ["unknown-virus", "stuck", "spam", "phish", "policy"]
WORDS = ["invoice", "payment", "statement", "delivery", "password", "meeting", "report",
         "order", "urgent", "update", "account", "shipping", "contract", "voicemail"]
# (text before, character typed): each types one character into the filter bar
FILTERS = [("", "x"), ("invoic", "e"), ("tower:t1", "2"), ("status:ne", "w"),
           ("has:attachment urgen", "t"), ("from:acme", "."), ("zzz", "z"), ("reason:phis", "h")]


def build_index(workspace: Workspace, count: int, seed: int = 11) -> float:
    """``count`` index rows (no objects: the list only reads the index), in batches."""
    rng = random.Random(seed)
    start = time.perf_counter()
    index = QuarantineIndex(workspace.quarantine / INDEX_NAME)
    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    batch_messages: list[NewMessage] = []
    batch_sightings: list[Sighting] = []
    for n in range(count):
        sha = f"{rng.getrandbits(256):064x}"
        words = rng.sample(WORDS, 3)
        names = [f"{rng.choice(WORDS)}_{n}.{rng.choice(['zip', 'pdf', 'docm', 'exe'])}"] \
            if n % 3 == 0 else []
        domain = rng.choice(["acme", "globex", "initech", "umbrella", "hooli"])
        when = stamp(base + dt.timedelta(seconds=n * 137))
        batch_messages.append(NewMessage(sha256=sha, size=rng.randint(900, 400_000),
                                         message_id=f"<{n}@{domain}.example>",
                                         from_addr=f"{rng.choice(WORDS)}@{domain}.example",
                                         to_addrs="analyst@corp.example",
                                         subject=" ".join(words).capitalize() + f" {n}",
                                         date=when, attachment_names=names))
        batch_sightings.append(Sighting(id=f"s{n}", sha256=sha, tower=rng.choice(TOWERS),
                                        server=f"mx{rng.randint(1, 24):02d}",
                                        reason=rng.choice(REASONS), seen_at=when, source="bench"))
        if len(batch_messages) == 5000:
            index.record(batch_messages, batch_sightings)
            batch_messages, batch_sightings = [], []
    if batch_messages:
        index.record(batch_messages, batch_sightings)
    index.close()
    return time.perf_counter() - start


def add_big_message(workspace: Workspace, size: int) -> str:
    payload = random.Random(5).randbytes(size)
    mail = Mail("big@acme.example", "analyst@corp.example", "Big attachment", text="see attached",
                attachments=[Attachment("big.bin", payload)],
                date=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    with Quarantine.open(workspace) as q:
        summary = ingest_bytes(q, mail.build(), tower="t01", server="mx01", reason="stuck",
                               source="bench", received_at=mail.date)
    return summary.messages[0].sha256


async def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.001)


class PaintClock:
    """When the app last sent a screen update to its (headless) driver."""

    def __init__(self, app: App[object]) -> None:
        self.last = 0.0
        original = app._display

        def display(screen: object, update: object) -> None:
            original(screen, update)          # type: ignore[arg-type]
            self.last = time.perf_counter()

        app._display = display               # type: ignore[method-assign]

    async def painted(self) -> float:
        """The time of the first paint from now on (the change just made, on screen)."""
        since = time.perf_counter()
        await wait_for(lambda: self.last > since, timeout=10)
        return self.last


# -- ours -----------------------------------------------------------------------------------


async def ours_start(workspace: Workspace) -> float:
    start = time.perf_counter()
    app = make_app(workspace)
    clock = PaintClock(app)
    async with app.run_test(size=SIZE) as pilot:
        def ready() -> bool:
            screen = app.screen
            if not isinstance(screen, QuarantineScreen):
                return False
            listing = screen.query_one(MessageList).listing
            return listing is not None and listing.row(0) is not None
        await wait_for(ready)
        elapsed = await clock.painted() - start
        await pilot.pause()
    return elapsed


async def ours_filter(workspace: Workspace) -> list[float]:
    app = make_app(workspace)
    clock = PaintClock(app)
    times: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, QuarantineScreen)
                       and app.screen.listing is not None and app.screen.listing.row(0) is not None)
        screen = app.screen
        assert isinstance(screen, QuarantineScreen)
        box = screen.query_one("#filter", Input)
        for before, typed in FILTERS:
            box.value = before
            await wait_for(lambda b=before: screen.listing is not None
                           and screen.listing.query.text == b
                           and (bool(screen.listing.pages) or screen.listing.total == 0))
            await app.workers.wait_for_complete()
            await pilot.pause()
            box.cursor_position = len(before)
            start = time.perf_counter()
            box.insert_text_at_cursor(typed)
            text = before + typed
            await wait_for(lambda t=text: screen.listing is not None and screen.listing.query.text == t
                           and (0 in screen.listing.pages))
            times.append(await clock.painted() - start)
    return times


async def ours_open_big(workspace: Workspace, sha: str) -> dict[str, float]:
    app = make_app(workspace)
    clock = PaintClock(app)
    marks: dict[str, float] = {}
    async with app.run_test(size=SIZE):
        await wait_for(lambda: isinstance(app.screen, QuarantineScreen))
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        app.open_message(sha)
        await wait_for(lambda: isinstance(app.screen, MessageScreen) and bool(app.screen.quick_headers))
        marks["headers"] = await clock.painted() - start        # summary and headers together
        screen = app.screen
        assert isinstance(screen, MessageScreen)
        await wait_for(lambda: "message" in screen.nodes and screen.report is not None)
        marks["root"] = await clock.painted() - start
        await wait_for(lambda: screen.dissection is not None, timeout=120)
        marks["tree"] = await clock.painted() - start
        marks["artifacts"] = float(screen.dissection.nodes)
    return marks


# -- the peer: a DataTable holding every row --------------------------------------------------


class NaiveApp(App[None]):
    """What a first version would do: query everything, put it in a DataTable."""

    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.index = QuarantineIndex(workspace.quarantine / INDEX_NAME, readonly=True)
        self.loaded_query: str | None = None

    def compose(self) -> ComposeResult:
        yield Input(id="filter")
        yield DataTable(id="table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Received", "Tower", "Server", "Reason", "Status", "From", "Subject",
                          "Attachments")
        self.load("")

    def load(self, text: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        rows = self.index.list(parse_query(text), limit=10_000_000)
        table.add_rows([[str(c) for c in row_cells(r)] for r in rows])
        self.loaded_query = text

    def on_input_changed(self, event: Input.Changed) -> None:
        self.load(event.value)


async def peer_start(workspace: Workspace) -> float:
    start = time.perf_counter()
    app = NaiveApp(workspace)
    clock = PaintClock(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.loaded_query == "" and app.query_one(DataTable).row_count > 0,
                       timeout=600)
        elapsed = await clock.painted() - start
        await pilot.pause()
    return elapsed


async def peer_filter(workspace: Workspace, limit: int) -> list[float]:
    app = NaiveApp(workspace)
    clock = PaintClock(app)
    times: list[float] = []
    async with app.run_test(size=SIZE):
        await wait_for(lambda: app.loaded_query == "", timeout=600)
        box = app.query_one(Input)
        for before, typed in FILTERS[:limit]:
            box.value = before
            await wait_for(lambda b=before: app.loaded_query == b, timeout=600)
            box.cursor_position = len(before)
            start = time.perf_counter()
            box.insert_text_at_cursor(typed)
            await wait_for(lambda t=before + typed: app.loaded_query == t, timeout=600)
            times.append(await clock.painted() - start)
    return times


def run(coro: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(coro())  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--attachment-mb", type=float, default=5.0)
    parser.add_argument("--peer-filters", type=int, default=3,
                        help="keystrokes to time on the DataTable peer (each reloads every row)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wb-bench-tui-"))
    try:
        workspace = Workspace.resolve(work / "home").ensure()
        built = build_index(workspace, args.messages)
        sha = add_big_message(workspace, int(args.attachment_mb * 1024 * 1024))
        print(f"index: {args.messages:,} messages built in {built:.1f} s; load average "
              f"{os.getloadavg()[0]:.1f}")

        ours_starts = [float(run(lambda: ours_start(workspace))) for _ in range(3)]  # type: ignore[arg-type]
        peer_starts = [float(run(lambda: peer_start(workspace))) for _ in range(1)]  # type: ignore[arg-type]
        ours_keys = run(lambda: ours_filter(workspace))
        peer_keys = run(lambda: peer_filter(workspace, args.peer_filters))
        big = run(lambda: ours_open_big(workspace, sha))
        big_cached = run(lambda: ours_open_big(workspace, sha))
        assert isinstance(ours_keys, list) and isinstance(peer_keys, list)
        assert isinstance(big, dict) and isinstance(big_cached, dict)

        ours_start_s = min(ours_starts)
        peer_start_s = min(peer_starts)
        ours_med = statistics.median(ours_keys)
        peer_med = statistics.median(peer_keys)
        print()
        print(f"{'':44} {'workbench':>12} {'DataTable':>12} {'ratio':>8}")
        print(f"{'start to first rows painted':44} {ours_start_s * 1000:10.0f} ms "
              f"{peer_start_s * 1000:10.0f} ms {peer_start_s / ours_start_s:7.1f}x")
        print(f"{'keystroke to updated list (median)':44} {ours_med * 1000:10.0f} ms "
              f"{peer_med * 1000:10.0f} ms {peer_med / ours_med:7.1f}x")
        print(f"{'keystroke to updated list (worst)':44} {max(ours_keys) * 1000:10.0f} ms "
              f"{max(peer_keys) * 1000:10.0f} ms")
        print()
        for (before, typed), seconds in zip(FILTERS, ours_keys, strict=True):
            print(f"  filter {before + typed!r:28} {seconds * 1000:7.1f} ms")
        print()
        size = f"{args.attachment_mb:g} MB attachment"
        for label, marks in (("first open", big), ("again (cached reports)", big_cached)):
            print(f"open a message with a {size}, {label}: summary and headers "
                  f"{marks['headers'] * 1000:.0f} ms, root artifact {marks['root'] * 1000:.0f} ms, "
                  f"whole tree {marks['tree'] * 1000:.0f} ms ({marks['artifacts']:.0f} artifacts)")
        verdict = ("met" if ours_start_s < 1 else "NOT met", "met" if max(ours_keys) < 0.15 else "NOT met")
        print(f"\ntargets: first rows < 1 s {verdict[0]}; keystroke < 150 ms {verdict[1]} (worst case)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({
                "messages": args.messages, "ours_start_s": ours_starts, "peer_start_s": peer_starts,
                "ours_keystroke_s": dict(zip([b + t for b, t in FILTERS], ours_keys, strict=True)),
                "peer_keystroke_s": peer_keys, "open_big": big, "open_big_cached": big_cached,
                "loadavg": os.getloadavg()[0]}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
