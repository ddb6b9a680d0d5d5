"""The tower agent: fetch the newest signed bundle through TUF, check it, switch to it, report.

One attempt (``TowerAgent.pull``):

1. check the bundle in use (every file against its manifest); a damaged install is
   reinstalled, or the newest intact kept bundle is put back;
2. a conditional GET of ``timestamp.json``: 304 and locally trusted metadata still
   valid means nothing changed (one small request); otherwise a full TUF refresh
   with the pinned root (signatures, versions, expiry: tampering, unknown keys,
   rollback and freeze are refused here);
3. the newest target by serial; below the installed serial is a rollback and refused;
4. download (TUF checks length and hash), unpack into staging, load (compiled rules if
   the libyara version matches, else the sources), check rule count and fingerprints,
   run the self-tests;
5. rename ``current`` over to the new folder, run the reload command (on failure switch
   back), keep the last few bundles;
6. report ``ok`` / ``updating`` / ``failed`` with the reason; undelivered reports wait.

Any failure leaves ``current`` where it was: the scanner keeps its rules.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import yara
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Targets
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

import workbench
from workbench.distribute import crashpoints
from workbench.distribute.client import USER_AGENT, ClientError, send_report
from workbench.distribute.fleet import FleetReport
from workbench.distribute.install import (
    AgentBusy,
    AgentState,
    CurrentInstall,
    DamagedInstall,
    InstallDir,
)
from workbench.distribute.scanner import read_stats, scanner_dir
from workbench.distribute.telemetry import trim_for_report
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import PublishedTarget, target_from_info
from workbench.document import iso, utcnow
from workbench.humanize import shown
from workbench.release.bundle import (
    BundleError,
    LoadedRuleset,
    load_extracted,
    open_bundle,
    read_manifest,
)

MAX_PENDING_REPORTS = 20
RELOAD_OUTPUT_TAIL = 400

__all__ = ["AgentBusy", "PullResult", "TowerAgent", "load_current", "next_delay"]


class AttemptFailed(Exception):
    """One attempt failed; ``transient`` failures (server, network) back off exponentially."""

    def __init__(self, reason: str, *, transient: bool, target_serial: int | None = None,
                 local: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.target_serial = target_serial
        self.local = local


@dataclass
class PullResult:
    """``workbench tower pull --json``: what one attempt did."""

    state: str                       # "ok" or "failed"
    serial: int | None               # in use after the attempt
    previous_serial: int | None
    changed: bool
    checked: str                     # "not-modified", "refreshed" or "offline"
    target_serial: int | None = None
    error: str = ""
    transient: bool = False
    local: bool = False              # this server failed (full disk, permissions), not the repository
    repaired: str = ""               # why the install was repaired or switched back
    loaded_from: str = ""            # "compiled" or "sources" for a new bundle
    bytes_downloaded: int = 0
    requests: int = 0
    reported: bool = False
    duration_seconds: float = 0.0
    long_polled: bool = False        # the server held the poll (Preference-Applied: wait)


class _Fetcher(FetcherInterface):
    """httpx under TUF: timeouts, a byte count, and one already fetched timestamp.json."""

    def __init__(self, client: httpx.Client, counter: _Counter):
        self.client = client
        self.counter = counter
        self.prefetched: dict[str, bytes] = {}
        self.prefetched_etag = ""

    def _fetch(self, url: str) -> Iterator[bytes]:
        if url in self.prefetched:
            return iter([self.prefetched.pop(url)])
        self.counter.requests += 1
        try:
            response = self.client.send(self.client.build_request("GET", url), stream=True)
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"cannot reach {url}: {exc}") from exc
        if response.status_code != 200:
            response.close()
            raise tuf_errors.DownloadHTTPError(f"{url}: HTTP {response.status_code}",
                                               response.status_code)
        return self._chunks(response, url)

    def _chunks(self, response: httpx.Response, url: str) -> Iterator[bytes]:
        try:
            for chunk in response.iter_bytes(1 << 16):
                self.counter.bytes += len(chunk)
                yield chunk
        except httpx.HTTPError as exc:
            raise tuf_errors.DownloadError(f"download of {url} broke off: {exc}") from exc
        finally:
            response.close()


@dataclass
class _Counter:
    requests: int = 0
    bytes: int = 0


def next_delay(poll_seconds: float, failures: int, *, jitter: float = 0.1,
               max_backoff: float = 900.0, rng: random.Random | None = None) -> float:
    """Seconds until the next attempt: the poll interval, doubled per consecutive server failure
    up to ``max_backoff``, spread by +-``jitter`` so a fleet does not poll in step."""
    rng = rng or random.Random()
    base = poll_seconds * (2 ** min(failures, 30)) if failures else poll_seconds
    base = min(base, max(max_backoff, poll_seconds))
    return base * rng.uniform(1 - jitter, 1 + jitter)


def load_current(install_dir: Path) -> LoadedRuleset:
    """The rules the scanner should use: ``install_dir/current``, verified and self-tested."""
    return load_extracted(Path(install_dir) / "current")


class TowerAgent:
    def __init__(self, config: TowerConfig, *, clock: Callable[[], float] = time.time,
                 log: Callable[[str], None] | None = None):
        self.config = config
        self.install = InstallDir(config.install_dir)
        self.clock = clock
        self.log = log or (lambda _msg: None)
        self._trusted_root: bytes | None = None
        self._stop: threading.Event | None = None
        self._rng = random.Random()

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, max_attempts: int | None = None,
            rng: random.Random | None = None,
            on_result: Callable[[PullResult], None] | None = None) -> None:
        """Poll until ``stop`` is set, holding the install folder's lock throughout."""
        stop = stop or threading.Event()
        rng = rng or random.Random()
        self._stop, self._rng = stop, rng
        attempts = 0
        crashes = 0
        with self.install.locked():
            while not stop.is_set():
                try:
                    result = self._attempt()
                    crashes = 0
                except Exception as exc:          # a service keeps going; the log says why
                    self.log(f"attempt crashed: {exc!r}\n{traceback.format_exc()}")
                    crashes += 1
                    result = None
                attempts += 1
                if on_result and result is not None:
                    on_result(result)
                if max_attempts is not None and attempts >= max_attempts:
                    return
                failures = self.install.load_state().consecutive_failures + crashes
                if result is not None and result.long_polled and result.state == "ok":
                    # the server held the poll for the interval: ask again at once (a little
                    # spread, so a fleet woken by one publish does not come back in step)
                    stop.wait(rng.uniform(0.0, min(1.0, self.config.poll_seconds * self.config.jitter)))
                    continue
                stop.wait(next_delay(self.config.poll_seconds, failures, jitter=self.config.jitter,
                                     max_backoff=self.config.max_backoff_seconds, rng=rng))

    def pull(self) -> PullResult:
        """One attempt (``workbench tower pull``); raises ``AgentBusy`` if an agent runs."""
        with self.install.locked():
            return self._attempt()

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(self) -> PullResult:
        started = time.monotonic()
        self.install.ensure()
        state = self.install.load_state()
        counter = _Counter()
        damaged = ""
        try:
            current = self.install.check_current()
        except DamagedInstall as exc:
            current, damaged = None, str(exc)
            self.log(f"current install damaged: {damaged}")
        previous = current.serial if current else state.installed_serial
        result = PullResult(state="ok", serial=current.serial if current else None,
                            previous_serial=previous, changed=False, checked="refreshed")
        if damaged:
            result.repaired = f"current install damaged ({damaged})"
            self._report(state, FleetReport(
                server=self.config.server, state="updating", serial=None,
                error=f"{result.repaired}; reinstalling", **self._agent_fields(None)), result)
        try:
            if state.reload_pending is not None:
                self._finish_reload(state, current, result)
            with httpx.Client(timeout=self.config.timeout_seconds,
                              headers={"user-agent": USER_AGENT}) as client:
                self._update(client, counter, state, current, damaged, result)
            if damaged and not result.changed:
                raise AttemptFailed("the repository offers no bundle to reinstall", transient=False)
            state.consecutive_failures = 0
        except (AttemptFailed, OSError) as exc:
            if isinstance(exc, OSError):       # a full disk, a read-only or vanished folder
                exc = AttemptFailed(_local_reason(exc), transient=True, local=True)
            result.state, result.error, result.transient = "failed", exc.reason, exc.transient
            result.local = exc.local
            result.target_serial = exc.target_serial
            state.consecutive_failures = state.consecutive_failures + 1 if exc.transient else 0
            if damaged:
                try:
                    self._fall_back(state, result)
                except OSError as local:
                    result.error += f"; cannot fall back: {_local_reason(local)}"
                    result.local = True
        result.bytes_downloaded = counter.bytes
        result.requests = counter.requests
        state.last_attempt = iso(utcnow())
        state.last_state, state.last_error = result.state, result.error
        if result.changed and result.long_polled and self.config.report_spread_seconds > 0:
            # the new serial is in service already; its report is spread over a few seconds
            # so that thousands of towers woken by one publish do not report in one burst
            (self._stop or threading.Event()).wait(
                self._rng.uniform(0, self.config.report_spread_seconds))
        self._report(state, FleetReport(
            server=self.config.server, state=result.state, serial=result.serial,
            error=result.error, target_serial=result.target_serial if result.error else None,
            **self._agent_fields(result.serial)), result)
        try:
            self.install.save_state(state)
        except OSError as exc:
            # what the state would have kept (ETag, refusals, unsent reports) is redone next time;
            # the server must still hear that this one is in trouble
            result.state, result.transient, result.local = "failed", True, True
            result.error = "cannot save the agent state: " + _local_reason(exc)
            self._report(state, FleetReport(
                server=self.config.server, state="failed", serial=result.serial, error=result.error,
                **self._agent_fields(result.serial)), result)
        result.duration_seconds = round(time.monotonic() - started, 3)
        self.log(_summary(result))
        return result

    def _update(self, client: httpx.Client, counter: _Counter, state: AgentState,
                current: CurrentInstall | None, damaged: str, result: PullResult) -> None:
        fetcher = _Fetcher(client, counter)
        shortcut = not damaged and current is not None
        if self._not_modified(client, counter, state, fetcher, shortcut=shortcut, result=result):
            result.checked = "not-modified"
            if state.rejected_serial is not None:
                raise AttemptFailed(state.rejected_reason, transient=False,
                                    target_serial=state.rejected_serial)
            return
        etag = fetcher.prefetched_etag
        updater = self._updater(fetcher)
        try:
            updater.refresh()
        except tuf_errors.DownloadError as exc:
            raise AttemptFailed(_download_reason(exc), transient=True) from None
        except tuf_errors.RepositoryError as exc:
            raise AttemptFailed(_metadata_reason(exc), transient=False) from None
        state.last_full_refresh = self.clock()
        newest = self._newest_target()
        installed = current.serial if current else None
        floor = max(x for x in (installed, state.highest_serial, 0) if x is not None)
        if newest is None:
            state.timestamp_etag = etag
            return
        if newest.serial < floor:
            # no ETag kept: every poll refreshes and reports the refusal again
            raise AttemptFailed(
                f"refused rollback: the repository's newest serial is {newest.serial}, "
                f"this server already ran {floor}", transient=False, target_serial=newest.serial)
        if installed is not None and newest.serial == installed:
            state.timestamp_etag = etag
            state.rejected_serial, state.rejected_reason, state.rejected_sha256 = None, "", ""
            return
        if state.rejected_serial == newest.serial and state.rejected_sha256 == newest.sha256:
            state.timestamp_etag = etag
            raise AttemptFailed(state.rejected_reason, transient=False, target_serial=newest.serial)
        if not result.long_polled:
            # after a notification the install takes moments, and a whole fleet saying
            # "updating" in the same second would only slow the server down
            self._report(state, FleetReport(
                server=self.config.server, state="updating", serial=installed,
                target_serial=newest.serial, **self._agent_fields(installed)), result)
        try:
            loaded = self._install(updater, newest, state)
        except AttemptFailed as exc:
            if not exc.transient:
                state.timestamp_etag = etag
                state.rejected_serial, state.rejected_sha256 = newest.serial, newest.sha256
                state.rejected_reason = exc.reason
            raise
        state.timestamp_etag = etag
        state.rejected_serial, state.rejected_reason, state.rejected_sha256 = None, "", ""
        state.installed_serial = newest.serial
        state.highest_serial = max(newest.serial, state.highest_serial or 0)
        result.serial, result.changed = newest.serial, True
        result.target_serial = newest.serial
        result.loaded_from = loaded.loaded_from
        if damaged:
            result.repaired += f"; reinstalled serial {newest.serial}"

    def _not_modified(self, client: httpx.Client, counter: _Counter, state: AgentState,
                      fetcher: _Fetcher, *, shortcut: bool, result: PullResult) -> bool:
        """One (conditional) GET of timestamp.json; True if nothing changed and nothing expired.

        A 200 hands the body to the TUF refresh, so it is not fetched twice.
        """
        url = f"{self._metadata_url}timestamp.json"
        headers = {}
        fresh = self.clock() - state.last_full_refresh < self.config.full_refresh_seconds
        timeout: float | httpx.Timeout = self.config.timeout_seconds
        if shortcut and state.timestamp_etag and fresh:
            headers["if-none-match"] = state.timestamp_etag
            if self.config.long_poll:
                wait = max(1, int(self.config.poll_seconds))
                headers["prefer"] = f"wait={wait}"
                timeout = httpx.Timeout(self.config.timeout_seconds, read=wait + self.config.timeout_seconds)
        counter.requests += 1
        try:
            response = client.get(url, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise AttemptFailed(f"cannot reach the repository: {exc}", transient=True) from None
        applied = response.headers.get("preference-applied", "").partition("wait=")[2]
        result.long_polled = applied.isdigit() and int(applied) >= 1
        if response.status_code == 304:
            if self._check_local_expiry():
                return True
            counter.requests += 1          # local metadata lost: fetch it all again
            try:
                response = client.get(url)
            except httpx.HTTPError as exc:
                raise AttemptFailed(f"cannot reach the repository: {exc}", transient=True) from None
        if response.status_code != 200:
            raise AttemptFailed(f"the repository answered HTTP {response.status_code} for {url}",
                                transient=response.status_code >= 500 or response.status_code == 404)
        counter.bytes += len(response.content)
        fetcher.prefetched[url] = response.content
        fetcher.prefetched_etag = response.headers.get("etag", "")
        return False

    def _check_local_expiry(self) -> bool:
        """Without a download, the metadata trusted last time must still be valid (freeze check).

        False if it cannot be read (a full refresh follows); expired metadata is a refusal.
        """
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        for role in ("root", "timestamp", "snapshot", "targets"):
            path = self.install.metadata_dir / f"{role}.json"
            try:
                signed = Metadata.from_bytes(path.read_bytes()).signed
            except (OSError, ValueError, tuf_errors.RepositoryError):
                return False
            if signed.is_expired(now):
                raise AttemptFailed(
                    f"refused: {role} metadata expired at {shown(signed.expires, seconds=False)}Z and the "
                    "server offers nothing newer (repository not refreshed, or a freeze attack)",
                    transient=False)
        return True

    @property
    def _metadata_url(self) -> str:
        return self.config.repository_url.rstrip("/") + "/metadata/"

    def _updater(self, fetcher: _Fetcher) -> Updater:
        if self._trusted_root is None:
            try:
                self._trusted_root = Path(self.config.trusted_root).read_bytes()
            except OSError as exc:
                raise AttemptFailed(f"cannot read the trusted root {self.config.trusted_root}: "
                                    f"{exc.strerror or exc}", transient=False) from None
        try:
            return Updater(str(self.install.metadata_dir), self._metadata_url,
                           target_dir=str(self.install.downloads_dir),
                           target_base_url=self.config.repository_url.rstrip("/") + "/targets/",
                           fetcher=fetcher, bootstrap=self._trusted_root)
        except (tuf_errors.RepositoryError, ValueError) as exc:
            raise AttemptFailed(f"the trusted root {self.config.trusted_root} is not valid root "
                                f"metadata: {exc}", transient=False) from None

    def _newest_target(self) -> PublishedTarget | None:
        """The highest serial among the targets the refresh just verified that this tower
        may install."""
        md = cast("Metadata[Targets]", Metadata.from_bytes(
            (self.install.metadata_dir / "targets.json").read_bytes()))
        listed = [target_from_info(p, i) for p, i in md.signed.targets.items()]
        # a canary release is for its canary towers until it is promoted (signed state)
        bundles = [t for t in listed if t.serial > 0 and t.offered_to(self.config.tower)]
        return max(bundles, key=lambda t: t.serial) if bundles else None

    def _install(self, updater: Updater, target: PublishedTarget, state: AgentState) -> LoadedRuleset:
        serial = target.serial
        try:
            info = updater.get_targetinfo(target.path)
            if info is None:
                raise AttemptFailed(f"target {target.path} vanished from the verified metadata",
                                    transient=True, target_serial=serial)
            path = updater.find_cached_target(info) or updater.download_target(info)
        except tuf_errors.DownloadError as exc:
            raise AttemptFailed(_download_reason(exc), transient=True, target_serial=serial) from None
        except tuf_errors.LengthOrHashMismatchError as exc:
            raise AttemptFailed(
                f"refused serial {serial}: the download does not match its signed length and "
                f"hash (tampered or truncated): {exc}", transient=True, target_serial=serial) from None
        except tuf_errors.RepositoryError as exc:
            raise AttemptFailed(_metadata_reason(exc), transient=False, target_serial=serial) from None
        crashpoints.step("pull:downloaded")
        staging = self.install.new_staging(serial)
        try:
            bundle = open_bundle(path)
            if bundle.manifest.serial != serial:
                raise BundleError(f"its manifest says serial {bundle.manifest.serial}")
            crashpoints.step("pull:extracting")
            bundle.extract_to(staging)
            loaded = load_extracted(staging)
        except BundleError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            Path(path).unlink(missing_ok=True)
            raise AttemptFailed(f"refused serial {serial}: {exc.reason}", transient=False,
                                target_serial=serial) from None
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)      # give the space back
            raise
        final = self.install.commit(staging, serial)
        crashpoints.step("pull:committed")
        previous = self.install.current_target()
        # Recorded before the switch: an agent killed from here until the reload command
        # has confirmed the new rules finishes the reload on its next run (_finish_reload).
        state.reload_pending = serial
        state.reload_previous = _serial_of(previous)
        self.install.save_state(state)
        crashpoints.step("pull:reload-recorded")
        self.install.switch(final)
        crashpoints.step("pull:switched")
        reload_error = self._reload(final, serial)
        crashpoints.step("pull:reloaded")
        state.reload_pending = state.reload_previous = None
        if reload_error:
            self.install.switch(previous)
            if previous is not None:
                self._reload(previous, int(previous.name) if previous.name.isdigit() else 0)
            raise AttemptFailed(f"serial {serial} installed but {reload_error}; switched back",
                                transient=True, target_serial=serial)
        self.install.prune(self.config.keep_bundles)
        loaded.folder = final
        return loaded

    def _reload(self, folder: Path, serial: int) -> str:
        """Run the reload command; '' on success, else what went wrong."""
        if not self.config.reload_command:
            return ""
        env = {**os.environ, "WORKBENCH_BUNDLE": str(self.install.current),
               "WORKBENCH_BUNDLE_DIR": str(folder), "WORKBENCH_SERIAL": str(serial)}
        try:
            done = subprocess.run(self.config.reload_command, env=env, capture_output=True,
                                  timeout=self.config.reload_timeout_seconds, check=False)
        except FileNotFoundError:
            return f"the reload command {self.config.reload_command[0]!r} does not exist"
        except subprocess.TimeoutExpired:
            return f"the reload command timed out after {self.config.reload_timeout_seconds:g} s"
        except OSError as exc:
            return f"the reload command could not run: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-RELOAD_OUTPUT_TAIL:]
            return f"the reload command failed (exit {done.returncode}){': ' + tail if tail else ''}"
        return ""

    def _finish_reload(self, state: AgentState, current: CurrentInstall | None,
                       result: PullResult) -> None:
        """The last run switched ``current`` and died before the reload command confirmed it:
        the scanner may still run the old rules. Reload now; if that fails, switch back."""
        pending, previous = state.reload_pending, state.reload_previous
        state.timestamp_etag = ""           # whatever happens, the next look is a full refresh
        if current is None:                 # damaged: the repair path reinstalls and reloads
            state.reload_pending = state.reload_previous = None
            return
        error = self._reload(current.folder, current.serial)
        if not error:
            state.reload_pending = state.reload_previous = None
            if current.serial == pending:
                state.installed_serial = current.serial
                state.highest_serial = max(current.serial, state.highest_serial or 0)
            result.repaired = (f"finished the reload of serial {current.serial} that the last "
                               "run did not")
            return
        what = f"serial {current.serial} installed, not reloaded: {error}"
        back = next((b for b in self.install.intact_bundles()
                     if b.serial == previous and b.serial != current.serial), None)
        if back is None:                    # nothing to go back to: stay red until a reload works
            raise AttemptFailed(what, transient=True, target_serial=current.serial)
        self.install.switch(back.folder)
        back_error = self._reload(back.folder, back.serial)
        state.reload_pending = state.reload_previous = None
        state.installed_serial = result.serial = back.serial
        raise AttemptFailed(f"{what}; switched back to serial {back.serial}"
                            + (f"; {back_error}" if back_error else ""),
                            transient=True, target_serial=current.serial)

    def _fall_back(self, state: AgentState, result: PullResult) -> None:
        """The install was damaged and could not be reinstalled: put back an intact kept bundle."""
        # The ETag is of a timestamp that led to the damaged serial: a 304 on it must not keep
        # this server on the older one until the repository happens to change.
        state.timestamp_etag = ""
        intact = self.install.intact_bundles()
        if not intact:
            result.error = f"{result.repaired}; no intact bundle to fall back to; {result.error}"
            result.serial = None
            return
        chosen = intact[0]
        self.install.switch(chosen.folder)
        reload_error = self._reload(chosen.folder, chosen.serial)
        result.serial = chosen.serial
        state.installed_serial = chosen.serial
        result.repaired += f"; switched to intact serial {chosen.serial}"
        result.error = f"{result.repaired}; {result.error}"
        if reload_error:
            result.error += f"; {reload_error}"

    # -- reporting -----------------------------------------------------------------------------

    def _agent_fields(self, serial: int | None) -> dict[str, Any]:
        rule_count = None
        if serial is not None:
            folder = self.install.bundles_dir / str(serial)
            try:
                rule_count = read_manifest(folder).rule_count
            except BundleError:
                rule_count = None
        return {"agent_version": workbench.__version__, "libyara_version": yara.YARA_VERSION,
                "rule_count": rule_count, "at": iso(utcnow()),
                "scanner": trim_for_report(read_stats(scanner_dir(self.install.root)))}

    def _report(self, state: AgentState, report: FleetReport, result: PullResult) -> None:
        """Send this report after any that are waiting; keep what could not be delivered."""
        if not self.config.token:
            return
        queue = [*state.pending_reports, asdict(report)]
        delivered = 0
        for item in queue:
            try:
                send_report(self.config.report_url, self.config.token, FleetReport(**item),
                            timeout=min(self.config.timeout_seconds, 10.0))
            except ClientError as exc:
                if exc.status in (400, 401, 403, 413, 422):
                    self.log(f"report refused by the server: {exc}")
                    delivered += 1          # never deliverable; do not keep it
                    continue
                break
            delivered += 1
        state.pending_reports = queue[delivered:][-MAX_PENDING_REPORTS:]
        result.reported = not state.pending_reports

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> TowerStatus:
        state = self.install.load_state()
        damaged = ""
        current = None
        try:
            current = self.install.check_current()
        except DamagedInstall as exc:
            damaged = str(exc)
        return TowerStatus(
            tower=self.config.tower, server=self.config.server,
            install_dir=self.install.root, repository_url=self.config.repository_url,
            serial=current.serial if current else None,
            rule_count=current.manifest.rule_count if current else None,
            damaged=damaged, kept=self.install.bundle_serials(),
            agent_pid=self.install.lock_holder(), last_attempt=state.last_attempt,
            last_state=state.last_state, last_error=state.last_error,
            rejected_serial=state.rejected_serial, pending_reports=len(state.pending_reports),
            reload_pending=state.reload_pending)


