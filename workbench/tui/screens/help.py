"""The help screen: what the current screen is for, and every key that works on it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

GENERAL = """\
## Everywhere

| key | what |
|---|---|
| `ctrl+p` | command palette (commands for this screen first) |
| `f1` or `?` | this help |
| `f2` | quarantine |
| `f3` | rule editor |
| `f4` | test rules against corpora, retro-hunt |
| `f5` | release: changes, validation, commit, release, publish |
| `f6` | fleet: which tower server runs which serial |
| `ctrl+t` | light / dark theme |
| `escape` | back |
| `ctrl+q` | quit |
"""


def key_table(bindings: list[tuple[str, str]]) -> str:
    if not bindings:
        return ""
    rows = "\n".join(f"| `{key}` | {description} |" for key, description in bindings)
    return f"## Keys on this screen\n\n| key | what |\n|---|---|\n{rows}\n"


class HelpScreen(ModalScreen[None]):
    """Opened with F1 or ?; built from the screen's ``HELP`` text and its active bindings."""

    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss(None)", "Close")]

    def __init__(self, screen_help: str, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.text = "\n".join(part for part in (screen_help, key_table(bindings), GENERAL) if part)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(self.text)
