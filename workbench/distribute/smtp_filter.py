"""``workbench tower scan``: an SMTP content filter (aiosmtpd) in front of the next hop.

The MTA (Postfix ``content_filter``, or any SMTP client) hands each message over SMTP;
the filter scans it with the agent's ``current`` bundle (``scanner.MessageScanner``),
acts per policy (deliver, tag a header, hold), and re-injects it to the next hop before
it answers, so the MTA keeps responsibility for the message until the next hop has it:

- re-injected: 250; the next hop refused it for good (5xx): that answer is passed back;
- next hop away (connection refused, 4xx, timeout): 451, and the MTA offers it again;
  once a message has failed for ``stuck_after_seconds`` a copy goes to the quarantine;
- held: kept in ``INSTALL_DIR/scanner/hold/`` (fsynced), then 250, not re-injected;
- unknown-virus-looking mail: a copy into the outbox (fsynced) before the answer.

The outbox is sent to ``POST /v1/quarantine`` by a background thread, which also
writes the counters the agent puts into its fleet report.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import smtplib
import threading
import time
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from workbench.distribute.outbox import Outbox, StuckTracker
from workbench.distribute.scanner import (
    STATS_NAME,
    CurrentRules,
    MessageScanner,
    ScanConfig,
    ScanStats,
    ScanVerdict,
    scanner_dir,
    tag_message,
)
from workbench.distribute.tower_config import TowerConfig
from workbench.document import iso, utcnow
from workbench.durable import atomic_write


class ReinjectFailed(Exception):
    def __init__(self, reason: str, *, permanent: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent          # an SMTP answer to pass back ("550 ...")


class FilterHandler:
    """aiosmtpd handler: one message per DATA, scanned off the event loop."""

    def __init__(self, service: TowerScanService):
        self.service = service

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes)
                                            else b"")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.service.pool, self.service.handle, raw, envelope.mail_from or "",
            list(envelope.rcpt_tos))


class TowerScanService:
    """The filter, its outbox and its counters; ``start``/``stop`` (tests) or ``run`` (the CLI)."""

    def __init__(self, tower: TowerConfig, config: ScanConfig, *,
                 log: Callable[[str], None] | None = None, threads: int | None = None):
        self.tower = tower
        self.config = config
        self.log = log or (lambda _msg: None)
        self.dir = scanner_dir(tower.install_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hold_dir = self.dir / "hold"
        self.stats = ScanStats(started=iso(utcnow()))
        self.rules = CurrentRules(tower.install_dir, log=self.log)
        self.scanner = MessageScanner(self.rules, config, self.stats)
        self.outbox = Outbox(self.dir / "outbox", server_url=tower.report_url, token=tower.token,
                             tower=tower.tower, server=tower.server, log=self.log)
        self.stuck = StuckTracker(self.dir / "stuck.json")
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads or max(2, os.cpu_count() or 2), thread_name_prefix="scan")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._background: threading.Thread | None = None
        self.controller: Controller | None = None
        self.outbox_error = ""
        self._local = threading.local()          # each scan thread keeps one next-hop connection
        self._clients: set[smtplib.SMTP] = set()
        self._clients_lock = threading.Lock()

    # -- one message ---------------------------------------------------------------------------------

    def handle(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
        """Scan, act, re-inject; the SMTP answer to give the sender."""
        verdict = self.scanner.scan(raw)
        if verdict.action == "tempfail":
            return "451 4.3.0 the message could not be scanned now; try again later"
        reason = verdict.quarantine_reason(self.config)
        if reason:
            try:
                self.outbox.put(raw, reason)
            except OSError as exc:      # the MTA keeps the message and offers it again
                self.stats.bump("errors", error=f"outbox: {exc}")
                return "451 4.3.0 cannot keep a copy for the quarantine now"
            self.stats.bump("quarantined")
            self._wake.set()
        if verdict.action == "hold":
            try:
                self._hold(raw, mail_from, rcpt_tos, verdict)
            except OSError as exc:
                self.stats.bump("errors", error=f"hold: {exc}")
                return "451 4.3.0 cannot hold the message now"
            self.stats.bump("held")
            return f"250 2.0.0 held ({verdict.verdict})"
        data = raw
        if verdict.action == "tag":
            data = tag_message(raw, self.config.tag_header, verdict.header_value())
        try:
            self._reinject(data, mail_from, rcpt_tos)
        except ReinjectFailed as exc:
            if exc.permanent:
                return exc.permanent
            return self._stuck(raw, exc.reason)
        if self.stuck.first_failure(hashlib.sha256(raw).hexdigest()) is not None:
            self.stuck.delivered(hashlib.sha256(raw).hexdigest())
        return f"250 2.0.0 {verdict.verdict}, re-injected"

    def _reinject(self, data: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        """Hand the message to the next hop over this thread's kept connection (one retry on a
        fresh connection if the kept one went stale)."""
        for attempt in (0, 1):
            client = getattr(self._local, "client", None)
            fresh = client is None
            try:
                if client is None:
                    client = smtplib.SMTP(self.config.next_hop_host, self.config.next_hop_port,
                                          timeout=self.config.reinject_timeout_seconds)
                    self._local.client = client
                    with self._clients_lock:
                        self._clients.add(client)
                refused = client.sendmail(mail_from, rcpt_tos, data)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                self._reset()
                if 500 <= code < 600:
                    raise ReinjectFailed("refused", permanent=f"{code} {_text(text)}") from None
                raise ReinjectFailed(f"next hop answered {code} {_text(text)}") from None
            except smtplib.SMTPResponseException as exc:
                self._reset()
                if exc.smtp_code == 421 and not fresh and attempt == 0:
                    continue                    # the kept connection timed out at the next hop
                if 500 <= exc.smtp_code < 600:
                    raise ReinjectFailed("refused",
                                         permanent=f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
                raise ReinjectFailed(f"next hop answered {exc.smtp_code} {_text(exc.smtp_error)}") from None
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                if not fresh and attempt == 0:
                    continue                    # stale kept connection: once more on a new one
                raise ReinjectFailed(f"next hop {self.config.next_hop_host}:{self.config.next_hop_port} "
                                     f"unreachable: {exc}") from None
            if refused:     # accepted for the others; these are logged, not bounced (docs: limits)
                self.log(f"next hop refused some recipients: {sorted(refused)}")
            return

    def _reset(self) -> None:
        """After a refused transaction: RSET so the kept connection can carry the next one."""
        client = getattr(self._local, "client", None)
        if client is not None:
            try:
                client.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()

    def _drop(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            try:
                client.close()
            except OSError:
                pass
            with self._clients_lock:
                self._clients.discard(client)

    def _stuck(self, raw: bytes, reason: str) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        now = time.time()
        self.stats.bump("errors", error=f"re-injection: {reason}")
        try:
            due = self.stuck.failed(digest, now, self.config.stuck_after_seconds)
            if due:
                since = self.stuck.first_failure(digest) or now
                self.outbox.put(raw, f"stuck: re-injection failing for {now - since:.0f} s: "
                                     f"{reason}"[:200])
                self.stats.bump("stuck")
                self._wake.set()
        except OSError as exc:
            self.log(f"cannot record a stuck message: {exc}")
        return f"451 4.4.1 {reason}"[:500]

    def _hold(self, raw: bytes, mail_from: str, rcpt_tos: list[str], verdict: ScanVerdict) -> None:
        stem = f"{time.time_ns():020d}-{hashlib.sha256(raw).hexdigest()[:16]}"
        atomic_write(self.hold_dir / f"{stem}.eml", raw)
        atomic_write(self.hold_dir / f"{stem}.json", json.dumps({
            "mail_from": mail_from, "rcpt_tos": rcpt_tos, "verdict": verdict.verdict,
            "rules": list(verdict.rules), "unknown": list(verdict.unknown),
            "serial": verdict.serial, "at": iso(utcnow())}) + "\n", sync_folder=True)

    # -- the service ---------------------------------------------------------------------------------

    def start(self) -> TowerScanService:
        self.rules.get()                       # load before the first message, and say so
        self.controller = Controller(
            FilterHandler(self), hostname=self.config.listen_host, port=self.config.listen_port,
            decode_data=False, data_size_limit=max(self.config.max_message_bytes * 2, 1 << 20),
            server_hostname="workbench-scan", ready_timeout=10.0)
        self.controller.start()
        self._background = threading.Thread(target=self._background_loop, name="scan-outbox",
                                            daemon=True)
        self._background.start()
        return self

    @property
    def port(self) -> int:
        return self.config.listen_port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        self._stop.set()
        self._wake.set()
        if self._background is not None:
            self._background.join(timeout=30)
            self._background = None
        self.pool.shutdown(wait=True)
        with self._clients_lock:
            for client in self._clients:
                try:
                    client.quit()
                except (OSError, smtplib.SMTPException):
                    client.close()
            self._clients.clear()
        self.save_stats()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def save_stats(self) -> None:
        try:
            self.stats.save(self.dir / STATS_NAME)
        except OSError as exc:
            self.log(f"cannot write the counters: {exc}")

    def flush_outbox(self) -> int:
        """Try the outbox now; how many copies are still waiting."""
        if not self.tower.token:
            return len(self.outbox.pending())
        result = self.outbox.send_pending(timeout=self.tower.timeout_seconds)
        self.outbox_error = result.error
        return result.waiting

    def _background_loop(self) -> None:
        next_send = 0.0
        next_stats = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self._wake.is_set() or now >= next_send:
                self._wake.clear()
                try:
                    waiting = self.flush_outbox()
                except Exception as exc:               # keep going; the copies stay on disk
                    self.log(f"outbox: {exc!r}")
                    waiting = 1
                next_send = now + (self.config.outbox_retry_seconds if waiting else 3600.0)
            if now >= next_stats:
                self.save_stats()
                next_stats = now + self.config.stats_interval_seconds
            self._wake.wait(max(0.05, min(next_send, next_stats) - time.monotonic()))
        self.flush_outbox_quietly()

    def flush_outbox_quietly(self) -> None:
        try:
            self.flush_outbox()
        except Exception as exc:
            self.log(f"outbox: {exc!r}")

    def status(self) -> dict[str, Any]:
        return {"serial": self.rules.serial, "rules_error": self.rules.error,
                "outbox": len(self.outbox.pending()), "outbox_error": self.outbox_error,
                **self.stats.to_data()}


def _text(value: bytes | str) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))[:300]
