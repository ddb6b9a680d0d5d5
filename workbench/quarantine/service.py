"""The quarantine as one object: store, index and journal kept in step."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.document import to_data, utcnow
from workbench.quarantine.headers import summarize_headers
from workbench.quarantine.index import (
    STATUSES,
    FailedInput,
    NewMessage,
    QuarantineIndex,
    Sighting,
    retry_busy,
)
from workbench.quarantine.journal import Journal
from workbench.quarantine.store import ObjectNotFound, ObjectStore
from workbench.workspace import Workspace, current_actor

INDEX_NAME = "index.sqlite"
EXPORT_PASSWORD = b"infected"


def stamp(when: dt.datetime | None = None) -> str:
    """Index timestamps: UTC, ISO 8601 with microseconds and a Z, so they sort as text."""
    when = when or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_from_bytes(sha256: str, data: bytes) -> NewMessage:
    summary = summarize_headers(data)
    return NewMessage(
        sha256=sha256, size=len(data), message_id=summary.message_id,
        from_addr=summary.from_addr, to_addrs=summary.to_addrs, subject=summary.subject,
        date=stamp(summary.date) if summary.date else None,
        attachment_names=summary.attachment_names, defects=summary.defects)


@dataclass
class FsckReport:
    """What ``quarantine fsck`` found; ``ok`` is False when anything needs repair."""

    objects: int = 0
    messages: int = 0
    corrupt_objects: list[str] = field(default_factory=list)
    missing_objects: list[str] = field(default_factory=list)
    unindexed_sightings: list[str] = field(default_factory=list)
    writable_objects: list[str] = field(default_factory=list)
    tmp_leftovers: int = 0
    failed_inputs: int = 0

    @property
    def ok(self) -> bool:
        return not (self.corrupt_objects or self.missing_objects or self.unindexed_sightings)


@dataclass
class ReindexReport:
    messages: int = 0
    sightings: int = 0
    status_changes: int = 0
    failed: int = 0
    missing_objects: list[str] = field(default_factory=list)


class Quarantine:
    """``quarantine/``: objects, index, journal, the incoming spool and failed inputs."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.store = ObjectStore(self.root).ensure()
        self.journal = Journal(self.root / "journal")
        self.incoming = self.root / "incoming"
        self.failed_dir = self.root / "failed"
        self._index: QuarantineIndex | None = None

    @classmethod
    def open(cls, workspace: Workspace) -> Quarantine:
        return cls(workspace.ensure().quarantine)

    @property
    def index(self) -> QuarantineIndex:
        if self._index is None:
            self._index = QuarantineIndex(self.root / INDEX_NAME)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------

    def resolve(self, ident: str) -> str:
        return self.index.resolve(ident)

    def raw(self, ident: str) -> bytes:
        return self.store.read(self.resolve(ident))

    # -- triage ---------------------------------------------------------------------

    def set_status(self, ident: str, status: str, *, note: str = "", actor: str | None = None) -> str:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        sha = self.resolve(ident)
        actor = actor or current_actor()
        at = stamp()
        self.journal.append([{"event": "status", "sha256": sha, "status": status, "note": note,
                              "actor": actor, "at": at}])
        self.index.apply_status(sha, status, actor=actor, at=at, note=note)
        return sha

    def tag(self, ident: str, add: Iterable[str] = (), remove: Iterable[str] = (), *,
            actor: str | None = None) -> list[str]:
        sha = self.resolve(ident)
        add, remove = [t for t in add if t.strip()], [t for t in remove if t.strip()]
        for tag in add:
            if "," in tag or len(tag) > 64:
                raise ValueError(f"tag {tag!r}: no commas, at most 64 characters")
        actor = actor or current_actor()
        at = stamp()
        self.journal.append([{"event": "tags", "sha256": sha, "add": add, "remove": remove,
                              "actor": actor, "at": at}])
        return self.index.apply_tags(sha, add, remove, actor=actor, at=at)

    def export_zip(self, idents: Sequence[str], out: Path, *, actor: str | None = None) -> list[str]:
        """Write the raw messages into an AES-256 zip, password ``infected`` (the field's habit)."""
        import pyzipper

        shas = [self.resolve(i) for i in idents]
        out = Path(out)
        tmp = out.with_name(out.name + ".part")
        with pyzipper.AESZipFile(tmp, "w", compression=pyzipper.ZIP_DEFLATED,
                                 encryption=pyzipper.WZ_AES) as zf:
            zf.setpassword(EXPORT_PASSWORD)
            for sha in shas:
                zf.writestr(f"{sha}.eml", self.store.read(sha))
        tmp.replace(out)
        actor = actor or current_actor()
        at = stamp()
        self.journal.append([{"event": "export", "sha256": sha, "actor": actor, "at": at,
                              "detail": str(out)} for sha in shas])
        for sha in shas:
            self.index.log("export", actor=actor, at=at, sha256=sha, detail=str(out))
        return shas

    # -- checks and recovery ----------------------------------------------------------

    def fsck(self, *, verify_hashes: bool = True) -> FsckReport:
        report = FsckReport()
        indexed = self.index.all_shas()
        report.messages = len(indexed)
        for sha in self.store.iter_objects():
            report.objects += 1
            path = self.store.path_for(sha)
            if path.stat().st_mode & 0o222:
                report.writable_objects.append(sha)
            if verify_hashes and not self.store.verify(sha):
                report.corrupt_objects.append(sha)
        for sha in sorted(indexed):
            if not self.store.exists(sha):
                report.missing_objects.append(sha)
        journaled = {e["sha256"] for e in self.journal.events() if e["event"] == "sighting"}
        report.unindexed_sightings = sorted(journaled - indexed)
        report.tmp_leftovers = self.store.clean_tmp()
        report.failed_inputs = len(self.index.failed(limit=1_000_000))
        return report

    def reindex(self) -> ReindexReport:
        """Rebuild the index from the objects and the journal, in one transaction."""
        report = ReindexReport()
        events = list(self.journal.events())
        messages: dict[str, NewMessage] = {}
        for event in events:
            if event["event"] != "sighting" or event["sha256"] in messages:
                continue
            sha = event["sha256"]
            try:
                data = self.store.read(sha)
            except ObjectNotFound:
                report.missing_objects.append(sha)
                continue
            messages[sha] = message_from_bytes(sha, data)
        index = self.index
        db = index.db
        with index.transaction():
            db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
            for table in ("messages", "sightings", "failed", "audit"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM messages_fts")     # whatever a VACUUM left out of step
        retry_busy(lambda: db.executescript(
            "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"))
        for event in events:
            kind, sha = event["event"], event.get("sha256", "")
            if kind == "sighting" and sha in messages:
                report.sightings += index.record(
                    [messages[sha]],
                    [Sighting(id=event["id"], sha256=sha, tower=event.get("tower", ""),
                              server=event.get("server", ""), reason=event.get("reason", ""),
                              seen_at=event["seen_at"], source=event.get("source", ""))],
                    actor=event.get("actor", "ingest"))
            elif kind == "status" and sha in messages:
                index.apply_status(sha, event["status"], actor=event.get("actor", ""),
                                   at=event["at"], note=event.get("note", ""))
                report.status_changes += 1
            elif kind == "tags" and sha in messages:
                index.apply_tags(sha, event.get("add", []), event.get("remove", []),
                                 actor=event.get("actor", ""), at=event["at"])
            elif kind == "failed":
                index.record_failed([FailedInput(**{k: event[k] for k in (
                    "id", "at", "reason", "size", "source", "stored_as", "tower", "server")})],
                    actor=event.get("actor", "ingest"))
                report.failed += 1
            elif kind == "export" and sha in messages:
                index.log("export", actor=event.get("actor", ""), at=event["at"], sha256=sha,
                          detail=event.get("detail", ""))
        report.messages = index.count()
        index.log("reindex", actor=current_actor(), at=stamp(),
                  detail=json.dumps(to_data(report)))
        return report

    def summary(self) -> dict[str, Any]:
        return {**self.index.stats(), "root": str(self.root), "at": to_data(utcnow())}
