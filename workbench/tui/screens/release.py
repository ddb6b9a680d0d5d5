"""The release screen: what changed since the last release, validation, commit, release, publish."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from workbench.release.release_store import Release, ReleaseNotFound, tag_name
from workbench.release.worktree import (
    SignaturesView,
    commit_changes,
    commit_message,
    file_diff,
    read_signatures,
    rule_path,
)
from workbench.tui.commands import PaletteCommand
from workbench.tui.release_rows import (
    change_cells,
    diff_text,
    finding_cells,
    finding_text,
    release_cells,
    release_text,
    status_text,
)
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.screens.modals import ConfirmScreen, PromptScreen
from workbench.tui.widgets.list_table import ListTable
from workbench.tui.widgets.virtual_table import Column, VirtualTable

if TYPE_CHECKING:
    from workbench.release.service import ReleaseOutcome
    from workbench.release.validate import ValidationReport

TABS = {"changes": "changes", "validation": "findings", "releases": "releases"}   # tab -> its table


CHANGE_COLUMNS = (Column("kind", "Change", 8), Column("rule", "Rule", 0, 12, weight=3),
                  Column("file", "File", 0, 10, weight=2), Column("version", "Version", 9),
                  Column("status", "Status", 22), Column("git", "Git", 10))
FINDING_COLUMNS = (Column("severity", "Severity", 8), Column("id", "Check", 5),
                   Column("where", "Where", 0, 10, weight=2), Column("rule", "Rule", 0, 10, weight=2),
                   Column("message", "Message", 0, 12, weight=4))
RELEASE_COLUMNS = (Column("serial", "Serial", 6), Column("created", "Created (UTC)", 16),
                   Column("commit", "Commit", 10), Column("rules", "Rules", 5),
                   Column("published", "Pub.", 4), Column("message", "Message", 0, 8))


class ReleaseScreen(WorkbenchScreen):
    """Reads the repository in a worker; commit, release and publish are workers over the core."""

    HELP = """\
## Release

**Changes** lists what the next release would carry compared with the last one:
rules added, modified (strings or condition changed), removed, status changes, and
other files changed since; the Git column says what is not committed yet. The right
pane shows the diff of the highlighted file since the last release.

**v** validates the whole repository (both engines, the corpora, budgets, version
bumps); **enter** on a finding opens the rule in the editor at its line.

**c** commits every change in the signatures folder with a message, after checking
the changed rules as the pre-commit hook does (an error refuses the commit).
**R** cuts a release (validation, bundle, changelog, tag; refused when something is
uncommitted or validation fails) and **p** publishes the newest release (or the one
highlighted under Releases) to the update repository the towers pull from. With no
update repository yet, **p** explains the keys it needs and sets them up on yes (the
root key then belongs offline).

