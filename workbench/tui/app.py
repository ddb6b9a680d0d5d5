"""The workbench terminal UI: one ``make_app()`` builds it for the command line and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.filter import LineFilter
from textual.worker import Worker

from workbench.quarantine.service import INDEX_NAME
from workbench.tui.commands import ScreenCommands, WorkbenchCommands
from workbench.tui.marks import Marks
from workbench.tui.pages import IndexPool
from workbench.tui.safety import ControlFilter
from workbench.tui.screens.editor import EditorScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.workspace import Workspace

THEMES = {"dark": "textual-dark", "light": "textual-light"}


class WorkbenchApp(App[int]):
    """Modes are the workbench's top-level screens, each with its own stack of screens.

    ``quarantine`` (F2): the list -> a message -> an artifact. ``rules`` (F3): the
    rule editor. Later parts add their modes (test, release, fleet) to ``MODES``.
    """

    TITLE = "workbench"
    CSS_PATH = ["app.tcss"]
    COMMANDS = App.COMMANDS | {ScreenCommands, WorkbenchCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "switch_mode('quarantine')", "Quarantine", show=False),
        Binding("f3", "switch_mode('rules')", "Rules", show=False),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False),
    ]

    MODES = {
        "quarantine": QuarantineScreen,
        "rules": EditorScreen,
    }

    def __init__(self, workspace: Workspace, *, theme: str = "dark", query: str = "",
                 open_message: str | None = None, open_rule: Path | None = None) -> None:
        _start_resource_tracker()
        super().__init__()
        self.workspace = workspace
        self.initial_query = query
        self.pool = IndexPool(workspace.quarantine / INDEX_NAME)
        self.marks = Marks()
        self._control_filter = ControlFilter()
        self.theme = THEMES.get(theme, theme)
        self._open_message = open_message
        self._open_rule = open_rule

    def get_line_filters(self) -> Sequence[LineFilter]:
        # last, so nothing a widget drew from mail reaches the terminal as a control code
        return [*super().get_line_filters(), self._control_filter]

    def on_mount(self) -> None:
        self.switch_mode("quarantine")
        if self._open_message:
            self.open_message(self._open_message)
        if self._open_rule is not None:
            self.open_rule_file(self._open_rule)

    def on_unmount(self) -> None:
        self.pool.close()

    # -- navigation (screens call these; they do not import each other) ------------

    def open_message(self, ident: str) -> None:
        from workbench.tui.screens.message import MessageScreen

        self.switch_mode("quarantine")
        self.push_screen(MessageScreen(ident))

    def open_artifact(self, artifact: object, *, message_sha256: str = "") -> None:
        from workbench.tui.screens.artifact import ArtifactScreen

        self.push_screen(ArtifactScreen(artifact, message_sha256=message_sha256))

    def editor(self) -> EditorScreen:
        self.switch_mode("rules")
        screen = self.screen
        assert isinstance(screen, EditorScreen)
        return screen

    def open_rule_file(self, path: Path) -> None:
        self.editor().load_file(Path(path))

    def open_draft(self, text: str) -> None:
        self.editor().load_draft(text)

    def clear_marks(self) -> None:
        self.marks.clear()
        self.notify("marks cleared", timeout=2)

    # -- shared behaviour ---------------------------------------------------------------

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        shown: list[tuple[str, str]] = []
        others: list[tuple[str, str]] = []
        for key, active in self.active_bindings.items():
            binding = active.binding
            if not binding.description or not active.enabled or binding.action.startswith("scroll_"):
                continue
            # the keys the footer shows come first, then movement and the rest
            (shown if binding.show else others).append(
                (self.get_key_display(binding) or key, binding.description))
        self.push_screen(HelpScreen(getattr(screen, "HELP", ""), shown + others))

    def report_worker_error(self, worker: Worker[object]) -> None:
        """Every worker failure ends here: shown to the analyst, logged, never a crash."""
        error = worker.error
        what = worker.description or worker.name or "background task"
        self.log.error(f"{what} failed", error)
        self.notify(f"{type(error).__name__}: {error}" if error else "failed",
                    title=f"Could not {what}", severity="error", timeout=10)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker while ``sys.stderr`` is still a real file.

    Dissection runs in forkserver workers; the tracker they need is spawned with
    ``sys.stderr.fileno()`` among the descriptors to keep, and while the app runs
    Textual's stderr stand-in has no descriptor ("bad value(s) in fds_to_keep").
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def make_app(workspace: Workspace, *, theme: str = "dark", query: str = "",
             open_message: str | None = None, open_rule: Path | None = None) -> WorkbenchApp:
    """The app on a workspace, for ``workbench ui`` and for tests alike."""
    return WorkbenchApp(workspace, theme=theme, query=query, open_message=open_message,
                        open_rule=open_rule)
