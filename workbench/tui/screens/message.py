"""One message: its index summary at once, then the artifact tree as dissection completes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Header, Static, Tab, Tabs, Tree
from textual.widgets.tree import TreeNode

from workbench.humanize import shown
from workbench.quarantine.index import AmbiguousId, AuditEntry, MessageRow, Sighting, UnknownId
from workbench.quarantine.object_store import ObjectStore
from workbench.quarantine.service import Quarantine
from workbench.tui.commands import PaletteCommand
from workbench.tui.render import (
    HEAD_BYTES,
    QuickHeader,
    artifact_label,
    auth_text,
    body_text,
    headers_text,
    hops_table,
    human_size,
    parts_table,
    quick_headers,
    safely,
    urls_table,
)
from workbench.tui.safety import visible
from workbench.tui.screens.base import WorkbenchScreen, leaves_no_trace
from workbench.tui.screens.modals import StatusScreen, TagsScreen
from workbench.tui.widgets.key_footer import KeyFooter
from workbench.tui.widgets.message_list import received_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from workbench.dissect.formats.message import MessageReport
    from workbench.dissect.model import Artifact, Dissection
    from workbench.tui.render import HeaderLike

TABS = {"headers": "Headers", "received": "Received", "auth": "Auth", "body": "Body",
        "urls": "URLs", "parts": "Parts", "history": "History"}
WAITING = Text("waiting for the dissection…", style="dim")
NODE_BATCH = 0.1            # seconds: artifacts found within reach the tree as one update


def summary_text(row: MessageRow, sightings: list[Sighting] | None) -> Text:
    """The summary block; without ``sightings`` (not read yet) the Received line says less."""
    out = Text()
    out.append("From     ", style="bold")
    out.append(f"{visible(row.from_addr)}\n")
    out.append("To       ", style="bold")
    out.append(f"{visible(row.to_addrs)}\n")
    out.append("Subject  ", style="bold")
    out.append(f"{visible(row.subject)}\n")
    out.append("Received ", style="bold")
    if sightings is None:
        out.append(f"{received_text(row.first_seen)} UTC · {row.reason}\n")
    else:
        towers = sorted({f"{s.tower}/{s.server}" for s in sightings})
        out.append(f"{received_text(row.first_seen)} UTC · {len(sightings)} sighting(s) on "
                   f"{', '.join(towers[:6]) or '?'}{' …' if len(towers) > 6 else ''} · {row.reason}\n")
    out.append("Status   ", style="bold")
    out.append(row.status, style="bold yellow" if row.status == "new" else "bold green")
    if row.tags:
        out.append("  " + " ".join(f"#{t}" for t in row.tags), style="italic")
    out.append(f"   sha256 {row.sha256}  {human_size(row.size)}", style="dim")
    return out


def history_text(sightings: list[Sighting], audit: list[AuditEntry]) -> Text:
    out = Text("Sightings\n", style="bold underline")
    for s in sightings:
        out.append(f"{shown(s.seen_at)}  {s.tower}/{s.server}  {s.reason}  {s.source}\n")
    out.append("\nAudit log\n", style="bold underline")
    for entry in audit:
        out.append(f"{shown(entry.at)}  {entry.actor:<12} {entry.action:<9} "
                   f"{entry.detail}")
        if entry.note:
            out.append(f"  “{entry.note}”", style="italic")
        out.append("\n")
    return out


def _is_sha256(ident: str) -> bool:
    return len(ident) == 64 and all(c in "0123456789abcdef" for c in ident)


def _message_report(report: object) -> MessageReport | None:
    """The root's report when it is a message's (a file dissected as the root has another)."""
    from workbench.dissect.formats.message import MessageReport

    return report if isinstance(report, MessageReport) else None


class MessageScreen(WorkbenchScreen):
    """The summary comes from the index (instant); the tree fills as each node is dissected."""

    HELP = """\
## Message

The summary at the top comes from the quarantine index and shows at once. The
artifact tree on the left fills in while the message is dissected in the
background: every MIME part, archive member and embedded object, with badges for
type mismatches (⚠) and for limits hit, time-outs and parser errors.

The tabs on the right show the headers (decoded; `r` shows them raw), the
Received hops with the delay between them (negative: the clocks disagree), the
authentication results as the receiving servers reported them and any sender
mismatches, the text body (HTML shown as text, never loaded; `h` shows the HTML
source), the URLs found (defanged), the MIME parts, and the history (sightings
and audit log).

