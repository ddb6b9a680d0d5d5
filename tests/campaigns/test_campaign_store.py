"""The campaign store links exactly as the all-pairs definition does, one message at a time."""

from __future__ import annotations

import random
from pathlib import Path

import ppdeep
import pytest

from workbench.campaigns.campaign_store import Arrival, CampaignStore, UnknownCampaign
from workbench.campaigns.features import Feature
from workbench.campaigns.reference import AllPairs
from workbench.samples.campaign import courier_variant


@pytest.fixture
def store(tmp_path: Path):
    s = CampaignStore(tmp_path / "campaigns.sqlite")
    yield s
    s.close()


def _observe(store: CampaignStore, message: str, *features: Feature, tower: str = "t1",
             seen: str = "2026-12-01T08:00:00Z"):
    with store.transaction():
        return store.observe(Arrival(message, tower, "mx01", seen), features)


def sha(n: int) -> str:
    return f"{n:064x}"


def test_an_identical_payload_links_alone_and_says_why(store: CampaignStore) -> None:
    first = _observe(store, sha(1), Feature("payload", "p" * 64))
    second = _observe(store, sha(2), Feature("payload", "p" * 64), tower="t2")
    assert second.campaign == first.campaign
    assert [(lk.kind, lk.other) for lk in second.links] == [("payload", sha(1))]
    row = store.campaign(first.campaign)
    assert row["size"] == 2
    assert {(r["tower"], r["n"]) for r in store.reach(first.campaign)} == {("t1", 1), ("t2", 1)}


def test_weak_links_need_company(store: CampaignStore) -> None:
    _observe(store, sha(1), Feature("subject", "delivery notice <n>"))
    alone = _observe(store, sha(2), Feature("subject", "delivery notice <n>"))
    assert alone.links == [] and alone.campaign != store.campaign_of(sha(1))
    relayed = _observe(store, sha(3), Feature("subject", "delivery notice <n>"), Feature("relay", "192.0.2.7"),
                       Feature("body", "b1"))
    assert relayed.links == []                    # the subject alone is not enough
    infra = _observe(store, sha(4), Feature("relay", "192.0.2.7"), Feature("helo", "mail.x.example"))
    assert infra.links == []                      # a shared relay alone is not enough (providers)
    joined = _observe(store, sha(5), Feature("subject", "delivery notice <n>"), Feature("body", "b1"))
    assert joined.campaign == store.campaign_of(sha(3))
    assert {lk.kind for lk in joined.links} == {"subject", "body"}


def test_a_message_that_bridges_two_campaigns_merges_them_and_old_ids_still_resolve(store: CampaignStore) -> None:
    a = _observe(store, sha(1), Feature("payload", "a" * 64)).campaign
    _observe(store, sha(2), Feature("payload", "a" * 64))
    b = _observe(store, sha(3), Feature("payload", "b" * 64)).campaign
    bridge = _observe(store, sha(4), Feature("payload", "a" * 64), Feature("payload", "b" * 64))
    assert bridge.campaign == a and bridge.merged == [b]
    assert store.resolve(b) == a
    assert {m["message"] for m in store.members(a)} == {sha(1), sha(2), sha(3), sha(4)}
    assert store.campaign(a)["size"] == 4
    with pytest.raises(UnknownCampaign):
        store.campaign(b)


def test_features_added_later_link_an_existing_member(store: CampaignStore) -> None:
    _observe(store, sha(1), Feature("subject", "x template"), Feature("payload", "p" * 64))
    lone = _observe(store, sha(2), Feature("subject", "y template"))
    assert lone.links == []
    later = _observe(store, sha(2), Feature("payload", "p" * 64))       # after dissection
    assert later.campaign == store.campaign_of(sha(1)) and later.new_features == 1
    assert store.campaign(later.campaign)["size"] == 2
    again = _observe(store, sha(2), Feature("payload", "p" * 64))
    assert again.new_features == 0


