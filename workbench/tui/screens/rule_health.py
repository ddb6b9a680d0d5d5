"""The rule-health screen: per rule, what the corpus and the fleet say; the kill switch at hand."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from workbench.humanize import shown
from workbench.tui.commands import PaletteCommand
from workbench.tui.safety import visible
from workbench.tui.screens.base import WorkbenchScreen

if TYPE_CHECKING:
    from workbench.distribute.health import HealthReport, RuleHealth
    from workbench.distribute.kill_switch import KillOutcome

WINDOW_HOURS = 24
PROPOSALS = ["NOISY", "DISABLED"]
# narrow enough for 120 columns; the status and the full flag are in the pane below
COLUMNS = ("rule", "lint", "ms/MiB", "tp/fp/fn", "hits/h", f"{WINDOW_HOURS}h", "towers", "last hit",
           "dism.", "flag")
FLAG_WORDS = {"fp-storm": "storm", "mostly-dismissed": "dismissed"}


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return shown(dt.datetime.fromtimestamp(ts, dt.UTC), seconds=False)


def health_row(h: RuleHealth) -> tuple[str | Text, ...]:
    """One table row: the columns of ``workbench rules health`` that fit in 120 columns."""
    corpus = "-" if h.true_positives is None else f"{h.true_positives}/{h.false_positives}/{h.false_negatives}"
    flag = (Text(f"{FLAG_WORDS.get(h.flag, h.flag)} → {h.proposal}", style="bold red") if h.flag
            else Text(""))
    return (visible(h.rule), f"{h.lint_errors}/{h.lint_warnings}",
            h.cost_text(), corpus, f"{h.hits_per_hour:g}",
            f"{h.hits:,}", str(len(h.towers)), _when(h.last_hit)[5:] if h.last_hit else "-",
            f"{h.dismissed}/{h.copies}", flag)


def summary_text(report: HealthReport | None, *, measuring: bool, source: str) -> Text:
    out = Text()
    if report is None:
        out.append("reading the fleet's rule telemetry…", style="dim")
        return out
    flagged = sum(1 for h in report.rules if h.flag)
    out.append(f"{len(report.rules):,} rules", style="bold")
    out.append(f" · {report.messages_scanned:,} messages scanned in the last "
               f"{report.window_hours or WINDOW_HOURS} h · ")
    if flagged:
        out.append(f"{flagged} flagged as likely false-positive storms", style="bold red")
    else:
        out.append("none flagged", style="green")
    out.append(f"\nfrom {source} · ", style="dim")
    if measuring:
        out.append("lint, cost and corpus TP/FP/FN: measuring…", style="yellow")
    elif report.corpus:
        out.append("lint, cost and corpus measured now", style="dim")
    else:
        out.append("no corpus run (no corpora set up, or no signatures tree)", style="dim")
    return out


def rule_text(h: RuleHealth | None) -> Text:
    """The highlighted rule's numbers (left of the pane)."""
    if h is None:
        return Text("choose a rule (arrows)", style="dim")
    out = Text()
    out.append(f"{visible(h.rule)}\n", style="bold")
    out.append(f"{visible(h.file) or '(not in the signatures tree)'}\n", style="dim")
    rows = [
        ("status", h.status or "-"),
        ("lint", f"{h.lint_errors} errors, {h.lint_warnings} warnings"),
        ("cost", "-" if h.ms_per_mib is None else f"{h.cost_text()} ms/MiB"
                 + (" (its group's: every rule of it under budget)" if h.cost_at_most else "")),
        ("corpus", "not run" if h.true_positives is None else
         f"{h.true_positives} TP · {h.false_positives} FP · {h.false_negatives} FN"),
        ("live", f"{h.hits:,} hits, {h.hits_per_hour:g}/h"),
        ("last hit", _when(h.last_hit)),
        ("dismissed", f"{h.dismissed} of {h.copies} quarantined copies, as clean"),
    ]
    for label, value in rows:
        out.append(f"{label:<10}", style="dim")
        out.append(f"{value}\n")
    return out


