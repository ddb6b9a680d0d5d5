"""Synthetic fleets for the board's tests, snapshots and benchmark: every health, reason and size."""

from __future__ import annotations

from workbench.distribute.fleet import FleetEvent, FleetState, ServerRecord, summarize

NOW = 1_795_000_000.0          # a fixed clock (2026-11-18), so reasons and ages never drift


def record(tower: str, server: str, *, serial: int | None = 5, state: str = "ok", age: float = 30.0,
           error: str = "", target: int | None = None) -> ServerRecord:
    return ServerRecord(tower=tower, server=server, state=state, serial=serial, error=error,
                        target_serial=target, agent_version="0.1.0", libyara_version="4.5.4",
                        rule_count=9 if serial else None, reported_at=NOW - age)


def fleet_records(towers: int = 100, servers: int = 36, *, newest: int = 5,
                  vary: bool = True) -> list[ServerRecord]:
    """Towers of 14 to ``servers`` servers (all ``servers`` unless ``vary``): most current, some
    behind, updating, stale, failing or silent."""
    out = []
    for t in range(towers):
        size = 14 + (t * 7) % (servers - 13) if vary and servers > 14 else servers
        for s in range(size):
            n = t * 100 + s
            tower, server = f"t{t:03d}", f"mx{s:02d}"
            if n % 97 == 13:
                out.append(record(tower, server, state="failed", serial=newest - 1, target=newest,
                                  error=f"refused serial {newest}: self-test failed (rule X missed sample Y)"))
            elif n % 89 == 7:
                out.append(record(tower, server, age=7200.0))                        # silent
            elif n % 23 == 5:
                out.append(record(tower, server, serial=newest - 1))                  # behind
            elif n % 61 == 11:
                out.append(record(tower, server, state="updating", serial=newest - 1, target=newest))
            elif n % 71 == 3:
                out.append(record(tower, server, age=600.0))                          # stale
            else:
                out.append(record(tower, server, serial=newest))
    return out


def fleet_inventory(records: list[ServerRecord], *, missing: int = 0) -> dict[str, list[str]]:
    """The inventory of ``records``' servers, and ``missing`` more (``mx90``, ``mx91`` ... spread
    over the towers) whose agents never reported."""
    inventory: dict[str, list[str]] = {}
    for r in records:
        inventory.setdefault(r.tower, []).append(r.server)
    towers = sorted(inventory)
    for n in range(missing):
        inventory[towers[(n * 7) % len(towers)]].append(f"mx{90 + n // len(towers)}")
    return inventory


def fleet_state(towers: int = 100, servers: int = 36, *, newest: int = 5, vary: bool = True,
                missing: int = 0) -> FleetState:
    """A judged fleet; with ``missing``, also an inventory with that many never-reported servers."""
    records = fleet_records(towers, servers, newest=newest, vary=vary)
    expected = fleet_inventory(records, missing=missing) if missing else None
    return summarize(records, newest, now=NOW, expected=expected)


class FakeSource:
    """Hands out the states it is given, one per poll (the last one again when they run out)."""

    label = "a test fleet"

    def __init__(self, *states: FleetState | Exception) -> None:
        self.states = list(states)
        self.polls = 0
        self.history: dict[tuple[str, str], list[FleetEvent]] = {}

    def state(self) -> FleetState:
        self.polls += 1
        item = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(item, Exception):
            raise item
        return item

    def events(self, tower: str, server: str, limit: int = 10) -> list[FleetEvent]:
        return self.history.get((tower, server), [])[:limit]

    def close(self) -> None:
        pass
