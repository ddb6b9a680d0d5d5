"""The linking rule written the slow, obvious way: compare a new message with every earlier one.

``CampaignStore`` must put every message where this puts it; tests check that on random
inputs and ``bench/campaigns.py`` times both on the same messages. Nothing else uses it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from workbench.campaigns.campaign_store import COMMON_MIN, COMMON_SHARE
from workbench.campaigns.features import KINDS, LINK_THRESHOLD, Feature, fuzzy_similar


class AllPairs:
    """Campaigns by all-pairs comparison: O(messages) work for each new message."""

    def __init__(self) -> None:
        self.features: dict[str, list[Feature]] = {}
        self.campaign: dict[str, str] = {}
        self.first: dict[str, str] = {}          # campaign -> the message that started it

    def _shared(self, mine: Feature, theirs: Feature) -> bool:
        if mine.kind != theirs.kind:
            return False
        if mine.kind in ("ssdeep", "tlsh"):
            return mine.value == theirs.value or fuzzy_similar(mine, theirs)
        return mine.value == theirs.value

    def _df(self, feature: Feature, memo: dict[Feature, int]) -> int:
        if feature not in memo:
            memo[feature] = sum(1 for fs in self.features.values() if feature in fs)
        return memo[feature]

    def observe(self, message: str, features: Iterable[Feature]) -> str:
        mine = list(dict.fromkeys(f for f in features if f.kind in KINDS))
        common = max(COMMON_MIN, COMMON_SHARE * len(self.features))
        memo: dict[Feature, int] = {}
        best: dict[str, dict[str, float]] = defaultdict(dict)
        for other, theirs in self.features.items():
            for f in mine:
                for t in theirs:
                    if self._shared(f, t) and not (KINDS[f.kind].weak and self._df(t, memo) > common):
                        best[self.campaign[other]][f.kind] = KINDS[f.kind].weight
        linked = [c for c, kinds in best.items() if round(sum(kinds.values()), 3) >= LINK_THRESHOLD]
        self.features[message] = mine
        if not linked:
            self.campaign[message] = message
            return message
        sizes = {c: sum(1 for v in self.campaign.values() if v == c) for c in linked}
        target = max(linked, key=lambda c: (sizes[c], c))
        for m, c in list(self.campaign.items()):
            if c in linked:
                self.campaign[m] = target
        self.campaign[message] = target
        return target

    def partition(self) -> set[frozenset[str]]:
        groups: dict[str, set[str]] = defaultdict(set)
        for m, c in self.campaign.items():
            groups[c].add(m)
        return {frozenset(g) for g in groups.values()}
