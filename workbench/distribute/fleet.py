"""The fleet: what every tower server reports, kept in ``state/fleet.sqlite``, and how it is judged.

``classify`` and ``summarize`` are pure: the server, the CLI and the TUI's fleet board
all draw the same ``FleetState`` from the same records. The operators' inventory (the
servers each tower should have, table ``expected``) adds the servers that never reported.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import operator
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench import humanize
from workbench.distribute import telemetry
from workbench.document import to_data
from workbench.workspace import Workspace

STATES = ("ok", "updating", "failed")
NEVER_REPORTED = "never_reported"      # the state of an expected server nothing was heard from
NOT_IN_INVENTORY = "not in the inventory"
MAX_ERROR = 2000
MAX_EVENTS = 200_000


class Health(enum.Enum):
    GREEN = "green"      # on the newest serial, reporting
    YELLOW = "yellow"    # behind, updating, or its report is getting old
    RED = "red"          # failed, silent past the threshold, or expected and never reported

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
class Canary:
    """The newest release's canary rollout (from the signed targets): on its canaries,
    halted there, or promoted to everyone (then it judges no server, it only says why)."""

    serial: int
    stage: str                            # "canary", "halted" or "all" (promoted)
    towers: tuple[str, ...]
    since: str = ""
    reason: str = ""

    def describe(self) -> str:
        """One line for ``workbench fleet`` and the fleet board."""
        towers = ", ".join(self.towers) or "no towers"
        since = f" since {humanize.shown(self.since)}" if self.since else ""
        head = {"canary": f"serial {self.serial} on its canaries ({towers}){since}",
                "halted": f"serial {self.serial} HALTED on its canaries ({towers}){since}",
                "all": f"serial {self.serial} PROMOTED from its canaries ({towers}) to every "
                       f"tower{since}"}.get(self.stage, f"serial {self.serial} {self.stage}{since}")
        return head + (f": {self.reason}" if self.reason else "")


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
    scanner: dict[str, Any] | None = None  # the tower scanner's counters (telemetry.py)


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
    state: str                            # a report's state, or "never_reported"
    serial: int | None
    target_serial: int | None
    error: str
    reported_at: dt.datetime | None       # None: never reported
    age_seconds: float | None
    agent_version: str = ""
    libyara_version: str = ""
    rule_count: int | None = None
    expected: bool | None = None          # in its tower's inventory; None: the tower has none

    @property
    def never_reported(self) -> bool:
        return self.state == NEVER_REPORTED


@dataclass(frozen=True)
class TowerSummary:
    tower: str
    health: Health                        # the worst of its servers
    servers: int                          # reporting, and expected but never reported
    green: int
    yellow: int
    red: int
    serials: dict[str, int]               # serial (or "none") -> reporting servers on it
    expected: int = 0                     # servers in its inventory (0: no inventory)
    never_reported: int = 0               # expected, nothing heard (counted in red)
    not_in_inventory: int = 0             # reporting, missing from a non-empty inventory


@dataclass(frozen=True)
class FleetState:
    """``GET /v1/fleet`` and ``workbench fleet --json``."""

    generated_at: dt.datetime
    newest_serial: int | None
    thresholds: FleetThresholds
    counts: dict[str, int]                # health -> servers
    serials: dict[str, int]               # serial (or "none") -> reporting servers
    towers: list[TowerSummary]
    expected: int = 0                     # servers in the inventory
    never_reported: int = 0               # of those, nothing heard yet (counted in red)
    not_in_inventory: int = 0             # reporting, but their tower's inventory lacks them
    servers: list[ServerStatus] = field(default_factory=list)
    rollout: Canary | None = None         # the newest release's canary rollout, if it had one

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FleetState:
        """Rebuild from the JSON document (the client side of ``GET /v1/fleet``).

        Fields this version does not know are left out, so a newer server's document
        still reads.
        """
        return cls(
            generated_at=parse_time(data["generated_at"]),
            newest_serial=data.get("newest_serial"),
            thresholds=FleetThresholds(**_known(FleetThresholds, data.get("thresholds", {}))),
            counts=dict(data.get("counts", {})),
            serials=dict(data.get("serials", {})),
            towers=[TowerSummary(**{**_known(TowerSummary, t), "health": Health(t["health"])})
                    for t in data.get("towers", [])],
            expected=data.get("expected", 0),
            never_reported=data.get("never_reported", 0),
            not_in_inventory=data.get("not_in_inventory", 0),
            rollout=(Canary(**{**_known(Canary, data["rollout"]),
                               "towers": tuple(data["rollout"].get("towers", ()))})
                     if data.get("rollout") else None),
            servers=[ServerStatus(**{**_known(ServerStatus, s), "health": Health(s["health"]),
                                     "reported_at": (parse_time(s["reported_at"])
                                                     if s.get("reported_at") else None)})
                     for s in data.get("servers", [])])


_INVENTORY_FIELDS = ("expected", "never_reported", "not_in_inventory")


def fleet_json_data(state: FleetState) -> dict[str, Any]:
    """The JSON data of ``GET /v1/fleet`` and ``fleet --json``.

    The inventory's fields are left out where they are 0 or null, so a fleet without an
    inventory is the document it was before inventories existed, and boards and scripts
    of that time keep reading it.
    """
    data: dict[str, Any] = to_data(state)
    for item in (data, *data["towers"]):
        for key in _INVENTORY_FIELDS:
            if not item.get(key, 1):
                del item[key]
    for server in data["servers"]:
        if server["expected"] is None:
            del server["expected"]
    if data.get("rollout") is None:
        data.pop("rollout", None)
    return data


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return {k: v for k, v in data.items() if k in names}


_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass(frozen=True)
class ExpectedServer:
    tower: str
    server: str


@dataclass(frozen=True)
class InventoryChange:
    """What ``FleetStore.expect`` did (or, with ``dry_run``, would do) to the inventory."""

    added: list[ExpectedServer]
    removed: list[ExpectedServer]
    expected: int                         # servers in the inventory afterwards
    dry_run: bool = False


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


def classify(record: ServerRecord, newest_serial: int | None, now: float,
             thresholds: FleetThresholds = DEFAULT_THRESHOLDS,
             canary: Canary | None = None) -> tuple[Health, str]:
    """Judge one server: (health, the reason a person reads). ``newest_serial`` is the
    newest release for everyone; a canary tower's server on the canary serial is judged
    against that instead."""
    age = now - record.reported_at
    if age > thresholds.silent_after:
        return Health.RED, f"silent for {humanize.age(age)}"
    if record.state == "failed":
        what = f" serial {record.target_serial}" if record.target_serial is not None else ""
        return Health.RED, f"failed{what}: {record.error or 'no reason given'}"
    if age > thresholds.stale_after:
        return Health.YELLOW, f"last report {humanize.age(age)} ago"
    if record.state == "updating":
        return Health.YELLOW, f"updating to {record.target_serial}"
    if (canary is not None and canary.stage != "all" and record.tower in canary.towers
            and record.serial == canary.serial):
        if canary.stage == "halted":
            return Health.YELLOW, f"on halted canary serial {canary.serial}: {canary.reason}"
        return Health.GREEN, f"on canary serial {canary.serial}"
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


def never_reported_status(tower: str, server: str) -> ServerStatus:
    """An expected server that nothing was heard from: red, whatever else is going on.

    Its agent was never installed, never started, or has no token; until it reports, the
    board cannot tell which, and a server that scans with no rules is what this is for.
    """
    return ServerStatus(tower=tower, server=server, health=Health.RED, reason="never reported",
                        state=NEVER_REPORTED, serial=None, target_serial=None, error="",
                        reported_at=None, age_seconds=None, expected=True)


def summarize(records: Iterable[ServerRecord], newest_serial: int | None, *,
              now: float | None = None, thresholds: FleetThresholds = DEFAULT_THRESHOLDS,
              expected: Mapping[str, Iterable[str]] | None = None,
              canary: Canary | None = None) -> FleetState:
    """The fleet document: every server judged, rolled up per tower (thousands of servers in ms).

    ``expected`` is the inventory, tower -> servers. A tower with an inventory gets a red
    "never reported" entry for each listed server without a report, and its reporting
    servers that are not listed keep their colour with "(not in the inventory)" added to
    the reason: a typo in the inventory shows up once as red, not twice. A tower without
    one is judged by its reports alone.
    """
    now = time.time() if now is None else now
    inventory = {tower: set(names) for tower, names in (expected or {}).items() if names}
    unheard = {tower: set(names) for tower, names in inventory.items()}      # emptied by reports
    unlisted: Counter[str] = Counter()
    servers: list[ServerStatus] = []
    for r in records:
        health, reason = classify(r, newest_serial, now, thresholds, canary)
        in_inventory = None
        listed = inventory.get(r.tower)
        if listed is not None:
            in_inventory = r.server in listed
            if in_inventory:
                unheard[r.tower].discard(r.server)
            else:
                reason = f"{reason} ({NOT_IN_INVENTORY})"
                unlisted[r.tower] += 1
        servers.append(ServerStatus(
            tower=r.tower, server=r.server, health=health, reason=reason, state=r.state,
            serial=r.serial, target_serial=r.target_serial, error=r.error,
            reported_at=dt.datetime.fromtimestamp(int(r.reported_at), dt.UTC),
            age_seconds=round(max(now - r.reported_at, 0.0), 1), agent_version=r.agent_version,
            libyara_version=r.libyara_version, rule_count=r.rule_count, expected=in_inventory))
    servers.extend(never_reported_status(tower, server)
                   for tower, names in unheard.items() for server in names)
    servers.sort(key=_BOARD_ORDER)
    per_tower: dict[str, list[ServerStatus]] = {}
    for s in servers:
        per_tower.setdefault(s.tower, []).append(s)
    towers = []
    for tower, members in per_tower.items():
        counts = Counter(s.health for s in members)
        never = len(unheard.get(tower, ()))
        towers.append(TowerSummary(
            tower=tower, health=_worst(counts), servers=len(members), green=counts[Health.GREEN],
            yellow=counts[Health.YELLOW], red=counts[Health.RED],
            serials=_serial_counts(members, never), expected=len(inventory.get(tower, ())),
            never_reported=never, not_in_inventory=unlisted[tower]))
    counts = Counter(s.health for s in servers)
    never_total = sum(len(names) for names in unheard.values())
    return FleetState(
        generated_at=dt.datetime.fromtimestamp(int(now), dt.UTC), newest_serial=newest_serial,
        thresholds=thresholds, counts={h.value: counts[h] for h in Health},
        serials=_serial_counts(servers, never_total), towers=towers,
        expected=sum(len(names) for names in inventory.values()), never_reported=never_total,
        not_in_inventory=sum(unlisted.values()), servers=servers, rollout=canary)


_BOARD_ORDER = operator.attrgetter("tower", "server")


def _worst(counts: Counter[Health]) -> Health:
    return Health.RED if counts[Health.RED] else Health.YELLOW if counts[Health.YELLOW] else Health.GREEN


def _serial_counts(servers: list[ServerStatus], never_reported: int = 0) -> dict[str, int]:
    """Serials in use: what reporting servers run. The ``never_reported`` servers among them
    (serial None) run nothing known, so they come off "none"."""
    counts = Counter("none" if s.serial is None else str(s.serial) for s in servers)
    counts["none"] -= never_reported
    return dict(sorted(((k, v) for k, v in counts.items() if v > 0),
                       key=lambda kv: (kv[0] == "none", -int(kv[0]) if kv[0] != "none" else 0)))


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
CREATE TABLE IF NOT EXISTS expected (
    tower TEXT NOT NULL, server TEXT NOT NULL, PRIMARY KEY (tower, server)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
"""

