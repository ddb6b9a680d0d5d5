"""The test screen: the edited rule or the whole ruleset against corpora, and retro-hunts."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import (
    Footer,
    Header,
    ProgressBar,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerState

from workbench.corpus.scanner import ScanProgress
from workbench.humanize import clock
from workbench.humanize import size as human_size
from workbench.rules.rulefile import write_rule_file
from workbench.tui.commands import PaletteCommand
from workbench.tui.safety import visible
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.screens.modals import PromptScreen
from workbench.tui.testing_rows import (
    MatchRow,
    match_cells,
    match_rows,
    missed_cells,
    missed_rows,
    retro_cells,
    rule_cells,
)
from workbench.tui.widgets.list_table import ListTable
from workbench.tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from workbench.corpus.corpus_registry import CorpusInfo
    from workbench.corpus.retrohunt import RetrohuntReport
    from workbench.corpus.rule_testing import RuleResult, RuleTestReport
    from workbench.dissect.model import Artifact

TICK = 0.1                 # seconds between elapsed-time updates while a scan runs
BUFFERS = "tui/buffers"    # under state/: unsaved editor buffers written for a test
DETAIL_TABS = ("tp", "fp", "fn", "other", "retro", "notes")


@dataclass(frozen=True)
class Scope:
    """What a run tests: paths given to ``run_rule_tests`` and a label for people."""

    paths: list[Path]
    label: str
    single: bool                   # the editor's rule (file), not the whole ruleset
    buffer: str | None = None      # unsaved text, written to ``paths[0]`` by the run's worker

    def write_buffer(self) -> None:
        if self.buffer is not None:
            write_rule_file(self.paths[0], self.buffer)


RULE_COLUMNS = (Column("rule", "Rule", 0, 20, weight=4), Column("tp", "TP", 4), Column("fp", "FP", 4),
                Column("fn", "FN", 4), Column("q", "Quar.", 5), Column("result", "Result", 0, 12, weight=2))
MATCH_COLUMNS = (Column("file", "File", 0, 12, weight=3), Column("corpora", "Corpora", 0, 8, weight=2),
                 Column("offset", "Offset", 9), Column("id", "String", 8),
                 Column("data", "Matched", 0, 12, weight=3))
MISSED_COLUMNS = (Column("file", "Sample", 0, 12, weight=3), Column("corpora", "Corpora", 0, 8, weight=2),
                  Column("reason", "Why", 0, 12, weight=4))
RETRO_COLUMNS = (Column("received", "Received", 16), Column("tower", "Tower", 8), Column("status", "Status", 9),
                 Column("subject", "Subject", 0, 10, weight=3), Column("rules", "Rules", 0, 10, weight=2),
                 Column("via", "Via", 0, 10, weight=2))


class RuleTestScreen(WorkbenchScreen):
    """Runs ``run_rule_tests`` and ``retrohunt`` in workers; progress and results come back as messages."""

    HELP = """\
## Test

Run the rule you are editing (`a` switches to the whole ruleset) against the
corpora ticked on the right: **r** runs, **x** (or escape) cancels within a
second; what finished is cached, so running again resumes. Results come from the
scan cache where the rule and the file were scanned before (`n` ignores the cache).

Per rule: **TP** files of malicious corpora it matched, **FP** files of clean
corpora it matched, **FN** samples named by its `hash` metadata it missed (or that
are in no tested corpus), **Quar.** hits in quarantined artifacts. Choose a rule to
list its matches below; **enter** on a match opens the file in the artifact view
at the match.

