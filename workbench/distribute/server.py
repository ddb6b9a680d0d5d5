"""The update server (``workbench serve``): repository files, quarantine upload, fleet reports, metrics.

One FastAPI app built by ``make_app(workspace)``; uvicorn runs it. Reads need no token;
writes need a tower's bearer token (``workbench tokens add TOWER``), and every request
body is size-limited before it is read into memory.
"""

import asyncio
import concurrent.futures
import contextlib
import gzip
import json
import logging
import queue
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

import workbench
from workbench.distribute.files import SERVED_FOLDERS, RepositoryFiles, etag_matches
from workbench.distribute.fleet import (
    DEFAULT_THRESHOLDS,
    MAX_ERROR,
    Canary,
    FleetEvent,
    FleetReport,
    FleetState,
    FleetStore,
    FleetThresholds,
    fleet_json_data,
)
from workbench.distribute.guard import InFlight, RequestGuard, guarded_protocol
from workbench.distribute.metrics import CONTENT_TYPE, ServerMetrics
from workbench.distribute.rollout import RolloutDecision, decide_rollout, fleet_view
from workbench.distribute.settings import DEFAULT_HOST, DEFAULT_PORT
from workbench.distribute.telemetry import FleetRules
from workbench.distribute.tokens import NAME, TokenStore
from workbench.distribute.update_repository import UpdateRepository, UpdateRepositoryError
from workbench.document import to_data
from workbench.quarantine.ingest import IngestSummary, ingest_bytes
from workbench.quarantine.service import Quarantine, QuarantineUnavailable
from workbench.quarantine.watch import DrainResult, SpoolWatcher
from workbench.workspace import Workspace

log = logging.getLogger("workbench.serve")

NAME_PATTERN = NAME.pattern

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServerSettings:
    max_message_bytes: int = 50 * 1024 * 1024     # POST /v1/quarantine
    max_json_bytes: int = 64 * 1024               # every other request body
    thresholds: FleetThresholds = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    spool_interval: float = 0.0                   # drain quarantine/incoming this often; 0: off
    spool_settle: float = 2.0                     # leave spool files younger than this
    max_inflight_bytes: int = 256 * 1024 * 1024   # request bodies being received, all towers (503)
    max_inflight_bytes_per_tower: int = 64 * 1024 * 1024   # ... one tower's (429)
    header_timeout: float = 10.0                  # a request's headers must be in by then (408)
    body_timeout: float = 20.0                    # longest wait for the next part of a body (408)
    fleet_busy_timeout: float = 5.0               # wait for a locked fleet.sqlite, then 503
    max_fleet_queue: int = 10_000                 # reports waiting for the store; more get 503
    retry_after: int = 10                         # seconds, in 429/503 answers
    max_connections: int = 16384                  # uvicorn's limit_concurrency (503 beyond); long-polls
                                                  # hold one per tower server
    max_poll_wait: float = 120.0                  # longest Prefer: wait a long-poll is held
    canary_soak: float = 1800.0                   # canaries green this long: promote to all
    canary_check_interval: float = 10.0           # how often the rollout is judged; 0: never (manual)


@dataclass(frozen=True)
class QuarantineReceipt:
    """The answer to ``POST /v1/quarantine``."""

    tower: str
    server: str
    stored: bool               # kept as a message in the quarantine
    new: bool                  # first time this content was seen (else another sighting)
    sha256: str = ""
    failure: str = ""          # why it was not taken as mail (kept in quarantine/failed/)
    stored_as: str = ""


@dataclass(frozen=True)
class ServerInfo:
    status: str
    version: str
    newest_serial: int | None


MAX_INT64 = 2**63 - 1        # SQLite's INTEGER: a larger serial or count is refused (422), not a 500


Count = Annotated[int, Field(ge=0, le=MAX_INT64)]


