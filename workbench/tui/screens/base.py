"""What every workbench screen shares: its help text and the one place worker errors surface."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, ParamSpec, TypeVar, cast

from textual import events, on
from textual._context import NoActiveAppError
from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker, WorkerState, active_worker

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp

P = ParamSpec("P")
R = TypeVar("R")


class WorkbenchScreen(Screen[None]):
    """A screen whose thin workers report failures as notifications, never as a crash."""

    HELP: ClassVar[str] = ""
    """Markdown shown first in the help screen (F1) when opened from this screen."""

    def __init__(self, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name, id, classes)
        # A new screen is styled from the stylesheet as it is when it mounts. Textual's
        # switch_mode takes a new mode screen's CSS count (-1) for a stale one and parses
        # every CSS source again, twice (the screen is not mounted yet to record the
        # first): the largest single cost of the launch after the imports.
        try:
            self._css_update_count = self.app._css_update_count
        except NoActiveAppError:
            pass

    @property
    def workbench(self) -> WorkbenchApp:
        return cast("WorkbenchApp", self.app)

    @on(events.ScreenResume)
    def _prune_closed_watchers(self) -> None:
        """Drop what closed screens left in long-lived watcher lists (see prune_watchers)."""
        prune_watchers(self.app)
        for node in self.walk_children(with_self=True):
            prune_watchers(node)
        forget_closed_styles()

    @on(events.Unmount)
    def _forget_own_watchers(self) -> None:
        """Closed: the app's watchers let go of this screen's widgets once they are gone."""
        app = self.app
        app.call_later(prune_watchers, app)
        workbench = self.workbench
        if hasattr(workbench, "closed_screens"):        # (a test may mount it in another app)
            workbench.closed_screens += 1

    def on_key(self, event: events.Key) -> None:
        """A letter no key binding and no widget took goes somewhere visible, never nowhere.

        The screen's ``typed(character)`` decides (a filter or search box takes it); by
        default a short notice says the key does nothing here and where the keys are listed.
        """
        character = event.character
        if not event.is_printable or not character or not character.strip():
            return
        if event.key in self.app.active_bindings:
            return                      # a command: the bindings run it
        event.stop()
        event.prevent_default()
        if not self.typed(character):
            self.notify(f"{character!r} does nothing here · ? lists the keys", timeout=2)

    def typed(self, character: str) -> bool:
        """Take a typed letter no binding wanted (e.g. into a search box); False: not taken."""
        return False

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.workbench.report_worker_error(event.worker)


def leaves_no_trace(work: Callable[P, R]) -> Callable[P, R]:
    """For a thread worker of a screen that closes: the pool thread forgets the worker after.

    Textual's thread workers set ``active_worker`` in the executor thread's own context
    and leave it there, so each pool thread kept its last worker, and through it the
    worker's screen, until it ran another: a closed message screen stayed reachable,
    could not be collected, and kept the app from freezing what is long-lived.
    """
    @functools.wraps(work)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return work(*args, **kwargs)
        finally:
            active_worker.set(None)  # type: ignore[arg-type]   # (nothing runs after this)
    return run


def prune_watchers(node: DOMNode) -> None:
    """Forget the watchers of closed widgets that ``node`` still holds.

    Textual drops a closed widget's watcher from the watched object's list only when the
    watched value next changes. Two lists never change, so each opened message stayed in
    memory: every screen's Header watches the app's ``title`` and ``sub_title``, and the
    Footer data-binds each key it draws to its ``compact`` (and draws new keys whenever the
    bindings change, on every return to a screen). About 13,000 objects per message opened
    stayed reachable, and each full collection walked them all.
    """
    watchers = getattr(node, "__watchers", None)    # Textual's own name for the lists
    if not watchers:
        return
    for entries in watchers.values():
        entries[:] = [(owner, callback) for owner, callback in entries
                      if not (owner._closing or owner._closed)]


def forget_closed_styles() -> None:
    """Empty Textual's class-wide cache of background styles.

    ``StylesCache.get_inner_outer`` is an ``lru_cache`` of 1,024 entries keyed by the
    widget's own styles cache, which holds every line the widget last drew: a closed
    screen's widgets and their drawn lines stayed in memory until a thousand newer keys
    pushed them out. Refilled at the cost of one lookup per widget on the next paint.
    """
    from textual._styles_cache import StylesCache

    clear = getattr(StylesCache.get_inner_outer, "cache_clear", None)
    if clear is not None:
        clear()
