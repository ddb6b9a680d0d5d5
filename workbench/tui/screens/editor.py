"""The rule editor: YARA with highlighting, live lint diagnostics, format and save."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Header, OptionList, Static, Tab, Tabs
from textual.widgets.option_list import Option

from workbench.rules.rulefile import (
    RuleFileError,
    append_rule,
    default_rule_path,
    set_rule_status,
    write_rule_file,
)
from workbench.tui.commands import PaletteCommand
from workbench.tui.render import SEVERITY_STYLES
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.screens.modals import ChoiceScreen, ConfirmScreen, DiffScreen, PromptScreen
from workbench.tui.widgets.yara_editor import Diagnostic, YaraEditor

if TYPE_CHECKING:
    from workbench.rules.findings import Finding, LintReport

LINT_DELAY = 0.3          # seconds of quiet typing before a lint starts
_generations = itertools.count(1)
_buffer_ids = itertools.count(1)
RELOAD, KEEP, DIFF = "Reload from disk (drop my edits)", "Keep mine (save overwrites the file)", "Show the diff"

STARTER = """\
rule NEW_Family_Detail
{
    meta:
        description = ""
    strings:
        $a = ""
    condition:
        $a
}
"""


def lint_rule_text(text: str, file: str, signatures: Path) -> LintReport:
    """The rules linter on one buffer (libyara, YARA-X and the house checks)."""
    from workbench.rules.lint import lint_text
    from workbench.rules.policy import Policy

    return lint_text(text, Path(file) if file else None, Policy.load(signatures))


def refresh_rule_metadata(text: str, path: Path | None, signatures: Path) -> tuple[str, str]:
    """(text, summary): fingerprint, version and modified as the release policy wants them.

    Compared with the file as the last release shipped it (rules/refresh.py): version goes
    one above the released rule's (once per release), never up for a rule not released yet,
    and modified becomes today when the rule's strings or condition changed. The summary
    says what changed ("" for nothing). Text that does not parse comes back unchanged.
    """
    from workbench.release.released import released_rules
    from workbench.rules.policy import Policy, PolicyError
    from workbench.rules.refresh import MetadataError, refresh_metadata

    try:
        policy = Policy.load(signatures)
    except PolicyError:
        policy = Policy()
    previous = released_rules(signatures, path) if path is not None else None
    # nothing released yet: every rule is new, so a changed one needs no version bump
    previous = {} if previous is None else previous
    try:
        refreshed = refresh_metadata(text, policy=policy, previous=previous)
    except MetadataError:
        return text, ""
    return refreshed.text, refreshed.summary()


def format_rule_text(text: str, path: Path | None, signatures: Path) -> tuple[str, str]:
    """The buffer with its metadata refreshed and laid out by YARA-X's formatter, and what was refreshed."""
    from workbench.rules.fmt import format_text

    refreshed, summary = refresh_rule_metadata(text, path, signatures)
    return str(format_text(refreshed)), summary


def read_disk(path: Path) -> str | None:
    """What the file holds now (None when it is gone or unreadable)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def unified_diff(path: Path, disk: str, mine: str) -> str:
    return "".join(difflib.unified_diff(disk.splitlines(keepends=True), mine.splitlines(keepends=True),
                                        f"{path.name} (on disk)", f"{path.name} (editor)"))


@dataclass
class RuleBuffer:
    """One tab of the editor: a file (or draft) and what it held when last read or written."""

    id: str
    path: Path | None
    text: str                  # the text while another tab is shown
    saved_text: str            # what the file held when loaded or saved: the disk baseline
    cursor: tuple[int, int] = (0, 0)
    note: str = ""             # what the last save or format refreshed
    waved: str | None = None   # the disk text the analyst declined to decide about (esc): not asked again

    @property
    def label(self) -> str:
        return self.path.name if self.path is not None else "draft"


class EditorScreen(WorkbenchScreen):
    """One rule file or draft at a time; diagnostics refresh as you type."""

    HELP = """\
## Rule editor