**b** under Releases rolls back to the highlighted release: after asking, its content
is released again under a new serial (`workbench release revert`; the branch is not
touched), which **p** then publishes. Towers only move to higher serials, so a
rollback is a new release with older content.
"""

    BINDINGS = [
        Binding("v", "validate", "Validate"),
        Binding("c", "commit", "Commit"),
        Binding("R", "release", "Release"),
        Binding("p", "publish", "Publish"),
        Binding("b", "revert", "Revert to this release"),
        Binding("r", "refresh", "Refresh"),
        Binding("enter", "open", "Open in editor", show=False),
        *(Binding(str(n), f"tab('{tab}')", show=False) for n, tab in enumerate(TABS, 1)),
    ]

    @dataclass(eq=False)
    class Read(Message):
        view: SignaturesView

    @dataclass(eq=False)
    class Diffed(Message):
        file: str
        text: str

    @dataclass(eq=False)
    class Validated(Message):
        report: ValidationReport
        why: str

    @dataclass(eq=False)
    class Done(Message):
        """An operation finished: say what happened, then read the repository again."""

        text: str
        error: bool = False
        tab: str = ""   # show this tab afterwards
        serial: int | None = None   # highlight this release once read (p then publishes it)

    @dataclass(eq=False)
    class RevertPreviewed(Message):
        """What reverting would do (a dry run): the serial it would use and the rule changes."""

        outcome: ReleaseOutcome

    class Idle(Message):
        """A repository operation ended, however it ended (posted last, from ``finally``)."""

    @dataclass(eq=False)
    class Step(Message):
        text: str

    def __init__(self) -> None:
        super().__init__()
        self.view: SignaturesView | None = None
        self.validation: ValidationReport | None = None
        self.busy = ""
        self.reading = False                       # a read of the repository is under way
        self.after_read: Callable[[], None] | None = None   # a key pressed meanwhile, run then
        self.select_serial: int | None = None     # highlight this release after the next read

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("reading the signature repository…", style="dim"), id="release-status")
        with Vertical(id="release-body"):
            with TabbedContent(id="release-tabs"):
                with TabPane("Changes", id="tab-changes"):
                    yield ListTable(CHANGE_COLUMNS, change_cells, empty="nothing changed since the last release",
                                    id="changes")
                with TabPane("Validation", id="tab-validation"):
                    yield ListTable(FINDING_COLUMNS, finding_cells, empty="v validates the repository",
                                    id="findings")
                with TabPane("Releases", id="tab-releases"):
                    yield ListTable(RELEASE_COLUMNS, release_cells, empty="no releases yet: R cuts one",
                                    id="releases")
            with VerticalScroll(id="release-detail-pane"):
                yield Static("", id="release-detail", classes="report-text")
        yield Static("", id="release-log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "release"
        self.query_one("#changes", ListTable).focus()

    def on_screen_resume(self) -> None:
        if self.is_mounted and not self.busy:
            self.refresh_view()

    # -- reading ----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        self.reading = True
        self.read_repository()

    def _ready(self, action: Callable[[], None]) -> bool:
        """Whether ``action`` (a key's) can act on the view now. While a commit, release or
        publish runs, and while the repository is read again after one, the view is the old
        one: the action waits (said, when busy) and runs on the new view. A key pressed as
        soon as git shows the commit used to be dropped with "still busy"."""
        if self.busy or self.view is None or self.reading:
            if self.busy:
                self.notify(f"{self.busy}: the key acts when that is done", timeout=3)
            self.after_read = action
            return False
        return True

    def _run_waiting(self) -> None:
        action, self.after_read = self.after_read, None
        if action is not None:
            action()

    @on(Worker.StateChanged)
    def _read_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "read" and event.state == WorkerState.ERROR:
            self.reading = False           # (the base screen shows the error) keys act again
            self.after_read = None

    @work(thread=True, exclusive=True, group="read", exit_on_error=False,
          description="read the signature repository")
    def read_repository(self) -> None:
        self.post_message(self.Read(read_signatures(self.workbench.workspace)))

    @on(Read)
    def _read(self, event: Read) -> None:
        view = self.view = event.view
        self.reading = False
        self.query_one("#release-status", Static).update(status_text(view))
        self.query_one("#changes", ListTable).show(view.changes, keep_cursor=True)
        releases = self.query_one("#releases", ListTable)
        releases.show([(r, r.serial in view.published) for r in view.releases], keep_cursor=True)
        if self.select_serial is not None:
            # the cursor kept its row, which now holds an older release: follow the new one
            row = next((i for i, (r, _) in enumerate(releases.items) if r.serial == self.select_serial), None)
            if row is not None:
                releases.cursor_row = row
            self.select_serial = None
        tabs = self.query_one("#release-tabs", TabbedContent)
        uncommitted = sum(1 for c in view.changes if c.git)
        tabs.get_tab("tab-changes").label = Text.assemble(
            f"Changes {len(view.changes)}", (f" · {uncommitted} uncommitted", "yellow") if uncommitted else "")
        tabs.get_tab("tab-releases").label = f"Releases {len(view.releases)}"
        self._explain()
        self._run_waiting()

    def _explain(self) -> None:
        """The right pane follows what is highlighted in the active tab."""
        tab = self.query_one("#release-tabs", TabbedContent).active
        if tab == "tab-changes":
            change = self.query_one("#changes", ListTable).current()
            if change is None:
                self._detail(Text("nothing changed since the last release", style="dim"))
            elif self.view is not None:
                self.diff(change.file, self.view.base)
        elif tab == "tab-validation":
            finding = self.query_one("#findings", ListTable).current()
            self._detail(finding_text(finding, self.validation))
        elif tab == "tab-releases":
            item = self.query_one("#releases", ListTable).current()
            self._detail(release_text(item[0], item[1]) if item else Text("no releases yet", style="dim"))

    def _detail(self, content: Text) -> None:
        # a diff keeps its lines and scrolls sideways; prose wraps to the pane
        self.query_one("#release-detail", Static).set_class(bool(content.no_wrap), "-diff")
        self.query_one("#release-detail", Static).update(content)

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False, description="diff the file")
    def diff(self, file: str, base: str) -> None:
        self.post_message(self.Diffed(file, file_diff(self.workbench.workspace, file, base)))

    @on(Diffed)
    def _diffed(self, event: Diffed) -> None:
        change = self.query_one("#changes", ListTable).current()
        if change is not None and change.file == event.file:
            self._detail(diff_text(event.text))

    @on(VirtualTable.Highlighted)
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        self._explain()

    @on(TabbedContent.TabActivated, "#release-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = (event.pane.id or "").removeprefix("tab-")
        self.query_one(f"#{TABS[tab]}", ListTable).focus()
        self._explain()

    def action_tab(self, tab: str) -> None:
        self.query_one("#release-tabs", TabbedContent).active = f"tab-{tab}"

    def action_refresh(self) -> None:
        self.refresh_view()

    # -- opening in the editor -------------------------------------------------------------

    def action_open(self) -> None:
        tab = self.query_one("#release-tabs", TabbedContent).active
        workspace = self.workbench.workspace
        if tab == "tab-validation":
            finding = self.query_one("#findings", ListTable).current()
            if finding is not None and finding.file:
                self.workbench.open_rule_file(rule_path(workspace, finding.file), line=finding.line,
                                              column=finding.column)
        elif tab == "tab-changes":
            change = self.query_one("#changes", ListTable).current()
            if change is None:
                return
            path = rule_path(workspace, change.file)
            if change.kind == "removed" or not path.is_file() or path.suffix not in (".yar", ".yara"):
                self.notify(f"{change.file} is not a rule file in the working tree", severity="warning")
                return
            self.workbench.open_rule_file(path, line=change.line)

    @on(VirtualTable.Selected, "#changes, #findings")
    def _selected(self) -> None:
        self.action_open()

    # -- validate, commit, release, publish -------------------------------------------------

    def _begin(self, what: str) -> bool:
        if self.busy:
            self.notify(f"still busy: {self.busy}", severity="warning")
            return False
        self.busy = what
        self._log(f"{what}…")
        return True

    def _log(self, text: str, style: str = "") -> None:
        self.query_one("#release-log", Static).update(Text(text, style=style))

    def action_validate(self) -> None:
        if self._ready(self.action_validate) and self._begin("validating"):
            self.run_validate()

    @work(thread=True, exclusive=True, group="release", exit_on_error=False,
          description="validate the signatures")
    def run_validate(self) -> None:
        from workbench.release.validate import validate

        try:
            report = validate(self.workbench.workspace.signatures, progress=self._stepper("validating"))
        finally:
            self.post_message(self.Idle())
        self.post_message(self.Validated(report, "validation"))

    def _stepper(self, what: str) -> Callable[[str], None]:
        """A progress callback for the core (called from a worker) that shows each step."""
        def step(text: str) -> None:
            self.post_message(self.Step(f"{what}: {text}"))
        return step

    @on(Idle)
    def _idle(self) -> None:
        # a worker's Done (which reads the repository again) comes before its Idle, so a
        # key that waited for the work waits on for the new view; otherwise it acts now
        self.busy = ""
        if not self.reading:
            self._run_waiting()

    @on(Step)
    def _step(self, event: Step) -> None:
        self._log(event.text)

    @on(Validated)
    def _validated(self, event: Validated) -> None:
        report = self.validation = event.report
        findings = self.query_one("#findings", ListTable)
        findings.show(report.findings)
        tabs = self.query_one("#release-tabs", TabbedContent)
        tabs.get_tab("tab-validation").label = Text.assemble(
            "Validation ", (f"✗ {report.errors}", "bold red") if report.errors else ("✓", "bold green"),
            f" {report.warnings} warning(s)" if report.warnings else "")
        verdict = "OK" if report.ok else "FAILED"
        self._log(f"{event.why}: {verdict}, {report.errors} error(s), {report.warnings} warning(s), "
                  f"{len(report.rules_checked)} of {report.rules_total} rules checked in {report.seconds:.1f} s",
                  "green" if report.ok else "bold red")
        if not report.ok or tabs.active == "tab-validation":
            tabs.active = "tab-validation"
            findings.focus()
        self._explain()

    def action_commit(self) -> None:
        if not self._ready(self.action_commit):
            return
        view = self.view
        assert view is not None
        pending = [c for c in view.changes if c.git]
        if not view.uncommitted:
            self.notify("nothing to commit: the signatures folder has no changes", timeout=3)
            return
        suggested = commit_message(pending) or "Update signatures"
        title = f"Commit {len(view.uncommitted)} changed file(s) in the signatures folder"
        unsaved = self._unsaved_rule()
        if unsaved:
            title += f" (the editor's unsaved edits to {unsaved} are not included: ctrl+s there first)"

        def chosen(message: str | None) -> None:
            if message and self._begin("checking the changed rules"):
                self.run_commit(message)

        self.app.push_screen(PromptScreen(
            title, suggested, hint="enter commits after checking the changed rules · esc cancels"), chosen)

    def _unsaved_rule(self) -> str:
        """The editor's file when it has unsaved edits inside the signatures folder, else ""."""
        buffer = self.workbench.editor_buffer()
        if buffer is None:
            return ""
        path, _text, unsaved = buffer
        if path is None or not unsaved:
            return ""
        try:
            return str(path.resolve().relative_to(self.workbench.workspace.signatures.resolve()))
        except ValueError:
            return ""

    @work(thread=True, exclusive=True, group="release", exit_on_error=False,
          description="commit the signatures")
    def run_commit(self, message: str) -> None:
        workspace = self.workbench.workspace
        try:
            def checked(report: ValidationReport) -> None:
                self.post_message(self.Validated(report, "pre-commit check"))

            outcome = commit_changes(workspace, message, progress=self._stepper("checking"),
                                     checked=checked)
            if not outcome.committed:
                errors = outcome.check.errors if outcome.check is not None else 0
                self.post_message(self.Done(f"not committed: {errors} error(s) in the changed "
                                            "rules (Validation tab; enter opens the rule)", error=True))
                return
            self.post_message(self.Done(f"committed {outcome.commit[:12]}: {message.splitlines()[0]}"))
        finally:
            self.post_message(self.Idle())

    def action_release(self) -> None:
        if not self._ready(self.action_release):
            return
        view = self.view
        assert view is not None
        if view.uncommitted:
            self.notify(f"commit first (c): {len(view.uncommitted)} file(s) are not committed",
                        severity="warning")
            return

        def chosen(message: str | None) -> None:
            if message is not None and self._begin("releasing"):
                self.run_release(message)

        latest = f" (after {view.latest.tag})" if view.latest else " (the first)"
        self.app.push_screen(PromptScreen(f"Cut a release{latest}: a note for the changelog", "",
                                          placeholder="what this release is for (optional)",
                                          hint="enter releases · esc cancels", allow_empty=True),
                             chosen)

    @work(thread=True, exclusive=True, group="release", exit_on_error=False,
          description="make the release")
    def run_release(self, message: str) -> None:
        from workbench.release.service import ReleaseRefused, make_release

        try:
            outcome = make_release(self.workbench.workspace, message=message,
                                   progress=self._stepper("releasing"))
        except ReleaseRefused as exc:
            if exc.validation is not None:
                self.post_message(self.Validated(exc.validation, "release validation"))
            self.post_message(self.Done(f"release refused: {exc.reason}", error=True))
            return
        else:
            self.post_message(self.Done(
                f"released {outcome.tag} ({outcome.rules_shipped} rules ship; "
                f"{outcome.changelog.summary()}): p publishes it", tab="releases", serial=outcome.serial))
        finally:
            self.post_message(self.Idle())

    def action_revert(self) -> None:
        if not self._ready(self.action_revert):
            return
        tabs = self.query_one("#release-tabs", TabbedContent)
        if tabs.active != "tab-releases":
            self.action_tab("releases")
            self.notify("highlight the release to go back to, then b", timeout=4)
            return
        item = self.query_one("#releases", ListTable).current()
        if item is None:
            self.notify("no releases yet: nothing to go back to", severity="warning")
            return
        release = item[0]
        # a dry run first: the confirmation names the serial and the changes the core would make
        if self._begin(f"preparing the revert to {release.tag}"):
            self.run_revert(release.serial, dry_run=True)

    @work(thread=True, exclusive=True, group="release", exit_on_error=False,
          description="revert to the release")
    def run_revert(self, serial: int, *, dry_run: bool) -> None:
        from workbench.release.bundle import BundleError
        from workbench.release.service import ReleaseRefused, revert_release
        from workbench.release.signature_repository import SignatureRepositoryError

        try:
            outcome = revert_release(self.workbench.workspace, serial, dry_run=dry_run)
        except ReleaseRefused as exc:
            self.post_message(self.Done(f"revert refused: {exc.reason}", error=True))
            return
        except (ReleaseNotFound, SignatureRepositoryError, BundleError) as exc:
            self.post_message(self.Done(f"revert refused: {exc}", error=True))
            return
        else:
            if dry_run:
                self.post_message(self.RevertPreviewed(outcome))
            else:
                self.post_message(self.Done(
                    f"released {outcome.tag}, the content of {tag_name(serial)} again ({outcome.rules_shipped} "
                    f"rules ship; {outcome.changelog.summary()}): p publishes it", tab="releases",
                    serial=outcome.serial))
        finally:
            self.post_message(self.Idle())

    @on(RevertPreviewed)
    def _revert_previewed(self, event: RevertPreviewed) -> None:
        outcome = event.outcome
        old = tag_name(outcome.reverts) if outcome.reverts is not None else "the release"
        new = outcome.tag
        question = (f"Re-ship the content of {old} (commit {outcome.commit[:10]}, {outcome.rules_shipped} "
                    f"rules ship) as a new release, {new}?\n\n")
        changelog = outcome.changelog
        if changelog.previous_serial is not None:
            newest = tag_name(changelog.previous_serial)
            question += (f"It ships the same rules as {newest}, the newest release.\n" if changelog.empty
                         else f"Compared with {newest}, the newest release: {changelog.summary()}.\n")
        question += "The branch is not touched; p publishes the new release afterwards."
        self._log(f"revert to {old}: confirm or cancel")

        def answered(yes: bool | None) -> None:
            if not yes:
                self._log(f"revert to {old} cancelled")
                return
            if self._begin(f"reverting to {old}"):
                self.run_revert(outcome.reverts, dry_run=False)

        self.app.push_screen(ConfirmScreen(question, yes=f"Release {new}", no="Cancel"), answered)

    def action_publish(self) -> None:
        if not self._ready(self.action_publish):
            return
        view = self.view
        assert view is not None
        release = None
        if self.query_one("#release-tabs", TabbedContent).active == "tab-releases":
            item = self.query_one("#releases", ListTable).current()
            release = item[0] if item else None
        release = release or view.latest
        if release is None:
            self.notify("no release to publish yet: R cuts one", severity="warning")
            return
        if release.serial in view.published:
            self.notify(f"{release.tag} is already published", timeout=3)
            return
        from workbench.distribute.update_repository import UpdateRepository

        # asked now, not from the view: a repository may have been set up since it was read
        if not UpdateRepository.for_workspace(self.workbench.workspace).exists():
            self._guide_key_setup(release)
            return
        if self._begin(f"publishing {release.tag}"):
            self.run_publish(Path(release.bundle_path))

    def _guide_key_setup(self, release: Release) -> None:
        """No update repository yet: say what setting one up makes and where the root key
        must go, and on yes make it (``workbench keys init``) and publish."""
        from workbench.distribute.update_repository import UpdateRepository

        repository = UpdateRepository.for_workspace(self.workbench.workspace)
        question = (
            f"There is no update repository yet, so {release.tag} cannot be published.\n\n"
            f"Set one up now (what `workbench keys init` does)? It makes four signing keys in "
            f"{repository.keys.folder} and an empty signed repository in {repository.root}.\n\n"
            f"The ROOT key ({repository.keys.path('root')}) signs the other keys. Once set up, "
            "move it OFFLINE (a removable disk, a vault): anyone holding it can make every "
            "tower trust other keys. Only `keys rotate` and `keys renew-root` need it.\n\n"
            f"Each tower pins a copy of {repository.trusted_root} (`workbench tower init "
            "--trusted-root`), sent by a channel you trust.")
        self._log("no update repository: set-up asked")

        def answered(yes: bool | None) -> None:
            if not yes:
                self._log("update repository set-up cancelled")
                return
            if self._begin(f"setting up the update repository and publishing {release.tag}"):
                self.run_publish(Path(release.bundle_path), set_up=True)

        self.app.push_screen(ConfirmScreen(question, yes="Set up and publish", no="Cancel"),
                             answered)

    @work(thread=True, exclusive=True, group="release", exit_on_error=False,
          description="publish the release")
    def run_publish(self, bundle: Path, *, set_up: bool = False) -> None:
        from workbench.distribute.update_repository import (
            NoRepository,
            UpdateRepository,
            UpdateRepositoryError,
            publish_bundle,
        )

        repository = UpdateRepository.for_workspace(self.workbench.workspace)
        note = ""
        try:
            if set_up and not repository.exists():
                from workbench.distribute.settings import RepositorySettings

                made = repository.init(RepositorySettings())
                note = (f" Update repository set up in {made.path}: move the root key "
                        f"{repository.keys.path('root')} offline now; towers pin a copy of "
                        f"{made.trusted_root}.")
            result = publish_bundle(repository, bundle)
        except NoRepository:
            self.post_message(self.Done("no update repository yet: run `workbench keys init` once",
                                        error=True))
            return
        except UpdateRepositoryError as exc:
            self.post_message(self.Done(f"not published: {exc}", error=True))
            return
        else:
            t = result.target
            self.post_message(self.Done(f"published serial {t.serial} ({t.rule_count} rules): the towers "
                                        f"pick it up on their next poll (f6 watches them).{note}"))
        finally:
            self.post_message(self.Idle())

    @on(Done)
    def _done(self, event: Done) -> None:
        self._log(event.text, "bold red" if event.error else "green")
        self.notify(event.text, severity="error" if event.error else "information",
                    timeout=8 if event.error else 5)
        if event.tab:
            self.action_tab(event.tab)
        if event.serial is not None:
            self.select_serial = event.serial
        self.refresh_view()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Validate the repository", "every check, corpora included (v)",
                           self.action_validate),
            PaletteCommand("Commit the changes", "after the pre-commit checks (c)", self.action_commit),
            PaletteCommand("Cut a release", "validate, bundle, changelog, tag (R)", self.action_release),
            PaletteCommand("Publish a release", "to the update repository (p)", self.action_publish),
            PaletteCommand("Revert to this release",
                           "re-ship the highlighted release's content under a new serial (b)",
                           self.action_revert),
            PaletteCommand("Refresh", "read the repository again (r)", self.action_refresh),
        ]


