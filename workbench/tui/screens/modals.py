"""Small dialogs: triage status, tags, a one-line prompt, a yes/no question."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from workbench.quarantine.index import STATUSES


def _target(count: int) -> str:
    return "this message" if count == 1 else f"{count:,} marked messages"


class StatusScreen(ModalScreen[tuple[str, str] | None]):
    """Pick a triage status (1-5 or arrows + enter), with an optional note."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        *(Binding(str(n), f"pick({n - 1})", show=False) for n in range(1, len(STATUSES) + 1)),
    ]

    def __init__(self, count: int, current: str = "") -> None:
        super().__init__()
        self.count = count
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Triage status for {_target(self.count)}", classes="dialog-title")
            yield OptionList(*(Option(f"{n}  {s}", id=s) for n, s in enumerate(STATUSES, 1)),
                             id="statuses")
            yield Input(placeholder="note (optional, kept in the audit log)", id="note")
            yield Label("1-5 or enter picks · esc cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        options = self.query_one("#statuses", OptionList)
        if self.current in STATUSES:
            options.highlighted = STATUSES.index(self.current)
        options.focus()

    def action_pick(self, n: int) -> None:
        self.dismiss((STATUSES[n], self.query_one("#note", Input).value.strip()))

    @on(OptionList.OptionSelected, "#statuses")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_pick(event.option_index)

    @on(Input.Submitted, "#note")
    def _note_submitted(self) -> None:
        options = self.query_one("#statuses", OptionList)
        if options.highlighted is not None:
            self.action_pick(options.highlighted)


def parse_tag_edit(text: str) -> tuple[list[str], list[str]]:
    """``+a b -c`` -> (["a", "b"], ["c"]): a bare word adds, a leading minus removes."""
    add: list[str] = []
    remove: list[str] = []
    for word in text.split():
        if word.startswith("-"):
            if word[1:]:
                remove.append(word[1:])
        else:
            word = word.removeprefix("+")
            if word:
                add.append(word)
    return add, remove


class TagsScreen(ModalScreen[tuple[list[str], list[str]] | None]):
    """Edit tags as ``+add -remove`` words."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, count: int, current: list[str]) -> None:
        super().__init__()
        self.count = count
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Tags for {_target(self.count)}", classes="dialog-title")
            yield Label("current: " + (" ".join(self.current) or "none"), id="current-tags")
            yield Input(placeholder="+tag adds, -tag removes, e.g.  +campaign-x -todo", id="tags")
            yield Label("enter applies · esc cancels", classes="dialog-hint")

    @on(Input.Submitted, "#tags")
    def _submitted(self, event: Input.Submitted) -> None:
        add, remove = parse_tag_edit(event.value)
        bad = [t for t in add if "," in t or len(t) > 64]
        if bad:
            self.notify(f"tag {bad[0]!r}: no commas, at most 64 characters", severity="error")
            return
        self.dismiss((add, remove) if add or remove else None)


class PromptScreen(ModalScreen[str | None]):
    """One line of input: a path to save to, an offset to jump to.

    Escape answers None; an empty line answers None too, unless ``allow_empty`` (then "").
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", hint: str = "", *,
                 allow_empty: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.hint = hint
        self.allow_empty = allow_empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, id="prompt")
            yield Label(self.hint or "enter accepts · esc cancels", classes="dialog-hint")

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value if value or self.allow_empty else None)


class ConfirmScreen(ModalScreen[bool]):
    """A question with two answers; ``y``/``n`` work as well as the buttons."""

    BINDINGS = [
        Binding("escape,n", "dismiss(False)", "No"),
        Binding("y", "dismiss(True)", "Yes"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, variant="primary", id="yes")
                yield Button(self.no, id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of a few values (digits or arrows + enter)."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        *(Binding(str(n), f"pick({n - 1})", show=False) for n in range(1, 10)),
    ]

    def __init__(self, title: str, choices: list[str], current: str = "", hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices
        self.current = current
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(*(Option(f"{n}  {c}", id=c) for n, c in enumerate(self.choices, 1)),
                             id="choices")
            yield Label((self.hint + " · " if self.hint else "") + "digit or enter picks · esc cancels",
                        classes="dialog-hint")

    def on_mount(self) -> None:
        options = self.query_one("#choices", OptionList)
        if self.current in self.choices:
            options.highlighted = self.choices.index(self.current)
        options.focus()

    def action_pick(self, n: int) -> None:
        if 0 <= n < len(self.choices):
            self.dismiss(self.choices[n])

    @on(OptionList.OptionSelected, "#choices")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_pick(event.option_index)


class DiffScreen(ModalScreen[None]):
    """A unified diff to read (escape or q closes)."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]

    def __init__(self, title: str, diff: str) -> None:
        super().__init__()
        self.title_text = title
        self.diff = diff

    def compose(self) -> ComposeResult:
        from rich.syntax import Syntax
        from textual.containers import VerticalScroll
        from textual.widgets import Static

        with Vertical(classes="dialog", id="diff-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(id="diff-body"):
                yield Static(Syntax(self.diff or "(no difference)", "diff", word_wrap=True,
                                    theme="ansi_dark"))
            yield Label("esc closes", classes="dialog-hint")