def test_near_identical_builds_link_through_ssdeep(store: CampaignStore) -> None:
    a = _observe(store, sha(1), Feature("ssdeep", ppdeep.hash(courier_variant("a")))).campaign
    b = _observe(store, sha(2), Feature("ssdeep", ppdeep.hash(courier_variant("c"))))
    assert b.campaign == a and b.links[0].kind == "ssdeep"


def test_a_value_most_of_the_quarantine_shares_links_nothing(store: CampaignStore) -> None:
    with store.transaction():
        for n in range(60):
            store.observe(Arrival(sha(n)), [Feature("domain", "big-provider.example"), Feature("subject", f"s{n}")])
    sizes = [r["size"] for r in store.db.execute("SELECT size FROM campaigns")]
    assert max(sizes) < 60           # the first ~50 may link by domain+... but it stops being evidence
    late = _observe(store, sha(100), Feature("domain", "big-provider.example"), Feature("body", "t"))
    assert late.links == []


def _random_features(rng: random.Random, fuzzy: list[str]) -> list[Feature]:
    pools = {"payload": 12, "url": 8, "domain": 5, "subject": 6, "relay": 4, "helo": 3, "body": 5, "imphash": 4}
    out = [Feature(kind, f"{kind}-{rng.randrange(n)}") for kind, n in pools.items() if rng.random() < 0.35]
    if rng.random() < 0.3:
        out.append(Feature("ssdeep", rng.choice(fuzzy)))
    return out


def test_the_store_agrees_with_the_all_pairs_definition(tmp_path: Path) -> None:
    rng = random.Random(2026)
    fuzzy = [ppdeep.hash(courier_variant(k)) for k in "abcd"] + \
            [ppdeep.hash(bytes(rng.randrange(256) for _ in range(9000))) for _ in range(3)]
    reference = AllPairs()
    with CampaignStore(tmp_path / "c.sqlite") as store:
        for n in range(300):
            features = _random_features(rng, fuzzy)
            reference.observe(sha(n), features)
            with store.transaction():
                store.observe(Arrival(sha(n)), features)
        groups: dict[str, set[str]] = {}
        for r in store.db.execute("SELECT message, campaign FROM members"):
            groups.setdefault(r[1], set()).add(r[0])
        assert {frozenset(g) for g in groups.values()} == reference.partition()
        assert sum(r[0] for r in store.db.execute("SELECT size FROM campaigns")) == 300
        assert max(len(g) for g in groups.values()) > 5      # the random input did make campaigns


def test_why_names_a_member_of_the_campaign_joined_not_of_another(store: CampaignStore) -> None:
    joined_to = _observe(store, sha(5), Feature("payload", "p" * 64), Feature("subject", "s <n>")).campaign
    elsewhere = _observe(store, sha(1), Feature("subject", "s <n>"))           # too weak to link alone
    assert elsewhere.campaign != joined_to
    third = _observe(store, sha(9), Feature("payload", "p" * 64), Feature("subject", "s <n>"))
    assert third.campaign == joined_to
    assert {(lk.kind, lk.other) for lk in third.links} == {("payload", sha(5)), ("subject", sha(5))}


def test_no_commit_checkpoints_the_feeds_do_after_theirs(tmp_path: Path) -> None:
    """A commit never copies the WAL into the database (that cost one update 3 s at a million
    messages); checkpoint() does, after the commit."""
    path = tmp_path / "c.sqlite"
    with CampaignStore(path) as store:
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for n in range(100):         # well over 1,000 pages of WAL, in 100 commits
            with store.transaction():
                store.observe(Arrival(sha(n)), [Feature("payload", f"{n:064x}"),
                                                 *(Feature("url", f"x.example/{n}/{i}" + "p" * 300)
                                                   for i in range(60))])
        page = store.db.execute("PRAGMA page_size").fetchone()[0]
        frames = (Path(f"{path}-wal").stat().st_size - 32) // (page + 24)
        assert frames > 2000     # nothing restarted the WAL along the way (automatic: at 1,000)
        store.checkpoint()
        busy, log, done = store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and log == done
