"""The workbench terminal UI: one ``make_app()`` builds it for the command line and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding
from textual.filter import LineFilter
from textual.screen import Screen
from textual.worker import Worker

from workbench.tui.commands import ScreenCommands, WorkbenchCommands
from workbench.tui.marks import Marks
from workbench.tui.pages import IndexPool
from workbench.tui.safety import ControlFilter
from workbench.tui.screens.quarantine import QuarantineScreen
from workbench.workspace import Workspace

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from workbench.dissect.model import Artifact
    from workbench.quarantine.index import MessageRow
    from workbench.tui.screens.editor import EditorScreen
    from workbench.tui.screens.message import MessageScreen

THEMES = {"dark": "textual-dark", "light": "textual-light"}
FLEET_REFRESH = 2.0         # seconds between fleet board refreshes
LIST_REFRESH = 3.0          # seconds between looks for new mail in the quarantine index
NOTICE_LOG = "tui.log"      # in the workspace's state folder: every notice and failure the UI showed
NOTICE_LOG_BYTES = 1 << 20


class WorkbenchApp(App[int]):
    """Modes are the workbench's top-level screens, each with its own stack of screens.

    ``quarantine`` (F2): the list -> a message -> an artifact. ``rules`` (F3): the
    rule editor. ``test`` (F4): the rule or ruleset against corpora, and retro-hunts.
    ``release`` (F5): changes, validation, commit, release, publish. ``fleet`` (F6):
    which tower server runs which serial. ``campaigns`` (F7): waves of related mail.
    ``health`` (F9): per rule, corpus and live fleet numbers, FP storms, the kill switch.
    """

    TITLE = "workbench"
    CSS_PATH = ["app.tcss"]
    COMMANDS = App.COMMANDS | {ScreenCommands, WorkbenchCommands}
    ENABLE_COMMAND_PALETTE = True
    # the screens' keys work everywhere, the editor included (its TextArea binds f6 and f7)
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "switch_mode('quarantine')", "Quarantine", show=False, priority=True),
        Binding("f3", "switch_mode('rules')", "Rules", show=False, priority=True),
        Binding("f4", "switch_mode('test')", "Test", show=False, priority=True),
        Binding("f5", "switch_mode('release')", "Release", show=False, priority=True),
        Binding("f6", "switch_mode('fleet')", "Fleet", show=False, priority=True),
        Binding("f7", "switch_mode('campaigns')", "Campaigns", show=False, priority=True),
        Binding("f9", "switch_mode('health')", "Rule health", show=False, priority=True),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False),
    ]

    # Only the quarantine list is imported with the app: the other screens (and what they
    # import: git, the release tools, the YARA editor) load when first opened, so the
    # first rows paint without waiting for them.
    MODES = {
        "quarantine": QuarantineScreen,
        "rules": lambda: _screen("editor", "EditorScreen"),
        "test": lambda: _screen("testing", "RuleTestScreen"),
        "release": lambda: _screen("release", "ReleaseScreen"),
        "fleet": lambda: _screen("fleet", "FleetScreen"),
        "campaigns": lambda: _screen("campaigns", "CampaignsScreen"),
        "health": lambda: _screen("rule_health", "RuleHealthScreen"),
    }

    def __init__(self, workspace: Workspace, *, theme: str = "dark", query: str = "",
                 open_message: str | None = None, open_rule: Path | None = None,
                 fleet_url: str | None = None, fleet_refresh: float = FLEET_REFRESH,
                 list_refresh: float = LIST_REFRESH, freeze_startup: bool = False) -> None:
        _start_resource_tracker()
        super().__init__()
        self.workspace = workspace
        self.initial_query = query
        self.pool = IndexPool.for_quarantine(workspace.quarantine)
        self.marks = Marks()
        self.marked_messages: set[str] = set()     # the quarantine list's marked rows (sha256)
        self.quarantine_stale = False              # tags changed elsewhere: the list reloads
        self.fleet_url = fleet_url
        self.fleet_refresh = fleet_refresh
        self.list_refresh = list_refresh           # 0: the quarantine list reloads only on r
        self._control_filter = ControlFilter()
        self.theme = THEMES.get(theme, theme)
        self._open_message = open_message
        self._open_rule = open_rule
        self._freeze_startup = freeze_startup
        self._frozen = False
        self.closed_screens = 0                    # screens closed (removed) so far
        self._settled_closed = 0                   # ... when garbage was last settled
        self._message_screen: MessageScreen | None = None    # installed once, reused (open_message)

    def get_line_filters(self) -> Sequence[LineFilter]:
        # last, so nothing a widget drew from mail reaches the terminal as a control code
        return [*super().get_line_filters(), self._control_filter]

    def on_mount(self) -> None:
        self.switch_mode("quarantine")
        if self._open_message:
            self.open_message(self._open_message)
        if self._open_rule is not None:
            self.open_rule_file(self._open_rule)
        if self._freeze_startup:
            # once the first rows are drawn (first_rows_shown), not before: the full
            # collection took 100-300 ms of the launch while the rows waited; this timer
            # is for a list that shows no rows
            self.set_timer(2.0, self._freeze_once)

    def on_unmount(self) -> None:
        self.pool.close()

    def first_rows_shown(self) -> None:
        """The quarantine list drew its first rows: start-up is over."""
        if self._freeze_startup and not self._frozen:
            self.call_after_refresh(self._freeze_once)

    def _freeze_once(self) -> None:
        if not self._frozen:
            self._frozen = True
            freeze_startup_objects()

    def settle_garbage(self) -> bool:
        """Collect what closed screens left, while only the modes' own screens are open.

        Called when the analyst is back on a screen that stays (the list, after a message),
        once it is drawn. A closed message screen is some 10,000 objects in reference
        cycles that only a full collection frees; left to the collector they piled up in
        the oldest generation and were walked, with everything else, in a full pass in the
        middle of a later open. Collected here, while nobody waits. (Freezing what survives
        as well was tried: the transient objects alive at that moment, once garbage, are
        never freed, and RSS grew 28 MB over 500 opens.) False: not now (a screen is open
        over a mode's own, or the app is not the command line's, or no screen was closed
        since the last time: the message screen is kept, and its return leaves little).
        """
        if not self._freeze_startup or self.closed_screens == self._settled_closed:
            return False
        if any(len(stack) > 1 for stack in self._screen_stacks.values()):
            return False
        import gc

        self._settled_closed = self.closed_screens
        gc.collect()
        return True

    # -- navigation (screens call these; they do not import each other) ------------

    def open_message(self, ident: str, *, row: MessageRow | None = None) -> None:
        """Show a message over the quarantine list, on the one message screen the app keeps.

        A new screen per message was most of the time of an open (composing, styling and
        laying out its widgets), and removing it on the way back made Textual lay the list
        out again, twice: the kept screen is only suspended and resumed. ``row``: the
        list's row for the message, shown at once while the rest is read.
        """
        from workbench.tui.screens.message import MessageScreen

        self.switch_mode("quarantine")
        screen = self._message_screen
        if screen is None:
            screen = self._message_screen = MessageScreen()
            self.install_screen(screen, "message")
        if any(screen in stack for stack in self._screen_stacks.values()):
            if self.screen is screen:
                screen.show_message(ident, row)
            else:                   # open under an artifact or a dialog: a screen of its own
                self.push_screen(MessageScreen(ident))
            return
        screen.show_message(ident, row)
        self.push_screen(screen)

    def message_triaged(self, row: MessageRow, changes: tuple[int, int]) -> None:
        """A message's status or tags were changed on its screen: the list shows its row as
        it is now when the analyst returns, without reading the list again. ``changes``:
        the index's last_change() before and after the write."""
        from workbench.tui.screens.quarantine import QuarantineScreen

        screen = self.mode_screen("quarantine")
        if isinstance(screen, QuarantineScreen):
            screen.rows_changed([row], changes)

    def open_artifact(self, artifact: Artifact, *, message_sha256: str = "", offset: int | None = None,
                      length: int = 0) -> None:
        """The artifact view, on top of the current screen; ``offset`` opens the hex view there."""
        from workbench.tui.screens.artifact import ArtifactScreen

        self.push_screen(ArtifactScreen(artifact, message_sha256=message_sha256, offset=offset,
                                        length=length))

    def mode_screen(self, mode: str) -> Screen[object] | None:
        """The bottom screen of a mode's stack, if the mode was opened (without switching to it)."""
        stack = self._screen_stacks.get(mode)       # Textual keeps one stack per mode
        return stack[0] if stack else None

    def editor(self) -> EditorScreen:
        from workbench.tui.screens.editor import EditorScreen

        self.switch_mode("rules")
        screen = self.screen if isinstance(self.screen, EditorScreen) else self.mode_screen("rules")
        assert isinstance(screen, EditorScreen)          # (a dialog may be open over the editor)
        return screen

    def editor_buffer(self) -> tuple[Path | None, str, bool] | None:
        """What the rule editor holds: its file (None for a new rule), text and whether it has
        unsaved edits; None before the editor was opened or while it holds only the starter.
        Other screens reach the buffer here rather than importing the editor."""
        from workbench.tui.screens.editor import STARTER, EditorScreen

        editor = self.mode_screen("rules")
        if not isinstance(editor, EditorScreen):
            return None
        path, text, unsaved = editor.buffer()
        if path is None and text.strip() in ("", STARTER.strip()):
            return None
        return path, text, unsaved

    def open_rule_file(self, path: Path, *, line: int = 0, column: int = 0) -> None:
        """Edit a rule file; ``line`` (1-based) puts the cursor there."""
        self.editor().load_file(Path(path), line=line, column=column)

    def mark_messages(self, shas: Sequence[str]) -> None:
        """Mark messages in the quarantine list (e.g. what a retro-hunt found) for triage."""
        self.marked_messages.update(shas)
        self.quarantine_stale = True

    def open_draft(self, text: str) -> None:
        self.editor().load_draft(text)

    def clear_marks(self) -> None:
        self.marks.clear()
        self.refresh_marks()
        self.notify("marks cleared", timeout=2)

    def refresh_marks(self) -> None:
        """Redraw every open view that shows marks (they were just cleared or changed)."""
        from workbench.tui.widgets.strings_table import StringsTable

        for stack in self._screen_stacks.values():
            for screen in stack:
                for table in screen.query(StringsTable):
                    table.reset()

    # -- shared behaviour ---------------------------------------------------------------

    def action_help(self) -> None:
        from workbench.tui.screens.help import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        shown: list[tuple[str, str]] = []
        others: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, active in self.active_bindings.items():
            binding = active.binding
            if not binding.description or not active.enabled or binding.action.startswith("scroll_"):
                continue
            if not _workbench_binding(active.node, binding) or (binding.action in seen and not binding.show):
                continue            # Textual's own keys (page left, copy ...) are not ours to explain
            seen.add(binding.action)
            # the keys the footer shows come first, then movement and the rest
            (shown if binding.show else others).append(
                (self.get_key_display(binding) or key, binding.description))
        self.push_screen(HelpScreen(getattr(screen, "HELP", ""), shown + others))

    def report_worker_error(self, worker: Worker[object]) -> None:
        """Every worker failure ends here: shown to the analyst, logged, never a crash."""
        import traceback

        error = worker.error
        what = worker.description or worker.name or "background task"
        self.log.error(f"{what} failed", error)
        if error is not None:
            self._note("traceback", "".join(traceback.format_exception(error)).rstrip())
        self.notify(error_text(error), title=f"Could not {what}", severity="error", timeout=10)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        # a notice goes when it times out: the session log keeps what the UI said
        self._note(severity, f"{title}: {message}" if title else message)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _note(self, kind: str, text: str) -> None:
        """One line (a traceback: several) in ``<home>/state/tui.log``, the session's record
        of every notice and failure; kept to about a megabyte (the older half in ``tui.log.1``)."""
        from workbench.humanize import iso_seconds, utc_now

        log = self.workspace.state / NOTICE_LOG
        try:
            if log.exists() and log.stat().st_size > NOTICE_LOG_BYTES:
                log.replace(log.with_name(NOTICE_LOG + ".1"))
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{iso_seconds(utc_now())} {kind} {text}\n")
        except OSError:
            pass                   # a read-only or full workspace: the notice still shows


