"""Rebuilding the campaign store in bulk: the store's linking rule replayed in memory, written once.

``CampaignStore.observe`` probes and updates B-trees on disk for every message; at a million
messages the file outgrows the page cache and a rebuild that way takes most of an hour.
``MemoryStore`` takes the same observations in the same order and makes the same decisions
(the same scores, the same common-value cut-off at that moment, the same fuzzy candidates,
the same merge target and the same member named in each reason) with dictionaries instead
of queries; ``write`` then fills a new file table by table in key order, in one
transaction, and builds the secondary indexes last. ``tests/campaigns/test_bulk.py`` checks
that every table comes out as incremental observation leaves it.
"""

from __future__ import annotations

import bisect
import json
import os
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from workbench.campaigns.campaign_store import (
    _SCHEMA,
    COMMON_MIN,
    COMMON_SHARE,
    MAX_FUZZY_CANDIDATES,
    SCHEMA_VERSION,
    Arrival,
    Joined,
    Link,
    _older,
    hour_of,
)
from workbench.campaigns.features import KINDS, LINK_THRESHOLD, Feature, fuzzy_keys, fuzzy_similar
from workbench.document import utcnow

Key = tuple[str, str]          # (kind, value)
T = TypeVar("T")


class _Member:
    __slots__ = ("campaign", "score", "seen", "server", "tower", "why")

    def __init__(self, campaign: str, arrival: Arrival, score: float, why: list[list[str]]):
        self.campaign = campaign
        self.tower = arrival.tower
        self.server = arrival.server
        self.seen = arrival.seen
        self.score = score
        self.why = why


