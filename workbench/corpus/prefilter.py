"""Which files a few rules could match: their requirements (``atoms.py``) asked of the gram index.

Used where the result cache misses for a few rules (a re-test after an edit, a
retro-hunt with new rules): only the candidates are scanned, and every other
file is recorded as "no match" exactly as a scan would have recorded it. Files
the index lacks are indexed first (once; later runs find them there); files it
cannot read stay candidates, so the scan reports them as it always did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.corpus.atoms import ANYTHING, Requirements
from workbench.corpus.corpus_registry import QUARANTINE_CORPUS, CorpusRegistry
from workbench.corpus.gramindex import (
    INDEX_DIR,
    BuildReport,
    GramIndex,
    IndexReader,
    IndexStats,
    Selection,
)
from workbench.corpus.ruleset import Ruleset
from workbench.corpus.scanner import ScanCancelled, ScanProgress, ScanTarget, default_threads
from workbench.workspace import Workspace

MAX_RULES = 128        # larger groups are scanned whole: a cold run reads every file anyway


@dataclass
class PrefilterStats:
    files_indexed: int = 0        # indexed in this run (files the index lacked)
    files_skipped: int = 0        # (group, file) pairs ruled out without reading the file
    seconds: float = 0.0          # indexing and queries


def open_index(workspace: Workspace) -> GramIndex | None:
    """The workspace's gram index, or None when ``state/`` cannot hold one (then nothing is skipped)."""
    try:
        return GramIndex(workspace.state / INDEX_DIR).open()
    except OSError:
        return None


class Prefilter:
    """Answers "which of these files could these rules match?" for one ruleset."""

    def __init__(self, index: GramIndex, ruleset: Ruleset, *, threads: int = 1,
                 cancel: threading.Event | None = None,
                 progress: Callable[[ScanProgress], None] | None = None):
        self.index = index
        self.requirements = Requirements(ruleset.entries)
        self.threads = threads
        self.cancel = cancel
        self.progress = progress
        self.stats = PrefilterStats()
        self._reader: IndexReader | None = None
        self._tried: set[str] = set()
        self._selection: tuple[frozenset[str], Selection] | None = None

    def candidates(self, rules: Sequence[int], shas: frozenset[str],
                   targets: Mapping[str, ScanTarget]) -> set[str] | None:
        """The files of ``shas`` some rule of ``rules`` may match; None when all must be scanned.

        ``targets`` gives the path of each (to index the ones the index lacks).
        """
        if len(rules) > MAX_RULES:
            return None
        started = time.monotonic()
        try:
            formula = self.requirements.of_rules(rules)
            if formula is ANYTHING:
                return None
            reader, selection = self._select(shas, targets)
            found = reader.candidates(formula, selection)
            self.stats.files_skipped += len(shas) - len(found)
            return found
        except OSError:
            return None              # a broken index costs speed, never results
        finally:
            self.stats.seconds += time.monotonic() - started

    def _select(self, shas: frozenset[str], targets: Mapping[str, ScanTarget]
                ) -> tuple[IndexReader, Selection]:
        """The files grouped by block; the ones the index lacks are indexed first."""
        if self._reader is not None and self._selection is not None and self._selection[0] == shas:
            return self._reader, self._selection[1]
        if self._reader is None:
            self._reader = self.index.reader()
        selection = self._reader.select(shas)
        lacking = {sha for sha in selection.always
                   if sha not in self._reader.saturated and sha not in self._tried}
        if lacking:
            last = time.monotonic()

            def step(done: int, total: int) -> None:
                nonlocal last
                if self.progress is not None and (time.monotonic() - last >= 0.1 or done == total):
                    last = time.monotonic()
                    self.progress(ScanProgress("indexing", files_done=done, files_total=total))

            todo = [(sha, targets[sha].path) for sha in sorted(lacking)]
            built = self.index.build(todo, threads=self.threads, cancel=self.cancel, progress=step)
            self.stats.files_indexed += built.indexed
            if self.cancel is not None and self.cancel.is_set():
                raise ScanCancelled()          # what was indexed is kept for the next run
            self._tried.update(lacking)            # unreadable ones stay candidates
            self._reader = self.index.reader()
            selection = self._reader.select(shas)
        self._selection = (shas, selection)
        return self._reader, selection


@dataclass
class IndexReport:
    """What ``corpus index`` did, and the index afterwards."""

    corpora: list[str]
    files: int                    # distinct contents asked for
    build: BuildReport
    stats: IndexStats
    quarantine_messages: int = 0  # raw quarantined messages among ``files``


def index_corpora(workspace: Workspace, names: Sequence[str] | None = None, *,
                  rebuild: bool = False, threads: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None) -> IndexReport:
    """Index the files of ``names`` (default: every corpus, the quarantine's artifacts and its raw
    messages, which retro-hunts scan) that the index lacks; ``rebuild`` empties it first.

    Raises UnknownCorpus and OSError (the index cannot be written).
    """
    files: dict[str, str | Path] = {}
    messages = 0
    with CorpusRegistry(workspace) as registry:
        chosen = list(names) if names else [*registry.names(), QUARANTINE_CORPUS]
        for name in chosen:
            for sha, path, _, _ in registry.members(name):
                files.setdefault(sha, path)
    if not names and (workspace.quarantine / "index.sqlite").exists():
        from workbench.quarantine.service import Quarantine

        with Quarantine.open(workspace) as q:
            for sha in q.index.all_shas():
                if sha not in files:
                    files[sha] = q.store.path_for(sha)
                    messages += 1
    index = GramIndex(workspace.state / INDEX_DIR).open()
    if rebuild:
        index.clear()
    built = index.build(sorted(files.items()), threads=threads or default_threads(),
                        cancel=cancel, progress=progress)
    return IndexReport(chosen, len(files), built, index.stats(), messages)