Choose an artifact (enter) to open it: hashes, the format report, strings and a
hex view, where you mark strings and bytes for a draft rule.
"""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("enter", "open_artifact", "Open artifact", show=False),
        Binding("r", "toggle_raw", "Raw headers"),
        Binding("h", "toggle_html", "HTML source"),
        Binding("s", "status", "Status"),
        Binding("t", "tags", "Tags"),
        Binding("D", "redissect", "Re-dissect"),
    ]

    # Every message carries the number of the open it belongs to: the screen is reused
    # for the next message, and what a worker of an earlier open posts late is dropped.

    @dataclass(eq=False)
    class Summary(Message):
        serial: int
        row: MessageRow
        sightings: list[Sighting]
        audit: list[AuditEntry]
        headers: list[QuickHeader] | None = None

    @dataclass(eq=False)
    class NotFound(Message):
        serial: int
        reason: str

    @dataclass(eq=False)
    class NodeDone(Message):
        """Artifacts finished: (artifact, its parent's path, "" for the root), in order."""

        serial: int
        nodes: list[tuple[Artifact, str]]

    @dataclass(eq=False)
    class Dissected(Message):
        serial: int
        dissection: Dissection
        nodes: list[tuple[Artifact, str]]   # finished since the last NodeDone

    def __init__(self, ident: str = "") -> None:
        super().__init__()
        self.ident = ident
        self.first_row: MessageRow | None = None
        self.serial = 0                     # which open this is (the screen is reused)
        self._styled_at: int | None = None  # the app's CSS update count when last styled
        self.sha256 = ""
        self.row: MessageRow | None = None
        self.report: MessageReport | None = None      # the root's report, once dissected
        self.dissection: Dissection | None = None
        self.nodes: dict[str, TreeNode[Artifact]] = {}
        self.raw_headers = False
        self.html_source = False
        self.quick_headers: list[QuickHeader] = []
        # each tab's content: how to draw it, and what was drawn once it was shown
        self.makers: dict[str, tuple[Callable[[], RenderableType], str]] = {}
        self.drawn: dict[str, RenderableType] = {}
        self.in_view: tuple[str, int] | None = None
        self.shown: RenderableType | None = None       # what the view shows

    def compose(self) -> ComposeResult:
        # Flat on purpose (a grid on the screen, see app.tcss): every container is a layer
        # the compositor draws over its whole area on each paint, and the seven tab panes
        # of a TabbedContent were built, styled and laid out on every open. One view shows
        # the chosen tab, drawn when it is shown (_draw_tab).
        yield Header()
        yield Static(id="message-summary")
        yield Static("dissecting…", id="artifact-status")
        yield Tabs(*(Tab(title, id=f"tab-{tab}") for tab, title in TABS.items()), id="message-tabs")
        tree: Tree[Artifact] = Tree("message", id="artifacts")
        tree.show_root = False
        tree.auto_expand = False
        yield tree
        with VerticalScroll(id="tab-pane"):
            yield Static(WAITING, id="tab-view", classes="report-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._show_first_summary()
        self._start()

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual styles every widget of a screen again each time it is pushed, for a
        # screen just built. The kept screen was styled when last shown: again only if the
        # app's CSS changed since (a theme switch). (Screen's own handler runs after this
        # one and reads the flag.)
        count = self.app._css_update_count
        if event.refresh_styles and self._styled_at == count:
            event.refresh_styles = False
        self._styled_at = count

    def show_message(self, ident: str, row: MessageRow | None = None) -> None:
        """Show another message on this screen (the app keeps one and reuses it); ``row``:
        its index row if the caller has it (the list does), shown in the first paint.

        Building, styling and laying out a new screen was most of an open, and removing
        the closed one made Textual lay the list out again twice on the way back. What
        the last message showed is forgotten here, before the screen is shown again.
        """
        self.ident = ident
        self.first_row = row if row is not None and row.sha256 == ident else None
        if not self.is_mounted:
            return                          # on_mount starts it
        self.sha256 = ""
        self.row = self.report = self.dissection = None
        self.nodes = {}
        self.raw_headers = self.html_source = False
        self.quick_headers = []
        self.makers, self.drawn, self.in_view, self.shown = {}, {}, None, None
        self._show_first_summary()
        self.query_one("#artifact-status", Static).update("dissecting…", layout=False)
        self.query_one("#artifacts", Tree).clear()
        auth = self.query_one("#tab-auth", Tab)
        if auth.label.plain != TABS["auth"]:
            auth.label = Text(TABS["auth"])
        tabs = self.query_one("#message-tabs", Tabs)
        first = f"tab-{next(iter(TABS))}"
        if tabs.active != first:
            tabs.active = first
        self._draw_tab(next(iter(TABS)))
        self.query_one("#tab-pane", VerticalScroll).scroll_home(animate=False)
        self._start()

    def _show_first_summary(self) -> None:
        summary = self.query_one("#message-summary", Static)
        if self.first_row is not None:
            summary.update(summary_text(self.first_row, None))
        else:
            summary.update(Text("loading…", style="dim"))

    def _start(self) -> None:
        self.serial += 1
        # the subject as soon as it is known: a screen's sub_title repaints the whole
        # screen when it changes, so it is set before the first paint, not after it
        row = self.first_row
        self.sub_title = (visible(row.subject) or row.sha256[:12]) if row is not None else "message"
        self.load_summary(self.ident, self.serial)
        if _is_sha256(self.ident):
            # the usual case (the list opens by sha256): the cached dissection is read
            # while the summary is, not after it
            self.sha256 = self.ident
            self.run_dissect(self.sha256, self.serial)
        self.query_one("#artifacts", Tree).focus()

    @property
    def active_tab(self) -> str:
        """The tab shown: one of ``TABS``."""
        active = self.query_one("#message-tabs", Tabs).active
        return active.removeprefix("tab-") if active else next(iter(TABS))

    def show_tab(self, tab: str) -> None:
        """Show ``tab`` (drawn now, from what is known by now)."""
        self.query_one("#message-tabs", Tabs).active = f"tab-{tab}"
        self._draw_tab(tab)

    @on(Tabs.TabActivated, "#message-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id:
            self._draw_tab(event.tab.id.removeprefix("tab-"))
            self.query_one("#tab-pane", VerticalScroll).scroll_home(animate=False)

    def _draw_tab(self, tab: str) -> None:
        """Put ``tab``'s content in the view; drawn (and kept) the first time it is shown."""
        if tab not in self.drawn:
            make = self.makers.get(tab)
            if make is None:
                content: RenderableType = WAITING
            else:
                content = self.drawn[tab] = safely(make[0], make[1])
        else:
            content = self.drawn[tab]
        if self.in_view != (tab, id(content)):
            shown, self.shown = self.shown, content
            self.in_view = (tab, id(content))
            if isinstance(shown, Text) and isinstance(content, Text) and content == shown:
                return      # (the dissector's headers drawn as those read from the store were)
            self.query_one("#tab-view", Static).update(content)

    # -- workers --------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="summary", exit_on_error=False,
          description="read the message from the index")
    @leaves_no_trace
    def load_summary(self, ident: str, serial: int) -> None:
        with self.workbench.pool.reader() as index:
            try:
                sha = index.resolve(ident)
            except (UnknownId, AmbiguousId) as exc:
                self.post_message(self.NotFound(serial, str(exc)))
                return
            row = index.get(sha)
            sightings = index.sightings(sha)
            audit = index.audit(sha)
        # the header block straight from the store: shown before the dissector reports
        head = ObjectStore(self.workbench.workspace.quarantine).read(sha, limit=HEAD_BYTES)
        self.post_message(self.Summary(serial, row, sightings, audit, quick_headers(head)))

    @work(thread=True, exclusive=True, group="dissect", exit_on_error=False,
          description="dissect the message")
    @leaves_no_trace
    def run_dissect(self, sha256: str, serial: int, use_cache: bool = True) -> None:
        from workbench.dissect.walker import dissect_message

        last_at_depth: dict[int, str] = {}
        pending: list[tuple[Artifact, str]] = []
        flushed = time.monotonic()

        def on_node(artifact: Artifact) -> None:
            nonlocal flushed
            # nodes complete depth first, parent before children: the parent of a node is
            # the last node reported one level up
            parent = last_at_depth.get(artifact.depth - 1, "") if artifact.depth else ""
            last_at_depth[artifact.depth] = artifact.path
            pending.append((artifact, parent))
            # the root (the headers, the first facts) at once; the rest a batch at a time,
            # so a cached dissection (a few ms) reaches the screen as one update, not one
            # layout and paint per artifact, while a slow one still fills as it goes
            if artifact.depth == 0 or time.monotonic() - flushed > NODE_BATCH:
                self.post_message(self.NodeDone(serial, pending[:]))
                pending.clear()
                flushed = time.monotonic()

        with Quarantine(self.workbench.workspace.quarantine) as q:
            try:
                result = dissect_message(q, sha256, on_node=on_node, use_cache=use_cache)
            except UnknownId:
                return              # (started with an id that only looked like a sha256: NotFound says so)
        self.post_message(self.Dissected(serial, result, pending))

    # -- results ---------------------------------------------------------------------

    @on(Summary)
    def _summary(self, event: Summary) -> None:
        if event.serial != self.serial:
            return
        first = not self.sha256
        self.row = event.row
        self.sha256 = event.row.sha256
        self.sub_title = visible(event.row.subject) or event.row.sha256[:12]
        self.query_one("#message-summary", Static).update(summary_text(event.row, event.sightings))
        sightings, audit = event.sightings, event.audit
        self._show("history", lambda: history_text(sightings, audit), "history")
        if event.headers is not None:
            self.quick_headers = event.headers
            self._show_headers()
        if first:
            self.run_dissect(self.sha256, self.serial)

    @on(NotFound)
    def _not_found(self, event: NotFound) -> None:
        if event.serial != self.serial:
            return
        self.workers.cancel_group(self, "dissect")     # (an id that looked like a sha256)
        self.query_one("#message-summary", Static).update(Text(event.reason, style="bold red"))
        self.query_one("#artifact-status", Static).update("nothing to dissect")

    @on(NodeDone)
    def _node_done(self, event: NodeDone) -> None:
        if event.serial != self.serial:
            return
        self._add_nodes(event.nodes)
        self.query_one("#artifact-status", Static).update(f"dissecting… {len(self.nodes)} artifacts",
                                                          layout=False)   # (a grid cell: same size)

    def _add_nodes(self, nodes: list[tuple[Artifact, str]]) -> None:
        tree = self.query_one("#artifacts", Tree)
        for art, parent_path in nodes:
            parent = self.nodes.get(parent_path, tree.root)
            if not parent.allow_expand:
                parent.allow_expand = True
            if not parent.is_expanded:
                parent.expand()
            node = parent.add(artifact_label(art), data=art, allow_expand=False)
            self.nodes[art.path] = node
            if art.depth == 0:
                self.report = _message_report(art.report)
                self._show_report()
                tree.move_cursor(node)

    @on(Dissected)
    def _dissected(self, event: Dissected) -> None:
        if event.serial != self.serial:
            return
        result = event.dissection
        self.dissection = result
        self._add_nodes(event.nodes)
        # statuses can change after a node was first shown (a limit hit while descending)
        for art in result.root.walk():
            node = self.nodes.get(art.path)
            if node is not None:
                label = artifact_label(art)
                if label != node.label:         # (each relabel lays the tree out again)
                    node.set_label(label)
                node.data = art
        self.report = _message_report(result.root.report)
        self._show_report()
        problems = len(result.problems)
        status = Text(f"{result.nodes} artifacts · {human_size(result.expanded_bytes)} expanded")
        if problems:
            status.append(f" · {problems} problem(s)", style="bold yellow")
        self.query_one("#artifact-status", Static).update(status, layout=False)

    def _show(self, tab: str, make: Callable[[], RenderableType], what: str) -> None:
        """What ``tab`` shows, drawn by ``make`` now if it is the tab shown, else when it is."""
        self.makers[tab] = (make, what)
        self.drawn.pop(tab, None)
        if self.is_mounted and self.active_tab == tab:
            self._draw_tab(tab)

    def _show_headers(self) -> None:
        """The dissector's headers once reported; until then the ones read from the store."""
        headers: Sequence[HeaderLike] = self.report.headers if self.report is not None else self.quick_headers
        if self.report is None and not self.quick_headers:
            return
        raw = self.raw_headers
        self._show("headers", lambda: headers_text(headers, raw=raw), "headers")

    def _flag_auth(self, report: MessageReport) -> None:
        """The Auth tab's title warns when the sender does not add up, so it is not missed."""
        failed = [a for a in report.auth if a.result in ("fail", "softfail", "permerror")]
        problems = len(report.mismatches) + len(failed)
        label = Text.assemble("Auth ", (f"⚠ {problems}", "bold red")) if problems else Text("Auth")
        tab = self.query_one("#tab-auth", Tab)
        if tab.label.plain != label.plain:          # (a relabel lays the tab bar out again)
            tab.label = label

    def _show_report(self) -> None:
        report = self.report
        self._show_headers()
        if report is None:
            return
        html_source = self.html_source
        self._show("received", lambda: hops_table(report) if report.received
                   else Text("no Received headers", style="dim"), "hops")
        self._show("auth", lambda: auth_text(report), "authentication results")
        self._flag_auth(report)
        self._show("body", lambda: body_text(report, html_source=html_source), "body")
        self._show("urls", lambda: urls_table(report) if report.urls or report.emails
                   else Text("no URLs found", style="dim"), "URLs")
        self._show("parts", lambda: parts_table(report), "MIME parts")

    # -- actions ---------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_toggle_raw(self) -> None:
        self.raw_headers = not self.raw_headers
        self._show_report()
        self.show_tab("headers")

    def action_toggle_html(self) -> None:
        self.html_source = not self.html_source
        self._show_report()
        self.show_tab("body")

    def action_redissect(self) -> None:
        if self.sha256:
            self.nodes.clear()
            self.query_one("#artifacts", Tree).clear()
            self.run_dissect(self.sha256, self.serial, use_cache=False)

    def action_open_artifact(self) -> None:
        node = self.query_one("#artifacts", Tree).cursor_node
        if node is not None and node.data is not None:
            self.workbench.open_artifact(node.data, message_sha256=self.sha256)

    @on(Tree.NodeHighlighted, "#artifacts")
    def _node_highlighted(self, event: Tree.NodeHighlighted[Artifact]) -> None:
        # a narrow pane cuts the detected type and size: the tooltip has the whole line
        tree = self.query_one("#artifacts", Tree)
        art = event.node.data
        tree.tooltip = artifact_label(art).plain if art is not None else None

    @on(Tree.NodeSelected, "#artifacts")
    def _node_selected(self, event: Tree.NodeSelected[Artifact]) -> None:
        event.stop()
        self.action_open_artifact()

    def action_status(self) -> None:
        if self.row is None:
            return
        sha = self.row.sha256

        def chosen(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self.triage(sha, self.serial, status=answer)

        self.app.push_screen(StatusScreen(1, self.row.status), chosen)

    def action_tags(self) -> None:
        if self.row is None:
            return
        sha = self.row.sha256

        def chosen(answer: tuple[list[str], list[str]] | None) -> None:
            if answer is not None:
                self.triage(sha, self.serial, tags=answer)

        self.app.push_screen(TagsScreen(1, self.row.tags), chosen)

    @work(thread=True, exclusive=True, group="triage", exit_on_error=False,
          description="triage the message")
    @leaves_no_trace
    def triage(self, sha: str, serial: int, *, status: tuple[str, str] | None = None,
               tags: tuple[list[str], list[str]] | None = None) -> None:
        with Quarantine(self.workbench.workspace.quarantine) as q:
            before = q.index.last_change()
            if status is not None:
                q.set_status(sha, status[0], note=status[1])
            if tags is not None:
                q.tag(sha, *tags)
            row, sightings, audit = q.index.get(sha), q.index.sightings(sha), q.index.audit(sha)
            changes = (before, q.index.last_change())
        self.post_message(self.Summary(serial, row, sightings, audit))
        # the list shows this row again on return, read now rather than the whole page then
        self.app.call_from_thread(self.workbench.message_triaged, row, changes)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Open artifact", "the artifact under the cursor (enter)",
                           self.action_open_artifact),
            PaletteCommand("Toggle raw headers", "r", self.action_toggle_raw),
            PaletteCommand("Toggle HTML source", "h", self.action_toggle_html),
            PaletteCommand("Set triage status", "s", self.action_status),
            PaletteCommand("Edit tags", "t", self.action_tags),
            PaletteCommand("Dissect again", "ignore cached reports (D)", self.action_redissect),
        ]
