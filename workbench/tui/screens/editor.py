"""The rule editor: YARA with highlighting, live lint diagnostics, format and save."""

from __future__ import annotations

import itertools
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
from textual.widgets import Footer, Header, OptionList, Static
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
from workbench.tui.screens.modals import ChoiceScreen, ConfirmScreen, PromptScreen
from workbench.tui.widgets.yara_editor import Diagnostic, YaraEditor

if TYPE_CHECKING:
    from workbench.rules.findings import Finding, LintReport

LINT_DELAY = 0.3          # seconds of quiet typing before a lint starts
_generations = itertools.count(1)

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


def format_rule_text(text: str) -> str:
    from workbench.rules.fmt import format_text

    return str(format_text(text))


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
can be appended to it. `ctrl+l` formats the buffer with YARA-X's formatter.
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

    @dataclass(eq=False)
    class Saved(Message):
        path: Path
        appended: bool
        text: str   # what the file holds now

    def __init__(self) -> None:
        super().__init__()
        self.path: Path | None = None
        self.generation = 0                   # bumped on every edit
        self.linted_generation = -1           # the edit the findings shown belong to
        self.saved_text = STARTER
        self.findings: list[Finding] = []
        self._lint_timer: Timer | None = None
        self._pending: tuple[str, Path | None, int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="editor-body"):
            yield YaraEditor(STARTER, id="rule-text")
            with Vertical(id="lint-pane"):
                yield Static("Findings", id="lint-title")
                yield OptionList(id="findings")
        yield Static("", id="editor-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "rule editor"
        if self._pending is not None:
            text, path, line, column = self._pending
            self._pending = None
            self._set_text(text, path)
            if line:
                self.go_to(line, column)
        else:
            self._set_text(STARTER, None)
        self.query_one(YaraEditor).focus()

    # -- what the app calls ------------------------------------------------------

    @property
    def dirty(self) -> bool:
        if not self.is_mounted:
            return False
        return self.query_one(YaraEditor).text != self.saved_text

    def buffer(self) -> tuple[Path | None, str, bool]:
        """What the editor holds: (file or None for a draft, text, unsaved changes)."""
        if not self.is_mounted:
            return None, "", False
        return self.path, self.query_one(YaraEditor).text, self.dirty or self.path is None

    def load_file(self, path: Path, *, line: int = 0, column: int = 0) -> None:
        if self.is_mounted and self.path is not None and path.resolve() == self.path.resolve():
            if line:                     # already open (maybe with edits): just go there
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
        if not self.is_mounted:
            self._pending = (text, path, line, column)
            return
        if not self.dirty:
            self._set_text(text, path)
            if line:
                self.go_to(line, column)
            return

        def answer(replace: bool | None) -> None:
            if replace:
                self._set_text(text, path)
                if line:
                    self.go_to(line, column)

        self.app.push_screen(ConfirmScreen("The editor has unsaved changes. Replace them?",
                                           yes="Replace", no="Keep editing"), answer)

    def _set_text(self, text: str, path: Path | None) -> None:
        self.path = path
        # a draft counts as unsaved from the start; the empty skeleton does not
        self.saved_text = text if path is not None or text == STARTER else ""
        editor = self.query_one(YaraEditor)
        editor.load_text(text)
        editor.diagnostics = []
        self._update_status()
        self.schedule_lint(immediately=True)

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
        self.run_format(self.query_one(YaraEditor).text, self.generation)

    @work(thread=True, exclusive=True, group="format", exit_on_error=False,
          description="format the rule")
    def run_format(self, text: str, generation: int) -> None:
        self.post_message(self.Formatted(generation, format_rule_text(text)))

    @on(Formatted)
    def _formatted(self, event: Formatted) -> None:
        editor = self.query_one(YaraEditor)
        if event.generation != self.generation:
            self.notify("the rule changed while formatting; press ctrl+l again", severity="warning")
            return
        if event.text == editor.text:
            self.notify("already formatted", timeout=2)
            return
        row, column = editor.cursor_location
        editor.replace(event.text, (0, 0), editor.document.end)
        lines = editor.document.line_count
        editor.move_cursor((min(row, lines - 1), column))

    # -- save ----------------------------------------------------------------------------

    def action_save(self) -> None:
        text = self.query_one(YaraEditor).text
        if self.path is not None:
            self.run_save(text, self.path, append=False)
            return
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
                        self.run_save(text, path, append=True)

                self.app.push_screen(
                    ConfirmScreen(f"{path.name} exists. Append this rule to it?",
                                  yes="Append", no="Cancel"), answered)
            else:
                self.run_save(text, path, append=False)

        self.app.push_screen(PromptScreen(
            "Save the rule as (relative to the signature repository)",
            str(suggested.relative_to(signatures)),
            hint="rules/<category>/<family>.yar · enter saves · esc cancels"), chosen)

    @work(thread=True, exclusive=True, group="save", exit_on_error=False,
          description="save the rule")
    def run_save(self, text: str, path: Path, *, append: bool) -> None:
        if append:
            try:
                text = append_rule(path, text).text
            except RuleFileError as exc:     # a taken name, a file or a rule that does not parse
                self.app.call_from_thread(self.notify, f"not appended: {exc}", severity="error",
                                          timeout=8)
                return
        else:
            write_rule_file(path, text)
        self.post_message(self.Saved(path, append, text))

    @on(Saved)
    def _saved(self, event: Saved) -> None:
        errors = sum(1 for f in self.findings if f.severity == "error")
        where = self._relative(event.path)
        if event.appended:
            # the buffer now lives inside a bigger file: edit that file from here on
            self._set_text(event.text, event.path)
            self.notify(f"appended to {where}", timeout=4)
        else:
            self.path = event.path
            self.saved_text = event.text        # typing since the save started stays unsaved
            self.notify(f"saved {where}" + (f" with {errors} lint error(s)" if errors else ""),
                        severity="warning" if errors else "information", timeout=4)
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
        self.query_one("#editor-status", Static).update(f" {name}{flag}")

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
            row, column = editor.cursor_location
            editor.replace(text, (0, 0), editor.document.end)
            editor.move_cursor((min(row, editor.document.line_count - 1), column))
            self.notify(f"{rule}: status {status} (ctrl+s saves)", timeout=3)

        self.app.push_screen(ChoiceScreen("Status of the rule under the cursor", statuses,
                                          hint="TESTING never ships; RELEASED and NOISY ship"),
                             chosen)

    def action_back(self) -> None:
        self.app.switch_mode("quarantine")

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Save rule", "ctrl+s", self.action_save),
            PaletteCommand("Format rule", "YARA-X formatter (ctrl+l)", self.action_format),
            PaletteCommand("Lint now", "run the linter on the buffer",
                           lambda: self.schedule_lint(immediately=True)),
            PaletteCommand("Next finding", "f8", self.action_next_finding),
            PaletteCommand("New rule", "start from the house skeleton (ctrl+n)", self.action_new),
            PaletteCommand("Set rule status", "TESTING, RELEASED, NOISY ... (ctrl+r)",
                           self.action_set_status),
            PaletteCommand("Test this rule", "against the corpora (f4)",
                           lambda: self.app.switch_mode("test")),
        ]
