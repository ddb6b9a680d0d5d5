"""Waiting for a Textual app under Pilot, and reading what it shows."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Static
from textual.worker import WorkerCancelled, WorkerFailed

from workbench.quarantine.service import Quarantine
from workbench.tui.screens.artifact import ArtifactScreen
from workbench.workspace import Workspace


def static_text(widget: Static, width: int = 200) -> str:
    """What a Static shows, as plain text (Rich tables included)."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def settle(pilot: Pilot[object], rounds: int = 40) -> None:
    """Wait until no worker runs and the messages they posted have been handled."""
    app: App[object] = pilot.app
    for _ in range(rounds):
        try:
            await app.workers.wait_for_complete()
        except WorkerFailed:
            pass            # the app shows worker errors itself; tests check what it showed
        except WorkerCancelled:
            pass            # superseded (an exclusive worker's successor runs)
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
    raise AssertionError("the app did not settle: workers kept running")


async def until(pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (settling workers as it goes) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)
        await settle(pilot)


async def linted(pilot: Pilot[object]) -> None:
    """Wait for the rule editor's debounced lint of the current text."""
    from workbench.tui.screens.editor import EditorScreen

    def done() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, EditorScreen) and screen.linted_generation == screen.generation

    await until(pilot, done)


async def open_artifact(pilot, artifact) -> ArtifactScreen:
    """Straight to the artifact screen (the message screen's own tests open it from the tree)."""
    app = pilot.app
    await settle(pilot)
    app.open_artifact(artifact)
    await settle(pilot)
    assert isinstance(app.screen, ArtifactScreen)
    return app.screen


def sha_of(workspace: Workspace, subject: str) -> str:
    with Quarantine.open(workspace) as q:
        return next(r.sha256 for r in q.index.list(f'subject:"{subject}"') if r.subject == subject)


async def waiting(pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait until ``condition()`` holds **without** settling: for a condition that holds
    while a worker still runs (a scan's progress), which ``until`` would wait out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
