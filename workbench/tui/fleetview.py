"""Where the fleet board's data comes from, and how far the newest release has spread (no Textual).

The board reads the same ``FleetState`` document ``workbench fleet`` prints: from this
workspace's fleet store when ``workbench serve`` runs on the same home (it writes every
tower report there), or from a server's ``/v1/fleet`` when the UI is given its URL.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from workbench.distribute.fleet import (
    NEVER_REPORTED,
    Canary,
    FleetEvent,
    FleetState,
    FleetStore,
    Health,
    ServerStatus,
)
from workbench.workspace import Workspace


@dataclass(frozen=True)
class Spread:
    """How far the newest serial has gone, and what holds the rest back."""

    newest: int | None
    servers: int
    on_newest: int
    behind: int           # reporting, on an older serial (or none yet)
    updating: int
    failed: int
    silent: int           # red because nothing was heard for too long
    stale: int            # yellow because the last report is getting old
    never_reported: int = 0   # red: in the inventory, nothing ever heard

    @property
    def fraction(self) -> float:
        return self.on_newest / self.servers if self.servers else 0.0


def spread(state: FleetState) -> Spread:
    newest = state.newest_serial
    on_newest = behind = updating = failed = silent = stale = never = 0
    for s in state.servers:
        if newest is not None and s.serial == newest:
            on_newest += 1
        if s.health is Health.RED:
            if s.state == NEVER_REPORTED:
                never += 1
            elif s.reason.startswith("silent"):
                silent += 1
            else:
                failed += 1
        elif s.state == "updating":
            updating += 1
        elif s.reason.startswith("last report"):
            stale += 1
        elif s.health is Health.YELLOW and newest is not None and (s.serial or 0) < newest:
            behind += 1
    return Spread(newest, len(state.servers), on_newest, behind, updating, failed, silent, stale,
                  never)


class FleetSource(Protocol):
    """What the board reads: the whole fleet, and one server's history."""

    label: str

    def state(self) -> FleetState: ...

    def events(self, tower: str, server: str, limit: int = 10) -> list[FleetEvent]: ...

    def close(self) -> None: ...


class LocalFleet:
    """This workspace's ``state/fleet.sqlite``, where a ``workbench serve`` on it records reports."""

    def __init__(self, workspace: Workspace) -> None:
        from workbench.distribute.update_repository import UpdateRepository

        self.workspace = workspace
        self.repository = UpdateRepository.for_workspace(workspace)
        self.label = "this workspace's fleet store"
        self._store: FleetStore | None = None

    @property
    def store(self) -> FleetStore:
        if self._store is None:
            self._store = FleetStore.for_workspace(self.workspace)
        return self._store

    def newest(self) -> tuple[int | None, Canary | None]:
        """(the newest serial for every tower, the newest release's canary rollout), as
        ``workbench fleet`` reads them; (None, None) before ``keys init`` or a publish."""
        from workbench.distribute.rollout import fleet_view
        from workbench.distribute.update_repository import UpdateRepositoryError

        try:
            return fleet_view(self.repository)
        except UpdateRepositoryError:
            return None, None

    def state(self) -> FleetState:
        newest, canary = self.newest()
        return self.store.state(newest, canary=canary)

    def events(self, tower: str, server: str, limit: int = 10) -> list[FleetEvent]:
        return self.store.events(tower=tower, server=server, limit=limit)

    def close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None


class RemoteFleet:
    """A ``workbench serve`` elsewhere, through its HTTP API."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.label = self.url

    def state(self) -> FleetState:
        from workbench.distribute.client import fetch_fleet

        return fetch_fleet(self.url, timeout=self.timeout)

    def events(self, tower: str, server: str, limit: int = 10) -> list[FleetEvent]:
        from workbench.distribute.client import fetch_history

        return fetch_history(self.url, tower=tower, server=server, limit=limit, timeout=self.timeout)

    def close(self) -> None:
        pass


def fleet_source(workspace: Workspace, url: str | None) -> FleetSource:
    return RemoteFleet(url) if url else LocalFleet(workspace)


def server_key(status: ServerStatus) -> tuple[str, str]:
    return (status.tower, status.server)
