"""Rule telemetry: the scanners' counters from the fleet reports, turned into hits over time.

Each report carries the scanner's cumulative counters since it started (``started``
tells a restart apart). The fleet store keeps the newest counters per server and adds
the increase since the previous report to hourly buckets per tower and rule, so a lost
or repeated report never counts a hit twice and a restart never counts a negative.
``rule_telemetry`` reads the buckets back: hits per hour and per tower, last hit, and
whether a rule's rate jumped far above its own baseline (a likely false-positive storm).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

MAX_RULES_PER_REPORT = 1000         # the busiest rules; keeps a report under the 64 KiB body cap
HOUR = 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS scanner_state (
    tower TEXT NOT NULL, server TEXT NOT NULL, started TEXT NOT NULL, messages INTEGER NOT NULL,
    scan_seconds REAL NOT NULL, errors INTEGER NOT NULL, quarantined INTEGER NOT NULL,
    serial INTEGER, reported_at REAL NOT NULL, PRIMARY KEY (tower, server)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scanner_hourly (
    hour INTEGER NOT NULL, tower TEXT NOT NULL, messages INTEGER NOT NULL, scan_seconds REAL NOT NULL,
    errors INTEGER NOT NULL, PRIMARY KEY (hour, tower)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_counts (
    tower TEXT NOT NULL, server TEXT NOT NULL, rule TEXT NOT NULL, started TEXT NOT NULL,
    hits INTEGER NOT NULL, last_hit REAL, PRIMARY KEY (tower, server, rule)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_hourly (
    hour INTEGER NOT NULL, tower TEXT NOT NULL, rule TEXT NOT NULL, hits INTEGER NOT NULL,
    PRIMARY KEY (hour, tower, rule)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rule_hourly_rule ON rule_hourly (rule, hour);
"""