A YARA editor. Highlighting is the workbench's own YARA tokenizer. As you type,
the buffer is linted in the background (libyara and YARA-X compile it, then the
house checks run) and the findings appear on the right; their lines are shaded
in the editor. Choose a finding to jump to it.

`ctrl+s` saves into `signatures/rules/<category>/<family>.yar` (from the rule's
`category` and `family` metadata); a draft for a family that has a file already
can be appended to it. Saving also refreshes each edited rule's metadata as the
release policy requires: the true `fingerprint`, `version` one above the released
rule's, `modified` today; the status line and a notice say what changed (a same-day
edit keeps `modified`). `ctrl+l` formats the buffer with YARA-X's formatter (and
refreshes the metadata the same way).

Each file opens in a tab (`ctrl+pageup` / `ctrl+pagedown` move between tabs; the
palette closes one). When a file changed on disk since it was opened, the editor
reloads it if you have no edits, and otherwise asks (when the screen is shown and
before saving): reload from disk, keep yours, or see the diff.
`ctrl+r` sets the status of the rule under the cursor: drafts are `TESTING` and
never ship; a release ships `RELEASED` (and `NOISY`) rules.

`f4` tests the rule (the saved file, or the buffer as it is) against corpora.

Drafts open here from strings and bytes marked in the artifact view (`m`, then `d`).
"""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+l", "format", "Format"),
        Binding("f8", "next_finding", "Next finding"),
        Binding("ctrl+r", "set_status", "Status"),
        Binding("ctrl+n", "new", "New", show=False),
        Binding("ctrl+pagedown", "next_tab", "Next tab", show=False, priority=True),
        Binding("ctrl+pageup", "previous_tab", "Previous tab", show=False, priority=True),
        Binding("escape", "back", "Back", show=False),
    ]

    @dataclass(eq=False)
    class Linted(Message):
        generation: int
        report: LintReport | None
        note: str = ""

    @dataclass(eq=False)
    class Formatted(Message):
        generation: int
        text: str
        refreshed: str = ""         # what the metadata refresh changed ("" for nothing)

    @dataclass(eq=False)
    class Saved(Message):
        buffer_id: str
        path: Path
        appended: bool
        sent: str                   # the editor's text the save started from
        text: str                   # what the file holds now
        refreshed: str = ""         # what the metadata refresh changed ("" for nothing)

    def __init__(self) -> None:
        super().__init__()
        self.buffers: list[RuleBuffer] = [RuleBuffer(f"buffer-{next(_buffer_ids)}", None, STARTER, STARTER)]
        self.current = self.buffers[0]
        self.generation = 0                   # bumped on every edit
        self.linted_generation = -1           # the edit the findings shown belong to
        self.findings: list[Finding] = []
        self._lint_timer: Timer | None = None
        self._pending: list[tuple[str, Path | None, int, int]] = []
        self._asking = False                  # a changed-on-disk question is open
        self._ready = False                   # composed (is_mounted is still False in on_mount)

    @property
    def path(self) -> Path | None:
        return self.current.path

    @path.setter
    def path(self, value: Path | None) -> None:
        self.current.path = value

    @property
    def saved_text(self) -> str:
        return self.current.saved_text

    @saved_text.setter
    def saved_text(self, value: str) -> None:
        self.current.saved_text = value

    def compose(self) -> ComposeResult:
        yield Header()
        yield Tabs(*(Tab(b.label, id=b.id) for b in self.buffers), id="rule-tabs")
        with Horizontal(id="editor-body"):
            yield YaraEditor(STARTER, id="rule-text")
            with Vertical(id="lint-pane"):
                yield Static("Findings", id="lint-title")
                yield OptionList(id="findings")
        yield Static("", id="editor-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "rule editor"
        self._ready = True
        self._set_text(STARTER, None)
        pending, self._pending = self._pending, []
        for text, path, line, column in pending:
            self._replace(text, path, line, column)
        self.query_one(YaraEditor).focus()

    def on_screen_resume(self) -> None:
        self.check_disk()

    # -- what the app calls ------------------------------------------------------

    @property
    def dirty(self) -> bool:
        if not self.is_mounted:
            return False
        return self.query_one(YaraEditor).text != self.saved_text

    def _buffer_dirty(self, buffer: RuleBuffer) -> bool:
        if buffer is self.current:
            return self.dirty
        return buffer.text != buffer.saved_text

    def buffer(self) -> tuple[Path | None, str, bool]:
        """What the editor holds: (file or None for a draft, text, unsaved changes)."""
        if not self.is_mounted:
            return None, "", False
        return self.path, self.query_one(YaraEditor).text, self.dirty or self.path is None

    def load_file(self, path: Path, *, line: int = 0, column: int = 0) -> None:
        """Open ``path`` in a tab (its own if it is open already, with any edits kept)."""
        if self._ready:
            for buffer in self.buffers:
                if buffer.path is not None and buffer.path.resolve() == path.resolve():
                    self._activate(buffer)
                    if line:
                        self.go_to(line, column)
                    return
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            self.notify(f"cannot open {path}: {exc}", severity="error")
            return
        self._replace(text, path, line, column)

    def load_draft(self, text: str) -> None:
        self._replace(text, None)

    def go_to(self, line: int, column: int = 0) -> None:
        """Put the cursor on ``line`` (1-based) and ``column`` (1-based; 0 for the start)."""
        editor = self.query_one(YaraEditor)
        editor.move_cursor((max(0, line - 1), max(0, column - 1)), center=True)
        editor.focus()

    def _replace(self, text: str, path: Path | None, line: int = 0, column: int = 0) -> None:
        """Show ``text`` in a new tab; the untouched starter tab is reused."""
        if not self._ready:
            self._pending.append((text, path, line, column))
            return
        unused = self.current.path is None and not self.dirty and \
            self.query_one(YaraEditor).text == STARTER
        if not unused:
            self._stash()
            buffer = RuleBuffer(f"buffer-{next(_buffer_ids)}", path, text, text)
            self.buffers.append(buffer)
            self.current = buffer
            tabs = self.query_one("#rule-tabs", Tabs)
            with tabs.prevent(Tabs.TabActivated):
                tabs.add_tab(Tab(buffer.label, id=buffer.id))
                tabs.active = buffer.id
        self._set_text(text, path)
        if line:
            self.go_to(line, column)

    def _stash(self) -> None:
        """Keep the shown buffer's text and cursor in its RuleBuffer before another tab shows."""
        editor = self.query_one(YaraEditor)
        self.current.text = editor.text
        self.current.cursor = editor.cursor_location

    def _activate(self, buffer: RuleBuffer) -> None:
        if buffer is self.current:
            return
        self._stash()
        self.current = buffer
        tabs = self.query_one("#rule-tabs", Tabs)
        if tabs.active != buffer.id:
            with tabs.prevent(Tabs.TabActivated):
                tabs.active = buffer.id
        editor = self.query_one(YaraEditor)
        editor.load_text(buffer.text)
        editor.move_cursor(buffer.cursor)
        editor.diagnostics = []
        self._update_status()
        self.schedule_lint(immediately=True)
        self.check_disk()

    @on(Tabs.TabActivated, "#rule-tabs")
    def _tab_chosen(self, event: Tabs.TabActivated) -> None:
        buffer = next((b for b in self.buffers if b.id == event.tab.id), None)
        if buffer is not None:
            self._activate(buffer)

    def action_next_tab(self) -> None:
        self._activate(self.buffers[(self.buffers.index(self.current) + 1) % len(self.buffers)])

    def action_previous_tab(self) -> None:
        self._activate(self.buffers[(self.buffers.index(self.current) - 1) % len(self.buffers)])

    def action_close_tab(self) -> None:
        buffer = self.current

        def close(yes: bool | None) -> None:
            if not yes:
                return
            index = self.buffers.index(buffer)
            self.buffers.remove(buffer)
            tabs = self.query_one("#rule-tabs", Tabs)
            if not self.buffers:
                fresh = RuleBuffer(f"buffer-{next(_buffer_ids)}", None, STARTER, STARTER)
                self.buffers.append(fresh)
                with tabs.prevent(Tabs.TabActivated):
                    tabs.add_tab(Tab(fresh.label, id=fresh.id))
            following = self.buffers[min(index, len(self.buffers) - 1)]
            with tabs.prevent(Tabs.TabActivated):
                tabs.remove_tab(buffer.id)
            self.current = following
            # (no stash: the closed buffer's text goes)
            editor = self.query_one(YaraEditor)
            with tabs.prevent(Tabs.TabActivated):
                tabs.active = following.id
            editor.load_text(following.text)
            editor.move_cursor(following.cursor)
            self._update_status()
            self.schedule_lint(immediately=True)

        if self.dirty or (buffer.path is None and self.query_one(YaraEditor).text != STARTER):
            self.app.push_screen(ConfirmScreen(f"Close {buffer.label} and drop its unsaved changes?",
                                               yes="Close", no="Keep editing"), close)
        else:
            close(True)

    def _set_text(self, text: str, path: Path | None) -> None:
        self.current.path = path
        # a draft counts as unsaved from the start; the empty skeleton does not
        self.current.saved_text = text if path is not None or text == STARTER else ""
        self.current.note = ""
        editor = self.query_one(YaraEditor)
        editor.load_text(text)
        editor.diagnostics = []
        self._update_status()
        self.schedule_lint(immediately=True)

    # -- changes made on disk ---------------------------------------------------------

    def check_disk(self, then: Callable[[], object] | None = None) -> None:
        """Compare the shown file with the disk: reload it if it has no edits, else ask.

        ``then`` (for a save) runs once the analyst chose to keep their text, or at once
        when the file did not change.
        """
        buffer = self.current
        if not self.is_mounted or buffer.path is None or self._asking:
            return
        disk = read_disk(buffer.path)
        if disk is None or disk == buffer.saved_text:
            if then is not None:
                then()
            return
        if then is None and disk == buffer.waved:
            return                  # asked already (and waved away); the save asks again
        if not self.dirty:
            row, column = self.query_one(YaraEditor).cursor_location
            self._set_text(disk, buffer.path)
            self.query_one(YaraEditor).move_cursor((min(row, disk.count("\n")), column))
            self.notify(f"{buffer.label} changed on disk: reloaded", timeout=4)
            return
        self._ask_about_disk(buffer, disk, then)

    def _ask_about_disk(self, buffer: RuleBuffer, disk: str, then: Callable[[], object] | None) -> None:
        assert buffer.path is not None
        self._asking = True
        path = buffer.path

        def answered(choice: str | None) -> None:
            self._asking = False
            if buffer is not self.current:
                return
            if choice == RELOAD:
                self._set_text(disk, path)
                self.notify(f"reloaded {buffer.label} from disk", timeout=3)
            elif choice == KEEP:
                buffer.saved_text = disk          # acknowledged: the next save overwrites it
                self._update_status()
                if then is not None:
                    then()
            elif choice is None:
                buffer.waved = disk
            elif choice == DIFF:
                def after_diff(_: None) -> None:
                    self._ask_about_disk(buffer, disk, then)

                self._asking = True
                self.app.push_screen(DiffScreen(f"{self._relative(path)}: disk → editor",
                                                unified_diff(path, disk, self.query_one(YaraEditor).text)),
                                     after_diff)

        self.app.push_screen(ChoiceScreen(f"{self._relative(path)} changed on disk since you opened it",
                                          [RELOAD, KEEP, DIFF],
                                          hint="your edits are still in the editor"), answered)

    # -- lint -------------------------------------------------------------------------

    @on(YaraEditor.Changed, "#rule-text")
    def _changed(self) -> None:
        self.schedule_lint()
        self._update_status()

    def schedule_lint(self, *, immediately: bool = False) -> None:
        self.generation = next(_generations)
        if self._lint_timer is not None:
            self._lint_timer.stop()
        self._lint_timer = self.set_timer(0 if immediately else LINT_DELAY, self._lint_now)

    def _lint_now(self) -> None:
        text = self.query_one(YaraEditor).text
        self.query_one("#lint-title", Static).update("Findings · linting…")
        self.run_lint(text, self._display_name(), self.generation)

    def _display_name(self) -> str:
        if self.path is None:
            return "draft.yar"
        try:
            return str(self.path.relative_to(self.workbench.workspace.signatures))
        except ValueError:
            return str(self.path)

    @work(thread=True, exclusive=True, group="lint", exit_on_error=False,
          description="lint the rule")
    def run_lint(self, text: str, file: str, generation: int) -> None:
        try:
            report = lint_rule_text(text, file, self.workbench.workspace.signatures)
        except ModuleNotFoundError as exc:
            self.post_message(self.Linted(generation, None,
                                          f"the rule linter is not available ({exc.name})"))
            return
        self.post_message(self.Linted(generation, report))

    @on(Linted)
    def _linted(self, event: Linted) -> None:
        if event.generation != self.generation:
            return                     # the text changed since: a newer lint is coming
        self.linted_generation = event.generation
        title = self.query_one("#lint-title", Static)
        findings = self.query_one("#findings", OptionList)
        findings.clear_options()
        editor = self.query_one(YaraEditor)
        if event.report is None:
            self.findings = []
            editor.diagnostics = []
            title.update(f"Findings · {event.note}")
            return
        self.findings = sorted(event.report.findings, key=lambda f: (f.line, f.column, f.id))
        editor.diagnostics = [Diagnostic(f.line, f.severity) for f in self.findings]
        for n, f in enumerate(self.findings):
            label = Text()
            label.append(f"{f.line}:{f.column} " if f.line else "file ", style="dim")
            label.append(f.severity, style=SEVERITY_STYLES.get(f.severity, ""))
            label.append(f" {f.id}\n", style="dim")
            label.append(f.message)
            if f.hint:
                label.append(f"\n→ {f.hint}", style="italic dim")
            if n:
                findings.add_option(None)          # a separator line between findings
            findings.add_option(Option(label, id=f"finding-{n}"))
        errors = sum(1 for f in self.findings if f.severity == "error")
        warnings = sum(1 for f in self.findings if f.severity == "warning")
        if not self.findings:
            title.update(Text("Findings · ✓ clean", style="green"))
        else:
            title.update(f"Findings · {errors} error{'s' * (errors != 1)}, "
                         f"{warnings} warning{'s' * (warnings != 1)}")

    @on(OptionList.OptionSelected, "#findings")
    def _finding_chosen(self, event: OptionList.OptionSelected) -> None:
        self._jump(self.findings[int((event.option.id or "finding-0").removeprefix("finding-"))])

    def _jump(self, finding: Finding) -> None:
        self.go_to(finding.line, finding.column)

    def action_next_finding(self) -> None:
        if not self.findings:
            return
        row = self.query_one(YaraEditor).cursor_location[0] + 1
        after = [f for f in self.findings if f.line > row]
        self._jump(after[0] if after else self.findings[0])

    # -- format ---------------------------------------------------------------------------

    def action_format(self) -> None:
        self.run_format(self.query_one(YaraEditor).text, self.path, self.generation)

    def action_refresh_metadata(self) -> None:
        self.run_refresh(self.query_one(YaraEditor).text, self.path, self.generation)

    @work(thread=True, exclusive=True, group="format", exit_on_error=False,
          description="format the rule")
    def run_format(self, text: str, path: Path | None, generation: int) -> None:
        formatted, refreshed = format_rule_text(text, path, self.workbench.workspace.signatures)
        self.post_message(self.Formatted(generation, formatted, refreshed))

    @work(thread=True, exclusive=True, group="format", exit_on_error=False,
          description="refresh the rule's metadata")
    def run_refresh(self, text: str, path: Path | None, generation: int) -> None:
        refreshed, summary = refresh_rule_metadata(text, path, self.workbench.workspace.signatures)
        self.post_message(self.Formatted(generation, refreshed, summary))

    @on(Formatted)
    def _formatted(self, event: Formatted) -> None:
        editor = self.query_one(YaraEditor)
        if event.generation != self.generation:
            self.notify("the rule changed meanwhile; press ctrl+l again", severity="warning")
            return
        if event.text == editor.text:
            self.notify("already formatted; metadata up to date", timeout=2)
            return
        self._put_text(event.text)
        if event.refreshed:
            self.current.note = "refreshed " + event.refreshed.replace("\n", "; ")
            self.notify(event.refreshed, title="Metadata refreshed (ctrl+s saves)", timeout=8)
        self._update_status()

    def _put_text(self, text: str) -> None:
        """Replace the buffer's text as an edit (undo works), keeping the cursor where it was."""
        editor = self.query_one(YaraEditor)
        row, column = editor.cursor_location
        editor.replace(text, (0, 0), editor.document.end)
        editor.move_cursor((min(row, editor.document.line_count - 1), column))

    # -- save ----------------------------------------------------------------------------

    def action_save(self) -> None:
        if self.path is not None:
            buffer = self.current
            # a change made on disk since the file was read is never overwritten unasked
            self.check_disk(then=lambda: self.run_save(
                self.query_one(YaraEditor).text, buffer.id, buffer.path, append=False))
            return
        text = self.query_one(YaraEditor).text
        buffer_id = self.current.id
        signatures = self.workbench.workspace.signatures
        suggested = default_rule_path(signatures, text)

        def chosen(answer: str | None) -> None:
            if not answer:
                return
            path = Path(answer)
            if not path.is_absolute():
                path = signatures / path
            if path.suffix not in (".yar", ".yara"):
                self.notify("rule files end in .yar or .yara", severity="error")
                return
            if path.exists():
                def answered(append: bool | None) -> None:
                    if append:
                        self.run_save(text, buffer_id, path, append=True)

                self.app.push_screen(
                    ConfirmScreen(f"{path.name} exists. Append this rule to it?",
                                  yes="Append", no="Cancel"), answered)
            else:
                self.run_save(text, buffer_id, path, append=False)

        self.app.push_screen(PromptScreen(
            "Save the rule as (relative to the signature repository)",
            str(suggested.relative_to(signatures)),
            hint="rules/<category>/<family>.yar · enter saves · esc cancels"), chosen)

    @work(thread=True, exclusive=True, group="save", exit_on_error=False,
          description="save the rule")
    def run_save(self, text: str, buffer_id: str, path: Path | None, *, append: bool) -> None:
        assert path is not None
        whole = text
        if append:
            try:
                whole = append_rule(path, text).text
            except RuleFileError as exc:     # a taken name, a file or a rule that does not parse
                self.app.call_from_thread(self.notify, f"not appended: {exc}", severity="error",
                                          timeout=8)
                return
        refreshed, summary = refresh_rule_metadata(whole, path, self.workbench.workspace.signatures)
        if not append or refreshed != whole:
            write_rule_file(path, refreshed)
        self.post_message(self.Saved(buffer_id, path, append, text, refreshed, summary))

    @on(Saved)
    def _saved(self, event: Saved) -> None:
        buffer = next((b for b in self.buffers if b.id == event.buffer_id), None)
        if buffer is None:
            return                              # its tab was closed meanwhile
        errors = sum(1 for f in self.findings if f.severity == "error")
        where = self._relative(event.path)
        if buffer is not self.current:
            # saved from another tab (the save took a while): update that buffer quietly
            buffer.path, buffer.saved_text = event.path, event.text
            if buffer.text == event.sent:
                buffer.text = event.text
            self.notify(f"saved {where}", timeout=4)
        elif event.appended:
            # the buffer now lives inside a bigger file: edit that file from here on
            self._set_text(event.text, event.path)
            self.notify(f"appended to {where}", timeout=4)
        else:
            editor = self.query_one(YaraEditor)
            self.path = event.path
            self.saved_text = event.text
            if editor.text == event.sent and event.text != event.sent:
                self._put_text(event.text)          # the refreshed metadata, into the buffer
            self.notify(f"saved {where}" + (f" with {errors} lint error(s)" if errors else ""),
                        severity="warning" if errors else "information", timeout=4)
        self._retitle(buffer)
        buffer.note = "refreshed " + event.refreshed.replace("\n", "; ") if event.refreshed else ""
        if event.refreshed:
            self.notify(event.refreshed, title="Metadata refreshed", timeout=8)
        self._update_status()

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.workbench.workspace.signatures))
        except ValueError:
            return str(path)

    # -- the rest -------------------------------------------------------------------------

    def _update_status(self) -> None:
        name = self._relative(self.path) if self.path else "unsaved draft"
        flag = " ●" if self.dirty else ""
        note = f" · {self.current.note}" if self.current.note else ""
        self.query_one("#editor-status", Static).update(Text(f" {name}{flag}{note}"))
        self._retitle(self.current)

    def _retitle(self, buffer: RuleBuffer) -> None:
        label = buffer.label + (" ●" if self._buffer_dirty(buffer) else "")
        try:
            tab = self.query_one("#rule-tabs", Tabs).query_one(f"#{buffer.id}", Tab)
        except NoMatches:          # the tab is being removed
            return
        if str(tab.label) != label:
            tab.label = label

    def action_new(self) -> None:
        self._replace(STARTER, None)

    def action_set_status(self) -> None:
        """Promote (or demote) the rule under the cursor: TESTING, RELEASED, NOISY ..."""
        from workbench.rules.policy import Policy, PolicyError

        try:
            statuses = list(Policy.load(self.workbench.workspace.signatures).statuses)
        except PolicyError as exc:
            self.notify(f"policy: {exc}", severity="error")
            return
        editor = self.query_one(YaraEditor)
        line = editor.cursor_location[0] + 1

        def chosen(status: str | None) -> None:
            if not status:
                return
            changed = set_rule_status(editor.text, status, line)
            if changed is None:
                self.notify("no rule with a status line here", severity="warning")
                return
            text, rule = changed
            self._put_text(text)
            self.notify(f"{rule}: status {status} (ctrl+s saves)", timeout=3)

        self.app.push_screen(ChoiceScreen("Status of the rule under the cursor", statuses,
                                          hint="TESTING never ships; RELEASED and NOISY ship"),
                             chosen)

    def action_back(self) -> None:
        self.app.switch_mode("quarantine")

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Save rule", "refreshes fingerprint, version, modified (ctrl+s)",
                           self.action_save),
            PaletteCommand("Refresh rule metadata", "fingerprint, version, modified as the release "
                           "policy requires", self.action_refresh_metadata),
            PaletteCommand("Format rule", "YARA-X formatter, metadata refreshed (ctrl+l)", self.action_format),
            PaletteCommand("Next tab", "ctrl+pagedown", self.action_next_tab),
            PaletteCommand("Previous tab", "ctrl+pageup", self.action_previous_tab),
            PaletteCommand("Close tab", "unsaved edits are asked about", self.action_close_tab),
            PaletteCommand("Check for changes on disk", "reload, keep mine or see the diff",
                           self.check_disk),
            PaletteCommand("Lint now", "run the linter on the buffer",
                           lambda: self.schedule_lint(immediately=True)),
            PaletteCommand("Next finding", "f8", self.action_next_finding),
            PaletteCommand("New rule", "start from the house skeleton (ctrl+n)", self.action_new),
            PaletteCommand("Set rule status", "TESTING, RELEASED, NOISY ... (ctrl+r)",
                           self.action_set_status),
            PaletteCommand("Test this rule", "against the corpora (f4)",
                           lambda: self.app.switch_mode("test")),
        ]
