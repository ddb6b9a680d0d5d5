"""Campaign use cases: keep the store caught up with the quarantine, list, show and triage waves.

The store follows two feeds: new rows of the quarantine index (header features, at ingest)
and new rows of the dissection catalog (payload and content features). Each feed has a mark
in the store, so ``catch_up`` does only what is new, is safe to call from anywhere (the
spool watcher, the server, the CLI before it lists) and picks up after a crash or a
reindex. Every shell calls these functions; none reads the store itself.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.campaigns.campaign_store import (
    Arrival,
    CampaignStore,
    Joined,
    UnknownCampaign,
    store_path,
)
from workbench.campaigns.features import (
    ARRIVAL_MAX,
    KINDS,
    DissectedNode,
    Feature,
    arrival_features,
    dissection_features,
)
from workbench.durable import file_lock
from workbench.errors import Kind, WorkbenchError
from workbench.quarantine.index import STATUSES, MessageRow
from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace

__all__ = ["UnknownCampaign"]

if TYPE_CHECKING:
    from workbench.campaigns.bulk import MemoryStore

    Observer = CampaignStore | MemoryStore       # what the feeds write to

BATCH = 500


# -- documents -----------------------------------------------------------------------------------

@dataclass
class CatchUpReport:
    messages: int = 0              # index rows observed (header features)
    dissections: int = 0           # dissected messages observed (payload features)
    joined: int = 0                # observations that linked to an existing campaign
    merges: int = 0
    elapsed_ms: float = 0.0

    def count(self, joined: Joined, *, dissected: bool) -> None:
        if dissected:
            self.dissections += 1
        else:
            self.messages += 1
        self.joined += bool(joined.links)
        self.merges += len(joined.merged)


@dataclass
class CampaignSummary:
    id: str
    size: int
    first_seen: str
    last_seen: str
    towers: int
    servers: int
    reasons: list[str]             # the kinds that link its members, most used first
    growth: list[int]              # members first seen per hour, first hour to last


@dataclass
class Reach:
    tower: str
    server: str
    messages: int


@dataclass
class SharedValue:
    kind: str
    label: str
    value: str
    messages: int


@dataclass
class MemberLink:
    kind: str
    value: str
    other: str


@dataclass
class Member:
    sha256: str
    seen: str
    tower: str
    server: str
    subject: str
    from_addr: str
    status: str
    score: float
    why: list[MemberLink]


@dataclass
class CampaignReport:
    summary: CampaignSummary
    reach: list[Reach]
    shared: list[SharedValue]
    links: dict[str, int]
    members: list[Member]
    members_shown: int
    notes: list[str] = field(default_factory=list)


@dataclass
class BulkTriage:
    campaign: str
    changed: list[str]
    action: str


# -- keeping up --------------------------------------------------------------------------------

def open_store(workspace: Workspace, *, readonly: bool = False) -> CampaignStore:
    path = store_path(workspace.state)
    if readonly and not path.exists():
        CampaignStore(path).close()          # an empty store, so readers need no special case
    return CampaignStore(path, readonly=readonly)


def _arrival(row: MessageRow) -> Arrival:
    return Arrival(row.sha256, row.tower, row.server, row.first_seen)


def catch_up(workspace: Workspace, *, progress: Callable[[int], None] | None = None) -> CatchUpReport:
    """Observe every message and dissection the store has not seen yet."""
    started = time.perf_counter()
    report = CatchUpReport()
    if not (workspace.quarantine / "index.sqlite").exists():
        return report
    with file_lock(workspace.state / "campaigns.lock"), open_store(workspace) as store, \
            Quarantine.open(workspace) as q:
        _follow_index(store, q, report, progress)
        _follow_dissections(workspace, store, q, report, progress)
    report.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return report


def _mark(store: Observer, name: str) -> tuple[int, str]:
    raw = store.get_meta(name, "0:")
    rowid, _, sha = raw.partition(":")
    return int(rowid or 0), sha


def _follow_index(store: Observer, q: Quarantine, report: CatchUpReport,
                  progress: Callable[[int], None] | None) -> None:
    mark, mark_sha = _mark(store, "index_mark")
    if mark and q.index.sha_at(mark) != mark_sha:
        mark = 0          # the index was rebuilt: rowids changed; known messages are skipped below
    while True:
        rows = q.index.rows_after(mark, BATCH)
        if not rows:
            return
        with store.transaction():
            for rowid, row in rows:
                mark = rowid
                if store.known(row.sha256):
                    continue
                try:
                    raw = q.store.read(row.sha256, limit=ARRIVAL_MAX + 1)
                except (OSError, LookupError):
                    raw = b""         # fsck reports a missing object; the message still joins by nothing
                report.count(store.observe(_arrival(row), arrival_features(raw)), dissected=False)
            store.set_meta("index_mark", f"{mark}:{rows[-1][1].sha256}")
        store.checkpoint()        # after the commit: the batch's messages have joined already
        if progress:
            progress(report.messages + report.dissections)


def _follow_dissections(workspace: Workspace, store: Observer, q: Quarantine, report: CatchUpReport,
                        progress: Callable[[int], None] | None) -> None:
    from workbench.dissect.cache import DissectCache, cache_path

    path = cache_path(workspace)
    if not path.exists():
        return
    mark, _ = _mark(store, "dissect_mark")
    with DissectCache(path, readonly=True) as cache:
        top = cache.query("SELECT max(rowid) AS top FROM dissected", ())[0]["top"] or 0
        if top < mark:
            mark = 0       # the cache was deleted and started again
        while True:
            rows = cache.query("SELECT rowid, message_sha256 FROM dissected WHERE rowid > ? "
                               "ORDER BY rowid LIMIT ?", (mark, BATCH))
            if not rows:
                return
            with store.transaction():
                for row in rows:
                    mark = row["rowid"]
                    sha = row["message_sha256"]
                    try:
                        arrival = _arrival(q.index.get(sha))
                    except LookupError:
                        continue      # dissected but not (or no longer) in the quarantine
                    report.count(store.observe(arrival, features_from_cache(cache, sha)), dissected=True)
                store.set_meta("dissect_mark", f"{mark}:")
            store.checkpoint()
            if progress:
                progress(report.messages + report.dissections)


def features_from_cache(cache: Any, message_sha256: str) -> list[Feature]:
    """A dissected message's features, read back from the dissection cache."""
    message = cache.reports_of(message_sha256).get("message")
    nodes = []
    for r in cache.query("SELECT sha256, filename, mime, size FROM extracted WHERE message_sha256 = ?",
                         (message_sha256,)):
        ident = cache.get_identity(r["sha256"]) or {}
        nodes.append(DissectedNode(r["sha256"], r["filename"], r["mime"], r["size"],
                                   str(ident.get("ssdeep", "")), str(ident.get("tlsh", "")),
                                   tuple(cache.reports_of(r["sha256"]).values())))
    return dissection_features(message, nodes)


