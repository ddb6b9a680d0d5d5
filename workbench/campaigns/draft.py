"""One rule for a whole wave: strings common to the campaign's payloads and rare in goodware.

The approach is yarGen's "super rules" and AutoYara's multi-sample one: a string counts for
how many of the wave's distinct payloads carry it; strings the goodware database knows, or
that score as noise, are dropped; the rest are picked so that every payload carries at
least ``need`` of them, and the condition asks for exactly that many. The draft is then
tested at once: which members it catches (and why it misses the others) and what it hits
in the clean corpora.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yara

from workbench.campaigns.service import catch_up, open_store
from workbench.dissect.strings import ExtractedString, extract_strings
from workbench.quarantine.service import Quarantine
from workbench.rules.draft import Draft, DraftError, Sample, detect_type, draft
from workbench.rules.goodware import GoodwareDB
from workbench.rules.policy import Policy
from workbench.rules.suggest import Candidate, rank_strings
from workbench.workspace import Workspace

MAX_PAYLOADS = 64
MAX_STRINGS = 8
MIN_SHARE = 0.5            # a string must be in at least this share of the payloads
NEED = 3                   # how many strings each payload must carry, when it has them


@dataclass
class MissedMember:
    message: str
    reason: str


@dataclass
class Coverage:
    members: int
    caught: list[str]
    missed: list[MissedMember]

    @property
    def share(self) -> float:
        return len(self.caught) / self.members if self.members else 0.0


@dataclass
class CleanHit:
    sha256: str
    name: str
    corpora: list[str]


@dataclass
class CampaignDraft:
    campaign: str
    kind: str                          # the payload type the rule is for (pe, ole, script ...)
    payloads: list[str]                # distinct payloads the strings were chosen from
    shared: dict[str, int]             # chosen string -> payloads carrying it
    need: int
    draft: Draft
    coverage: Coverage
    clean_corpora: list[str]
    clean_files: int
    false_positives: list[CleanHit]
    dissected: int = 0                 # members dissected first because they were not yet
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.coverage.missed and not self.false_positives


def _dissect_missing(workspace: Workspace, shas: list[str]) -> int:
    from workbench.dissect.cache import DissectCache, cache_path
    from workbench.dissect.walker import dissect_message

    path = cache_path(workspace)
    done: set[str] = set()
    if path.exists():
        with DissectCache(path, readonly=True) as cache:
            done = cache.dissected_messages()
    todo = [s for s in shas if s not in done]
    if todo:
        with Quarantine.open(workspace) as q:
            for sha in todo:
                dissect_message(q, sha)
    return len(todo)


def _strings(data: bytes) -> set[tuple[str, str]]:
    return {(s.text.strip(), s.encoding) for s in extract_strings(data, min_len=6, limit=20000)
            if s.text.strip()}


def draft_for_campaign(workspace: Workspace, ident: str, *, name: str | None = None,
                       family: str = "Unknown", category: str = "MAL", author: str | None = None,
                       policy: Policy | None = None, clean_corpora: list[str] | None = None,
                       dissect_missing: bool = True, test_clean: bool = True) -> CampaignDraft:
    """Draft and test a rule for every member of a campaign."""
    catch_up(workspace)
    with open_store(workspace, readonly=True) as store:
        cid = store.resolve(ident)
        members = [m["message"] for m in store.members(cid)]
    dissected = _dissect_missing(workspace, members) if dissect_missing else 0
    if dissected:
        catch_up(workspace)
    with open_store(workspace, readonly=True) as store:
        cid = store.resolve(cid)
        members = [m["message"] for m in store.members(cid)]
        held = store.member_features(cid, "payload")

    with Quarantine.open(workspace) as q:
        data = {sha: q.store.read(sha) for sha in dict.fromkeys(s for v in held.values() for s in v)}
    if not data:
        raise DraftError(f"campaign {cid}: no member carries a payload to draft from")
    kinds = {sha: detect_type(blob) for sha, blob in data.items()}
    # The type that reaches most members: archives hold the payload, they are not it.
    reach = Counter(k for m in members for k in {kinds[s] for s in held.get(m, [])} if k != "zip")
    kind = reach.most_common(1)[0][0] if reach else "data"
    payloads = [s for s in data if kinds[s] == kind][:MAX_PAYLOADS]
    notes = []
    if len(data) > len(payloads):
        notes.append(f"{len(payloads)} {kind} payload(s) of {len(data)} distinct payloads used")

    shared, need = _choose_strings(payloads, data, workspace)
    if not shared:
        raise DraftError(f"campaign {cid}: its {len(payloads)} {kind} payload(s) share no string "
                         "that is rare in goodware; draft from one sample instead")
    samples = [Sample(sha, data[sha], source=next((m for m in members if sha in held.get(m, [])), ""))
               for sha in payloads]
    result = draft(samples, strings=[text for text, _ in shared], name=name, family=family,
                   category=category, author=author, policy=policy, need=need,
                   description=f"{family} campaign {cid}: {len(members)} messages, "
                               f"{len(payloads)} payload variant(s)")
    coverage = _coverage(result.text, members, held, data)
    clean, files, hits = _clean_hits(workspace, result, clean_corpora) if test_clean else ([], 0, [])
    return CampaignDraft(cid, kind, payloads, dict(shared), need, result, coverage, clean, files, hits,
                         dissected, notes)


def _choose_strings(payloads: list[str], data: dict[str, bytes], workspace: Workspace
                    ) -> tuple[list[tuple[str, int]], int]:
    """(chosen strings with how many payloads carry each, strings each payload must carry)."""
    per_payload = {sha: _strings(data[sha]) for sha in payloads}
    counts = Counter(s for found in per_payload.values() for s in found)
    floor = max(1 if len(payloads) == 1 else 2, int(len(payloads) * MIN_SHARE + 0.999))
    common = [s for s, n in counts.items() if n >= floor]
    goodware = GoodwareDB.open_for(workspace, readonly=True)
    try:
        ranked, _ = rank_strings((ExtractedString(0, enc, text) for text, enc in common), goodware,
                                 limit=len(common) or 1)
    finally:
        if goodware is not None:
            goodware.close()
    # DLL and API names from the import tables: every build of a family shares them, and so
    # does half of all goodware, whether or not a small clean corpus shows it.
    imported = _import_names(workspace, payloads)
    usable = [c for c in ranked if c.goodware_count == 0 and c.score > 0 and c.text not in imported
              and _meaningful(c)]
    usable.sort(key=lambda c: (-counts[(c.text, c.encoding)], -c.score, c.text))
    chosen: list[tuple[str, str]] = []
    # Strings every payload carries first, then whatever lifts the worst-covered payload.
    for c in usable:
        key = (c.text, c.encoding)
        if len(chosen) < MAX_STRINGS and counts[key] == len(payloads):
            chosen.append(key)
    for c in usable:
        key = (c.text, c.encoding)
        if len(chosen) >= MAX_STRINGS or key in chosen:
            continue
        if min(len(set(chosen) & found) for found in per_payload.values()) >= NEED:
            break
        chosen.append(key)
    if not chosen:
        return [], 0
    # Ask for most of what the least-covered payload carries (a later build may drop a
    # string or two) but never fewer than NEED: a handful of strings alone is how
    # false positives start.
    carried = min(len(set(chosen) & found) for found in per_payload.values())
    need = min(carried, max(NEED, math.ceil(0.75 * carried)))
    texts = list(dict.fromkeys(text for text, _ in chosen))
    return [(t, max(counts[(t, e)] for tt, e in chosen if tt == t)) for t in texts], max(need, 1)


def _meaningful(candidate: Candidate) -> bool:
    """Not a run of printable bytes inside random data (code, packed sections), which every
    build of a family may share and which says nothing an analyst could check: a string
    a scoring rule recognises (a URL, a path, a format string ...), or one that is mostly
    letters and digits."""
    if any(reason.startswith("+") and "length" not in reason for reason in candidate.reasons):
        return True
    text = candidate.text
    return len(text) >= 8 and sum(ch.isalnum() or ch == " " for ch in text) / len(text) >= 0.8


def _import_names(workspace: Workspace, payloads: list[str]) -> set[str]:
    """Every DLL and function name the dissection found in the payloads' import tables."""
    from workbench.dissect.cache import DissectCache, cache_path

    path = cache_path(workspace)
    if not path.exists():
        return set()
    names: set[str] = set()
    with DissectCache(path, readonly=True) as cache:
        for sha in payloads:
            for entry in cache.reports_of(sha).get("pe", {}).get("imports", []):
                names.add(str(entry.get("dll", "")))
                names.update(str(f) for f in entry.get("functions", []))
    return names


