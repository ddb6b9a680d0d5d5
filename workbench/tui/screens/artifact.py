"""One artifact: summary and hashes, the format report, strings and hex, and marking for drafts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from workbench.dissect.strings import extract_strings
from workbench.quarantine.object_store import ObjectStore
from workbench.tui.commands import PaletteCommand
from workbench.tui.marks import Mark, hex_string
from workbench.tui.render import (
    artifact_label,
    entropy_strip,
    entropy_summary,
    identity_table,
    report_renderable,
    safely,
    source_text,
)
from workbench.tui.safety import visible
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.screens.modals import PromptScreen
from workbench.tui.widgets.hex_view import HexView, parse_offset
from workbench.tui.widgets.strings_table import StringRow, StringsTable

if TYPE_CHECKING:
    from workbench.dissect.model import Artifact
    from workbench.rules.draft import Draft
    from workbench.rules.suggest import SuggestionReport
    from workbench.workspace import Workspace

MAX_HEX_MARK = 256          # bytes: a longer hex string is rarely a good signature


def draft_text(workspace: Workspace, marks: list[Mark], category: str, family: str) -> Draft:
    """Draft a rule from marked strings and bytes with the rules drafter (compiled, linted)."""
    from workbench.rules.draft import draft, load_samples

    samples = load_samples(workspace, list(dict.fromkeys(m.sha256 for m in marks)))
    return draft(samples,
                 strings=[m.value for m in marks if m.kind == "text"],
                 hexes=[m.value for m in marks if m.kind == "hex"],
                 category=category, family=family)


def parse_family(text: str) -> tuple[str, str]:
    """``MAL Emotet`` or ``MAL/Emotet`` -> ("MAL", "Emotet"); one word is a family of MAL."""
    words = text.replace("/", " ").replace("_", " ").split()
    if not words:
        return "MAL", "Unknown"
    if len(words) == 1:
        return "MAL", words[0]
    return words[0].upper(), "".join(w[:1].upper() + w[1:] for w in words[1:])


class ArtifactScreen(WorkbenchScreen):
    """Tabs over one artifact's bytes; marks go to the app's shared ``Marks``."""

    HELP = """\
## Artifact

**Summary**: what the file is (declared and detected type, flags), its size, every
hash, and its entropy along the file (high, flat stretches are packed or
encrypted data). **Report**: what the format's dissector found (PE sections,
imports and resources; Office macro findings; PDF objects; archive members); a
macro module or script shows its source, suspicious VBA keywords in red. **Strings**: ASCII and UTF-16 strings with the suggester's score
(high is a good signature string, negative is common) and how many goodware files
hold them. The search box has the keys when the tab opens: type to search, ↓ or
enter goes to the list (where `m` marks), `/` back to the search; a letter typed on
the list that is no command goes to the search too. `S` sorts by score. **Hex**: offsets, bytes and ASCII;
`g` jumps to an offset, `v` or shift+arrows select a range.

