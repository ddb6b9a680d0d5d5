"""The bulk rebuild leaves exactly the store that observing one message at a time leaves."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import ppdeep

from tests.support.campaign_lab import WaveLab
from workbench.campaigns.bulk import MemoryStore
from workbench.campaigns.campaign_store import Arrival, CampaignStore, store_path
from workbench.campaigns.features import Feature
from workbench.campaigns.service import rebuild, rebuild_incrementally
from workbench.samples.campaign import courier_variant

TABLES = {
    "members": "message, campaign, tower, server, seen, score, why",
    "features": "kind, value, message",
    "fuzzy": "key, kind, value",
    "spread": "kind, value, campaign, n",
    "campaigns": "id, size, first_seen, last_seen",        # not updated_at: when it was written
    "reach": "campaign, tower, server, n",
    "hours": "campaign, hour, n",
    "links": "campaign, kind, n",
    "aliases": "old, new",
    "meta": "key, value",
}


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {t: db.execute(f"SELECT {cols} FROM {t} ORDER BY {cols}").fetchall() for t, cols in TABLES.items()}
        out["indexes"] = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name").fetchall()
        out["journal"] = db.execute("PRAGMA journal_mode").fetchall()
        return out
    finally:
        db.close()


def test_rebuild_in_bulk_equals_observing_one_message_at_a_time(wave_lab: WaveLab) -> None:
    path = store_path(wave_lab.workspace.state)
    slow = rebuild_incrementally(wave_lab.workspace)
    one_by_one = dump(path)
    fast = rebuild(wave_lab.workspace)
    bulk = dump(path)
    assert (fast.messages, fast.dissections, fast.joined, fast.merges) == \
        (slow.messages, slow.dissections, slow.joined, slow.merges)
    assert fast.dissections > 0 and slow.merges >= 0
    for table in one_by_one:
        assert bulk[table] == one_by_one[table], table
    wave_campaigns = {c for m, c, *_ in bulk["members"] if m in set(wave_lab.wave)}
    assert len(wave_campaigns) == 1                   # the lab's wave is one campaign either way


def _features(rng: random.Random, fuzzy: list[str], n: int) -> list[Feature]:
    pools = {"payload": 40, "url": 25, "domain": 6, "subject": 8, "relay": 5, "helo": 4, "body": 12, "imphash": 6}
    out = [Feature(kind, f"{kind}-{rng.randrange(size)}") for kind, size in pools.items() if rng.random() < 0.3]
    if rng.random() < 0.3:
        out.append(Feature("ssdeep", rng.choice(fuzzy)))
    if rng.random() < 0.5:
        out.append(Feature("domain", "big-provider.example"))     # becomes background as the store grows
    return out


def test_memory_store_decides_every_step_as_the_store_does(tmp_path: Path) -> None:
    """Random messages, some observed again later with more features (as dissection does),
    merges, a value that turns into background: every table equal, every Joined equal."""
    rng = random.Random(17)
    fuzzy = [ppdeep.hash(courier_variant(k)) for k in "abcd"] + \
            [ppdeep.hash(bytes(rng.randrange(256) for _ in range(9000))) for _ in range(3)]
    memory = MemoryStore()
    merges = 0
    with CampaignStore(tmp_path / "one.sqlite") as store:
        for step in range(700):
            n = rng.randrange(step + 1) if step > 100 and rng.random() < 0.25 else step
            arrival = Arrival(f"{n * 7919 % 1000:064x}", f"t{n % 5}", f"mx{n % 3}",
                              f"2026-12-01T{n % 24:02d}:{n % 60:02d}:00Z")
            features = _features(rng, fuzzy, n)
            with store.transaction():
                expected = store.observe(arrival, features)
            got = memory.observe(arrival, features)
            assert got == expected, step
            merges += len(got.merged)
        with store.transaction():
            store.set_meta("index_mark", "9:x")
        memory.set_meta("index_mark", "9:x")
    memory.write(tmp_path / "bulk.sqlite")
    assert dump(tmp_path / "bulk.sqlite") == dump(tmp_path / "one.sqlite")
    assert merges > 3