def evidence_text(h: RuleHealth | None) -> Text:
    """The highlighted rule's flag and evidence, then its hits per tower (right of the pane)."""
    out = Text()
    if h is None:
        return out
    if h.flag:
        out.append(f"{h.flag}: proposed {h.proposal}\n", style="bold red")
        for line in h.evidence:
            out.append(f"· {visible(line)}\n")
        out.append(f"k takes it off the whole fleet now (emergency release); p sets {h.proposal} "
                   "in its file for the next release\n", style="yellow")
    else:
        out.append("not flagged\n", style="green")
        for line in h.evidence:
            out.append(f"· {visible(line)}\n")
    out.append("\nhits per tower: ", style="bold")
    if not h.towers:
        out.append("none in the window\n", style="dim")
        return out
    ranked = sorted(h.towers.items(), key=lambda kv: -kv[1])
    out.append(", ".join(f"{visible(t)} {n:,}" for t, n in ranked[:30]))
    if len(ranked) > 30:
        out.append(f" … {len(ranked) - 30} more towers", style="dim")
    out.append("\n")
    return out


def kill_question(h: RuleHealth) -> str:
    """What the confirm dialog says: the rule, and exactly what the kill switch will do."""
    why = f"\nFlagged {h.flag}: {'; '.join(h.evidence)}." if h.flag else ""
    return (f"Emergency: take {h.rule} off the whole fleet now?{why}\n\n"
            f"This makes a signed release of the newest release with only {h.rule} set to "
            "DISABLED (compile and self-tests run; lint, corpus runs and scan budgets are "
            "skipped), commits it with the changelog, tags it and publishes it: towers waiting "
            "on the repository install it within seconds. Same as "
            f"`workbench rule disable {h.rule} --emergency`.")