`m` (or space) marks the string under the cursor, or the selected bytes in the hex
view. `d` drafts a rule from everything marked, in the rule editor.
"""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("m,space", "mark", "Mark"),
        Binding("d", "draft", "Draft rule"),
        Binding("g", "goto", "Go to offset"),
        Binding("S", "sort_by_score", "By score"),
        Binding("slash", "search", "Search", show=False),
        Binding("1", "tab('summary')", show=False),
        Binding("2", "tab('report')", show=False),
        Binding("3", "tab('strings')", show=False),
        Binding("4", "tab('hex')", show=False),
    ]

    @dataclass(eq=False)
    class Loaded(Message):
        data: bytes
        strings: list[StringRow]

    @dataclass(eq=False)
    class Suggested(Message):
        report: SuggestionReport

    @dataclass(eq=False)
    class Drafted(Message):
        draft: Draft

    def __init__(self, artifact: Artifact, *, message_sha256: str = "", offset: int | None = None,
                 length: int = 0) -> None:
        super().__init__()
        self.artifact = artifact
        self.message_sha256 = message_sha256
        self.open_at = offset           # open on the hex view here (a match), selecting ``length`` bytes
        self.open_length = length
        self.data = b""
        self.strings: list[StringRow] = []
        self.by_score = False
        self.suggestion_notes: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(artifact_label(self.artifact), id="artifact-summary-bar")
        with TabbedContent(id="artifact-tabs"):
            with TabPane("Summary", id="tab-summary"), VerticalScroll():
                yield Static(safely(lambda: identity_table(self.artifact), "summary"),
                             classes="report-text")
                yield Static(Text("\nEntropy along the file (0-8 bits per byte)", style="bold"),
                             classes="report-text")
                yield Static(safely(lambda: entropy_strip(self.artifact.entropy_windows,
                                                          self.artifact.entropy_window),
                                    "entropy"), classes="report-text", id="entropy")
                yield Static(entropy_summary(self.artifact.entropy_windows), classes="report-text")
            with TabPane("Report", id="tab-report"), VerticalScroll():
                yield Static(safely(lambda: report_renderable(
                    self.artifact.report,
                    title=f"{self.artifact.dissector} report" if self.artifact.dissector else ""),
                    "format report"), classes="report-text", id="format-report")
                source = Static("", classes="report-text", id="source-view")
                source.display = False
                yield source
            with TabPane("Strings", id="tab-strings"):
                with Horizontal(id="strings-bar"):
                    yield Input(placeholder="search strings", id="strings-search")
                    yield Static("reading…", id="strings-count")
                yield StringsTable(id="strings")
            with TabPane("Hex", id="tab-hex"):
                yield Static("reading…", id="hex-status")
                yield HexView(id="hex")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = visible(self.artifact.safe_name or self.artifact.path)
        table = self.query_one(StringsTable)
        marks = self.workbench.marks
        sha = self.artifact.sha256
        table.is_marked = lambda row: Mark(sha, "text", row.text, row.offset, row.encoding) in marks
        self.load(sha)

    # -- workers ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="artifact", exit_on_error=False,
          description="read the artifact")
    def load(self, sha256: str) -> None:
        data = ObjectStore(self.workbench.workspace.quarantine).read(sha256)
        rows = [StringRow(s.offset, s.encoding, s.text) for s in extract_strings(data)]
        self.post_message(self.Loaded(data, rows))
        self.suggest(sha256)

    @work(thread=True, exclusive=True, group="suggest", exit_on_error=False,
          description="score the strings")
    def suggest(self, sha256: str) -> None:
        from workbench.rules.suggest import suggest_for_artifact

        self.post_message(self.Suggested(
            suggest_for_artifact(self.workbench.workspace, sha256, limit=1000)))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.data = event.data
        self.strings = event.strings
        self.query_one(HexView).data = event.data
        self._show_source(event.data)
        self._filter_strings()
        self._show_hex_status(0, None)
        start = self.open_at
        if start is not None and 0 <= start < len(event.data):
            self.action_tab("hex")
            end = start + self.open_length - 1
            hex_view = self.query_one(HexView)
            if self.open_length > 1:           # the cursor on the match's first byte, selected to its end
                hex_view.go_to(end, select_to=start)
            else:
                hex_view.go_to(start)

    def _show_source(self, data: bytes) -> None:
        """Text artifacts (macros, scripts) are shown in full below their report."""
        art = self.artifact
        kinds = f"{art.mime} {art.declared_type} {getattr(art.report, 'language', '')}".lower()
        if not (kinds.startswith("text/") or " text/" in kinds or "script" in kinds):
            return
        vba = "vba" in kinds or art.extension in ("bas", "cls", "frm")
        source = safely(lambda: source_text(data, vba=vba), "source")
        if source is not None:
            view = self.query_one("#source-view", Static)
            view.update(Text.assemble(("\nsource", "bold underline"), "\n", source))
            view.display = True

    @on(Suggested)
    def _suggested(self, event: Suggested) -> None:
        by_key = {(c.text, c.encoding): c for c in event.report.candidates}
        for row in self.strings:
            candidate = by_key.get((row.text.strip(), row.encoding))
            if candidate is not None:
                row.score, row.goodware, row.reasons = (candidate.score, candidate.goodware_count,
                                                        candidate.reasons)
        self.suggestion_notes = list(event.report.notes)
        self._filter_strings()

    # -- strings -------------------------------------------------------------------------

    @on(Input.Changed, "#strings-search")
    def _search(self) -> None:
        self._filter_strings()

    @on(Input.Submitted, "#strings-search")
    def _search_done(self) -> None:
        self.query_one(StringsTable).focus()

    def action_search(self) -> None:
        self.action_tab("strings")
        self.query_one("#strings-search", Input).focus()

    def typed(self, character: str) -> bool:
        if self.query_one(TabbedContent).active != "tab-strings":
            return False
        search = self.query_one("#strings-search", Input)
        search.focus()
        search.insert_text_at_cursor(character)
        return True

    def on_key(self, event: events.Key) -> None:
        # (WorkbenchScreen.on_key runs after this one unless the default is prevented)
        if event.key == "down" and self.focused is self.query_one("#strings-search", Input):
            event.stop()
            event.prevent_default()
            self.query_one(StringsTable).focus()

    def _filter_strings(self) -> None:
        needle = self.query_one("#strings-search", Input).value.lower()
        rows = [r for r in self.strings if needle in r.text.lower()] if needle else list(self.strings)
        if self.by_score:
            rows.sort(key=lambda r: (-(r.score if r.score is not None else -1e9), r.offset))
        self.query_one(StringsTable).show(rows)
        scored = sum(1 for r in self.strings if r.score is not None)
        count = self.query_one("#strings-count", Static)
        count.update(f"{len(rows):,} of {len(self.strings):,} · {scored:,} scored"
                     + (" · by score" if self.by_score else ""))
        count.tooltip = "\n".join(self.suggestion_notes) or None

    def action_sort_by_score(self) -> None:
        self.by_score = not self.by_score
        self._filter_strings()

    # -- hex --------------------------------------------------------------------------------

    @on(HexView.CursorMoved)
    def _cursor_moved(self, event: HexView.CursorMoved) -> None:
        self._show_hex_status(event.offset, event.selection)

    def _show_hex_status(self, offset: int, selection: tuple[int, int] | None) -> None:
        text = f"offset 0x{offset:x} ({offset:,}) of {len(self.data):,} bytes"
        if selection:
            text += f" · selected 0x{selection[0]:x}-0x{selection[1]:x} ({selection[1] - selection[0] + 1} bytes)"
        self.query_one("#hex-status", Static).update(text)

    def action_goto(self) -> None:
        def chosen(answer: str | None) -> None:
            if not answer:
                return
            try:
                offset = parse_offset(answer)
            except ValueError:
                self.notify(f"not an offset: {answer!r}", severity="error")
                return
            if not 0 <= offset < max(1, len(self.data)):
                self.notify(f"offset {offset:,} is past the end ({len(self.data):,} bytes)",
                            severity="error")
                return
            self.action_tab("hex")
            hex_view = self.query_one(HexView)
            hex_view.go_to(offset)
            hex_view.focus()

        self.app.push_screen(PromptScreen("Go to offset", placeholder="0x1f0, 1f0h or 496"), chosen)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{tab}"
        self._focus_tab(tab)

    @on(TabbedContent.TabActivated, "#artifact-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._focus_tab((event.pane.id or "").removeprefix("tab-"))

    def _focus_tab(self, tab: str) -> None:
        """Keys go where the analyst looks: the strings list or the hex view."""
        if tab == "strings":
            # typing searches: the first letter must not fire a command (d drafts, g goes to ...)
            self.query_one("#strings-search", Input).focus()
        elif tab == "hex":
            self.query_one(HexView).focus()

    # -- marks and drafts -----------------------------------------------------------------

    def action_mark(self) -> None:
        tabs = self.query_one(TabbedContent)
        sha = self.artifact.sha256
        source = self.artifact.safe_name or self.artifact.path
        if tabs.active == "tab-strings":
            table = self.query_one(StringsTable)
            row = table.current()
            if row is None:
                return
            marked = self.workbench.marks.toggle(
                Mark(sha, "text", row.text, row.offset, row.encoding, source))
            table.reset()
            table.action_cursor(1)
            self.notify(f"{'marked' if marked else 'unmarked'} {row.text[:40]!r} · "
                        f"{len(self.workbench.marks)} marked", timeout=2)
        elif tabs.active == "tab-hex":
            hex_view = self.query_one(HexView)
            chunk = hex_view.selected_bytes()
            if not chunk:
                return
            if len(chunk) > MAX_HEX_MARK:
                self.notify(f"select at most {MAX_HEX_MARK} bytes for a hex string", severity="error")
                return
            start = hex_view.selection[0] if hex_view.selection else hex_view.cursor
            marked = self.workbench.marks.toggle(Mark(sha, "hex", hex_string(chunk), start, "", source))
            self.notify(f"{'marked' if marked else 'unmarked'} {len(chunk)} bytes at 0x{start:x} · "
                        f"{len(self.workbench.marks)} marked", timeout=2)
        else:
            self.notify("mark strings in the Strings tab or bytes in the Hex tab", timeout=3)

    def action_draft(self) -> None:
        marks = list(self.workbench.marks)
        if not marks:
            self.notify("mark strings (Strings tab) or bytes (Hex tab) with m first",
                        severity="warning")
            return

        def chosen(answer: str | None) -> None:
            if answer:
                category, family = parse_family(answer)
                self.notify(f"drafting {category}_{family} from {len(marks)} marked item(s)…",
                            timeout=3)
                self.run_draft(marks, category, family)

        self.app.push_screen(PromptScreen(
            f"Draft a rule from {len(marks)} marked item(s): category and family",
            "MAL Unknown", hint="e.g.  MAL Emotet  or  PHISH Docusign · enter drafts"), chosen)

    @work(thread=True, exclusive=True, group="draft", exit_on_error=False,
          description="draft a rule")
    def run_draft(self, marks: list[Mark], category: str, family: str) -> None:
        self.post_message(self.Drafted(draft_text(self.workbench.workspace, marks, category, family)))

    @on(Drafted)
    def _drafted(self, event: Drafted) -> None:
        draft = event.draft
        self.workbench.marks.clear()
        self.workbench.refresh_marks()          # no ● left beside strings that went into the draft
        self.workbench.open_draft(draft.text)
        missed = [s for s in draft.samples if s not in draft.matched]
        if missed:
            self.notify(f"the draft does not match {len(missed)} of its samples", severity="warning")

    def action_back(self) -> None:
        self.dismiss()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Mark", "the string under the cursor or the selected bytes (m)",
                           self.action_mark),
            PaletteCommand("Draft rule from marks", f"{len(self.workbench.marks)} marked (d)",
                           self.action_draft),
            PaletteCommand("Go to offset", "in the hex view (g)", self.action_goto),
            PaletteCommand("Sort strings by score", "S", self.action_sort_by_score),
            *(PaletteCommand(f"Show {tab}", f"tab {n}", partial(self.action_tab, tab))
              for n, tab in enumerate(("summary", "report", "strings", "hex"), 1)),
        ]
