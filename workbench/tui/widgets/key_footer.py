"""Textual's footer, drawn again only when the keys it shows change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer

if TYPE_CHECKING:
    from textual.screen import Screen

Shown = tuple[tuple[str, str, str, bool, str], ...]


def shown_keys(screen: Screen[object]) -> Shown:
    """The keys a footer on ``screen`` would draw: key, description, action, enabled, tooltip."""
    palette = screen.app.COMMAND_PALETTE_BINDING
    return tuple((binding.key, binding.description, binding.action, enabled, tooltip)
                 for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items()
                 if binding.show or key == palette)


class KeyFooter(Footer):
    """A ``Footer`` that recomposes only when the keys it shows are not those it drew.

    Textual's footer throws its key widgets away and composes new ones whenever the
    screen's bindings are refreshed: on every focus change, every return to the screen
    and every ``refresh_bindings()``, mostly with the same keys. Styling the new keys
    was the largest single cost of opening a message and going back to the list
    (about 130 key widgets styled per open and return).
    """

    def __init__(self) -> None:
        super().__init__()
        self.drawn: Shown | None = None
        self.recomposed = 0             # how often the keys were composed (tests read it)

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not (self.is_attached and screen is self.screen):
            return
        keys = shown_keys(screen)
        if keys == self.drawn:
            return
        self.drawn = keys
        self.recomposed += 1
        self.call_after_refresh(self.recompose)