def _coverage(text: str, members: list[str], held: dict[str, list[str]], data: dict[str, bytes]) -> Coverage:
    rules = yara.compile(source=text)
    caught, missed = [], []
    for message in members:
        payloads = held.get(message, [])
        if not payloads:
            missed.append(MissedMember(message, "no payload extracted (the message joined by its "
                                                "headers, links or body alone)"))
        elif any(rules.match(data=data[sha]) for sha in payloads if sha in data):
            caught.append(message)
        else:
            missed.append(MissedMember(message, f"none of its {len(payloads)} payload(s) carries "
                                                "enough of the shared strings"))
    return Coverage(len(members), caught, missed)


def _clean_hits(workspace: Workspace, result: Draft, corpora: list[str] | None
                ) -> tuple[list[str], int, list[CleanHit]]:
    from workbench.corpus.corpus_registry import CorpusRegistry
    from workbench.corpus.rule_testing import run_rule_tests

    with CorpusRegistry(workspace) as registry:
        clean = corpora or [c.name for c in registry.list(include_builtin=False) if c.label == "clean"]
    if not clean:
        return [], 0, []
    with tempfile.TemporaryDirectory(prefix="campaign-draft-") as tmp:
        path = Path(tmp) / f"{result.name}.yar"
        path.write_text(result.text, encoding="utf-8")
        report = run_rule_tests(workspace, [path], clean, use_index=False)
    files = sum(c.files for c in report.corpora)
    hits = [CleanHit(m.sha256, m.name, list(m.corpora)) for r in report.rules for m in r.false_positives]
    return clean, files, hits
