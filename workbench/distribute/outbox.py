"""The scanner's outbox: copies for the central quarantine, kept on disk until the centre has them.

``put`` writes the message and its metadata (each atomically, fsynced) before the SMTP
answer goes out; ``send_pending`` posts what is waiting (``POST /v1/quarantine``) and
deletes only what the centre acknowledged (201, 200 or 422: it keeps even "not mail").
A centre that is down, full or busy leaves everything in place for the next attempt;
a refusal that can never succeed (wrong token, too large) moves the copy to
``rejected/`` for a person to look at. Nothing is lost either way.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.distribute.client import ClientError, send_message
from workbench.durable import atomic_write

PERMANENT = (400, 401, 403, 413)


@dataclass(frozen=True)
class OutboxEntry:
    path: Path
    reason: str
    queued: float
    attempts: int


@dataclass
class SendResult:
    sent: int = 0
    waiting: int = 0
    rejected: int = 0
    error: str = ""


class Outbox:
    def __init__(self, folder: Path, *, server_url: str, token: str, tower: str, server: str,
                 log: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.rejected = self.folder / "rejected"
        self.server_url = server_url
        self.token = token
        self.tower = tower
        self.server = server
        self.log = log or (lambda _msg: None)
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, reason: str) -> Path:
        """Keep one copy (durably) for the quarantine; returns its file."""
        digest = hashlib.sha256(data).hexdigest()
        stem = f"{time.time_ns():020d}-{digest[:16]}"
        path = self.folder / f"{stem}.eml"
        # the reason first: the sender lists *.eml, and a copy it found before its reason was
        # written went out as "unspecified" (seen in CI); a crash in between leaves only a
        # .json, which nothing lists
        atomic_write(self.folder / f"{stem}.json",
                     json.dumps({"reason": reason[:200], "queued": time.time(), "attempts": 0}) + "\n")
        atomic_write(path, data, sync_folder=True)
        return path

    def pending(self) -> list[OutboxEntry]:
        out = []
        for path in sorted(self.folder.glob("*.eml")):
            meta = self._meta(path)
            out.append(OutboxEntry(path, str(meta.get("reason", "")), float(meta.get("queued", 0)),
                                   int(meta.get("attempts", 0))))
        return out

    def _meta(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def send_pending(self, *, timeout: float = 60.0) -> SendResult:
        """Post every waiting copy, oldest first; stop at the first sign the centre is away."""
        result = SendResult()
        with self._lock:
            entries = self.pending()
            for i, entry in enumerate(entries):
                try:
                    data = entry.path.read_bytes()
                except FileNotFoundError:
                    continue
                try:
                    send_message(self.server_url, self.token, data, server=self.server,
                                 reason=entry.reason, tower=self.tower, timeout=timeout)
                except ClientError as exc:
                    if exc.status in PERMANENT:
                        self.rejected.mkdir(exist_ok=True)
                        entry.path.replace(self.rejected / entry.path.name)
                        meta = entry.path.with_suffix(".json")
                        if meta.exists():
                            meta.replace(self.rejected / meta.name)
                        result.rejected += 1
                        self.log(f"outbox: the centre refused {entry.path.name} for good: {exc}")
                        continue
                    self._attempted(entry)
                    result.error = str(exc)
                    result.waiting = len(entries) - i
                    return result
                entry.path.unlink(missing_ok=True)
                entry.path.with_suffix(".json").unlink(missing_ok=True)
                result.sent += 1
        return result

    def _attempted(self, entry: OutboxEntry) -> None:
        meta = {"reason": entry.reason, "queued": entry.queued, "attempts": entry.attempts + 1,
                "last_attempt": time.time()}
        try:
            atomic_write(entry.path.with_suffix(".json"), json.dumps(meta) + "\n")
        except OSError:
            pass                # only the attempt count is lost; the copy stays


class StuckTracker:
    """Messages whose re-injection keeps failing: since when, and whether already copied.

    The filter answers 4xx while the next hop is away, so the MTA keeps the message and
    offers it again; its sha256 ties the attempts together. Kept in ``stuck.json``.
    """

    KEEP_SECONDS = 7 * 86400

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self._entries: dict[str, dict[str, float | bool]] = raw if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            self._entries = {}

    def failed(self, digest: str, now: float, stuck_after: float) -> bool:
        """Record a failed re-injection; True once, when it has now been stuck ``stuck_after``."""
        with self._lock:
            entry = self._entries.setdefault(digest, {"first": now, "copied": False})
            due = not entry["copied"] and now - float(entry["first"]) >= stuck_after
            if due:
                entry["copied"] = True
            cutoff = now - self.KEEP_SECONDS
            self._entries = {k: v for k, v in self._entries.items() if float(v["first"]) >= cutoff}
            self._save()
            return due

    def first_failure(self, digest: str) -> float | None:
        entry = self._entries.get(digest)
        return float(entry["first"]) if entry else None

    def delivered(self, digest: str) -> None:
        with self._lock:
            if self._entries.pop(digest, None) is not None:
                self._save()

    def _save(self) -> None:
        atomic_write(self.path, json.dumps(self._entries) + "\n")