class ScannerIn(BaseModel):
    """The tower scanner's cumulative counters since it started (``workbench tower scan``)."""

    model_config = ConfigDict(extra="ignore")

    started: str = Field(max_length=40, description="when the scanner started (tells a restart apart)")
    messages: Count = 0
    scan_seconds: float = Field(default=0.0, ge=0, le=1e15)
    errors: Count = 0
    quarantined: Count = 0
    held: Count = 0
    stuck: Count = 0
    serial: int | None = Field(default=None, ge=1, le=MAX_INT64)
    verdicts: dict[Annotated[str, Field(max_length=20)], Count] = Field(default_factory=dict,
                                                                       max_length=10)
    rule_hits: dict[Annotated[str, Field(min_length=1, max_length=200)], Count] = Field(
        default_factory=dict, max_length=1000, description="rule name -> hits since started")
    last_error: str = Field(default="", max_length=1000)


class ReportIn(BaseModel):
    """A tower server's state after an update attempt."""

    model_config = ConfigDict(extra="ignore")

    server: str = Field(pattern=f"^{NAME_PATTERN}$", description="the mail server's name")
    state: Literal["ok", "updating", "failed"]
    serial: int | None = Field(default=None, ge=1, le=MAX_INT64, description="serial in use")
    error: str = Field(default="", description=f"why the last attempt failed (cut to {MAX_ERROR})")
    target_serial: int | None = Field(default=None, ge=1, le=MAX_INT64,
                                      description="serial being installed, or the one refused")
    agent_version: str = ""
    libyara_version: str = ""
    rule_count: int | None = Field(default=None, ge=0, le=MAX_INT64)
    at: str = Field(default="", description="the agent's clock (ISO 8601)")
    scanner: ScannerIn | None = Field(default=None, description="the tower scanner's counters")


def validation_errors(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Where and why, never the input: an error page must not echo what a client sent."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()]


def parse_report(body: bytes) -> ReportIn:
    """A report body, validated with bounds; HTTPException 422 (no input echoed) if it is not one."""
    try:
        report = ReportIn.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, validation_errors(exc)) from None
    texts = (report.server, report.error, report.agent_version, report.libyara_version, report.at,
             *(report.scanner.rule_hits if report.scanner else ()),
             report.scanner.last_error if report.scanner else "")
    if any(_has_surrogate(t) for t in texts):
        raise HTTPException(422, [{"loc": ["body"], "msg": "strings must be valid Unicode "
                                   "(no unpaired surrogates)", "type": "unicode"}])
    return report


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


TIMESTAMP = "metadata/timestamp.json"
_ROOT_PROBE = re.compile(r"metadata/[0-9]{1,12}\.root\.json")
_NOT_FOUND = b'{"detail":"not found"}'
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})", re.I)


def requested_wait(prefer: str) -> int | None:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), or None."""
    m = _PREFER_WAIT.search(prefer)
    return int(m.group(1)) if m else None


class RepositoryChanges:
    """Wakes long-polls when ``timestamp.json`` changes (a new publish, a refresh).

    One ``stat`` per ``interval`` for all waiters together, and only while some wait:
    ``workbench publish`` runs in another process, so there is nothing to be told by.
    """

    def __init__(self, files: RepositoryFiles, *, interval: float = 0.2):
        self.files = files
        self.interval = interval
        self.waiters = 0
        self._event: asyncio.Event | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._etag = ""

    def current_etag(self) -> str:
        entry = self.files.lookup(TIMESTAMP)
        return entry.etag if entry else ""

    async def wait(self, if_none_match: str, timeout: float) -> None:
        """Return when the timestamp's ETag no longer matches ``if_none_match``, or at ``timeout``."""
        if self._event is None:
            self._event = asyncio.Event()
        self.waiters += 1
        try:
            if self._watcher is None or self._watcher.done():
                self._etag = self.current_etag()
                self._watcher = asyncio.get_running_loop().create_task(self._watch())
            deadline = time.monotonic() + timeout
            while etag_matches(if_none_match, self._etag):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                event = self._event
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            self.waiters -= 1

    async def _watch(self) -> None:
        while self.waiters > 0:
            await asyncio.sleep(self.interval)
            etag = self.current_etag()
            if etag and etag != self._etag:
                self._etag = etag
                assert self._event is not None
                self._event.set()                 # every waiter wakes; the next ones get a new event
                self._event = asyncio.Event()


