"""The base of the scroll views that draw their own lines (Line API) from component styles."""

from __future__ import annotations

from rich.style import Style
from textual.scroll_view import ScrollView


class DrawnView(ScrollView):
    """Component styles looked up once per style change; drawn lines forgotten when they change."""

    def __init__(self, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._styles: dict[str, Style] = {}

    def forget_drawn_lines(self) -> None:
        """Subclasses drop their cached lines here (a theme or style change redraws them)."""

    def notify_style_update(self) -> None:
        self.forget_drawn_lines()
        self._styles.clear()
        super().notify_style_update()

    def _style(self, component: str = "") -> Style:
        """The widget's style plus a component's, looked up once per style change."""
        style = self._styles.get(component)
        if style is None:
            style = self.rich_style
            if component:
                style = style + self.get_component_rich_style(component)
            self._styles[component] = style
        return style