_COLUMNS = ("tower", "server", "state", "serial", "error", "target_serial", "agent_version",
            "libyara_version", "rule_count", "reported_at", "agent_at")


class FleetStore:
    """``state/fleet.sqlite``: the newest report per server, the history of changes, and the
    inventory of the servers each tower should have.

    Writes are short (one upsert, sometimes one event) and serialized by a lock, but may
    wait ``busy_timeout`` for another process's write lock: the server calls them from a
    thread, never from its event loop. Reads use a connection of their own. Every write is one SQLite
    transaction, so the CLI can change the inventory while ``workbench serve`` reads it:
    the server's next fleet document has the change, never half of it.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.db.executescript(telemetry.SCHEMA)
        self._lock = threading.Lock()
        # Reads have their own connection: in WAL mode they never wait for a writer, so a
        # report stuck behind another process's write lock does not hold up the board.
        self._reader = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
        self._read_lock = threading.Lock()
        self._events_written = 0

    @classmethod
    def for_workspace(cls, workspace: Workspace, *, busy_timeout: float = 30.0) -> FleetStore:
        return cls(workspace.state / "fleet.sqlite", busy_timeout=busy_timeout)

    def close(self) -> None:
        """Close once no other thread is using the connection: a board's worker may still be
        reading when its screen goes (closing under a running statement crashes SQLite)."""
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self.db.close()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, tower: str, report: FleetReport, *, received_at: float | None = None) -> None:
        self.record_many([(tower, report)], received_at=received_at)

    def record_many(self, reports: Sequence[tuple[str, FleetReport]], *,
                    received_at: float | None = None) -> None:
        """Store reports (tower, report) in one transaction: the server batches what arrived
        while the previous batch was written."""
        received_at = time.time() if received_at is None else received_at
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for tower, report in reports:
                    self._record(tower, report, received_at)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            if self._events_written >= 10_000:
                self._events_written = 0
                with contextlib.suppress(sqlite3.OperationalError):      # next time, then
                    self.db.execute(
                        "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                        (MAX_EVENTS,))

    def _record(self, tower: str, report: FleetReport, received_at: float) -> None:
        error = report.error[:MAX_ERROR]
        row = (tower, report.server, report.state, report.serial, error, report.target_serial,
               report.agent_version[:100], report.libyara_version[:100], report.rule_count,
               received_at, report.at[:40])
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
        if report.scanner:
            telemetry.record_scanner(self.db, tower, report.server, report.scanner, received_at)

    def telemetry_totals(self) -> telemetry.TelemetryTotals:
        with self._read_lock:
            return telemetry.telemetry_totals(self._reader)

    def rules(self, *, window_hours: int = 24, now: float | None = None,
              storm: telemetry.StormThresholds | None = None,
              rule: str | None = None) -> telemetry.FleetRules:
        """Per-rule hits over time from the scanners' reports (``GET /v1/fleet/rules``)."""
        with self._read_lock:
            return telemetry.rule_telemetry(self._reader, window_hours=window_hours, now=now,
                                            storm=storm, rule=rule)

    def records(self) -> list[ServerRecord]:
        with self._read_lock:
            rows = self._reader.execute(f"SELECT {', '.join(_COLUMNS)} FROM servers").fetchall()
        return [ServerRecord(*row) for row in rows]

    def inventory(self) -> dict[str, list[str]]:
        """The expected servers, tower -> servers, both sorted."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT tower, server FROM expected ORDER BY tower, server").fetchall()
        return _by_tower(rows)

    def expect(self, inventory: Mapping[str, Iterable[str]], *, replace: bool = False,
               dry_run: bool = False) -> InventoryChange:
        """Add servers to the towers' inventories; ``replace``: each tower named has exactly
        the servers given (an empty list empties it). Towers not named are left alone.

        Names are not checked here: ``workbench.distribute.inventory`` does that.
        """
        wanted = {tower: set(names) for tower, names in inventory.items()}
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                have = _by_tower(self.db.execute(
                    "SELECT tower, server FROM expected ORDER BY tower, server").fetchall())
                added = [ExpectedServer(t, s) for t in sorted(wanted)
                         for s in sorted(wanted[t] - set(have.get(t, ())))]
                removed = ([ExpectedServer(t, s) for t in sorted(wanted) for s in have.get(t, ())
                            if s not in wanted[t]] if replace else [])
                if not dry_run:
                    self.db.executemany("INSERT INTO expected (tower, server) VALUES (?, ?)",
                                        [(e.tower, e.server) for e in added])
                    self.db.executemany("DELETE FROM expected WHERE tower = ? AND server = ?",
                                        [(e.tower, e.server) for e in removed])
                self.db.execute("ROLLBACK" if dry_run else "COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        total = sum(len(v) for v in have.values()) + len(added) - len(removed)
        return InventoryChange(added=added, removed=removed, expected=total, dry_run=dry_run)

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
        with self._read_lock:
            rows = self._reader.execute(sql, (*params, limit)).fetchall()
        return [FleetEvent(tower=t, server=s, at=dt.datetime.fromtimestamp(at, dt.UTC).replace(microsecond=0),
                           state=st, serial=se, target_serial=ts, error=e)
                for t, s, at, st, se, ts, e in rows]

    def forget(self, tower: str, *servers: str) -> list[str]:
        """Drop decommissioned servers, or a whole tower: their last reports and their
        inventory entries, in one transaction (their history stays). Returns the servers
        that went."""
        where = "tower = ?" + (f" AND server IN ({', '.join('?' * len(servers))})" if servers else "")
        params = (tower, *servers)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                gone = {server for table in ("servers", "expected") for (server,) in self.db.execute(
                    f"SELECT server FROM {table} WHERE {where}", params)}
                for table in ("servers", "expected"):
                    self.db.execute(f"DELETE FROM {table} WHERE {where}", params)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return sorted(gone)

    def save_thresholds(self, thresholds: FleetThresholds) -> None:
        """What ``workbench serve`` judges by, so readers of this store (``workbench fleet``,
        the TUI board) judge the same servers the same way."""
        with self._lock:
            self.db.executemany(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [("stale_after", thresholds.stale_after), ("silent_after", thresholds.silent_after)])

    def saved_thresholds(self) -> FleetThresholds:
        """The thresholds the server last saved; the defaults before any server ran."""
        with self._read_lock:
            return self._saved_thresholds()

    def _saved_thresholds(self) -> FleetThresholds:
        values = dict(self._reader.execute(
            "SELECT key, value FROM settings WHERE key IN ('stale_after', 'silent_after')"))
        if len(values) != 2:
            return DEFAULT_THRESHOLDS
        return FleetThresholds(stale_after=values["stale_after"], silent_after=values["silent_after"])

    def state(self, newest_serial: int | None, *, now: float | None = None,
              thresholds: FleetThresholds | None = None, canary: Canary | None = None) -> FleetState:
        """The fleet as of now; ``thresholds`` default to the ones the server saved."""
        with self._read_lock:
            # one read transaction: the reports, the inventory and the thresholds as of the
            # same moment
            self._reader.execute("BEGIN")
            try:
                rows = self._reader.execute(f"SELECT {', '.join(_COLUMNS)} FROM servers").fetchall()
                expected = self._reader.execute("SELECT tower, server FROM expected").fetchall()
                if thresholds is None:
                    thresholds = self._saved_thresholds()
            finally:
                self._reader.execute("COMMIT")
        return summarize([ServerRecord(*row) for row in rows], newest_serial, now=now,
                         thresholds=thresholds, expected=_by_tower(expected), canary=canary)


def _by_tower(rows: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tower, server in rows:
        out.setdefault(tower, []).append(server)
    return out
