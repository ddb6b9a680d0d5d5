"""Command palette providers: the current screen's commands, then the workbench's own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp


@dataclass(frozen=True)
class PaletteCommand:
    name: str
    help: str
    run: Callable[[], object]


class HasCommands(Protocol):
    def palette_commands(self) -> list[PaletteCommand]: ...


class _Commands(Provider):
    def commands(self) -> list[PaletteCommand]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for command in self.commands():
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), command.run, help=command.help)


class ScreenCommands(_Commands):
    """What the screen the palette was opened on offers (``palette_commands()``)."""

    def commands(self) -> list[PaletteCommand]:
        screen = self.screen
        if hasattr(screen, "palette_commands"):
            return cast(HasCommands, screen).palette_commands()
        return []


class WorkbenchCommands(_Commands):
    """Going between the workbench's screens, themes, help."""

    def commands(self) -> list[PaletteCommand]:
        app = cast("WorkbenchApp", self.app)
        return [
            PaletteCommand("Go to quarantine", "browse and triage quarantined mail (f2)",
                           lambda: app.switch_mode("quarantine")),
            PaletteCommand("Go to rule editor", "write and lint YARA rules (f3)",
                           lambda: app.switch_mode("rules")),
            PaletteCommand("Go to test", "rules against corpora, retro-hunts (f4)",
                           lambda: app.switch_mode("test")),
            PaletteCommand("Go to release", "changes, validation, commit, release, publish (f5)",
                           lambda: app.switch_mode("release")),
            PaletteCommand("Go to fleet", "which tower server runs which serial (f6)",
                           lambda: app.switch_mode("fleet")),
            PaletteCommand("Go to campaigns", "waves of related mail, one rule for each (f7)",
                           lambda: app.switch_mode("campaigns")),
            PaletteCommand("Go to rule health", "per rule: corpus, live hits, FP storms, kill switch (f9)",
                           lambda: app.switch_mode("health")),
            PaletteCommand("Toggle light/dark theme", "ctrl+t", app.action_toggle_dark),
            PaletteCommand("Help", "keys and what this screen does (f1)", app.action_help),
            PaletteCommand("Clear marked strings", f"{len(app.marks)} marked for the next draft",
                           app.clear_marks),
        ]
