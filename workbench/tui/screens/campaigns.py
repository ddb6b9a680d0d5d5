"""The campaigns screen: the waves in the quarantine, why their members are together, one rule each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from workbench.humanize import shown
from workbench.terminal_text import sparkline
from workbench.tui.safety import visible
from workbench.tui.screens.base import WorkbenchScreen

if TYPE_CHECKING:
    from workbench.campaigns.draft import CampaignDraft
    from workbench.campaigns.service import CampaignReport, CampaignSummary

def _when(iso: str) -> str:
    return shown(iso, seconds=False)[5:]


def campaign_row(c: CampaignSummary) -> tuple[str, ...]:
    return (c.id, f"{c.size:,}", f"{c.towers}/{c.servers}", _when(c.last_seen), sparkline(c.growth, 16),
            ", ".join(c.reasons[:3]))


def report_text(report: CampaignReport) -> Text:
    from workbench.campaigns.features import KINDS

    s = report.summary
    out = Text()
    out.append(f"{s.id}\n", style="bold")
    out.append(f"{s.size:,} messages · {s.towers} towers · {s.servers} servers\n")
    out.append(f"first seen {shown(s.first_seen, seconds=False)} · last seen "
               f"{shown(s.last_seen, seconds=False)}\n")
    out.append("growth per hour ", style="dim")
    out.append(sparkline(s.growth, 48), style="cyan")
    out.append(f"  peak {max(s.growth, default=0)}/h\n\n", style="dim")
    out.append("why they are together\n", style="bold underline")
    for kind, n in report.links.items():
        out.append(f"{n:>5}  ", style="bold")
        out.append(f"{KINDS[kind].label}\n")
    if report.shared:
        out.append("\nshared values\n", style="bold underline")
        for v in report.shared:
            out.append(f"{v.messages:>5}  {v.kind:<8} ", style="dim")
            out.append(f"{visible(v.value)[:70]}\n")
    out.append("\nreach\n", style="bold underline")
    for r in report.reach[:12]:
        out.append(f"{r.messages:>5}  {visible(r.tower)} / {visible(r.server)}\n")
    if len(report.reach) > 12:
        out.append(f"       … {len(report.reach) - 12} more servers\n", style="dim")
    out.append(f"\nmembers ({report.members_shown} of {s.size:,})\n", style="bold underline")
    for m in report.members:
        out.append(f"{m.sha256[:12]} ", style="dim")
        out.append(f"{m.status:<9}", style="yellow" if m.status == "new" else "")
        out.append(f"{visible(m.subject)[:40]}")
        kinds = sorted({w.kind for w in m.why})
        out.append(f"  {', '.join(kinds) if kinds else '(first)'}\n", style="dim")
    return out


def draft_text(result: CampaignDraft) -> Text:
    cov = result.coverage
    out = Text()
    out.append(f"draft for {result.campaign}: {result.draft.name}\n", style="bold")
    good = not cov.missed
    out.append(f"coverage {len(cov.caught)} of {cov.members} members ({cov.share:.0%})\n",
               style="green" if good else "yellow")
    for miss in cov.missed[:10]:
        out.append(f"  missed {miss.message[:12]}: {visible(miss.reason)}\n", style="yellow")
    if result.clean_corpora:
        out.append(f"clean corpora {', '.join(result.clean_corpora)} ({result.clean_files:,} files): "
                   f"{len(result.false_positives)} hit(s)\n",
                   style="red" if result.false_positives else "green")
        for hit in result.false_positives[:10]:
            out.append(f"  FALSE POSITIVE {hit.sha256[:12]} {visible(hit.name)}\n", style="red")
    else:
        out.append("no clean corpus registered: false positives not checked\n", style="yellow")
    out.append("e opens it in the rule editor\n\n", style="dim")
    out.append(result.draft.text)
    return out


class CampaignsScreen(WorkbenchScreen):
    """Lists campaigns in a worker (catching the store up first) and shows the highlighted one."""

    HELP = """\
## Campaigns

Quarantined messages grouped into waves by what links them: an identical or
near-identical payload (sha256, ssdeep, TLSH), the same URL or import table, and
templates and sending infrastructure taken together (subject, body, relay, HELO).
Mail joins its campaign as it arrives (`quarantine watch`) and again when it is
dissected, with whatever dissection found inside archives.

The list shows the most recently active campaigns first. The right pane shows the
highlighted one: growth per hour, why its members are together, the values they
share, the towers and servers it reached, and its members with what linked each.