class RuleHealthScreen(WorkbenchScreen):
    """Reads ``distribute.health.rule_health`` in a worker; acts through the same core calls
    as ``rule disable [--emergency]``."""

    HELP = """\
## Rule health

Per rule: its lint state, its measured cost (ms/MiB), its corpus results (true
positives, false positives, misses), its live hits on the fleet in the last 24 hours
(per hour, per tower, the last one) and how many of the copies towers sent to the
quarantine for it analysts dismissed as clean. The same document as
`workbench rules health`.

A rule whose hit rate jumped far above its baseline, or whose copies are mostly
dismissed, is **flagged** as a likely false-positive storm and proposed for NOISY or
DISABLED; the right pane shows the evidence. Flagged rules come first.

**k** is the emergency kill switch: after a confirmation, a minimal signed release
without that rule is made, recorded and published (`rule disable ID --emergency`).
**p** sets the proposed status in the rule's file instead, for the next ordinary
release (F5). **e** opens the rule in the editor, **f** shows only flagged rules,
**r** reads everything again.
"""

    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("f", "flagged", "Flagged only"),
        Binding("k", "kill", "Kill switch"),
        Binding("p", "propose", "Propose status"),
        Binding("e", "edit", "Edit rule"),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        report: HealthReport
        complete: bool                  # lint, cost and corpus measured too

    @dataclass(eq=False)
    class Killed(Message):
        outcome: KillOutcome

    @dataclass(eq=False)
    class Proposed(Message):
        rule: str
        status: str
        path: str

    def __init__(self) -> None:
        super().__init__()
        self.report: HealthReport | None = None
        self.complete = False
        self.flagged_only = False
        self.current: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(summary_text(None, measuring=True, source=""), id="health-summary")
        yield DataTable(id="health-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="health-detail-pane"):
            yield Static(rule_text(None), id="health-detail", classes="report-text")
            with VerticalScroll(id="health-evidence-pane"):
                yield Static("", id="health-evidence", classes="report-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "rule health"
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.query_one(DataTable).focus()
        self.action_refresh()

    @property
    def source_label(self) -> str:
        return self.workbench.fleet_url or "this workspace's fleet store"

    # -- workers: thin wrappers over the core ---------------------------------------------------

    def action_refresh(self) -> None:
        self.complete = False
        self.load(self.workbench.fleet_url)

    @work(thread=True, exclusive=True, group="rule-health", exit_on_error=False,
          description="read the rules' health")
    def load(self, url: str | None) -> None:
        from workbench.distribute.health import rule_health

        workspace = self.workbench.workspace
        # the live numbers first (milliseconds), then lint, cost and the corpus runs
        self.post_message(self.Loaded(rule_health(workspace, url=url, hours=WINDOW_HOURS,
                                                  validate=False), complete=False))
        self.post_message(self.Loaded(rule_health(workspace, url=url, hours=WINDOW_HOURS),
                                      complete=True))

    @work(thread=True, exclusive=True, group="kill-switch", exit_on_error=False,
          description="take the rule off the fleet")
    def kill(self, rule: str, message: str) -> None:
        from workbench.distribute.kill_switch import kill_rule

        self.post_message(self.Killed(kill_rule(self.workbench.workspace, rule, message=message)))

    @work(thread=True, exclusive=True, group="propose-status", exit_on_error=False,
          description="set the rule's status")
    def propose(self, rule: str, status: str) -> None:
        from workbench.release.emergency import set_status_in_tree

        path = set_status_in_tree(self.workbench.workspace, rule, status)
        self.post_message(self.Proposed(rule, status, str(path)))

    # -- messages ------------------------------------------------------------------------------

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        if self.complete and not event.complete:
            return                      # a late live-only read never replaces the full one
        self.report = event.report
        self.complete = event.complete
        self._show()

    def _show(self) -> None:
        self.query_one("#health-summary", Static).update(
            summary_text(self.report, measuring=not self.complete, source=self.source_label))
        table = self.query_one(DataTable)
        keep = self.current
        table.clear()
        rules = self.shown_rules()
        for h in rules:
            table.add_row(*health_row(h), key=h.rule)
        names = [h.rule for h in rules]
        if names:
            table.move_cursor(row=names.index(keep) if keep in names else 0)
            self.current = names[table.cursor_row]
        else:
            self.current = None
        self._show_detail()

    def shown_rules(self) -> list[RuleHealth]:
        rules = self.report.rules if self.report else []
        return [h for h in rules if h.flag] if self.flagged_only else list(rules)

    def chosen(self) -> RuleHealth | None:
        return next((h for h in self.shown_rules() if h.rule == self.current), None)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.current = str(event.row_key.value)
            self._show_detail()

    def _show_detail(self) -> None:
        chosen = self.chosen()
        self.query_one("#health-detail", Static).update(rule_text(chosen))
        self.query_one("#health-evidence", Static).update(evidence_text(chosen))

    @on(Killed)
    def _killed(self, event: Killed) -> None:
        self.notify(event.outcome.summary(), title="Kill switch", timeout=10)
        self.action_refresh()

    @on(Proposed)
    def _proposed(self, event: Proposed) -> None:
        self.notify(f"{event.rule}: status {event.status} in {event.path}; commit and release it "
                    "(F5)", title="Status set", timeout=8)

    # -- actions -------------------------------------------------------------------------------

    def _need_rule(self) -> RuleHealth | None:
        chosen = self.chosen()
        if chosen is None:
            self.notify("no rule chosen", severity="warning")
        return chosen

    def _need_rule_file(self) -> RuleHealth | None:
        """The chosen rule, if its file is in this workspace's signatures tree (said if not)."""
        chosen = self._need_rule()
        if chosen is not None and not chosen.file:
            self.notify(f"{chosen.rule} is not in this workspace's signatures tree", severity="warning")
            return None
        return chosen

    def action_flagged(self) -> None:
        self.flagged_only = not self.flagged_only
        self._show()

    def action_kill(self) -> None:
        from workbench.tui.screens.modals import ConfirmScreen

        chosen = self._need_rule()
        if chosen is None:
            return
        reason = "; ".join(chosen.evidence) or "taken off from the rule-health view"

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"releasing the fleet without {chosen.rule}…", timeout=4)
                self.kill(chosen.rule, reason)

        self.app.push_screen(ConfirmScreen(kill_question(chosen), yes=f"Disable {chosen.rule} now",
                                           no="Cancel"), answered)

    def action_propose(self) -> None:
        from workbench.tui.screens.modals import ChoiceScreen

        chosen = self._need_rule_file()
        if chosen is None:
            return

        def picked(status: str | None) -> None:
            if status:
                self.propose(chosen.rule, status)

        hint = f"flagged {chosen.flag}" if chosen.flag else "not flagged"
        self.app.push_screen(ChoiceScreen(f"Status for {chosen.rule} in its file", PROPOSALS,
                                          current=chosen.proposal or "NOISY", hint=hint), picked)

    def action_edit(self) -> None:
        chosen = self._need_rule_file()
        if chosen is None:
            return
        self.workbench.open_rule_file(self.workbench.workspace.signatures / chosen.file)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Refresh rule health", "r", self.action_refresh),
            PaletteCommand("Show only flagged rules (or all)", "f", self.action_flagged),
            PaletteCommand("Kill switch: take the highlighted rule off the fleet now", "k",
                           self.action_kill),
            PaletteCommand("Propose NOISY or DISABLED for the highlighted rule", "p",
                           self.action_propose),
            PaletteCommand("Edit the highlighted rule", "e", self.action_edit),
        ]