class MemoryStore:
    """The parts of ``CampaignStore`` the feeds use (``known``, ``observe``, ``transaction``,
    ``checkpoint``, the marks), kept in memory."""

    def __init__(self) -> None:
        self.members: dict[str, _Member] = {}
        self.features: dict[str, list[Key]] = {}
        # spread[(kind, value)][campaign] = (members holding it, the smallest such message)
        self.spread: dict[Key, dict[str, tuple[int, str]]] = {}
        self.held: Counter[Key] = Counter()                # members holding a value, all campaigns
        self.values_of: dict[str, set[Key]] = defaultdict(set)      # campaign -> its spread keys
        self.fuzzy: dict[tuple[str, str], list[str]] = {}   # (key, kind) -> values, sorted
        self.campaigns: dict[str, tuple[int, str, str]] = {}   # id -> (size, first_seen, last_seen)
        self.roster: dict[str, list[str]] = {}              # id -> its members
        self.reach: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        self.hours: dict[str, Counter[str]] = defaultdict(Counter)
        self.links: dict[str, Counter[str]] = defaultdict(Counter)
        self.aliases: dict[str, str] = {}
        self.aliased: dict[str, list[str]] = defaultdict(list)     # new -> its old ids
        self.meta: dict[str, str] = {}

    # -- the interface the feeds use ---------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def checkpoint(self) -> None:
        pass

    def get_meta(self, key: str, default: str = "") -> str:
        return self.meta.get(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value

    def known(self, message: str) -> bool:
        return message in self.members

    def observe(self, arrival: Arrival, features: Iterable[Feature]) -> Joined:
        """What ``CampaignStore.observe`` does, step for step."""
        message = arrival.message
        member = self.members.get(message)
        own = member.campaign if member else None
        wanted = list(dict.fromkeys(f for f in features if f.kind in KINDS))
        have = dict.fromkeys(Feature(k, v) for k, v in sorted(self.features.get(message, ()))) \
            if own else {}
        fresh = [f for f in wanted if f not in have]
        if own is not None and not fresh:
            return Joined(message, own, 0.0)

        scores, evidence = self._score([*have, *fresh], own)
        linked = [c for c, s in scores.items() if s >= LINK_THRESHOLD and c != own]
        campaigns = ([own] if own else []) + linked
        target = self._largest(campaigns) if campaigns else self._new_campaign(arrival)
        merged = [c for c in campaigns if c != target]
        for other in merged:
            self._merge(target, other)

        links = [link for c in linked for link in evidence[c]]
        score = max((scores[c] for c in linked), default=0.0)
        if member is None:
            self._add_member(target, arrival, score, links)
        elif links:
            self._add_links(target, links)
            known = {(k, v) for k, v, _ in member.why}
            member.why += [[lk.kind, lk.value, lk.other] for lk in links if (lk.kind, lk.value) not in known]
            member.score = max(member.score, score)
        self._add_features(target, message, fresh)
        return Joined(message, target, score, links, merged, len(fresh))

    # -- the rule ----------------------------------------------------------------------------

    def _score(self, features: list[Feature], own: str | None
               ) -> tuple[dict[str, float], dict[str, list[Link]]]:
        best: dict[str, dict[str, Link]] = defaultdict(dict)
        touched: dict[str, tuple[int, str]] = {}       # campaign -> (first probe that found it, id)
        common = max(COMMON_MIN, COMMON_SHARE * len(self.members))
        probe = 0
        for feature in features:
            kind = KINDS[feature.kind]
            values = [feature.value]
            if feature.kind in ("ssdeep", "tlsh"):
                values += self._near(feature)
            for value in values:
                probe += 1
                spread = self.spread.get((feature.kind, value))
                if not spread:
                    continue
                if kind.weak and self.held[(feature.kind, value)] > common:
                    continue
                for campaign, (_n, first) in spread.items():
                    # The store names the smallest other member holding the value; in its own
                    # campaign that may be the message itself, but that campaign never links.
                    if campaign == own:
                        continue
                    touched.setdefault(campaign, (probe, campaign))
                    if feature.kind not in best[campaign]:
                        best[campaign][feature.kind] = Link(feature.kind, value, first, kind.weight)
        # The store meets campaigns probe by probe, each probe's in id order: so do the results.
        order = sorted(best, key=touched.__getitem__)
        scores = {c: round(sum(link.weight for link in best[c].values()), 3) for c in order}
        return scores, {c: list(best[c].values()) for c in order}

    def _near(self, feature: Feature) -> list[str]:
        """As the store's query: keys in order, each key's values in order, the first
        ``MAX_FUZZY_CANDIDATES`` distinct ones."""
        seen: dict[str, None] = {}
        for key in sorted(set(fuzzy_keys(feature))):
            for value in self.fuzzy.get((key, feature.kind), ()):
                seen.setdefault(value)
                if len(seen) >= MAX_FUZZY_CANDIDATES:
                    break
            if len(seen) >= MAX_FUZZY_CANDIDATES:
                break
        return [v for v in seen if v != feature.value and fuzzy_similar(feature, Feature(feature.kind, v))]

    def _largest(self, campaigns: list[str]) -> str:
        return max(campaigns, key=lambda c: (self.campaigns[c][0], _older(self.campaigns[c][1]), c))

    def _new_campaign(self, arrival: Arrival) -> str:
        for length in (12, 16, 24, 64):
            cid = f"C-{arrival.message[:length]}"
            if cid not in self.campaigns and cid not in self.aliases:
                break
        self.campaigns[cid] = (0, arrival.seen, arrival.seen)
        self.roster[cid] = []
        return cid

    def _add_member(self, cid: str, arrival: Arrival, score: float, links: list[Link]) -> None:
        self.members[arrival.message] = _Member(cid, arrival, score,
                                                [[lk.kind, lk.value, lk.other] for lk in links])
        self.roster[cid].append(arrival.message)
        size, first_seen, last_seen = self.campaigns[cid]
        self.campaigns[cid] = (size + 1, min(first_seen, arrival.seen), max(last_seen, arrival.seen))
        self.reach[cid][(arrival.tower, arrival.server)] += 1
        self.hours[cid][hour_of(arrival.seen)] += 1
        self._add_links(cid, links)

    def _add_links(self, cid: str, links: list[Link]) -> None:
        for kind in dict.fromkeys(link.kind for link in links):
            self.links[cid][kind] += 1

    def _add_features(self, cid: str, message: str, features: list[Feature]) -> None:
        mine = self.features.setdefault(message, [])
        for f in features:
            key = (f.kind, f.value)
            mine.append(key)
            self.held[key] += 1
            per = self.spread.setdefault(key, {})
            entry = per.get(cid)
            if entry is None:
                per[cid] = (1, message)
                self.values_of[cid].add(key)
            else:
                per[cid] = (entry[0] + 1, min(entry[1], message))
            for fk in fuzzy_keys(f):
                bucket = self.fuzzy.setdefault((fk, f.kind), [])
                at = bisect.bisect_left(bucket, f.value)
                if at == len(bucket) or bucket[at] != f.value:
                    bucket.insert(at, f.value)

    def _merge(self, into: str, other: str) -> None:
        for message in self.roster[other]:
            self.members[message].campaign = into
        self.roster[into] += self.roster.pop(other)
        for key in self.values_of.pop(other, set()):
            per = self.spread[key]
            n, first = per.pop(other)
            mine = per.get(into)
            if mine is None:
                per[into] = (n, first)
                self.values_of[into].add(key)
            else:
                per[into] = (mine[0] + n, min(mine[1], first))
        _fold(self.reach, into, other)
        _fold(self.hours, into, other)
        _fold(self.links, into, other)
        size, first_seen, last_seen = self.campaigns.pop(other)
        mine_size, mine_first, mine_last = self.campaigns[into]
        self.campaigns[into] = (mine_size + size, min(mine_first, first_seen), max(mine_last, last_seen))
        for old in self.aliased.pop(other, []):
            self.aliases[old] = into
            self.aliased[into].append(old)
        self.aliases[other] = into
        self.aliased[into].append(other)

    # -- writing -----------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        """Write everything to a new store at ``path`` (replacing it): tables in key order in
        one transaction, secondary indexes after, then WAL mode as the store runs in."""
        tmp = Path(f"{path}.rebuild")
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-262144")
            tables, indexes = _split_schema()
            db.executescript(tables)
            db.execute("BEGIN")
            now = utcnow().isoformat()
            db.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?, ?, ?)", (
                (m, r.campaign, r.tower, r.server, r.seen, r.score, json.dumps(r.why))
                for m, r in sorted(self.members.items())))
            db.executemany("INSERT INTO features VALUES (?, ?, ?)", sorted(
                (k, v, m) for m, keys in self.features.items() for k, v in keys))
            db.executemany("INSERT INTO fuzzy VALUES (?, ?, ?)", (
                (fk, kind, v) for (fk, kind), values in sorted(self.fuzzy.items()) for v in values))
            db.executemany("INSERT INTO spread VALUES (?, ?, ?, ?)", (
                (k, v, c, entry[0]) for (k, v), per in sorted(self.spread.items())
                for c, entry in sorted(per.items())))
            db.executemany("INSERT INTO campaigns VALUES (?, ?, ?, ?, ?)", (
                (c, row[0], row[1], row[2], now) for c, row in sorted(self.campaigns.items())))
            for table, counts in (("reach", self.reach), ("hours", self.hours), ("links", self.links)):
                db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * (len(_key(table)) + 2))})", (
                    (c, *_key_tuple(k), n) for c in sorted(counts) for k, n in sorted(counts[c].items())))
            db.executemany("INSERT INTO aliases VALUES (?, ?)", sorted(self.aliases.items()))
            meta = {"schema_version": str(SCHEMA_VERSION), **self.meta, "messages": str(len(self.members))}
            db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            db.execute("COMMIT")
            db.executescript(indexes)          # the secondary indexes, over the rows in place
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, path)


def _fold(table: dict[str, Counter[T]], into: str, other: str) -> None:
    gone = table.pop(other, None)
    if gone:
        table[into].update(gone)


def _key(table: str) -> tuple[str, ...]:
    from workbench.campaigns.campaign_store import _PER_CAMPAIGN

    return _PER_CAMPAIGN[table]


def _key_tuple(key: object) -> tuple[object, ...]:
    return key if isinstance(key, tuple) else (key,)


def _split_schema() -> tuple[str, str]:
    """The store's schema as (tables, secondary indexes), so the indexes come after the rows."""
    statements = [s.strip() for s in _SCHEMA.split(";") if s.strip()]
    tables = ";\n".join(s for s in statements if not s.startswith("CREATE INDEX")) + ";"
    indexes = ";\n".join(s for s in statements if s.startswith("CREATE INDEX")) + ";"
    return tables, indexes
