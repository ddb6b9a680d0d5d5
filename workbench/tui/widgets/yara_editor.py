"""A TextArea for YARA: highlighted by our own tokenizer, with lint diagnostics on their lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from textual.widgets import TextArea
from textual.widgets.text_area import TextAreaTheme

from workbench.tui.yara_highlight import highlight_map

ERROR_LINE = "diagnostic.error"
WARNING_LINE = "diagnostic.warning"


@dataclass(frozen=True)
class Diagnostic:
    """Where a finding points (1-based line; 0 means the whole file)."""

    line: int
    severity: str


def _theme(name: str, base: str, error_bg: str, warning_bg: str) -> TextAreaTheme:
    source = TextAreaTheme.get_builtin_theme(base)
    assert source is not None
    styles = dict(source.syntax_styles)
    styles[ERROR_LINE] = Style(bgcolor=error_bg)
    styles[WARNING_LINE] = Style(bgcolor=warning_bg)
    return TextAreaTheme(name=name, syntax_styles=styles)


DARK = _theme("workbench-dark", "vscode_dark", "#4b1c1c", "#3d3415")
LIGHT = _theme("workbench-light", "github_light", "#ffd9d9", "#fff1c2")


class YaraEditor(TextArea):
    """``diagnostics`` is set by the screen (attributes down) after each lint."""

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(text, id=id, show_line_numbers=True, tab_behavior="indent",
                         soft_wrap=False)
        self.indent_width = 4
        self._diagnostics: tuple[Diagnostic, ...] = ()
        self.register_theme(DARK)
        self.register_theme(LIGHT)

    def on_mount(self) -> None:
        self.follow_app_theme()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.follow_app_theme())

    def follow_app_theme(self) -> None:
        self.theme = LIGHT.name if not self.app.current_theme.dark else DARK.name

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self._diagnostics

    @diagnostics.setter
    def diagnostics(self, value: Sequence[Diagnostic]) -> None:
        self._diagnostics = tuple(value)
        self._build_highlight_map()
        self.refresh()

    def _build_highlight_map(self) -> None:
        """Replace TextArea's tree-sitter query (none is packaged for YARA) with our tokenizer."""
        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        text = self.text
        diagnostics = getattr(self, "_diagnostics", ())
        lines = text.count("\n") + 1
        # line backgrounds first, so syntax colours draw over them
        for severity_first in ("warning", "error"):
            for d in diagnostics:
                if d.severity == severity_first and 1 <= d.line <= lines:
                    name = ERROR_LINE if d.severity == "error" else WARNING_LINE
                    highlights[d.line - 1].append((0, None, name))
        for row, spans in highlight_map(text).items():
            highlights[row].extend(spans)
