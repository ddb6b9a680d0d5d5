"""What every workbench screen shares: its help text and the one place worker errors surface."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp


class WorkbenchScreen(Screen[None]):
    """A screen whose thin workers report failures as notifications, never as a crash."""

    HELP: ClassVar[str] = ""
    """Markdown shown first in the help screen (F1) when opened from this screen."""

    @property
    def workbench(self) -> WorkbenchApp:
        return cast("WorkbenchApp", self.app)

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.workbench.report_worker_error(event.worker)