**h** retro-hunts: scans every quarantined message and extracted artifact with the
rule, lists the messages it would have caught, tags them (a tag you choose) and
marks them in the quarantine list (`f2`) for triage.
"""

    BINDINGS = [
        Binding("r", "run", "Run test"),
        Binding("h", "retrohunt", "Retro-hunt"),
        Binding("x", "cancel", "Cancel"),
        Binding("a", "scope", "Rule/all"),
        Binding("c", "corpora", "Corpora", show=False),
        Binding("n", "toggle_cache", "Cache", show=False),
        Binding("escape", "escape", "Cancel", show=False),
        *(Binding(str(n), f"tab('{tab}')", show=False) for n, tab in enumerate(DETAIL_TABS, 1)),
    ]

    @dataclass(eq=False)
    class RunMessage(Message):
        """From one run; the screen drops messages of a run it no longer shows."""

        run: int

    @dataclass(eq=False)
    class Progress(RunMessage):
        progress: ScanProgress

    @dataclass(eq=False)
    class Tested(RunMessage):
        report: RuleTestReport
        scope: Scope

    @dataclass(eq=False)
    class Hunted(RunMessage):
        report: RetrohuntReport

    @dataclass(eq=False)
    class Stopped(RunMessage):
        """The run ended without a report: cancelled, or the rules did not compile."""

        reason: str
        error: bool = False

    @dataclass(eq=False)
    class CorporaLoaded(Message):
        corpora: list[CorpusInfo]

    @dataclass(eq=False)
    class FileOpened(Message):
        artifact: Artifact
        row: MatchRow

    def __init__(self) -> None:
        super().__init__()
        self.whole_ruleset = False
        self.use_cache = True
        self.report: RuleTestReport | None = None
        self.hunt: RetrohuntReport | None = None
        self.run_id = 0
        self.running = ""                 # "test", "retro-hunt" or "" (what runs now)
        self.cancel_event: threading.Event | None = None
        self.started = 0.0
        self.last_progress: ScanProgress | None = None
        self.corpora_chosen: set[str] | None = None     # None: the defaults (every labelled corpus)
        self.corpora_read = False         # the chooser is empty until the first list arrives
        self.run_when_read = False        # r pressed before then: run once they are read
        self._ticker: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="test-top"):
            with Vertical(id="test-controls"):
                yield Static("", id="test-scope")
                with Horizontal(id="test-progress-row"):
                    yield ProgressBar(total=1, show_eta=False, id="test-progress")
                    yield Static("", id="test-phase")
                yield Static(Text("r runs the test · h retro-hunts the quarantine", style="dim"),
                             id="test-summary")
            yield SelectionList[str](id="corpora")
        yield ListTable(RULE_COLUMNS, rule_cells, empty="no results yet: r runs the test",
                        id="test-rules")
        with TabbedContent(id="test-tabs"):
            with TabPane("True positives", id="tab-tp"):
                yield ListTable(MATCH_COLUMNS, match_cells, empty="none", id="tp")
            with TabPane("False positives", id="tab-fp"):
                yield ListTable(MATCH_COLUMNS, match_cells, empty="none", id="fp")
            with TabPane("False negatives", id="tab-fn"):
                yield ListTable(MISSED_COLUMNS, missed_cells, empty="none", id="fn")
            with TabPane("Quarantine", id="tab-other"):
                yield ListTable(MATCH_COLUMNS, match_cells, empty="none", id="other")
            with TabPane("Retro-hunt", id="tab-retro"):
                yield ListTable(RETRO_COLUMNS, retro_cells, empty="h hunts the quarantine", id="retro")
            with TabPane("Notes", id="tab-notes"):
                yield Static("", id="notes", classes="report-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "test"
        self.query_one("#corpora", SelectionList).border_title = "Corpora (c)"
        self.query_one("#test-rules", ListTable).focus()

    def on_screen_resume(self) -> None:
        """Coming here from the editor: the scope follows the rule being edited."""
        if self.is_mounted:
            self._show_scope()
            self.load_corpora()
            if self.hunt is not None and self.hunt.messages:
                self.refresh_retro_statuses([m.sha256 for m in self.hunt.messages])

    @work(thread=True, exclusive=True, group="retro-status", exit_on_error=False,
          description="read the hunted messages' statuses")
    def refresh_retro_statuses(self, shas: list[str]) -> None:
        """Triage since the hunt (status, tags) shows in its list, not the values of hunt time."""
        if not self.workbench.pool.exists:
            return
        now: dict[str, tuple[str, list[str]]] = {}
        with self.workbench.pool.reader() as index:
            for sha in shas:
                try:
                    row = index.get(sha)
                except LookupError:          # (gone from the index since)
                    continue
                now[sha] = (row.status, list(row.tags))
        self.app.call_from_thread(self._retro_statuses, now)

    def _retro_statuses(self, now: dict[str, tuple[str, list[str]]]) -> None:
        if self.hunt is None:
            return
        changed = False
        for msg in self.hunt.messages:
            if msg.sha256 in now and (msg.status, msg.tags) != now[msg.sha256]:
                msg.status, msg.tags = now[msg.sha256][0], now[msg.sha256][1]
                changed = True
        if changed:
            self.query_one("#retro", ListTable).show(self.hunt.messages, keep_cursor=True)

    # -- scope and corpora ----------------------------------------------------------------

    def editor_buffer(self) -> tuple[Path | None, str, bool] | None:
        return self.workbench.editor_buffer()

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.workbench.workspace.signatures.resolve()))
        except ValueError:
            return str(path)

    def scope(self) -> Scope:
        """What ``r`` tests now. An unsaved buffer is tested as it is, from a copy under state/."""
        from workbench.corpus.rule_testing import default_rule_paths

        buffer = None if self.whole_ruleset else self.editor_buffer()
        if buffer is None:
            paths = default_rule_paths(self.workbench.workspace)
            return Scope(paths, f"every rule in {self._relative(paths[0])}", single=False)
        path, text, unsaved = buffer
        if path is not None and not unsaved:
            return Scope([path], self._relative(path), single=True)
        name = path.name if path is not None else "draft.yar"
        copy = self.workbench.workspace.state / BUFFERS / name
        label = f"{self._relative(path)} (unsaved edits)" if path is not None else "the unsaved draft"
        return Scope([copy], label, single=True, buffer=text)

    def _show_scope(self) -> None:
        buffer = self.editor_buffer()
        text = Text()
        text.append("Rules  ", style="bold")
        if buffer is None:
            text.append("every rule in the signature repository", style="")
            text.append("   (open a rule in the editor, f3, to test it alone)", style="dim")
        else:
            path, _text, unsaved = buffer
            name = (self._relative(path) if path is not None else "the unsaved draft") + \
                (" (unsaved edits)" if unsaved and path is not None else "")
            this, every = ("○", "◉") if self.whole_ruleset else ("◉", "○")
            text.append(f"{this} {name}  ", style="" if not self.whole_ruleset else "dim")
            text.append(f"{every} every rule", style="" if self.whole_ruleset else "dim")
            text.append("  · a switches", style="dim")
        if not self.use_cache:
            text.append("   · cache off (n)", style="yellow")
        self.query_one("#test-scope", Static).update(text)

    @work(thread=True, exclusive=True, group="corpora", exit_on_error=False,
          description="list the corpora")
    def load_corpora(self) -> None:
        from workbench.corpus.corpus_registry import CorpusRegistry

        with CorpusRegistry(self.workbench.workspace) as registry:
            self.post_message(self.CorporaLoaded(registry.list()))

    @on(CorporaLoaded)
    def _corpora_loaded(self, event: CorporaLoaded) -> None:
        chooser = self.query_one("#corpora", SelectionList)
        if self.corpora_chosen is None:
            chosen = {c.name for c in event.corpora if not c.builtin}
        else:
            chosen = self.corpora_chosen
        chooser.clear_options()
        lines: list[str] = []
        for c in event.corpora:
            label = Text(c.name)
            label.append(f"  {c.label} · {c.files:,} files", style="dim")
            chooser.add_option(Selection(label, c.name, c.name in chosen))
            lines.append(f"{label.plain} · {', '.join(c.sources)}" if c.sources else label.plain)
        chooser.tooltip = "\n".join(lines) or None     # a 42-column box cuts long names and paths
        if not any(not c.builtin for c in event.corpora):
            self.query_one("#test-summary", Static).update(Text(
                "no corpora yet: workbench corpus add NAME PATH --label malicious|clean", style="yellow"))
        self.corpora_read = True
        if self.run_when_read:
            self.run_when_read = False
            self.action_run()

    def chosen_corpora(self) -> list[str]:
        return list(self.query_one("#corpora", SelectionList).selected)

    @on(SelectionList.SelectedChanged, "#corpora")
    def _corpora_changed(self) -> None:
        self.corpora_chosen = set(self.chosen_corpora())

    def action_scope(self) -> None:
        self.whole_ruleset = not self.whole_ruleset
        self._show_scope()

    def action_toggle_cache(self) -> None:
        self.use_cache = not self.use_cache
        self._show_scope()

    def action_corpora(self) -> None:
        self.query_one("#corpora", SelectionList).focus()

    # -- running ------------------------------------------------------------------------------

    def _start(self, kind: str) -> threading.Event | None:
        if self.running:
            self.notify(f"a {self.running} is running: x cancels it", severity="warning")
            return None
        self.run_id += 1
        self.running = kind
        self.cancel_event = threading.Event()
        self.started = time.monotonic()
        self.last_progress = None
        bar = self.query_one("#test-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self._ticker = self.set_interval(TICK, self._tick)
        self._tick()
        return self.cancel_event

    def _finish(self) -> float:
        self.running = ""
        self.cancel_event = None
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        return time.monotonic() - self.started

    def action_run(self) -> None:
        if not self.corpora_read:         # a key faster than the corpora list: not a refusal
            self.run_when_read = True
            self.notify("reading the corpora… the test starts then", timeout=3)
            return
        corpora = self.chosen_corpora()
        if not corpora:
            self.notify("tick at least one corpus on the right (c, then space)", severity="warning")
            return
        scope = self.scope()
        cancel = self._start("test")
        if cancel is not None:
            self._show_scope()
            self.run_test(self.run_id, scope, corpora, cancel, self.use_cache)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False,
          description="test the rules")
    def run_test(self, run: int, scope: Scope, corpora: list[str], cancel: threading.Event,
                 use_cache: bool) -> None:
        from workbench.corpus.cluster_address import scans_on
        from workbench.corpus.rule_testing import run_rule_tests
        from workbench.corpus.ruleset import RulesetError
        from workbench.corpus.scanner import ScanCancelled
        from workbench.errors import WorkbenchError

        def progress(p: ScanProgress) -> None:
            self.post_message(self.Progress(run, p))

        try:
            scope.write_buffer()
            with scans_on(self.workbench.workspace):     # a cluster if the workspace names one
                report = run_rule_tests(self.workbench.workspace, scope.paths, corpora,
                                        progress=progress, cancel=cancel, use_cache=use_cache)
        except ScanCancelled:
            self.post_message(self.Stopped(run, "cancelled"))
            return
        except RulesetError as exc:
            self.post_message(self.Stopped(run, f"the rules do not compile: {exc}", error=True))
            return
        except WorkbenchError as exc:          # a cluster setting that is wrong, say
            self.post_message(self.Stopped(run, exc.describe(), error=True))
            return
        self.post_message(self.Tested(run, report, scope))

    def action_retrohunt(self) -> None:
        if self.running:
            self.notify(f"a {self.running} is running: x cancels it", severity="warning")
            return
        scope = self.scope()

        def chosen(tag: str | None) -> None:
            cancel = self._start("retro-hunt")
            if cancel is not None:
                # the last hunt's rows (and their statuses) go: they are not this hunt's
                self.hunt = None
                self.query_one("#retro", ListTable).show([])
                self.query_one("#test-tabs", TabbedContent).get_tab("tab-retro").label = "Retro-hunt"
                self.run_hunt(self.run_id, scope, cancel, tag or None)

        self.app.push_screen(PromptScreen(
            f"Retro-hunt with {scope.label}: tag for the messages hit",
            default_tag(scope), hint="enter hunts · empty: no tag (they are marked anyway) · esc cancels",
            allow_empty=True), lambda answer: chosen(answer) if answer is not None else None)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False,
          description="retro-hunt the quarantine")
    def run_hunt(self, run: int, scope: Scope, cancel: threading.Event, tag: str | None) -> None:
        from workbench.corpus.cluster_address import scans_on
        from workbench.corpus.retrohunt import retrohunt
        from workbench.corpus.scanner import ScanCancelled
        from workbench.errors import WorkbenchError

        def progress(p: ScanProgress) -> None:
            self.post_message(self.Progress(run, p))

        try:
            scope.write_buffer()
            with scans_on(self.workbench.workspace):
                report = retrohunt(self.workbench.workspace, scope.paths, progress=progress,
                                   cancel=cancel, tag=tag, dissect_missing=True)
        except ScanCancelled:
            self.post_message(self.Stopped(run, "cancelled"))
            return
        except WorkbenchError as exc:
            self.post_message(self.Stopped(run, exc.describe(), error=True))
            return
        self.post_message(self.Hunted(run, report))

    def action_cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
            self.query_one("#test-phase", Static).update(Text("cancelling…", style="yellow"))

    def action_escape(self) -> None:
        """Cancels a run; otherwise back to the rules table (never leaves the screen: f-keys do)."""
        if self.running:
            self.action_cancel()
        else:
            self.query_one("#test-rules", ListTable).focus()

    # -- progress and results -------------------------------------------------------------------

    def _tick(self) -> None:
        """Every 100 ms while running: the elapsed time moves even while libyara compiles."""
        p = self.last_progress
        elapsed = time.monotonic() - self.started
        if p is None or p.phase == "compiling":
            text = f"{self.running}: compiling… {elapsed:.1f} s"
        elif p.phase == "dissecting":
            text = (f"{self.running}: dissecting {p.files_done:,}/{p.files_total:,} messages never "
                    f"opened… {elapsed:.1f} s")
        else:
            text = (f"{self.running}: {p.files_done:,}/{p.files_total:,} files · "
                    f"{human_size(p.bytes_done)} of {human_size(p.bytes_total)} · "
                    f"{p.matches:,} matches · {elapsed:.1f} s")
        if self.cancel_event is not None and self.cancel_event.is_set():
            text = "cancelling… " + text
        self.query_one("#test-phase", Static).update(text)

    @on(Progress)
    def _progress(self, event: Progress) -> None:
        if event.run != self.run_id or not self.running:
            return
        self.last_progress = p = event.progress
        bar = self.query_one("#test-progress", ProgressBar)
        if p.phase == "dissecting":
            bar.update(total=max(p.files_total, 1), progress=p.files_done)
        elif p.phase == "scanning" or p.bytes_total:
            bar.update(total=max(p.bytes_total, 1), progress=p.bytes_done)
        self._tick()

    @on(Worker.StateChanged)
    def _scan_worker_ended(self, event: Worker.StateChanged) -> None:
        """A scan that failed unexpectedly (the base screen shows the error) ends the run too."""
        if event.worker.group == "scan" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED) \
                and self.running:
            elapsed = self._finish()
            self.query_one("#test-phase", Static).update(
                Text(f"failed after {elapsed:.1f} s: {event.worker.error or 'stopped'}", style="bold red"))

    @on(Stopped)
    def _stopped(self, event: Stopped) -> None:
        if event.run != self.run_id:
            return
        elapsed = self._finish()
        style = "bold red" if event.error else "yellow"
        what = f"{event.reason} after {elapsed:.1f} s"
        if not event.error:
            what += "; what finished is cached: r resumes"
        self.query_one("#test-phase", Static).update(Text(what, style=style))
        if event.error:
            self.notify(event.reason, title="Could not run", severity="error", timeout=10)

    @on(Tested)
    def _tested(self, event: Tested) -> None:
        if event.run != self.run_id:
            return
        self._finish()
        self.show_report(event.report, event.scope)

    def show_report(self, report: RuleTestReport, scope: Scope, *, at: str | None = None) -> None:
        """Attribute down from a run (or a test): the per-rule table and the summary; ``at``
        (default: now) is when the result was made, shown so a new result is told from the last."""
        self.report = report
        bar = self.query_one("#test-progress", ProgressBar)
        bar.update(total=1, progress=1)
        st = report.stats
        phase = Text(f"done {at or clock()} UTC in {st.seconds:.2f} s · {st.files_scanned:,} scanned · "
                     f"{st.pairs_cached:,} cached", overflow="ellipsis", no_wrap=True)
        self.query_one("#test-phase", Static).update(phase)
        names = ", ".join(c.name for c in report.corpora)
        # the verdict and the counts first: a narrow screen cuts the corpus names, not them
        summary = Text("PASS" if report.passed else "FAIL", style="bold green" if report.passed else "bold red")
        summary.append(f" · {report.true_positives} TP · {report.false_positives} FP · "
                       f"{report.false_negatives} FN · {len(report.rules)} rule(s) · {st.files:,} files "
                       f"({human_size(st.bytes)}) in {names}")
        widget = self.query_one("#test-summary", Static)
        widget.update(summary)
        widget.tooltip = summary.plain
        table = self.query_one("#test-rules", ListTable)
        table.show(report.rules)
        failing = next((i for i, r in enumerate(report.rules) if not r.passed), 0)
        table.cursor_row = failing
        self._show_rule(report.rules[failing] if report.rules else None)
        self._show_notes()

    def _show_rule(self, rule: RuleResult | None) -> None:
        tabs = self.query_one("#test-tabs", TabbedContent)
        lists = {
            "tp": match_rows(rule.true_positives) if rule else [],
            "fp": match_rows(rule.false_positives) if rule else [],
            "fn": missed_rows(rule) if rule else [],
            "other": match_rows(rule.other_hits) if rule else [],
        }
        counts = {"tp": rule.tp_count if rule else 0, "fp": rule.fp_count if rule else 0,
                  "fn": len(rule.false_negatives) if rule else 0,
                  "other": rule.other_count if rule else 0}
        titles = {"tp": "True positives", "fp": "False positives", "fn": "False negatives",
                  "other": "Quarantine"}
        for key, rows in lists.items():
            self.query_one(f"#{key}", ListTable).show(rows)
            count = counts[key]
            label = Text(f"{titles[key]} ")
            label.append(str(count), style="bold red" if count and key in ("fp", "fn") else "bold")
            tabs.get_tab(f"tab-{key}").label = label
        if rule is not None and (rule.fp_count or rule.false_negatives) and tabs.active in ("tab-tp", ""):
            tabs.active = "tab-fp" if rule.fp_count else "tab-fn"

    def _show_notes(self) -> None:
        report = self.report
        out = Text()
        if report is not None:
            for rule in report.rules:
                for warning in rule.warnings:
                    out.append(f"⚠ {rule.rule}: ", style="yellow")
                    out.append(f"{warning}\n")
            for problem in [*report.timeouts, *report.errors]:
                out.append(f"✗ {visible(problem.name or problem.sha256)} ({', '.join(problem.corpora)}): ",
                           style="red")
                out.append(f"{problem.reason}{': ' + ', '.join(problem.rules) if problem.rules else ''}\n")
        if self.hunt is not None:
            for sha in self.hunt.timeouts:
                out.append(f"✗ retro-hunt: the scan of {sha} timed out\n", style="red")
            for sha in self.hunt.errors:
                out.append(f"✗ retro-hunt: {sha} could not be read or dissected\n", style="red")
        self.query_one("#notes", Static).update(out or Text("nothing to note", style="dim"))

    @on(VirtualTable.Highlighted, "#test-rules")
    def _rule_highlighted(self, event: VirtualTable.Highlighted) -> None:
        if self.report is not None and 0 <= event.row < len(self.report.rules):
            self._show_rule(self.report.rules[event.row])

    @on(Hunted)
    def _hunted(self, event: Hunted) -> None:
        if event.run != self.run_id:
            return
        elapsed = self._finish()
        hunt = self.hunt = event.report
        self.query_one("#test-progress", ProgressBar).update(total=1, progress=1)
        shas = [m.sha256 for m in hunt.messages]
        self.workbench.mark_messages(shas)
        tagged = f", tagged #{hunt.tag}" if hunt.tag else ""
        self.query_one("#test-phase", Static).update(
            f"retro-hunt done in {elapsed:.1f} s: {hunt.messages_scanned:,} messages and "
            f"{hunt.artifacts_scanned:,} artifacts")
        self.query_one("#retro", ListTable).show(hunt.messages)
        tabs = self.query_one("#test-tabs", TabbedContent)
        tabs.get_tab("tab-retro").label = Text.assemble("Retro-hunt ", (str(len(shas)), "bold"))
        tabs.active = "tab-retro"
        self.query_one("#retro", ListTable).focus()
        self.notify(f"{len(shas)} message(s) hit{tagged}; marked in the quarantine list (f2)",
                    timeout=5)
        self._show_notes()

    # -- opening what was found ------------------------------------------------------------------

    @on(VirtualTable.Selected, "#tp, #fp, #fn, #other")
    def _match_chosen(self, event: VirtualTable.Selected) -> None:
        table = event.control
        assert isinstance(table, ListTable)
        row = table.current()
        if row is None:
            return
        if not row.sha256:
            self.notify("this sample is in no tested corpus: nothing to open", severity="warning")
            return
        self.notify(f"opening {visible(row.name)}…", timeout=2)
        self.open_file(row)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False, description="open the file")
    def open_file(self, row: MatchRow) -> None:
        from workbench.dissect.cache import DissectCache
        from workbench.dissect.walker import dissect_bytes
        from workbench.quarantine.service import Quarantine
        from workbench.quarantine.targets import resolve_target

        workspace = self.workbench.workspace
        with Quarantine.open(workspace) as q:
            data = q.store.read(resolve_target(q, row.sha256).sha256)
            cache = DissectCache.open(workspace)
            try:
                dissection = dissect_bytes(data, row.name, store=q.store, cache=cache)
            finally:
                cache.close()
        self.post_message(self.FileOpened(dissection.root, row))

    @on(FileOpened)
    def _file_opened(self, event: FileOpened) -> None:
        if self.app.screen is not self:
            return                  # the analyst went elsewhere meanwhile: do not pop up there
        self.workbench.open_artifact(event.artifact, offset=event.row.offset, length=event.row.length)

    @on(VirtualTable.Selected, "#retro")
    def _message_chosen(self) -> None:
        msg = self.query_one("#retro", ListTable).current()
        if msg is not None:
            self.workbench.open_message(msg.sha256)

    def action_tab(self, tab: str) -> None:
        self.query_one("#test-tabs", TabbedContent).active = f"tab-{tab}"
        if tab != "notes":
            self.query_one(f"#{tab}", ListTable).focus()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Run the test", "the rule (or every rule) against the chosen corpora (r)",
                           self.action_run),
            PaletteCommand("Retro-hunt the quarantine", "which past messages would it catch (h)",
                           self.action_retrohunt),
            PaletteCommand("Cancel the scan", "x", self.action_cancel),
            PaletteCommand("Test this rule / every rule", "a", self.action_scope),
            PaletteCommand("Use the scan cache or not", "n", self.action_toggle_cache),
            PaletteCommand("Choose corpora", "c", self.action_corpora),
        ]


def default_tag(scope: Scope) -> str:
    """``retro-<family>`` from the tested file's name (``wbstealer.yar`` -> ``retro-wbstealer``)."""
    if not scope.single:
        return "retro-hunt"
    stem = scope.paths[0].stem.lower().replace("_", "-")
    return f"retro-{stem}"[:64]