**s** sets the status of every member, **t** tags them all, **d** drafts one rule
for the whole wave and tests it at once (members caught, clean-corpus hits), **e**
opens that draft in the rule editor, **r** refreshes.
"""

    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("s", "set_status", "Status (all)"),
        Binding("t", "tag", "Tag (all)"),
        Binding("d", "draft", "Draft rule"),
        Binding("e", "edit_draft", "Edit draft", show=False),
    ]

    @dataclass(eq=False)
    class Listed(Message):
        campaigns: list[CampaignSummary]

    @dataclass(eq=False)
    class Shown(Message):
        report: CampaignReport

    @dataclass(eq=False)
    class Drafted(Message):
        result: CampaignDraft

    def __init__(self) -> None:
        super().__init__()
        self.campaigns: list[CampaignSummary] = []
        self.current: str | None = None
        self.draft: CampaignDraft | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("reading campaigns…", style="dim"), id="campaigns-summary")
        with Horizontal(id="campaigns-body"):
            yield DataTable(id="campaigns-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="campaign-detail-pane"):
                yield Static(Text("choose a campaign", style="dim"), id="campaign-detail",
                             classes="report-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("campaign", "msgs", "towers", "last seen", "growth", "linked by")
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    # -- workers: thin wrappers over the core ---------------------------------------------------

    @work(thread=True, exclusive=True, group="campaigns-list", exit_on_error=False)
    def action_refresh(self) -> None:
        from workbench.campaigns.service import list_campaigns

        self.post_message(self.Listed(list_campaigns(self.workbench.workspace, limit=500)))

    @work(thread=True, exclusive=True, group="campaigns-show", exit_on_error=False)
    def show(self, cid: str) -> None:
        from workbench.campaigns.service import show_campaign

        self.post_message(self.Shown(show_campaign(self.workbench.workspace, cid, update=False)))

    @work(thread=True, exclusive=True, group="campaigns-draft", exit_on_error=False)
    def _draft(self, cid: str) -> None:
        from workbench.campaigns.draft import draft_for_campaign

        self.post_message(self.Drafted(draft_for_campaign(self.workbench.workspace, cid)))

    @work(thread=True, group="campaigns-triage", exit_on_error=False)
    def _triage(self, cid: str, status: str | None, note: str, add: list[str], remove: list[str]) -> None:
        from workbench.campaigns.service import set_campaign_status, tag_campaign

        workspace = self.workbench.workspace
        result = (set_campaign_status(workspace, cid, status, note=note) if status
                  else tag_campaign(workspace, cid, add, remove))
        self.app.call_from_thread(self.notify, f"{result.campaign}: {result.action} on "
                                               f"{len(result.changed)} messages")
        self.app.call_from_thread(self.show, cid)

    # -- messages ------------------------------------------------------------------------------

    @on(Listed)
    def _listed(self, event: Listed) -> None:
        self.campaigns = event.campaigns
        table = self.query_one(DataTable)
        keep = self.current
        table.clear()
        for c in self.campaigns:
            table.add_row(*campaign_row(c), key=c.id)
        total = sum(c.size for c in self.campaigns)
        self.query_one("#campaigns-summary", Static).update(Text(
            f"{len(self.campaigns):,} campaigns of two or more messages · {total:,} messages in them",
            style="bold") if self.campaigns else Text(
            "no campaigns yet: messages join one when they share a payload, a URL, or templates "
            "and infrastructure", style="dim"))
        if not self.campaigns:
            return
        ids = [c.id for c in self.campaigns]
        table.move_cursor(row=ids.index(keep) if keep in ids else 0)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self.current:
            self.current = str(event.row_key.value)
            self.draft = None
            self.show(self.current)

    @on(Shown)
    def _shown(self, event: Shown) -> None:
        if event.report.summary.id == self.current:
            self.query_one("#campaign-detail", Static).update(report_text(event.report))

    @on(Drafted)
    def _drafted(self, event: Drafted) -> None:
        self.draft = event.result
        if event.result.campaign == self.current:
            self.query_one("#campaign-detail", Static).update(draft_text(event.result))

    # -- actions -------------------------------------------------------------------------------

    def _chosen(self) -> CampaignSummary | None:
        chosen = next((c for c in self.campaigns if c.id == self.current), None)
        if chosen is None:
            self.notify("no campaign chosen", severity="warning")
        return chosen

    def action_set_status(self) -> None:
        from workbench.tui.screens.modals import StatusScreen

        chosen = self._chosen()
        if chosen is None:
            return

        def done(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self._triage(chosen.id, answer[0], answer[1], [], [])

        self.app.push_screen(StatusScreen(chosen.size), done)

    def action_tag(self) -> None:
        from workbench.tui.screens.modals import TagsScreen

        chosen = self._chosen()
        if chosen is None:
            return

        def done(answer: tuple[list[str], list[str]] | None) -> None:
            if answer is not None and (answer[0] or answer[1]):
                self._triage(chosen.id, None, "", answer[0], answer[1])

        self.app.push_screen(TagsScreen(chosen.size, []), done)

    def action_draft(self) -> None:
        chosen = self._chosen()
        if chosen is None:
            return
        self.query_one("#campaign-detail", Static).update(
            Text(f"drafting one rule for the {chosen.size:,} members of {chosen.id}, then testing it…",
                 style="dim"))
        self._draft(chosen.id)

    def action_edit_draft(self) -> None:
        if self.draft is None:
            self.notify("draft a rule first (d)", severity="warning")
            return
        self.workbench.open_draft(self.draft.draft.text)