def trim_for_report(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scanner's counters as they go into a fleet report (the busiest rules only)."""
    if not stats:
        return None
    hits = stats.get("rule_hits") or {}
    if len(hits) > MAX_RULES_PER_REPORT:
        top = sorted(hits.items(), key=lambda kv: -kv[1])[:MAX_RULES_PER_REPORT]
        stats = {**stats, "rule_hits": dict(top)}
    return stats


def record_scanner(db: sqlite3.Connection, tower: str, server: str, stats: dict[str, Any],
                   received_at: float) -> None:
    """Add one report's increase to the hourly buckets (inside the caller's transaction)."""
    started = str(stats.get("started", ""))
    messages = int(stats.get("messages", 0))
    seconds = float(stats.get("scan_seconds", 0.0))
    errors = int(stats.get("errors", 0))
    previous = db.execute(
        "SELECT started, messages, scan_seconds, errors FROM scanner_state WHERE tower=? AND server=?",
        (tower, server)).fetchone()
    same_run = previous is not None and previous[0] == started and previous[1] <= messages
    base = previous[1:] if same_run else (0, 0.0, 0)
    hour = int(received_at // HOUR)
    d_messages, d_seconds, d_errors = messages - base[0], max(seconds - base[1], 0.0), max(errors - base[2], 0)
    if d_messages or d_errors:
        db.execute(
            "INSERT INTO scanner_hourly (hour, tower, messages, scan_seconds, errors) VALUES (?,?,?,?,?) "
            "ON CONFLICT (hour, tower) DO UPDATE SET messages = messages + excluded.messages, "
            "scan_seconds = scan_seconds + excluded.scan_seconds, errors = errors + excluded.errors",
            (hour, tower, d_messages, d_seconds, d_errors))
    db.execute(
        "INSERT OR REPLACE INTO scanner_state (tower, server, started, messages, scan_seconds, "
        "errors, quarantined, serial, reported_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (tower, server, started, messages, seconds, errors, int(stats.get("quarantined", 0)),
         stats.get("serial"), received_at))
    hits: dict[str, int] = stats.get("rule_hits") or {}
    known = {rule: (s, h) for rule, s, h in db.execute(
        "SELECT rule, started, hits FROM rule_counts WHERE tower=? AND server=?", (tower, server))}
    for rule, count in hits.items():
        count = int(count)
        old_started, old_hits = known.get(rule, ("", 0))
        delta = count - old_hits if (old_started == started and old_hits <= count) else count
        if delta <= 0 and rule in known and old_started == started:
            continue
        db.execute(
            "INSERT INTO rule_counts (tower, server, rule, started, hits, last_hit) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (tower, server, rule) DO UPDATE SET started = excluded.started, "
            "hits = excluded.hits, last_hit = COALESCE(excluded.last_hit, last_hit)",
            (tower, server, rule, started, count, received_at if delta > 0 else None))
        if delta > 0:
            db.execute(
                "INSERT INTO rule_hourly (hour, tower, rule, hits) VALUES (?,?,?,?) "
                "ON CONFLICT (hour, tower, rule) DO UPDATE SET hits = hits + excluded.hits",
                (hour, tower, rule, delta))


@dataclass(frozen=True)
class StormThresholds:
    """A rule is a likely false-positive storm when its hits per hour over the ``recent``
    window are at least ``factor`` times its baseline (the ``baseline`` hours before),
    and at least ``min_hits`` in that window."""

    recent_hours: int = 1
    baseline_hours: int = 24
    factor: float = 10.0
    min_hits: int = 20


@dataclass(frozen=True)
class RuleTelemetry:
    rule: str
    hits: int                         # in the window
    hits_per_hour: float
    towers: dict[str, int]            # tower -> hits in the window
    last_hit: float | None            # seconds since the epoch (server clock)
    recent_per_hour: float
    baseline_per_hour: float
    storm: str = ""                   # why it looks like a false-positive storm ("" if not)


@dataclass(frozen=True)
class FleetRules:
    """``GET /v1/fleet/rules``: per-rule hits over the window, and the scanners' totals."""

    generated_at: float
    window_hours: int
    messages: int
    scan_seconds: float
    errors: int
    rules: list[RuleTelemetry] = field(default_factory=list)
    history: dict[str, list[int]] = field(default_factory=dict)   # rule -> hits per hour, oldest first

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FleetRules:
        return cls(generated_at=float(data["generated_at"]), window_hours=int(data["window_hours"]),
                   messages=int(data["messages"]), scan_seconds=float(data["scan_seconds"]),
                   errors=int(data["errors"]), rules=[RuleTelemetry(**r) for r in data["rules"]],
                   history={k: list(v) for k, v in data.get("history", {}).items()})


def rule_telemetry(db: sqlite3.Connection, *, window_hours: int = 24, now: float | None = None,
                   storm: StormThresholds | None = None, rule: str | None = None) -> FleetRules:
    now = time.time() if now is None else now
    storm = storm or StormThresholds()
    hour_now = int(now // HOUR)
    first = hour_now - window_hours + 1
    oldest = min(first, hour_now - storm.recent_hours - storm.baseline_hours + 1)
    params: list[Any] = [oldest]
    where = "hour >= ?"
    if rule is not None:
        where += " AND rule = ?"
        params.append(rule)
    rows = db.execute(f"SELECT hour, tower, rule, hits FROM rule_hourly WHERE {where}", params).fetchall()
    last = dict(db.execute("SELECT rule, MAX(last_hit) FROM rule_counts GROUP BY rule").fetchall())
    per_rule: dict[str, dict[str, Any]] = {}
    for hour, tower, name, hits in rows:
        entry = per_rule.setdefault(name, {"towers": {}, "hours": {}})
        entry["hours"][hour] = entry["hours"].get(hour, 0) + hits
        if hour >= first:
            entry["towers"][tower] = entry["towers"].get(tower, 0) + hits
    out: list[RuleTelemetry] = []
    history: dict[str, list[int]] = {}
    for name, entry in sorted(per_rule.items()):
        hours: dict[int, int] = entry["hours"]
        in_window = sum(h for hr, h in hours.items() if hr >= first)
        recent = sum(h for hr, h in hours.items() if hr > hour_now - storm.recent_hours)
        base_first = hour_now - storm.recent_hours - storm.baseline_hours + 1
        baseline = sum(h for hr, h in hours.items()
                       if base_first <= hr <= hour_now - storm.recent_hours)
        recent_rate = recent / storm.recent_hours
        base_rate = baseline / storm.baseline_hours
        reason = ""
        if recent >= storm.min_hits and recent_rate >= storm.factor * max(base_rate, 1.0):
            reason = (f"{recent} hits in the last {storm.recent_hours} h against a baseline of "
                      f"{base_rate:.1f}/h over the {storm.baseline_hours} h before")
        if in_window == 0 and not reason:
            continue
        out.append(RuleTelemetry(rule=name, hits=in_window,
                                 hits_per_hour=round(in_window / window_hours, 2),
                                 towers=dict(sorted(entry["towers"].items())), last_hit=last.get(name),
                                 recent_per_hour=round(recent_rate, 2),
                                 baseline_per_hour=round(base_rate, 2), storm=reason))
        history[name] = [hours.get(h, 0) for h in range(first, hour_now + 1)]
    out.sort(key=lambda r: (not r.storm, -r.hits, r.rule))
    totals = db.execute(
        "SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(scan_seconds), 0), COALESCE(SUM(errors), 0) "
        "FROM scanner_hourly WHERE hour >= ?", (first,)).fetchone()
    return FleetRules(generated_at=now, window_hours=window_hours, messages=int(totals[0]),
                      scan_seconds=round(float(totals[1]), 3), errors=int(totals[2]), rules=out,
                      history=history)


@dataclass(frozen=True)
class TelemetryTotals:
    """All-time sums for Prometheus counters: (rule, tower) -> hits, tower -> scanner sums."""

    rule_hits: dict[tuple[str, str], int]
    messages: dict[str, int]
    scan_seconds: dict[str, float]
    errors: dict[str, int]


def telemetry_totals(db: sqlite3.Connection) -> TelemetryTotals:
    hits = {(rule, tower): int(n) for rule, tower, n in db.execute(
        "SELECT rule, tower, SUM(hits) FROM rule_hourly GROUP BY rule, tower")}
    messages, seconds, errors = {}, {}, {}
    for tower, m, s, e in db.execute(
            "SELECT tower, SUM(messages), SUM(scan_seconds), SUM(errors) FROM scanner_hourly "
            "GROUP BY tower"):
        messages[tower], seconds[tower], errors[tower] = int(m), float(s), int(e)
    return TelemetryTotals(hits, messages, seconds, errors)
