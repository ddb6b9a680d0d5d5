"""Retro-hunting: which past quarantined messages would these rules have caught?"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workbench.corpus.cache import CACHE_NAME, ScanCache
from workbench.corpus.corpus_registry import extracted_artifacts
from workbench.corpus.incremental import paused_gc, resolve
from workbench.corpus.prefilter import open_index
from workbench.corpus.rule_testing import policy_externals
from workbench.corpus.ruleset import PARSE_CACHE, ExternalValue, load_ruleset
from workbench.corpus.scanner import (
    DEFAULT_TIMEOUT,
    ScanCancelled,
    ScanProgress,
    ScanTarget,
    default_threads,
)
from workbench.quarantine.index import UnknownId
from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace


@dataclass
class RetroMatch:
    """One rule matching a message, directly (``artifact`` empty) or through an extracted artifact."""

    rule: str
    artifact_sha256: str = ""
    artifact_name: str = ""
    strings: list[str] = field(default_factory=list)      # identifiers that matched


@dataclass
class RetroMessage:
    sha256: str
    subject: str
    from_addr: str
    first_seen: str
    tower: str
    status: str
    tags: list[str]
    matches: list[RetroMatch]


@dataclass
class RetroRuleSummary:
    rule: str
    messages: int
    artifacts: int


@dataclass
class RetrohuntReport:
    rules: list[RetroRuleSummary]
    messages: list[RetroMessage]          # messages hit, newest first
    messages_scanned: int
    artifacts_scanned: int
    bytes_scanned: int
    files_skipped: int                    # ruled out by the gram index without being read
    tag: str
    tagged: list[str]
    timeouts: list[str]                   # sha256 of messages or artifacts
    errors: list[str]
    seconds: float


@dataclass(frozen=True)
class _Origin:
    message: str
    artifact: str          # "" for the raw message itself
    name: str


def retrohunt(workspace: Workspace, rule_paths: Iterable[Path | str], *,
              progress: Callable[[ScanProgress], None] | None = None,
              cancel: threading.Event | None = None, threads: int | None = None,
              use_cache: bool = True, use_index: bool = True, timeout: int = DEFAULT_TIMEOUT,
              tag: str | None = None, actor: str | None = None,
              externals: Mapping[str, ExternalValue] | None = None,
              dissect_missing: bool = True) -> RetrohuntReport:
    """Scan every quarantined raw message and extracted artifact; map hits back to messages.

    With ``dissect_missing`` (the default, for the CLI and the UI alike), messages nobody
    dissected yet are dissected first: the hunt scans every artifact the dissect catalog
    knows, and a message never opened would only be scanned as raw, still encoded mail.
    A message that fails to dissect is listed in ``errors`` and the hunt goes on.

    With ``tag``, every message hit gets that tag (journaled, like ``quarantine tag``).
    With ``use_index``, a hunt with few new rules reads only the files the gram index
    says they could match (messages and artifacts are indexed the first time).
    Raises ``RulesetError`` for rules that do not compile, ``ScanCancelled`` on cancel
    and ``BadTag`` for a tag the quarantine refuses.
    """
    started = time.monotonic()
    if externals is None:           # as test, validate and release compile them
        externals = policy_externals(workspace)
    ruleset = load_ruleset(list(rule_paths), parse_cache=workspace.state / PARSE_CACHE, externals=externals)
    failed = dissect_undissected(workspace, progress=progress, cancel=cancel) if dissect_missing else []
    with Quarantine.open(workspace) as q:
        origins: dict[str, list[_Origin]] = {}
        targets: dict[str, ScanTarget] = {}
        messages = sorted(q.index.all_shas())
        for sha in messages:
            path = q.store.path_for(sha)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0        # scanned anyway: the scan error names the missing object
            targets[sha] = ScanTarget(sha, path, size)
            origins.setdefault(sha, []).append(_Origin(sha, "", ""))
        artifacts = 0
        # every message holding an artifact: the same attachment often reaches many people
        for art in extracted_artifacts(workspace, unique=False):
            if art.sha256 not in targets:
                targets[art.sha256] = ScanTarget(art.sha256, Path(art.path), int(art.size))
                artifacts += 1
            origins.setdefault(art.sha256, []).append(
                _Origin(art.message_sha256, art.sha256, art.filename or ""))
        cache = ScanCache(workspace.state / CACHE_NAME) if use_cache else None
        index = open_index(workspace) if use_index else None
        try:
            with paused_gc():
                res = resolve(ruleset, list(targets.values()), cache=cache,
                              threads=threads or default_threads(), timeout=timeout,
                              progress=progress, cancel=cancel, index=index)
        finally:
            if cache is not None:
                cache.close()
            if index is not None:
                index.close()

        by_message: dict[str, list[RetroMatch]] = {}
        per_rule_msgs: dict[str, set[str]] = {}
        per_rule_arts: dict[str, set[str]] = {}
        for (i, sha), hit in sorted(res.hits.items()):
            rule = ruleset.entries[i].name
            strings = sorted({h.identifier for h in hit.hits})
            for origin in origins.get(sha, []):
                by_message.setdefault(origin.message, []).append(
                    RetroMatch(rule, origin.artifact, origin.name, strings))
                per_rule_msgs.setdefault(rule, set()).add(origin.message)
                if origin.artifact:
                    per_rule_arts.setdefault(rule, set()).add(origin.artifact)

        tagged: list[str] = []
        found: list[RetroMessage] = []
        for msg, matches in by_message.items():
            try:
                row = q.index.get(msg)
            except (UnknownId, KeyError):
                continue        # an artifact of a message no longer indexed
            tags = list(row.tags)
            if tag:
                tags = q.tag(msg, [tag], actor=actor)
                tagged.append(msg)
            found.append(RetroMessage(msg, row.subject, row.from_addr, row.first_seen, row.tower,
                                      row.status, tags, matches))
    found.sort(key=lambda m: (m.first_seen, m.sha256), reverse=True)
    summaries = [RetroRuleSummary(e.name, len(per_rule_msgs.get(e.name, ())),
                                  len(per_rule_arts.get(e.name, ())))
                 for e in ruleset.entries if e.reported]
    return RetrohuntReport(
        rules=summaries, messages=found, messages_scanned=len(messages),
        artifacts_scanned=artifacts, bytes_scanned=res.bytes_scanned,
        files_skipped=res.files_skipped, tag=tag or "",
        tagged=sorted(tagged), timeouts=sorted(res.timeouts), errors=sorted(res.errors) + failed,
        seconds=round(time.monotonic() - started, 3))



def dissect_undissected(workspace: Workspace, *, progress: Callable[[ScanProgress], None] | None = None,
                        cancel: threading.Event | None = None) -> list[str]:
    """Dissect the quarantined messages never opened; returns those that failed to dissect.

    Progress comes as ``ScanProgress("dissecting", files_done, files_total)``; ``cancel``
    stops between messages with ``ScanCancelled``. One bad message does not stop the rest.
    """
    try:
        from workbench.dissect.catalog import undissected
    except ModuleNotFoundError as exc:      # as ``extracted_artifacts``: no dissection installed
        if exc.name != "workbench.dissect.catalog":
            raise
        return []
    todo = undissected(workspace)
    failed: list[str] = []
    if not todo:
        return failed
    from workbench.dissect.walker import dissect_message

    with Quarantine.open(workspace) as q:
        for done, sha in enumerate(todo):
            if cancel is not None and cancel.is_set():
                raise ScanCancelled()
            if progress is not None:
                progress(ScanProgress("dissecting", files_done=done, files_total=len(todo)))
            try:
                dissect_message(q, sha)
            except Exception:       # one bad message must not stop the hunt: listed in errors
                failed.append(sha)
    return failed
