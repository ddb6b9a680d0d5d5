"""The fleet screen: a NOC board of every tower server, live from what the towers report."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from workbench.distribute.fleet import FleetEvent, FleetState, Health, ServerStatus
from workbench.humanize import age, clock, shown
from workbench.tui.commands import PaletteCommand
from workbench.tui.fleetview import FleetSource, Spread, fleet_source, spread
from workbench.tui.safety import visible
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.fleet_board import GLYPHS, FleetBoard

HEALTH_STYLES = {Health.GREEN: "bold green", Health.YELLOW: "bold yellow", Health.RED: "bold red"}
ROLLOUT_STYLES = {"canary": "yellow", "halted": "bold red", "all": "green"}
SPREAD_WIDTH = 40
HISTORY = 8


def spread_text(state: FleetState, s: Spread) -> Text:
    out = Text()
    out.append("Newest serial ", style="bold")
    if s.newest is None:
        out.append("none published", style="dim")
    else:
        out.append(f"{s.newest}", style="bold")
        out.append(f" · on {s.on_newest:,} of {s.servers:,} servers ({s.fraction:.0%})  ")
        done = round(s.fraction * SPREAD_WIDTH)
        out.append("█" * done, style="green")
        out.append("░" * (SPREAD_WIDTH - done), style="dim")
    counts = state.counts
    out.append("\n")
    out.append(f"{GLYPHS[Health.GREEN]} {counts.get('green', 0):,} green", style="green")
    out.append("  ")
    yellow = [f"{n:,} {what}" for n, what in ((s.behind, "behind"), (s.updating, "updating"),
                                             (s.stale, "stale")) if n]
    out.append(f"{GLYPHS[Health.YELLOW]} {counts.get('yellow', 0):,} yellow", style="yellow")
    if yellow:
        out.append(f" ({', '.join(yellow)})", style="yellow")
    out.append("  ")
    red = [f"{n:,} {what}" for n, what in ((s.failed, "failed"), (s.silent, "silent"),
                                           (s.never_reported, "never reported")) if n]
    out.append(f"{GLYPHS[Health.RED]} {counts.get('red', 0):,} red", style="red")
    if red:
        out.append(f" ({', '.join(red)})", style="red")
    serials = ", ".join(f"{k} on {v:,}" for k, v in state.serials.items()) or "-"
    out.append(f"  · serials in use: {serials} · {len(state.towers):,} towers")
    if state.not_in_inventory:
        out.append(f" · {state.not_in_inventory:,} not in the inventory", style="dim")
    if state.rollout is not None:
        out.append("\nRollout ", style="bold")
        out.append(visible(state.rollout.describe()), style=ROLLOUT_STYLES.get(state.rollout.stage, ""))
    return out


def _server_heading(status: ServerStatus) -> Text:
    """Tower / server, then its colour and why."""
    out = Text()
    out.append(f"{visible(status.tower)} / {visible(status.server)}\n", style="bold")
    out.append(f"{GLYPHS[status.health]} {status.health.value}", style=HEALTH_STYLES[status.health])
    out.append(f"  {visible(status.reason)}\n\n")
    return out


def never_reported_text(status: ServerStatus, events: list[FleetEvent] | None) -> Text:
    """The details of an expected server nothing was heard from: what to check on it."""
    out = _server_heading(status)
    out.append(f"{'reported':<9}", style="dim")
    out.append("never\n\n")
    out.append(f"In tower {visible(status.tower)}'s inventory, but no report has come from it: "
               "is its agent installed and running (`workbench tower run`), with the tower's "
               "token and this server's name in its tower.toml? If the server is gone, "
               f"`workbench fleet forget {visible(status.tower)} {visible(status.server)}`.\n")
    if events:                  # reported once, then forgotten and expected again
        append_history(out, events)
    return out


def server_text(status: ServerStatus | None, events: list[FleetEvent] | None) -> Text:
    if status is None:
        return Text("choose a server on the board (arrows, tab jumps to the next problem)", style="dim")
    if status.reported_at is None:
        return never_reported_text(status, events)
    out = _server_heading(status)
    rows = [
        ("state", status.state),
        ("serial", ("-" if status.serial is None else str(status.serial))
         + (f" (target {status.target_serial})" if status.target_serial not in (None, status.serial) else "")),
        ("reported", f"{shown(status.reported_at)} UTC ({age(status.age_seconds or 0.0)} ago)"),
        ("rules", "-" if status.rule_count is None else f"{status.rule_count:,}"),
        ("agent", visible(status.agent_version) or "-"),
        ("libyara", visible(status.libyara_version) or "-"),
    ]
    for label, value in rows:
        out.append(f"{label:<9}", style="dim")
        out.append(f"{value}\n")
    if status.expected is False:
        out.append(f"\nnot in tower {visible(status.tower)}'s inventory: `workbench fleet expect "
                   f"{visible(status.tower)} {visible(status.server)}` adds it\n", style="dim")
    if status.error:
        out.append("\nlast error\n", style="bold red")
        out.append(visible(status.error) + "\n")
    if events is not None:
        append_history(out, events)
    return out


def append_history(out: Text, events: list[FleetEvent]) -> None:
    out.append("\nhistory (newest first)\n", style="bold underline")
    if not events:
        out.append("no changes recorded\n", style="dim")
    for e in events:
        out.append(f"{e.at:%m-%d %H:%M:%S} ", style="dim")
        out.append(f"{e.state:<8}", style="red" if e.state == "failed" else "")
        out.append(f" {'-' if e.serial is None else e.serial}")
        if e.error:
            out.append(f"  {visible(e.error)[:120]}", style="red")
        out.append("\n")


class FleetScreen(WorkbenchScreen):
    """Polls a ``FleetSource`` in a worker every ``fleet_refresh`` seconds while shown."""

    HELP = """\
