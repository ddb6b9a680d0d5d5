"""The fleet: what every tower server reports, kept in ``state/fleet.sqlite``, and how it is judged.

``classify`` and ``summarize`` are pure: the server, the CLI and the TUI's fleet board
all draw the same ``FleetState`` from the same records.
"""

from __future__ import annotations

import datetime as dt
import enum
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.workspace import Workspace

STATES = ("ok", "updating", "failed")
MAX_ERROR = 2000
MAX_EVENTS = 200_000


class Health(enum.Enum):
    GREEN = "green"      # on the newest serial, reporting
    YELLOW = "yellow"    # behind, updating, or its report is getting old
    RED = "red"          # failed, or silent past the threshold

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Health.GREEN: 0, Health.YELLOW: 1, Health.RED: 2}


@dataclass(frozen=True)
class FleetThresholds:
    """Seconds since the last report before a server turns yellow (stale) and red (silent).

    Agents report after every poll (60 s by default), so five missed polls is stale and
    half an hour is silent.
    """

    stale_after: float = 300.0
    silent_after: float = 1800.0


DEFAULT_THRESHOLDS = FleetThresholds()


@dataclass(frozen=True)
class FleetReport:
    """What a tower server sends to ``POST /v1/fleet/report`` (the tower comes from its token)."""

    server: str
    state: str
    serial: int | None = None             # the serial in use (``install_dir/current``)
    error: str = ""                       # why the last attempt failed
    target_serial: int | None = None      # the serial being installed, or the one refused
    agent_version: str = ""
    libyara_version: str = ""
    rule_count: int | None = None
    at: str = ""                          # the agent's clock, for the history


@dataclass(frozen=True)
class ServerRecord:
    """The newest report of one server, as stored."""

    tower: str
    server: str
    state: str
    serial: int | None
    error: str
    target_serial: int | None
    agent_version: str
    libyara_version: str
    rule_count: int | None
    reported_at: float                    # server clock, seconds since the epoch
    agent_at: str = ""


@dataclass(frozen=True)
class ServerStatus:
    tower: str
    server: str
    health: Health
    reason: str
    state: str
    serial: int | None
    target_serial: int | None
    error: str
    reported_at: dt.datetime
    age_seconds: float
    agent_version: str = ""
    libyara_version: str = ""
    rule_count: int | None = None


@dataclass(frozen=True)
class TowerSummary:
    tower: str
    health: Health                        # the worst of its servers
    servers: int
    green: int
    yellow: int
    red: int
    serials: dict[str, int]               # serial (or "none") -> servers on it


@dataclass(frozen=True)
class FleetState:
    """``GET /v1/fleet`` and ``workbench fleet --json``."""

    generated_at: dt.datetime
    newest_serial: int | None
    thresholds: FleetThresholds
    counts: dict[str, int]                # health -> servers
    serials: dict[str, int]               # serial (or "none") -> servers
    towers: list[TowerSummary]
    servers: list[ServerStatus] = field(default_factory=list)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FleetState:
        """Rebuild from the JSON document (the client side of ``GET /v1/fleet``)."""
        return cls(
            generated_at=parse_time(data["generated_at"]),
            newest_serial=data.get("newest_serial"),
            thresholds=FleetThresholds(**data.get("thresholds", {})),
            counts=dict(data.get("counts", {})),
            serials=dict(data.get("serials", {})),
            towers=[TowerSummary(**{**t, "health": Health(t["health"])}) for t in data.get("towers", [])],
            servers=[ServerStatus(**{**s, "health": Health(s["health"]),
                                     "reported_at": parse_time(s["reported_at"])})
                     for s in data.get("servers", [])])


@dataclass(frozen=True)
class FleetEvent:
    """A change of state, serial or error of one server (``workbench fleet history``)."""

    tower: str
    server: str
    at: dt.datetime
    state: str
    serial: int | None
    target_serial: int | None
    error: str


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def classify(record: ServerRecord, newest_serial: int | None, now: float,
             thresholds: FleetThresholds = DEFAULT_THRESHOLDS) -> tuple[Health, str]:
    """Judge one server: (health, the reason a person reads)."""
    age = now - record.reported_at
    if age > thresholds.silent_after:
        return Health.RED, f"silent for {_ago(age)}"
    if record.state == "failed":
        what = f" serial {record.target_serial}" if record.target_serial is not None else ""
        return Health.RED, f"failed{what}: {record.error or 'no reason given'}"
    if age > thresholds.stale_after:
        return Health.YELLOW, f"last report {_ago(age)} ago"
    if record.state == "updating":
        return Health.YELLOW, f"updating to {record.target_serial}"
    if newest_serial is not None:
        if record.serial is None:
            return Health.YELLOW, f"no rules installed yet (newest {newest_serial})"
        if record.serial < newest_serial:
            return Health.YELLOW, f"behind: serial {record.serial}, newest {newest_serial}"
        if record.serial > newest_serial:
            return Health.YELLOW, (f"serial {record.serial} is not in this repository "
                                   f"(newest {newest_serial})")
    if record.serial is None:
        return Health.YELLOW, "no rules installed yet"
    return Health.GREEN, f"on serial {record.serial}"


