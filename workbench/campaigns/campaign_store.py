"""The campaign store, ``state/campaigns.sqlite``: campaigns kept up to date one message at a time.

Every message is a member of exactly one campaign (most are campaigns of one). Observing a
message looks up, for each of its features, which campaigns already hold that value (one
primary-key probe: the ``spread`` table counts values per campaign), scores each campaign by
the kinds it shares, and joins every campaign that reaches ``LINK_THRESHOLD``, merging them
when the message bridges several. A merge relabels the smaller campaign into the larger, so
each message is relabelled O(log n) times over the store's life; the merged id stays
findable through ``aliases``. The store is derived data: ``rebuild`` recomputes it from the
quarantine and the dissection cache.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from workbench.campaigns.features import KINDS, LINK_THRESHOLD, Feature, fuzzy_keys, fuzzy_similar
from workbench.document import utcnow
from workbench.errors import Kind, WorkbenchError
from workbench.quarantine.index import retry_busy

STORE_NAME = "campaigns.sqlite"
SCHEMA_VERSION = 1
# A weak value (a domain, a relay, a subject template) held by more than this share of all
# messages, and by at least COMMON_MIN of them, is background: it links nothing.
COMMON_SHARE = 0.05
COMMON_MIN = 50
MAX_FUZZY_CANDIDATES = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    message TEXT PRIMARY KEY,
    campaign TEXT NOT NULL,
    tower TEXT NOT NULL DEFAULT '',
    server TEXT NOT NULL DEFAULT '',
    seen TEXT NOT NULL,
    score REAL NOT NULL DEFAULT 0,
    why TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_campaign ON members(campaign, seen);
CREATE TABLE IF NOT EXISTS features (
    kind TEXT NOT NULL, value TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (kind, value, message)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fuzzy (
    key TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (key, kind, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spread (
    kind TEXT NOT NULL, value TEXT NOT NULL, campaign TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (kind, value, campaign)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spread_campaign ON spread(campaign, n);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS campaigns_live ON campaigns(last_seen) WHERE size > 1;
CREATE TABLE IF NOT EXISTS reach (
    campaign TEXT NOT NULL, tower TEXT NOT NULL, server TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (campaign, tower, server)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hours (
    campaign TEXT NOT NULL, hour TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (campaign, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links (
    campaign TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (campaign, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (old TEXT PRIMARY KEY, new TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Tables whose rows belong to one campaign and add up when two campaigns merge.
_PER_CAMPAIGN = {
    "spread": ("kind", "value"),
    "reach": ("tower", "server"),
    "hours": ("hour",),
    "links": ("kind",),
}


class UnknownCampaign(WorkbenchError, LookupError):
    """No campaign answers to that id or prefix."""

    kind = Kind.NOT_FOUND


@dataclass(frozen=True)
class Arrival:
    """Where and when a message was seen: what a campaign's reach and growth are made of."""

    message: str
    tower: str = ""
    server: str = ""
    seen: str = ""            # ISO time the quarantine first saw it


@dataclass
class Link:
    """Why a message joined its campaign: a value it shares with an earlier member."""

    kind: str
    value: str
    other: str                # a message that already had it
    weight: float


@dataclass
class Joined:
    """What observing one message did."""

    message: str
    campaign: str
    score: float
    links: list[Link] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)      # campaigns folded into ``campaign``
    new_features: int = 0


def store_path(state: Path) -> Path:
    return state / STORE_NAME




def hour_of(seen: str) -> str:
    return seen[:13] if len(seen) >= 13 else seen