## Fleet

Every tower server that reported to `workbench serve`, and every server in the
inventory (`workbench fleet expect`), as a board: one line per tower, one bar per
server. **Green** `▇`: on the newest published serial and reporting. **Yellow** `▄`
(a dip): behind, updating, or its last report is getting old. **Red** `▓` (shaded):
its last attempt failed, it went silent, or it is in the inventory and never reported.

The top lines say how far the newest release has spread and what holds the rest
back. Arrows move between servers, **tab** jumps to the next one that is not green;
the right pane shows the highlighted server's last report, error and history.
A release published to canary towers shows its rollout: on its canaries, promoted
to every tower, or halted there, with the reason. **H** opens rule health (F9): per
rule, its live hits on the fleet, likely false-positive storms and the kill switch.

The board refreshes by itself (every 2 s by default; `r` now, `space` pauses). It reads
this workspace's fleet store, where a `workbench serve` running on the same home
records every report; `workbench ui --fleet-url URL` watches a server elsewhere.
"""

    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("space", "pause", "Pause"),
        Binding("H", "app.switch_mode('health')", "Rule health"),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        state: FleetState
        seconds: float

    @dataclass(eq=False)
    class Failed(Message):
        reason: str

    @dataclass(eq=False)
    class History(Message):
        key: tuple[str, str]
        events: list[FleetEvent]

    def __init__(self) -> None:
        super().__init__()
        self.source: FleetSource | None = None
        self.state: FleetState | None = None
        self.loading = False
        self.paused = False
        self.updated = ""
        self.error = ""
        self.events: dict[tuple[str, str], list[FleetEvent]] = {}
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("reading the fleet…", style="dim"), id="fleet-summary")
        yield Static("", id="fleet-source")
        with Horizontal(id="fleet-body"):
            yield FleetBoard(id="board")
            with VerticalScroll(id="fleet-detail-pane"):
                yield Static(server_text(None, None), id="fleet-detail", classes="report-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "fleet"
        self.source = fleet_source(self.workbench.workspace, self.workbench.fleet_url)
        self.query_one(FleetBoard).focus()
        self._timer = self.set_interval(self.workbench.fleet_refresh, self.poll)
        self.poll()

    def on_unmount(self) -> None:
        if self.source is not None:
            self.source.close()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()        # nobody watches: no polling

    def on_screen_resume(self) -> None:
        if self._timer is not None and not self.paused:
            self._timer.resume()
            self.poll()

    # -- polling ------------------------------------------------------------------------------

    def poll(self) -> None:
        if not self.loading and self.source is not None:
            self.loading = True
            self.load(self.source)

    @work(thread=True, exclusive=True, group="fleet", exit_on_error=False, description="read the fleet")
    def load(self, source: FleetSource) -> None:
        from workbench.distribute.client import ClientError

        started = time.perf_counter()
        try:
            state = source.state()
        except ClientError as exc:
            self.post_message(self.Failed(str(exc)))
            return
        except Exception as exc:          # a locked or broken store: say so, keep polling
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Loaded(state, time.perf_counter() - started))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.loading = False
        self.error = ""
        self.show_state(event.state)

    def show_state(self, state: FleetState) -> None:
        """Attribute down: a fleet document onto the board and the summary."""
        self.state = state
        self.updated = clock(state.generated_at)
        board = self.query_one(FleetBoard)
        board.show(state)
        summary = self.query_one("#fleet-summary", Static)
        if not state.servers and not state.towers:
            summary.update(Text.assemble(
                spread_text(state, spread(state)), "\n",
                ("no tower server has reported yet: agents report to `workbench serve` "
                 "(docs/distribution.md)", "yellow")))
        else:
            summary.update(spread_text(state, spread(state)))
        self._show_source()
        self._show_detail()

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self.loading = False
        self.error = event.reason
        self._show_source()

    def _show_source(self) -> None:
        source = self.source.label if self.source else "?"
        out = Text()
        out.append(f"from {source} · ", style="dim")
        if self.paused:
            out.append("paused (space resumes)", style="yellow")
        else:
            out.append(f"refreshing every {self.workbench.fleet_refresh:g} s", style="dim")
        if self.updated:
            out.append(f" · updated {self.updated} UTC", style="dim")
        if self.error:
            out.append(f"\n{self.error}: showing the last board read", style="bold red")
        self.query_one("#fleet-source", Static).update(out)

    # -- the highlighted server ----------------------------------------------------------------

    @on(FleetBoard.Highlighted)
    def _highlighted(self, event: FleetBoard.Highlighted) -> None:
        self._show_detail()
        key = (event.server.tower, event.server.server)
        if self.source is not None:
            self.load_history(self.source, key)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False,
          description="read the server's history")
    def load_history(self, source: FleetSource, key: tuple[str, str]) -> None:
        from workbench.distribute.client import ClientError

        try:
            events = source.events(*key, limit=HISTORY)
        except ClientError:
            return                      # the board's own refresh reports the outage
        self.post_message(self.History(key, events))

    @on(History)
    def _history(self, event: History) -> None:
        self.events[event.key] = event.events
        self._show_detail()

    def _show_detail(self) -> None:
        current = self.query_one(FleetBoard).current()
        events = self.events.get((current.tower, current.server)) if current else None
        self.query_one("#fleet-detail", Static).update(server_text(current, events))

    # -- actions ---------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.poll()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self._timer is not None:
            (self._timer.pause if self.paused else self._timer.resume)()
        self._show_source()

    def palette_commands(self) -> list[PaletteCommand]:
        board = self.query_one(FleetBoard)
        return [
            PaletteCommand("Refresh the board", "r", self.action_refresh),
            PaletteCommand("Pause or resume live refresh", "space", self.action_pause),
            PaletteCommand("Next server that is not green", "tab", board.action_next_problem),
            PaletteCommand("Rule health: live hits per rule, FP storms, kill switch", "H",
                           lambda: self.workbench.switch_mode("health")),
        ]