def rebuild(workspace: Workspace, *, progress: Callable[[int], None] | None = None) -> CatchUpReport:
    """Recompute every campaign from the quarantine and the dissection cache.

    The same feeds in the same order as ``catch_up`` from an empty store, decided in memory
    (``bulk.MemoryStore``) and written as a new file that replaces the old one: the same
    campaigns, without a B-tree probe per feature on disk."""
    from workbench.campaigns.bulk import MemoryStore

    started = time.perf_counter()
    report = CatchUpReport()
    path = store_path(workspace.state)
    with file_lock(workspace.state / "campaigns.lock"):
        memory = MemoryStore()
        if (workspace.quarantine / "index.sqlite").exists():
            with Quarantine.open(workspace) as q:
                _follow_index(memory, q, report, progress)
                _follow_dissections(workspace, memory, q, report, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        memory.write(path)
    report.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return report


def rebuild_incrementally(workspace: Workspace) -> CatchUpReport:
    """The slow way: delete the store and observe everything again, one message at a time
    (what ``rebuild`` did before the bulk path; the tests compare the two)."""
    path = store_path(workspace.state)
    with file_lock(workspace.state / "campaigns.lock"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return catch_up(workspace)


# -- reading -------------------------------------------------------------------------------------

def parse_since(value: str, *, now: dt.datetime | None = None) -> str:
    """``1h``, ``30m``, ``2d`` or an ISO time → the ISO time it means ("" for no bound)."""
    from workbench.humanize import parse_duration

    value = value.strip()
    if not value:
        return ""
    try:
        delta = parse_duration(value)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise WorkbenchError(f"--since {value!r}: give a duration (90m, 1h, 2d) or an ISO time",
                                 kind=Kind.USAGE) from None
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()
    now = now or dt.datetime.now(dt.UTC)
    return (now - delta).isoformat()


def _growth(hours: list[Any]) -> list[int]:
    if not hours:
        return []
    try:
        first = dt.datetime.fromisoformat(hours[0]["hour"] + ":00")
        last = dt.datetime.fromisoformat(hours[-1]["hour"] + ":00")
    except ValueError:
        return [int(h["n"]) for h in hours]
    span = min(int((last - first).total_seconds() // 3600) + 1, 24 * 14)
    counts = [0] * span
    for h in hours:
        i = int((dt.datetime.fromisoformat(h["hour"] + ":00") - first).total_seconds() // 3600)
        if 0 <= i < span:
            counts[i] += int(h["n"])
    return counts


def _summary(store: CampaignStore, row: Any) -> CampaignSummary:
    reach = store.reach(row["id"])
    links = store.link_counts(row["id"])
    return CampaignSummary(
        id=row["id"], size=row["size"], first_seen=row["first_seen"], last_seen=row["last_seen"],
        towers=len({r["tower"] for r in reach}), servers=len({(r["tower"], r["server"]) for r in reach}),
        reasons=[r["kind"] for r in links], growth=_growth(store.hours(row["id"])))


def list_campaigns(workspace: Workspace, *, since: str = "", min_size: int = 2, limit: int = 50,
                   update: bool = True) -> list[CampaignSummary]:
    """Campaigns active since ``since`` (an ISO time), most recently active first."""
    if update:
        catch_up(workspace)
    with open_store(workspace, readonly=True) as store:
        return [_summary(store, row) for row in store.rows(since=since, min_size=min_size, limit=limit)]


def show_campaign(workspace: Workspace, ident: str, *, members: int = 200,
                  update: bool = True) -> CampaignReport:
    if update:
        catch_up(workspace)
    with open_store(workspace, readonly=True) as store, Quarantine.open(workspace) as q:
        cid = store.resolve(ident)
        row = store.campaign(cid)
        summary = _summary(store, row)
        notes = [] if ident in (cid, cid[:len(ident)]) else [f"{ident} is now part of {cid}"]
        out: list[Member] = []
        for m in store.members(cid, limit=members):
            try:
                msg = q.index.get(m["message"])
                subject, sender, status = msg.subject, msg.from_addr, msg.status
            except LookupError:
                subject, sender, status = "", "", "gone"
            why = [MemberLink(k, v, o) for k, v, o in json.loads(m["why"])]
            out.append(Member(m["message"], m["seen"], m["tower"], m["server"], subject, sender, status,
                              m["score"], why))
        return CampaignReport(
            summary=summary,
            reach=[Reach(r["tower"], r["server"], r["n"]) for r in store.reach(cid)],
            shared=[SharedValue(r["kind"], KINDS[r["kind"]].label, r["value"], r["n"])
                    for r in store.shared_values(cid)],
            links={r["kind"]: r["n"] for r in store.link_counts(cid)},
            members=out, members_shown=len(out), notes=notes)


def member_shas(workspace: Workspace, ident: str) -> tuple[str, list[str]]:
    with open_store(workspace, readonly=True) as store:
        cid = store.resolve(ident)
        return cid, [m["message"] for m in store.members(cid)]


# -- acting on a whole wave ----------------------------------------------------------------------

def set_campaign_status(workspace: Workspace, ident: str, status: str, *, note: str = "",
                        actor: str | None = None) -> BulkTriage:
    if status not in STATUSES:
        raise WorkbenchError(f"unknown status {status!r}: one of {', '.join(STATUSES)}", kind=Kind.USAGE)
    cid, shas = member_shas(workspace, ident)
    changed = []
    with Quarantine.open(workspace) as q:
        for sha in shas:
            changed.append(q.set_status(sha, status, note=note or f"campaign {cid}", actor=actor))
    return BulkTriage(cid, changed, f"status {status}")


def tag_campaign(workspace: Workspace, ident: str, add: list[str], remove: list[str] | None = None, *,
                 actor: str | None = None) -> BulkTriage:
    cid, shas = member_shas(workspace, ident)
    with Quarantine.open(workspace) as q:
        for sha in shas:
            q.tag(sha, add, remove or [], actor=actor)
    return BulkTriage(cid, shas, "tags " + " ".join([*(f"+{t}" for t in add),
                                                     *(f"-{t}" for t in remove or [])]))