class CampaignStore:
    """One SQLite file in WAL mode. One writer at a time (the caller holds the campaign lock)."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30,
                                      isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA synchronous=NORMAL")
            # Not whichever commit crosses 1,000 pages of WAL: that commit would copy them into a
            # multi-GiB file and sync it before returning (seconds, after a copy or a rebuild).
            # The feeds call checkpoint() after each batch, once the batch is committed.
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            retry_busy(lambda: self.db.executescript(_SCHEMA))
            self._set_meta_default("schema_version", str(SCHEMA_VERSION))
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        retry_busy(lambda: self.db.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def checkpoint(self) -> None:
        """Copy the WAL into the database as far as readers allow (PASSIVE: never waits)."""
        retry_busy(lambda: self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())

    # -- meta --------------------------------------------------------------------------------

    def _set_meta_default(self, key: str, value: str) -> None:
        retry_busy(lambda: self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value)))

    def get_meta(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def message_count(self) -> int:
        return int(self.get_meta("messages", "0"))

    # -- observing ---------------------------------------------------------------------------

    def known(self, message: str) -> bool:
        return self.db.execute("SELECT 1 FROM members WHERE message = ?", (message,)).fetchone() is not None

    def observe(self, arrival: Arrival, features: Iterable[Feature]) -> Joined:
        """Add a message (or more features of one already here) and link it. Call inside
        ``transaction()``; a batch of messages in one transaction is much faster."""
        message = arrival.message
        row = self.db.execute("SELECT campaign FROM members WHERE message = ?", (message,)).fetchone()
        own: str | None = row[0] if row else None
        wanted = list(dict.fromkeys(f for f in features if f.kind in KINDS))
        # In (kind, value) order, so which value a link names does not depend on set order.
        have = dict.fromkeys(Feature(r[0], r[1]) for r in self.db.execute(
            "SELECT kind, value FROM features WHERE message = ? ORDER BY kind, value", (message,))) \
            if own else {}
        fresh = [f for f in wanted if f not in have]
        if own is not None and not fresh:
            return Joined(message, own, 0.0)

        scores, evidence = self._score([*have, *fresh], exclude=message)
        linked = [c for c, s in scores.items() if s >= LINK_THRESHOLD and c != own]
        campaigns = ([own] if own else []) + linked
        target = self._largest(campaigns) if campaigns else self._new_campaign(arrival)
        merged = [c for c in campaigns if c != target]
        for other in merged:
            self._merge(target, other)

        links = [link for c in linked for link in evidence[c]]
        score = max((scores[c] for c in linked), default=0.0)
        if own is None:
            self._add_member(target, arrival, score, links)
        elif links:
            self._add_links(target, links)
            self._explain(message, score, links)
        self._add_features(target, message, fresh)
        return Joined(message, target, score, links, merged, len(fresh))

    def _score(self, features: list[Feature], *, exclude: str
               ) -> tuple[dict[str, float], dict[str, list[Link]]]:
        """Per campaign: the summed weight of the kinds it shares with ``features``."""
        best: dict[str, dict[str, Link]] = defaultdict(dict)
        common = max(COMMON_MIN, COMMON_SHARE * self.message_count())
        for feature in features:
            kind = KINDS[feature.kind]
            values = [feature.value]
            if feature.kind in ("ssdeep", "tlsh"):
                values += self._near(feature)
            for value in values:
                spread = self.db.execute("SELECT campaign, n FROM spread WHERE kind = ? AND value = ?",
                                         (feature.kind, value)).fetchall()
                if not spread:
                    continue
                if kind.weak and sum(r[1] for r in spread) > common:
                    continue
                for campaign, _n in spread:
                    held = best[campaign].get(feature.kind)
                    if held is None:
                        other = self.db.execute(   # a member of that campaign that has it
                            "SELECT f.message FROM features f JOIN members m ON m.message = f.message "
                            "WHERE f.kind = ? AND f.value = ? AND m.campaign = ? AND f.message != ? "
                            "ORDER BY f.message LIMIT 1", (feature.kind, value, campaign, exclude)).fetchone()
                        if other is None:
                            continue
                        best[campaign][feature.kind] = Link(feature.kind, value, other[0], kind.weight)
        scores = {c: round(sum(link.weight for link in kinds.values()), 3) for c, kinds in best.items()}
        return scores, {c: list(kinds.values()) for c, kinds in best.items()}

    def _near(self, feature: Feature) -> list[str]:
        """Stored fuzzy hashes of the same kind that are near ``feature`` (not equal to it)."""
        keys = fuzzy_keys(feature)
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            f"SELECT DISTINCT value FROM fuzzy WHERE key IN ({marks}) AND kind = ? LIMIT ?",
            (*keys, feature.kind, MAX_FUZZY_CANDIDATES)).fetchall()
        return [r[0] for r in rows
                if r[0] != feature.value and fuzzy_similar(feature, Feature(feature.kind, r[0]))]

    def _largest(self, campaigns: list[str]) -> str:
        marks = ",".join("?" * len(campaigns))
        rows = self.db.execute(f"SELECT id, size, first_seen FROM campaigns WHERE id IN ({marks})",
                               campaigns).fetchall()
        return str(max(rows, key=lambda r: (r["size"], _older(r["first_seen"]), r["id"]))["id"])

    def _new_campaign(self, arrival: Arrival) -> str:
        """A campaign named after the message that starts it: ``C-`` and the shortest prefix
        of its sha256 (from 12 hex digits) that no campaign, now or merged, has used."""
        for length in (12, 16, 24, 64):
            cid = f"C-{arrival.message[:length]}"
            taken = self.db.execute("SELECT 1 FROM campaigns WHERE id = ? UNION ALL "
                                    "SELECT 1 FROM aliases WHERE old = ?", (cid, cid)).fetchone()
            if taken is None:
                break
        now = utcnow().isoformat()
        self.db.execute("INSERT INTO campaigns VALUES (?, 0, ?, ?, ?)", (cid, arrival.seen, arrival.seen, now))
        return cid

    def _add_member(self, cid: str, arrival: Arrival, score: float, links: list[Link]) -> None:
        why = json.dumps([[lk.kind, lk.value, lk.other] for lk in links])
        self.db.execute("INSERT INTO members VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (arrival.message, cid, arrival.tower, arrival.server, arrival.seen, score, why))
        self.db.execute(
            "UPDATE campaigns SET size = size + 1, first_seen = min(first_seen, ?), "
            "last_seen = max(last_seen, ?), updated_at = ? WHERE id = ?",
            (arrival.seen, arrival.seen, utcnow().isoformat(), cid))
        self._bump("reach", cid, (arrival.tower, arrival.server))
        self._bump("hours", cid, (hour_of(arrival.seen),))
        self.set_meta("messages", str(self.message_count() + 1))
        self._add_links(cid, links)

    def _explain(self, message: str, score: float, links: list[Link]) -> None:
        """Add what linked a member later (its payloads, once dissected) to why it is here."""
        row = self.db.execute("SELECT why, score FROM members WHERE message = ?", (message,)).fetchone()
        why = json.loads(row["why"])
        known = {(k, v) for k, v, _ in why}
        why += [[lk.kind, lk.value, lk.other] for lk in links if (lk.kind, lk.value) not in known]
        self.db.execute("UPDATE members SET why = ?, score = ? WHERE message = ?",
                        (json.dumps(why), max(row["score"], score), message))

    def _add_links(self, cid: str, links: list[Link]) -> None:
        for kind in dict.fromkeys(link.kind for link in links):
            self._bump("links", cid, (kind,))

    def _add_features(self, cid: str, message: str, features: list[Feature]) -> None:
        for f in features:
            self.db.execute("INSERT OR IGNORE INTO features VALUES (?, ?, ?)", (f.kind, f.value, message))
            self._bump("spread", cid, (f.kind, f.value))
            for key in fuzzy_keys(f):
                self.db.execute("INSERT OR IGNORE INTO fuzzy VALUES (?, ?, ?)", (key, f.kind, f.value))

    def _bump(self, table: str, cid: str, key: tuple[str, ...]) -> None:
        cols = _PER_CAMPAIGN[table]
        names = ", ".join(cols)
        marks = ", ".join("?" * len(cols))
        self.db.execute(
            f"INSERT INTO {table} (campaign, {names}, n) VALUES (?, {marks}, 1) "
            f"ON CONFLICT DO UPDATE SET n = n + 1", (cid, *key))

    def _merge(self, into: str, other: str) -> None:
        self.db.execute("UPDATE members SET campaign = ? WHERE campaign = ?", (into, other))
        for table, cols in _PER_CAMPAIGN.items():
            names = ", ".join(cols)
            self.db.execute(
                f"INSERT INTO {table} (campaign, {names}, n) SELECT ?, {names}, n FROM {table} "
                f"WHERE campaign = ? ON CONFLICT DO UPDATE SET n = n + excluded.n",
                (into, other))
            self.db.execute(f"DELETE FROM {table} WHERE campaign = ?", (other,))
        gone = self.db.execute("SELECT size, first_seen, last_seen FROM campaigns WHERE id = ?",
                               (other,)).fetchone()
        self.db.execute(
            "UPDATE campaigns SET size = size + ?, first_seen = min(first_seen, ?), "
            "last_seen = max(last_seen, ?), updated_at = ? WHERE id = ?",
            (gone["size"], gone["first_seen"], gone["last_seen"], utcnow().isoformat(), into))
        self.db.execute("DELETE FROM campaigns WHERE id = ?", (other,))
        self.db.execute("UPDATE aliases SET new = ? WHERE new = ?", (into, other))
        self.db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?)", (other, into))

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, ident: str) -> str:
        """A campaign id (or a merged campaign's old id, or a unique prefix) → its current id."""
        ident = ident.strip()
        row = self.db.execute("SELECT id FROM campaigns WHERE id = ?", (ident,)).fetchone()
        if row:
            return str(row[0])
        row = self.db.execute("SELECT new FROM aliases WHERE old = ?", (ident,)).fetchone()
        if row:
            return str(row[0])
        if len(ident) >= 4:
            rows = self.db.execute("SELECT id FROM campaigns WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                                   (ident.replace("_", "\\_").replace("%", "\\%") + "%",)).fetchall()
            if len(rows) == 1:
                return str(rows[0][0])
        row = self.db.execute("SELECT campaign FROM members WHERE message = ?", (ident,)).fetchone()
        if row:
            return str(row[0])
        raise UnknownCampaign(f"no campaign {ident!r}")

    def campaign_of(self, message: str) -> str | None:
        row = self.db.execute("SELECT campaign FROM members WHERE message = ?", (message,)).fetchone()
        return str(row[0]) if row else None

    def rows(self, *, since: str = "", min_size: int = 2, limit: int = 50) -> list[sqlite3.Row]:
        """Campaigns of at least ``min_size`` members, most recently active first."""
        if min_size >= 2:
            return self.db.execute(
                "SELECT * FROM campaigns WHERE size > 1 AND size >= ? AND last_seen >= ? "
                "ORDER BY last_seen DESC LIMIT ?", (min_size, since, limit)).fetchall()
        return self.db.execute("SELECT * FROM campaigns WHERE last_seen >= ? ORDER BY last_seen DESC "
                               "LIMIT ?", (since, limit)).fetchall()

    def campaign(self, cid: str) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM campaigns WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise UnknownCampaign(f"no campaign {cid!r}")
        return row

    def reach(self, cid: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT tower, server, n FROM reach WHERE campaign = ? "
                               "ORDER BY n DESC, tower, server", (cid,)).fetchall()

    def hours(self, cid: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT hour, n FROM hours WHERE campaign = ? ORDER BY hour", (cid,)).fetchall()

    def link_counts(self, cid: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT kind, n FROM links WHERE campaign = ? ORDER BY n DESC, kind",
                               (cid,)).fetchall()

    def shared_values(self, cid: str, *, limit: int = 12) -> list[sqlite3.Row]:
        """The values most of the campaign's members share (those held by two or more)."""
        return self.db.execute("SELECT kind, value, n FROM spread WHERE campaign = ? AND n > 1 "
                               "ORDER BY n DESC, kind, value LIMIT ?", (cid, limit)).fetchall()

    def members(self, cid: str, *, limit: int | None = None) -> list[sqlite3.Row]:
        sql = "SELECT * FROM members WHERE campaign = ? ORDER BY seen, message"
        args: tuple[object, ...] = (cid,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (cid, limit)
        return self.db.execute(sql, args).fetchall()

    def member_features(self, cid: str, kind: str) -> dict[str, list[str]]:
        """For each member message, its values of ``kind`` (e.g. its payload sha256s)."""
        out: dict[str, list[str]] = defaultdict(list)
        for r in self.db.execute(
                "SELECT f.message, f.value FROM members m JOIN features f ON f.message = m.message "
                "WHERE m.campaign = ? AND f.kind = ? ORDER BY f.message, f.value", (cid, kind)):
            out[r[0]].append(r[1])
        return dict(out)


def _older(first_seen: str) -> float:
    """Sort key that prefers the older campaign when sizes tie."""
    try:
        return -dt.datetime.fromisoformat(first_seen).timestamp()
    except ValueError:
        return 0.0
