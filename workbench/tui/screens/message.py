"""One message: its index summary at once, then the artifact tree as dissection completes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
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


def summary_text(row: MessageRow, sightings: list[Sighting]) -> Text:
    out = Text()
    out.append("From     ", style="bold")
    out.append(f"{visible(row.from_addr)}\n")
    out.append("To       ", style="bold")
    out.append(f"{visible(row.to_addrs)}\n")
    out.append("Subject  ", style="bold")
    out.append(f"{visible(row.subject)}\n")
    out.append("Received ", style="bold")
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

    @dataclass(eq=False)
    class Summary(Message):
        row: MessageRow
        sightings: list[Sighting]
        audit: list[AuditEntry]
        headers: list[QuickHeader] | None = None

    @dataclass(eq=False)
    class NotFound(Message):
        reason: str

    @dataclass(eq=False)
    class NodeDone(Message):
        """One artifact finished; ``parent`` is its parent's path ("" for the root)."""

        artifact: Artifact
        parent: str

    @dataclass(eq=False)
    class Dissected(Message):
        dissection: Dissection

    def __init__(self, ident: str) -> None:
        super().__init__()
        self.ident = ident
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

    def compose(self) -> ComposeResult:
        # Flat on purpose (a grid on the screen, see app.tcss): every container is a layer
        # the compositor draws over its whole area on each paint, and the seven tab panes
        # of a TabbedContent were built, styled and laid out on every open. One view shows
        # the chosen tab, drawn when it is shown (_draw_tab).
        yield Header()
        yield Static(Text("loading…", style="dim"), id="message-summary")
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
        self.sub_title = "message"
        self.load_summary(self.ident)
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
            self.in_view = (tab, id(content))
            self.query_one("#tab-view", Static).update(content)

    # -- workers --------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="summary", exit_on_error=False,
          description="read the message from the index")
    @leaves_no_trace
    def load_summary(self, ident: str) -> None:
        with self.workbench.pool.reader() as index:
            try:
                sha = index.resolve(ident)
            except (UnknownId, AmbiguousId) as exc:
                self.post_message(self.NotFound(str(exc)))
                return
            row = index.get(sha)
            sightings = index.sightings(sha)
            audit = index.audit(sha)
        # the header block straight from the store: shown before the dissector reports
        head = ObjectStore(self.workbench.workspace.quarantine).read(sha, limit=HEAD_BYTES)
        self.post_message(self.Summary(row, sightings, audit, quick_headers(head)))

    @work(thread=True, exclusive=True, group="dissect", exit_on_error=False,
          description="dissect the message")
    @leaves_no_trace
    def run_dissect(self, sha256: str, use_cache: bool = True) -> None:
        from workbench.dissect.walker import dissect_message

        last_at_depth: dict[int, str] = {}

        def on_node(artifact: Artifact) -> None:
            # nodes complete depth first, parent before children: the parent of a node is
            # the last node reported one level up
            parent = last_at_depth.get(artifact.depth - 1, "") if artifact.depth else ""
            last_at_depth[artifact.depth] = artifact.path
            self.post_message(self.NodeDone(artifact, parent))

        with Quarantine(self.workbench.workspace.quarantine) as q:
            result = dissect_message(q, sha256, on_node=on_node, use_cache=use_cache)
        self.post_message(self.Dissected(result))

    # -- results ---------------------------------------------------------------------

    @on(Summary)
    def _summary(self, event: Summary) -> None:
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
            self.run_dissect(self.sha256)

    @on(NotFound)
    def _not_found(self, event: NotFound) -> None:
        self.query_one("#message-summary", Static).update(Text(event.reason, style="bold red"))
        self.query_one("#artifact-status", Static).update("nothing to dissect")

    @on(NodeDone)
    def _node_done(self, event: NodeDone) -> None:
        art = event.artifact
        tree = self.query_one("#artifacts", Tree)
        parent = self.nodes.get(event.parent, tree.root)
        parent.allow_expand = True
        parent.expand()
        node = parent.add(artifact_label(art), data=art, allow_expand=False)
        self.nodes[art.path] = node
        if art.depth == 0:
            self.report = _message_report(art.report)
            self._show_report()
            tree.move_cursor(node)
        self.query_one("#artifact-status", Static).update(f"dissecting… {len(self.nodes)} artifacts")

    @on(Dissected)
    def _dissected(self, event: Dissected) -> None:
        result = event.dissection
        self.dissection = result
        # statuses can change after a node was first shown (a limit hit while descending)
        for art in result.root.walk():
            node = self.nodes.get(art.path)
            if node is not None:
                node.set_label(artifact_label(art))
                node.data = art
        self.report = _message_report(result.root.report)
        self._show_report()
        problems = len(result.problems)
        status = Text(f"{result.nodes} artifacts · {human_size(result.expanded_bytes)} expanded")
        if problems:
            status.append(f" · {problems} problem(s)", style="bold yellow")
        self.query_one("#artifact-status", Static).update(status)

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
            self.run_dissect(self.sha256, use_cache=False)

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
                self.triage(sha, status=answer)

        self.app.push_screen(StatusScreen(1, self.row.status), chosen)

    def action_tags(self) -> None:
        if self.row is None:
            return
        sha = self.row.sha256

        def chosen(answer: tuple[list[str], list[str]] | None) -> None:
            if answer is not None:
                self.triage(sha, tags=answer)

        self.app.push_screen(TagsScreen(1, self.row.tags), chosen)

    @work(thread=True, exclusive=True, group="triage", exit_on_error=False,
          description="triage the message")
    @leaves_no_trace
    def triage(self, sha: str, *, status: tuple[str, str] | None = None,
               tags: tuple[list[str], list[str]] | None = None) -> None:
        with Quarantine(self.workbench.workspace.quarantine) as q:
            if status is not None:
                q.set_status(sha, status[0], note=status[1])
            if tags is not None:
                q.tag(sha, *tags)
            row, sightings, audit = q.index.get(sha), q.index.sightings(sha), q.index.audit(sha)
        self.post_message(self.Summary(row, sightings, audit))

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