def summarize(records: Iterable[ServerRecord], newest_serial: int | None, *,
              now: float | None = None,
              thresholds: FleetThresholds = DEFAULT_THRESHOLDS) -> FleetState:
    """The fleet document: every server judged, rolled up per tower (thousands of servers in ms)."""
    now = time.time() if now is None else now
    servers: list[ServerStatus] = []
    per_tower: dict[str, list[ServerStatus]] = {}
    for r in sorted(records, key=lambda r: (r.tower, r.server)):
        health, reason = classify(r, newest_serial, now, thresholds)
        status = ServerStatus(
            tower=r.tower, server=r.server, health=health, reason=reason, state=r.state,
            serial=r.serial, target_serial=r.target_serial, error=r.error,
            reported_at=dt.datetime.fromtimestamp(int(r.reported_at), dt.UTC),
            age_seconds=round(max(now - r.reported_at, 0.0), 1), agent_version=r.agent_version,
            libyara_version=r.libyara_version, rule_count=r.rule_count)
        servers.append(status)
        per_tower.setdefault(r.tower, []).append(status)
    towers = []
    for tower, members in per_tower.items():
        counts = Counter(s.health for s in members)
        towers.append(TowerSummary(
            tower=tower, health=max((s.health for s in members), key=lambda h: h.rank),
            servers=len(members), green=counts[Health.GREEN], yellow=counts[Health.YELLOW],
            red=counts[Health.RED], serials=_serial_counts(members)))
    counts = Counter(s.health for s in servers)
    return FleetState(
        generated_at=dt.datetime.fromtimestamp(int(now), dt.UTC), newest_serial=newest_serial,
        thresholds=thresholds, counts={h.value: counts[h] for h in Health},
        serials=_serial_counts(servers), towers=towers, servers=servers)


def _serial_counts(servers: list[ServerStatus]) -> dict[str, int]:
    counts = Counter("none" if s.serial is None else str(s.serial) for s in servers)
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == "none", -int(kv[0]) if kv[0] != "none" else 0)))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    tower TEXT NOT NULL, server TEXT NOT NULL, state TEXT NOT NULL, serial INTEGER,
    error TEXT NOT NULL DEFAULT '', target_serial INTEGER, agent_version TEXT NOT NULL DEFAULT '',
    libyara_version TEXT NOT NULL DEFAULT '', rule_count INTEGER, reported_at REAL NOT NULL,
    agent_at TEXT NOT NULL DEFAULT '', PRIMARY KEY (tower, server));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, tower TEXT NOT NULL, server TEXT NOT NULL, at REAL NOT NULL,
    state TEXT NOT NULL, serial INTEGER, target_serial INTEGER, error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS events_server ON events (tower, server, id);
"""

_COLUMNS = ("tower", "server", "state", "serial", "error", "target_serial", "agent_version",
            "libyara_version", "rule_count", "reported_at", "agent_at")


class FleetStore:
    """``state/fleet.sqlite``: the newest report per server and the history of changes.

    Writes are short (one upsert, sometimes one event) and serialized by a lock, so the
    server can call it straight from its event loop.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._events_written = 0

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> FleetStore:
        return cls(workspace.state / "fleet.sqlite")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, tower: str, report: FleetReport, *, received_at: float | None = None) -> None:
        received_at = time.time() if received_at is None else received_at
        error = report.error[:MAX_ERROR]
        row = (tower, report.server, report.state, report.serial, error, report.target_serial,
               report.agent_version[:100], report.libyara_version[:100], report.rule_count,
               received_at, report.at[:40])
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                previous = self.db.execute(
                    "SELECT state, serial, target_serial, error FROM servers WHERE tower=? AND server=?",
                    (tower, report.server)).fetchone()
                self.db.execute(
                    f"INSERT OR REPLACE INTO servers ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
                if previous != (report.state, report.serial, report.target_serial, error):
                    self.db.execute(
                        "INSERT INTO events (tower, server, at, state, serial, target_serial, error) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (tower, report.server, received_at, report.state, report.serial,
                         report.target_serial, error))
                    self._events_written += 1
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            if self._events_written >= 10_000:
                self._events_written = 0
                self.db.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                                (MAX_EVENTS,))

    def records(self) -> list[ServerRecord]:
        with self._lock:
            rows = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM servers").fetchall()
        return [ServerRecord(*row) for row in rows]

    def events(self, *, tower: str | None = None, server: str | None = None,
               limit: int = 100) -> list[FleetEvent]:
        where, params = [], []
        if tower:
            where.append("tower = ?")
            params.append(tower)
        if server:
            where.append("server = ?")
            params.append(server)
        sql = ("SELECT tower, server, at, state, serial, target_serial, error FROM events"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?")
        with self._lock:
            rows = self.db.execute(sql, (*params, limit)).fetchall()
        return [FleetEvent(tower=t, server=s, at=dt.datetime.fromtimestamp(at, dt.UTC).replace(microsecond=0),
                           state=st, serial=se, target_serial=ts, error=e)
                for t, s, at, st, se, ts, e in rows]

    def forget(self, tower: str, server: str | None = None) -> int:
        """Drop decommissioned servers (their history stays)."""
        with self._lock:
            if server is None:
                cur = self.db.execute("DELETE FROM servers WHERE tower = ?", (tower,))
            else:
                cur = self.db.execute("DELETE FROM servers WHERE tower = ? AND server = ?",
                                      (tower, server))
            return cur.rowcount

    def state(self, newest_serial: int | None, *, now: float | None = None,
              thresholds: FleetThresholds = DEFAULT_THRESHOLDS) -> FleetState:
        return summarize(self.records(), newest_serial, now=now, thresholds=thresholds)
