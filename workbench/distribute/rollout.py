"""Canary rollout: when a release on its canary towers is promoted to all, or halted.

``decide_rollout`` is pure: the server's watcher (``ServerState.judge_rollout``) feeds it
the fleet and the rule telemetry and signs what it decides into the repository.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from workbench.distribute.fleet import Canary, FleetState, Health
from workbench.distribute.telemetry import FleetRules
from workbench.distribute.update_repository import UpdateRepository


@dataclass(frozen=True)
class RolloutDecision:
    stage: str          # "all" (promote) or "halted"
    reason: str


def _since(canary: Canary) -> float | None:
    try:
        return dt.datetime.strptime(canary.since, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def decide_rollout(fleet: FleetState, canary: Canary, rules: FleetRules, *, soak: float,
                   now: float) -> RolloutDecision | None:
    """Halt when a canary server failed on the canary serial, or a rule storms since the
    canary began; promote when every canary server has been green on it for ``soak``
    seconds (at least one server reporting); else wait (None)."""
    servers = [s for s in fleet.servers if s.tower in canary.towers]
    failed = [s for s in servers if s.state == "failed" and s.target_serial == canary.serial]
    if failed:
        s = failed[0]
        return RolloutDecision("halted", f"canary {s.tower}/{s.server} failed on serial "
                                         f"{canary.serial}: {s.error[:200]}")
    storms = [r for r in rules.rules if r.storm]
    if storms:
        r = storms[0]
        return RolloutDecision("halted", f"rule {r.rule} looks like a false-positive storm: {r.storm}")
    since = _since(canary)
    if since is None or now - since < soak:
        return None
    if servers and all(s.health is Health.GREEN and s.serial == canary.serial for s in servers):
        return RolloutDecision("all", f"{len(servers)} canary servers green on serial "
                                      f"{canary.serial} for {int(now - since)} s, no rule storming")
    return None


def fleet_view(repo: UpdateRepository) -> tuple[int | None, Canary | None]:
    """(the newest serial every tower should run, the newest release's canary rollout if it
    was published to canaries: still on them, halted there, or promoted)."""
    for_all = repo.newest_for_all()
    newest = repo.newest()
    canary = None
    if newest is not None and newest.rollout is not None:
        r = newest.rollout
        canary = Canary(serial=newest.serial, stage=r.stage, towers=r.canaries, since=r.since,
                        reason=r.reason)
    return (for_all.serial if for_all else None), canary