def error_text(error: BaseException | None) -> str:
    """The one place the UI words a failure: a workbench error by its kind and message, a
    bug by its type (so it is reported, not mistaken for something the analyst did)."""
    from workbench.errors import UI_TITLES, WorkbenchError

    if isinstance(error, WorkbenchError):
        return f"{UI_TITLES[error.kind]}: {error.describe()}"
    return f"{type(error).__name__}: {error}" if error else "failed"


def _workbench_binding(node: object, binding: Binding) -> bool:
    """Whether one of the workbench's own classes declares ``binding`` (not a Textual base class)."""
    for cls in type(node).__mro__:
        if not cls.__module__.startswith("workbench."):
            continue
        for declared in cls.__dict__.get("BINDINGS", ()):
            if isinstance(declared, Binding) and declared.action == binding.action:
                return True
    return False


def _screen(module: str, name: str) -> Screen[object]:
    """A new screen of ``workbench.tui.screens.<module>``, imported on first use."""
    import importlib

    screen: Screen[object] = getattr(importlib.import_module(f"workbench.tui.screens.{module}"), name)()
    return screen


def freeze_startup_objects() -> None:
    """Leave the objects made at start-up (Textual's and ours) out of every later collection.

    A fleet refresh makes some 20,000 short-lived objects; each full collection then also
    walked the app's own objects and stopped the event loop for 50-130 ms, twice the
    time of the board's redraw. Frozen, a full collection walks only what came later.
    The command line does this once per process; tests, which run many apps, do not.
    """
    import gc

    gc.collect()
    gc.freeze()


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker while ``sys.stderr`` is still a real file.

    Dissection runs in forkserver workers; the tracker they need is spawned with
    ``sys.stderr.fileno()`` among the descriptors to keep, and while the app runs
    Textual's stderr stand-in has no descriptor ("bad value(s) in fds_to_keep").
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def make_app(workspace: Workspace, *, theme: str = "dark", query: str = "",
             open_message: str | None = None, open_rule: Path | None = None,
             fleet_url: str | None = None, fleet_refresh: float = FLEET_REFRESH,
             list_refresh: float = LIST_REFRESH, freeze_startup: bool = False) -> WorkbenchApp:
    """The app on a workspace, for ``workbench ui`` and for tests alike.

    ``fleet_url`` points the fleet board at a ``workbench serve`` elsewhere; without it the
    board reads this workspace's fleet store (where a server on this home records reports).
    ``freeze_startup`` (the command line's choice) keeps start-up objects out of the
    garbage collector's full passes (``freeze_startup_objects``).
    """
    return WorkbenchApp(workspace, theme=theme, query=query, open_message=open_message,
                        open_rule=open_rule, fleet_url=fleet_url, fleet_refresh=fleet_refresh,
                        list_refresh=list_refresh, freeze_startup=freeze_startup)