@dataclass(frozen=True)
class TowerStatus:
    """``workbench tower status --json``: the local view of one server."""

    tower: str
    server: str
    install_dir: Path
    repository_url: str
    serial: int | None
    rule_count: int | None
    damaged: str
    kept: list[int]
    agent_pid: int | None
    last_attempt: str
    last_state: str
    last_error: str
    rejected_serial: int | None
    pending_reports: int
    reload_pending: int | None = None     # switched to, reload not confirmed (finished next run)


def _serial_of(folder: Path | None) -> int | None:
    return int(folder.name) if folder is not None and folder.name.isdigit() else None


def _local_reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"local failure on this server: {exc.strerror or exc}{where}; the bundle in use is kept"


def _download_reason(exc: tuf_errors.DownloadError) -> str:
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return f"refused download: longer than its signed length (tampered?): {exc}"
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        return f"the repository answered HTTP {exc.status_code}: {exc}"
    text = str(exc)
    if exc.__cause__ is not None and str(exc.__cause__) not in text:
        text += f": {exc.__cause__}"
    return text


def _metadata_reason(exc: tuf_errors.RepositoryError) -> str:
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return (f"refused: {exc} (the repository was not refreshed, or old metadata is being "
                "replayed: freeze attack)")
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return f"refused: {exc} (older than what this server already trusts: rollback attack)"
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return f"refused: {exc} (not signed by the keys the pinned root trusts)"
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return f"refused: {exc} (metadata does not match its signed length or hash)"
    return f"refused: {exc}"


def _summary(result: PullResult) -> str:
    if result.state == "ok":
        what = (f"installed serial {result.serial} (was {result.previous_serial})" if result.changed
                else f"serial {result.serial}, {result.checked}")
        return f"ok: {what}" + (f"; {result.repaired}" if result.repaired else "")
    return f"failed: {result.error}"

