"""Draining the tower spool continuously: ``quarantine watch`` and ``serve``'s background drain.

Towers copy stuck mail into ``quarantine/incoming/<tower>/<server>/``; something must take
it into the store as it arrives. The watcher polls (it works the same on a local disk and
on the NFS or SMB shares towers often write to, where inotify sees nothing), ingests
whatever has settled under the spool lock, and sleeps. A drain that fails (a full disk, a
locked index) is reported and retried at the next poll: the spool files stay where they
are until they are durable in the store, so a failure delays mail and never loses it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from workbench.durable import LockBusy
from workbench.quarantine.ingest import DEFAULT_MAX_MESSAGE, IngestSummary, ingest_spool
from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace

DEFAULT_INTERVAL = 2.0
DEFAULT_SETTLE = 2.0


@dataclass
class DrainResult:
    """One poll of the spool: what was ingested, or why nothing was."""

    summary: IngestSummary | None = None     # None: nothing done this round
    busy: bool = False                       # another reader held the spool lock
    error: str = ""                          # the drain failed; the files are still there

    @property
    def did_something(self) -> bool:
        s = self.summary
        return s is not None and bool(s.messages or s.failed)


class SpoolWatcher:
    """Ingests the spool every ``interval`` seconds until stopped."""

    def __init__(self, workspace: Workspace, *, interval: float = DEFAULT_INTERVAL,
                 settle: float = DEFAULT_SETTLE, max_message: int = DEFAULT_MAX_MESSAGE,
                 actor: str = "spool"):
        if interval <= 0:
            raise ValueError("the poll interval must be positive")
        self.workspace = workspace
        self.interval = interval
        self.settle = settle
        self.max_message = max_message
        self.actor = actor
        self.totals = IngestSummary()
        self.drains = 0
        self.errors = 0

    def drain(self, q: Quarantine) -> DrainResult:
        """Ingest what has settled in the spool now, unless another reader has it."""
        try:
            summary = ingest_spool(q, max_message=self.max_message, settle=self.settle,
                                   actor=self.actor, wait=False)
        except LockBusy:
            return DrainResult(busy=True)
        except Exception as exc:     # a loop that must keep going reports and retries
            self.errors += 1
            return DrainResult(error=f"{type(exc).__name__}: {exc}")
        self.drains += 1
        self.totals.merge(summary, counts_only=True)
        return DrainResult(summary=summary)

    def run(self, stop: threading.Event,
            on_drain: Callable[[DrainResult], None] | None = None) -> None:
        """Poll until ``stop`` is set; ``on_drain`` hears every round that did or failed
        something. The quarantine is opened here, so the loop may run in its own thread."""
        q = Quarantine.open(self.workspace)
        try:
            while not stop.is_set():
                started = time.monotonic()
                result = self.drain(q)
                if on_drain is not None and (result.did_something or result.error):
                    on_drain(result)
                stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            q.close()

    def start(self, on_drain: Callable[[DrainResult], None] | None = None
              ) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop, on_drain),
                                  name="spool-watcher", daemon=True)
        thread.start()
        return thread, stop