class RepositoryFastPath:
    """ASGI: answer the no-change poll (304) and small whole files straight from memory.

    This is the request every tower makes every minute, and the framework would cost
    several times the work of the answer. Ranges, large files and 404s go on to the
    documented ``/repository/{path}`` route.

    A conditional GET of ``timestamp.json`` with ``Prefer: wait=N`` is a long-poll: held
    until the repository changes (then 200 with the new timestamp) or N seconds pass
    (then 304), at most ``max_poll_wait``; the answer says ``Preference-Applied: wait=N``.
    One request per poll interval still, and a publish reaches every waiting tower at once.
    """

    PREFIX = "/repository/"

    def __init__(self, app: ASGIApp, state: "ServerState"):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
                and scope["path"].startswith(self.PREFIX)):
            if_none_match = None
            ranged = False
            prefer = ""
            for name, value in scope["headers"]:
                if name == b"if-none-match":
                    if_none_match = value.decode("latin-1")
                elif name == b"range":
                    ranged = True
                elif name == b"prefer":
                    prefer = value.decode("latin-1")
            rel = scope["path"][len(self.PREFIX):]
            applied: list[tuple[bytes, bytes]] = []
            wait = requested_wait(prefer) if prefer and rel == TIMESTAMP else None
            if wait is not None and if_none_match is not None and not ranged:
                wait = min(wait, int(self.state.settings.max_poll_wait))
                applied = [(b"preference-applied", f"wait={wait}".encode())]
                if wait > 0:
                    self.state.metrics.long_polls.inc()
                    await self.state.changes.wait(if_none_match, wait)
            entry = None if ranged else self.state.files.lookup(rel)
            if entry is None and not ranged and _ROOT_PROBE.fullmatch(rel):
                # every refresh asks for the next root version, which is almost never there:
                # the same 404 as the route's, without the framework (a rollout's herd asks at once)
                self.state.metrics.repository_requests.labels("metadata", "404").inc()
                await send({"type": "http.response.start", "status": 404, "headers": [
                    (b"content-type", b"application/json"), (b"cache-control", b"no-cache"),
                    (b"content-length", str(len(_NOT_FOUND)).encode())]})
                await send({"type": "http.response.body", "body": _NOT_FOUND})
                return
            if entry is not None:
                metrics = self.state.metrics
                headers = [(b"etag", entry.etag.encode()),
                           (b"cache-control", entry.cache_control.encode()), *applied]
                if if_none_match is not None and etag_matches(if_none_match, entry.etag):
                    metrics.repository_requests.labels(entry.kind, "304").inc()
                    await send({"type": "http.response.start", "status": 304, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
                if entry.data is not None:
                    metrics.repository_requests.labels(entry.kind, "200").inc()
                    metrics.repository_bytes.labels(entry.kind).inc(entry.size)
                    headers += [(b"content-type", entry.content_type.encode()),
                                (b"content-length", str(entry.size).encode()),
                                (b"accept-ranges", b"bytes")]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body",
                                "body": b"" if scope["method"] == "HEAD" else entry.data})
                    return
        await self.app(scope, receive, send)


class ReportFastPath:
    """ASGI: store a well-formed fleet report from a known tower without the framework.

    Every tower server sends one per poll interval, and after a rollout's herd all of them
    within seconds; FastAPI's routing and dependency solving cost several times the work
    of storing one. Inside ``RequestGuard`` (the body is bounded and timed as for any
    request), this path handles only the success: a valid token, a body that parses, a
    store that takes it, then the route's own 204. Anything else (no or a wrong token, a
    body that does not parse, a busy store) goes to the documented ``POST /v1/fleet/report``
    route with the body replayed, which answers it as it always did.
    """

    PATH = "/v1/fleet/report"

    def __init__(self, app: ASGIApp, state: "ServerState", tower_for: Any):
        self.app = app
        self.state = state
        self.tower_for = tower_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.PATH:
            await self.app(scope, receive, send)
            return
        tower = self.tower_for(scope)
        if not tower:
            await self.app(scope, receive, send)        # the route's 401
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(chunks, message), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            stored = self.state.store_report(tower, parse_report(body))
        except (HTTPException, FleetBusy):
            await self.app(scope, _replay(chunks, None), send)    # the route words the refusal
            return
        try:
            await asyncio.wrap_future(stored)
        except FleetBusy:
            await self.app(scope, _replay(chunks, None), send)
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _replay(chunks: list[bytes], last: Message | None) -> Receive:
    """A ``receive`` that gives the body already read again (then ``last``, or waits)."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if last is not None:
            return last
        await asyncio.Event().wait()        # as a server does: nothing more until disconnect
        raise AssertionError("unreachable")

    return receive


def to_json_bytes(value: Any) -> bytes:
    return json.dumps(to_data(value), separators=(",", ":")).encode("utf-8")


GZIP_MIN_BYTES = 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """``Accept-Encoding`` names gzip (or ``*``) without ``q=0``."""
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip()
            try:
                return float(q[2:]) > 0 if q.startswith("q=") else True
            except ValueError:
                return False
    return False


def json_bytes_response(body: bytes, *, gzipped: bool) -> Response:
    """A JSON body, gzipped for a client that takes it: a 3,600-server fleet is ~900 KB of
    repetitive JSON that a board polling every 2 s would otherwise move in full."""
    headers = {"vary": "accept-encoding"}
    if gzipped and len(body) >= GZIP_MIN_BYTES:
        body = gzip.compress(body, compresslevel=6, mtime=0)
        headers["content-encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


class FleetBusy(Exception):
    """The fleet store could not take a report in time (locked by another process, or too
    many waiting): the answer is 503 with Retry-After, and the agent keeps the report."""


@dataclass(frozen=True)
class _QueuedReport:
    tower: str
    report: FleetReport
    queued: float
    future: concurrent.futures.Future[None]


class FleetWriter:
    """One thread writes the towers' reports to the fleet store, in batches.

    The event loop only queues a report and awaits its future, so SQLite (and another
    process's write lock) never blocks the loop that answers the polls, and a burst of
    reports costs one transaction per batch instead of one each. A report that has
    waited longer than ``max_wait`` (the store was locked) is refused without trying, so
    nothing waits much beyond twice the busy timeout.
    """

    BATCH = 500

    def __init__(self, store: FleetStore, *, max_wait: float, max_queue: int):
        self.store = store
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue[_QueuedReport | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fleet-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Reports queued or being written."""
        return self._pending

    def submit(self, tower: str, report: FleetReport) -> concurrent.futures.Future[None]:
        with self._pending_lock:
            if self._pending >= self.max_queue:
                raise FleetBusy(f"{self._pending} reports are waiting for the fleet store")
            self._pending += 1
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(_QueuedReport(tower, report, time.monotonic(), future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)           # stop after this batch
                    break
                batch.append(more)
            now = time.monotonic()
            fresh = [q for q in batch if now - q.queued <= self.max_wait]
            stale = [q for q in batch if now - q.queued > self.max_wait]
            error: BaseException | None = None
            if fresh:
                try:
                    self.store.record_many([(q.tower, q.report) for q in fresh])
                except sqlite3.Error as exc:
                    error = FleetBusy(str(exc))
                except BaseException as exc:        # never lose the thread: the caller hears it
                    error = exc
            for q in stale:
                self._finish(q, FleetBusy("the fleet store stayed locked"))
            for q in fresh:
                self._finish(q, error)

    def _finish(self, item: _QueuedReport, error: BaseException | None) -> None:
        with self._pending_lock:
            self._pending -= 1
        if error is None:
            item.future.set_result(None)
        else:
            item.future.set_exception(error)


class ServerState:
    """What the endpoints share: repository, tokens, fleet store, quarantine, metrics."""

    def __init__(self, workspace: Workspace, settings: ServerSettings):
        self.workspace = workspace.ensure()
        self.settings = settings
        self.repository = UpdateRepository.for_workspace(workspace)
        self.files = RepositoryFiles(self.repository.root)
        self.changes = RepositoryChanges(self.files)
        self.tokens = TokenStore.for_workspace(workspace)
        self.fleet = FleetStore.for_workspace(workspace, busy_timeout=settings.fleet_busy_timeout)
        try:
            self.fleet.save_thresholds(settings.thresholds)     # local readers judge as we do
        except sqlite3.OperationalError as exc:
            # another process holds the store's lock: serve anyway (this server judges by
            # its own settings); `workbench fleet` reads the defaults until the next start
            log.warning("fleet thresholds not saved: %s", exc)
        self.metrics = ServerMetrics(self.fleet_state, self.fleet.telemetry_totals,
                                     lambda: self.fleet.rules())
        self.inflight = InFlight(settings.max_inflight_bytes, settings.max_inflight_bytes_per_tower)
        self.metrics.inflight_bytes.set_function(lambda: self.inflight.total)
        self.fleet_writer = FleetWriter(self.fleet, max_wait=settings.fleet_busy_timeout,
                                        max_queue=settings.max_fleet_queue)
        self._quarantine: Quarantine | None = None
        self._ingest_lock = threading.Lock()
        self._newest: tuple[tuple[int, int, int] | None, int | None, Canary | None] = (None, None, None)

    def store_report(self, tower: str, report: ReportIn) -> concurrent.futures.Future[None]:
        """Queue a validated report for the fleet store (``FleetBusy`` when the queue is
        full); the future is done when it is stored. Counted by state once stored."""
        future = self.fleet_writer.submit(tower, FleetReport(**report.model_dump()))
        future.add_done_callback(
            lambda f: None if f.exception() else self.metrics.reports.labels(report.state).inc())
        return future

    def _read_newest(self) -> tuple[int | None, Canary | None]:
        """(the newest serial for everyone, the newest release's canary rollout if it has
        one), re-read only when timestamp.json changes."""
        try:
            st = (self.repository.metadata_dir / "timestamp.json").stat()
        except OSError:
            return None, None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._newest[0] != stamp:
            try:
                for_all, canary = fleet_view(self.repository)
            except UpdateRepositoryError:
                return None, None
            self._newest = (stamp, for_all, canary)
        return self._newest[1], self._newest[2]

    def newest_serial(self) -> int | None:
        """The newest serial every tower should run (a release still on its canaries is not)."""
        return self._read_newest()[0]

    def canary(self) -> Canary | None:
        return self._read_newest()[1]

    def fleet_state(self) -> FleetState:
        newest, canary = self._read_newest()
        return self.fleet.state(newest, thresholds=self.settings.thresholds, canary=canary)

    def judge_rollout(self, *, now: float | None = None) -> RolloutDecision | None:
        """Promote a canary release whose canaries stayed green for ``canary_soak`` with no
        rule storming, or halt it (with the reason) when a canary failed on it or a rule storms.
        Both are signed repository state (``UpdateRepository.set_rollout``)."""
        canary = self.canary()
        if canary is None or canary.stage != "canary":
            return None
        now = time.time() if now is None else now
        decision = decide_rollout(self.fleet_state(), canary, self.fleet.rules(window_hours=1, now=now),
                                  soak=self.settings.canary_soak, now=now)
        if decision is not None:
            self.repository.set_rollout(canary.serial, decision.stage, reason=decision.reason)
            log.warning("rollout of serial %s: %s (%s)", canary.serial, decision.stage, decision.reason)
        return decision

    def start_rollout_watch(self) -> tuple[threading.Thread, threading.Event] | None:
        if self.settings.canary_check_interval <= 0:
            return None
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(self.settings.canary_check_interval):
                try:
                    self.judge_rollout()
                except Exception as exc:           # keep watching; the log says why
                    log.warning("rollout check failed: %s", exc)

        thread = threading.Thread(target=watch, name="rollout-watch", daemon=True)
        thread.start()
        return thread, stop

    def ingest(self, data: bytes, *, tower: str, server: str, reason: str) -> IngestSummary:
        with self._ingest_lock:
            if self._quarantine is None:
                self._quarantine = Quarantine.open(self.workspace)
            return ingest_bytes(self._quarantine, data, tower=tower, server=server, reason=reason,
                                source=f"http:{tower}/{server}",
                                max_message=self.settings.max_message_bytes, actor=f"tower:{tower}")

    def start_spool_watcher(self) -> tuple[threading.Thread, threading.Event] | None:
        """Drain ``quarantine/incoming`` in a thread, so one process takes mail both ways."""
        if self.settings.spool_interval <= 0:
            return None
        watcher = SpoolWatcher(self.workspace, interval=self.settings.spool_interval,
                               settle=self.settings.spool_settle,
                               max_message=self.settings.max_message_bytes)

        def count(result: DrainResult) -> None:
            if result.error:
                self.metrics.spool_errors.inc()
                log.warning("spool drain failed, retrying: %s", result.error)
                return
            summary = result.summary
            assert summary is not None
            self.metrics.spool.labels("accepted").inc(summary.accepted)
            self.metrics.spool.labels("duplicate").inc(summary.duplicates)
            self.metrics.spool.labels("failed").inc(summary.failed)

        return watcher.start(count)

    def close(self) -> None:
        self.fleet_writer.stop()
        with self._ingest_lock:
            if self._quarantine is not None:
                self._quarantine.close()
                self._quarantine = None
        self.fleet.close()


_bearer = HTTPBearer(auto_error=False, description="a tower token from `workbench tokens add TOWER`")


def make_app(workspace: Workspace, settings: ServerSettings | None = None) -> FastAPI:
    """The ASGI app; the CLI and the tests build it the same way."""
    settings = settings or ServerSettings()
    state = ServerState(workspace, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        spool = state.start_spool_watcher()
        rollout = state.start_rollout_watch()
        try:
            yield
        finally:
            if rollout is not None:
                rollout[1].set()
                await run_in_threadpool(rollout[0].join, 30)
            if spool is not None:
                thread, stop = spool
                stop.set()
                await run_in_threadpool(thread.join, 30)
            state.close()

    app = FastAPI(
        title="workbench update server",
        version=workbench.__version__,
        summary="Signed signature bundles for the towers, their reports, and their stuck mail.",
        description=(
            "The TUF update repository under `/repository/` (static files, any web server can "
            "serve them), the fleet's reports, and the quarantine upload. Write endpoints take "
            "a per-tower bearer token. See docs/distribution.md."),
        lifespan=lifespan,
    )
    app.state.workbench = state

    def tower_from_token(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                Depends(_bearer)]) -> str:
        tower = state.tokens.verify(credentials.credentials) if credentials else None
        if tower is None:
            state.metrics.auth_failures.inc()
            raise HTTPException(401, "missing or wrong tower token",
                                headers={"WWW-Authenticate": "Bearer"})
        return tower

    Tower = Annotated[str, Depends(tower_from_token)]

    file_doc: dict[str, Any] = {
        "tags": ["repository"], "response_class": Response,
        "summary": "A file of the TUF repository (metadata/<name> or targets/<name>)",
        "description": "Strong ETag (the file's SHA-256), If-None-Match (304) and Range (206). "
                       "timestamp.json and root.json are `no-cache`; everything else is "
                       "immutable (consistent snapshots).",
        "responses": {200: {"description": "the file", "content": {
                          "application/json": {}, "application/gzip": {}}},
                      206: {"description": "the requested range"},
                      304: {"description": "unchanged (If-None-Match)"},
                      404: {"description": "no such file"}}}

    @app.get("/repository/{path:path}", operation_id="get_repository_file", **file_doc)
    @app.head("/repository/{path:path}", operation_id="head_repository_file", **file_doc)
    async def repository_file(path: str, request: Request) -> Response:
        entry = state.files.lookup(path)
        if entry is None:
            kind = path.split("/", 1)[0]
            state.metrics.repository_requests.labels(
                kind if kind in SERVED_FOLDERS else "other", "404").inc()
            # no-cache: towers probe for the next root version, which may appear any time
            return JSONResponse({"detail": "not found"}, status_code=404,
                                headers={"cache-control": "no-cache"})
        # Small whole files and 304s were answered by RepositoryFastPath already.
        headers = {"etag": entry.etag, "cache-control": entry.cache_control}
        inm = request.headers.get("if-none-match")
        if inm is not None and etag_matches(inm, entry.etag):
            state.metrics.repository_requests.labels(entry.kind, "304").inc()
            return Response(status_code=304, headers=headers)
        state.metrics.repository_requests.labels(
            entry.kind, "206" if "range" in request.headers else "200").inc()
        if "range" not in request.headers:
            state.metrics.repository_bytes.labels(entry.kind).inc(entry.size)
        return FileResponse(entry.path, media_type=entry.content_type, headers=headers,
                            stat_result=entry.stat_result)

    @app.post("/v1/quarantine", tags=["towers"], status_code=201,
              summary="Send one raw message (stuck or unknown-virus mail) into the quarantine",
              responses={200: {"description": "already in the quarantine: another sighting",
                               "model": QuarantineReceipt},
                         201: {"description": "stored for the first time", "model": QuarantineReceipt},
                         401: {"description": "missing or wrong token"},
                         403: {"description": "the token belongs to another tower"},
                         413: {"description": "body over the size limit"},
                         503: {"description": "the quarantine cannot store mail now: send again"},
                         507: {"description": "the quarantine's disk is full: send again later"},
                         422: {"description": "not mail; kept in quarantine/failed/",
                               "model": QuarantineReceipt}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def post_quarantine(
        request: Request, tower: Tower,
        x_workbench_server: Annotated[str, Header(pattern=f"^{NAME_PATTERN}$",
                                                  description="the mail server that held it")],
        x_workbench_tower: Annotated[str | None, Header(description="must match the token's tower")] = None,
        x_workbench_reason: Annotated[str, Header(max_length=200,
                                                  description="why it was quarantined")] = "",
    ) -> JSONResponse:
        if x_workbench_tower is not None and x_workbench_tower != tower:
            state.metrics.auth_failures.inc()
            raise HTTPException(403, f"this token belongs to tower {tower!r}")
        data = await request.body()
        if not data:
            raise HTTPException(400, "empty body: send the raw message")
        try:
            summary = await run_in_threadpool(state.ingest, data, tower=tower,
                                              server=x_workbench_server, reason=x_workbench_reason)
        except QuarantineUnavailable as exc:     # nothing acknowledged: the tower sends it again
            state.metrics.ingest.labels("unavailable").inc()
            raise HTTPException(507 if exc.full else 503, exc.reason) from None
        if summary.messages:
            m = summary.messages[0]
            state.metrics.ingest.labels("accepted" if m.new else "duplicate").inc()
            receipt = QuarantineReceipt(tower=tower, server=x_workbench_server, stored=True,
                                        new=m.new, sha256=m.sha256)
            return JSONResponse(to_data(receipt), status_code=201 if m.new else 200)
        state.metrics.ingest.labels("failed").inc()
        failure = summary.failures[0] if summary.failures else None
        receipt = QuarantineReceipt(tower=tower, server=x_workbench_server, stored=False, new=False,
                                    failure=failure.reason if failure else "not accepted",
                                    stored_as=failure.stored_as if failure else "")
        return JSONResponse(to_data(receipt), status_code=422)

    @app.post("/v1/fleet/report", tags=["towers"], status_code=204,
              summary="Report a tower server's state after an update attempt",
              responses={401: {"description": "missing or wrong token"},
                         413: {"description": "body over the size limit (chunked too)"},
                         422: {"description": "not a report: where and why, never the input"},
                         503: {"description": "the fleet store is busy: retry after Retry-After"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": ReportIn.model_json_schema()}}}})
    async def post_report(request: Request, tower: Tower) -> Response:
        # The token is checked (dependency) before a byte of the body is read; the guard
        # bounds the body (413); then typed validation with bounds (422), never a 500.
        # (ReportFastPath takes the well-formed ones first; this words every refusal)
        report = parse_report(await request.body())
        try:
            # SQLite may wait for another process's lock: in the writer thread, never on
            # the loop that answers the polls
            await asyncio.wrap_future(state.store_report(tower, report))
        except FleetBusy as exc:
            state.metrics.refused.labels("fleet_busy").inc()
            log.warning("fleet report from %s not stored: %s", tower, exc)
            raise HTTPException(503, "the fleet store is busy; retry later",
                                headers={"Retry-After": str(settings.retry_after)}) from None
        return Response(status_code=204)

    @app.get("/v1/fleet", tags=["fleet"], response_model=FleetState,
             summary="Every server's serial and health, rolled up per tower")
    async def get_fleet(
        request: Request,
        tower: Annotated[str | None, Query(description="only this tower")] = None,
        servers: Annotated[bool, Query(description="include the per-server list")] = True,
    ) -> Response:
        def build() -> bytes:
            data = fleet_json_data(state.fleet_state())
            if tower is not None:
                data["towers"] = [t for t in data["towers"] if t["tower"] == tower]
                data["servers"] = [s for s in data["servers"] if s["tower"] == tower]
            if not servers:
                data["servers"] = []
            return json.dumps(data, separators=(",", ":")).encode("utf-8")

        # a whole fleet takes a few hundred ms: off the loop that answers the polls
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))
        return await run_in_threadpool(lambda: json_bytes_response(build(), gzipped=gzipped))

    @app.get("/v1/fleet/history", tags=["fleet"], response_model=list[FleetEvent],
             summary="Changes of state, serial or error, newest first")
    async def get_history(request: Request, tower: str | None = None, server: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Response:
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))

        def build() -> Response:
            events = state.fleet.events(tower=tower, server=server, limit=limit)
            return json_bytes_response(to_json_bytes(events), gzipped=gzipped)

        return await run_in_threadpool(build)

    @app.get("/v1/fleet/rules", tags=["fleet"], response_model=FleetRules,
             summary="Per-rule hits from the tower scanners over time, and likely false-positive storms")
    async def get_fleet_rules(
        request: Request,
        hours: Annotated[int, Query(ge=1, le=24 * 90, description="window, hours")] = 24,
        rule: Annotated[str | None, Query(max_length=200, description="only this rule")] = None,
    ) -> Response:
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))

        def build() -> Response:
            return json_bytes_response(to_json_bytes(state.fleet.rules(window_hours=hours, rule=rule)),
                                       gzipped=gzipped)

        return await run_in_threadpool(build)

    @app.get("/v1/health", tags=["server"], response_model=ServerInfo, summary="Liveness")
    async def get_health() -> JSONResponse:
        return JSONResponse(to_data(ServerInfo(status="ok", version=workbench.__version__,
                                           newest_serial=state.newest_serial())))

    @app.get("/metrics", tags=["server"], summary="Prometheus metrics",
             response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def get_metrics() -> Response:
        return Response(await run_in_threadpool(state.metrics.render), media_type=CONTENT_TYPE)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

    def limit_for(path: str) -> int:
        return settings.max_message_bytes if path == "/v1/quarantine" else settings.max_json_bytes

    def tower_for(scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return state.tokens.verify(token) or ""
        return ""

    def count(event: str) -> None:
        if event == "too_large":
            state.metrics.too_large.inc()
        elif event == "body_timeout":
            state.metrics.timeouts.labels("body").inc()
        else:
            state.metrics.refused.labels(event).inc()

    app.add_middleware(ReportFastPath, state=state, tower_for=tower_for)     # inside the guard
    app.add_middleware(RequestGuard, limit_for=limit_for, tower_for=tower_for,
                       inflight=state.inflight, body_timeout=settings.body_timeout,
                       retry_after=settings.retry_after, count=count)
    app.add_middleware(RepositoryFastPath, state=state)
    return app


def uvicorn_config(app: FastAPI, *, host: str, port: int, wrapped: Any = None,
                   access_log: bool = False, log_level: str = "info") -> Any:
    """The uvicorn configuration ``serve`` runs (the tests run the same): keep-alive and
    header timeouts, a connection limit. ``wrapped``: serve this ASGI app around ``app``."""
    import uvicorn

    state: ServerState = app.state.workbench
    settings = state.settings
    protocol = guarded_protocol(settings.header_timeout,
                                state.metrics.timeouts.labels("headers").inc)
    return uvicorn.Config(wrapped or app, host=host, port=port, access_log=access_log,
                          log_level=log_level, server_header=False, proxy_headers=False,
                          timeout_keep_alive=15, http=protocol, lifespan="on",
                          limit_concurrency=settings.max_connections)


def openapi_document(workspace: Workspace | None = None) -> dict[str, Any]:
    """The OpenAPI document (checked in as docs/openapi.json)."""
    with tempfile.TemporaryDirectory(prefix="wb-openapi-") as tmp:
        app = make_app(workspace or Workspace(Path(tmp)))
        document = app.openapi()
        app.state.workbench.close()
        return document


def serve(workspace: Workspace, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          settings: ServerSettings | None = None, access_log: bool = False,
          log_level: str = "info") -> None:
    import uvicorn

    uvicorn.Server(uvicorn_config(make_app(workspace, settings), host=host, port=port,
                                  access_log=access_log, log_level=log_level)).run()
