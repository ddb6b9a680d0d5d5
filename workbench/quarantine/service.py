"""The quarantine as one object: store, index and journal kept in step."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.document import to_data, utcnow
from workbench.durable import LockBusy, atomic_output, crash_point, file_lock
from workbench.errors import Kind, WorkbenchError
from workbench.humanize import stamp
from workbench.quarantine.access import Access
from workbench.quarantine.headers import summarize_headers
from workbench.quarantine.host_name import host_name
from workbench.quarantine.index import (
    MESSAGE_COLUMNS,
    STATUSES,
    FailedInput,
    NewMessage,
    QuarantineIndex,
    Sighting,
    journal_audit_rows,
)
from workbench.quarantine.journal import Journal, TornLine
from workbench.quarantine.object_store import ObjectNotFound, ObjectStore
from workbench.settings_file import SETTINGS_NAME, read_setting
from workbench.workspace import Workspace, current_actor

if TYPE_CHECKING:
    from workbench.quarantine.pgindex import PostgresIndex

INDEX_NAME = "index.sqlite"
# quarantine/settings.toml: index = "postgresql://..." (SETTINGS_NAME, shared by every host)
INDEX_ENV = "WORKBENCH_INDEX"        # the index address for this process (``--index``)


class IndexSettingError(WorkbenchError, ValueError):
    """The index address in the settings or ``--index`` is not one the workbench knows."""

    kind = Kind.USAGE


def index_address(root: Path, explicit: str | None = None) -> str:
    """Where the quarantine's index lives: ``""`` for the SQLite file in ``root`` (the
    default), or a ``postgresql://`` address. Asked in order: ``explicit`` (``--index``),
    ``$WORKBENCH_INDEX``, ``index`` in ``quarantine/settings.toml``."""
    address = explicit or os.environ.get(INDEX_ENV, "")
    if not address:
        address = read_setting(Path(root) / SETTINGS_NAME, "index", IndexSettingError)
    address = address.strip()
    if address in ("", "sqlite") or address.startswith(("postgresql://", "postgres://")):
        return "" if address == "sqlite" else address
    raise IndexSettingError(f"index {address!r}: give sqlite (the default) or a "
                            f"postgresql://user@host/database address")
EXPORT_PASSWORD = b"infected"


def message_from_bytes(sha256: str, data: bytes) -> NewMessage:
    summary = summarize_headers(data)
    return NewMessage(
        sha256=sha256, size=len(data), message_id=summary.message_id,
        from_addr=summary.from_addr, to_addrs=summary.to_addrs, subject=summary.subject,
        date=stamp(summary.date) if summary.date else None,
        attachment_names=summary.attachment_names, defects=summary.defects)


class QuarantineUnavailable(WorkbenchError):
    """The quarantine cannot take this now (``full``: no space left); nothing was acknowledged.

    What was written before the failure is rolled back or harmless: a journal append
    is whole or absent, an object without a journal line is not referenced.
    """

    kind = Kind.CONFLICT

    def __init__(self, reason: str, *, full: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.full = full

    def describe(self) -> str:
        return f"{self.reason} (that batch was not taken; nothing of it is lost)"


class BadTag(WorkbenchError, ValueError):
    """A tag the quarantine does not take (a comma, longer than 64 characters)."""

    kind = Kind.USAGE


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn a full disk or an unwritable quarantine into :class:`QuarantineUnavailable`."""
    try:
        yield
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise QuarantineUnavailable(f"the quarantine cannot store mail now: {exc}", full=full) from exc
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "full" in text or "disk i/o" in text:
            raise QuarantineUnavailable(f"the quarantine index cannot be written: {exc}",
                                        full="full" in text) from exc
        raise
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")     # loaded only when the index is PostgreSQL
        if psycopg is not None and isinstance(exc, psycopg.OperationalError):
            full = isinstance(exc, psycopg.errors.DiskFull)
            raise QuarantineUnavailable(f"the quarantine index cannot be written: {exc}",
                                        full=full) from exc
        raise


@dataclass
class FsckReport:
    """What ``quarantine fsck`` found; ``ok`` is False when anything needs repair."""

    objects: int = 0
    messages: int = 0
    corrupt_objects: list[str] = field(default_factory=list)
    missing_objects: list[str] = field(default_factory=list)
    unindexed_sightings: list[str] = field(default_factory=list)
    unjournaled_sightings: list[str] = field(default_factory=list)   # indexed, not journaled
    torn_journal_lines: list[TornLine] = field(default_factory=list)
    writable_objects: list[str] = field(default_factory=list)
    loose_objects: list[str] = field(default_factory=list)   # mode is not access.json's
    tmp_leftovers: int = 0
    failed_inputs: int = 0
    repaired: list[str] = field(default_factory=list)         # what --repair did

    @property
    def ok(self) -> bool:
        return not (self.corrupt_objects or self.missing_objects or self.unindexed_sightings
                    or self.unjournaled_sightings or self.torn_journal_lines)


@dataclass
class ReindexReport:
    messages: int = 0
    sightings: int = 0
    status_changes: int = 0
    failed: int = 0
    missing_objects: list[str] = field(default_factory=list)
    caught_up: int = 0          # journal events written while the new index was being built


WRITE_LOCK = "index.lock"      # shared: writers (journal + index); exclusive: reindex, repair
WRITE_GATE = "index.gate"      # a turnstile, so a stream of writers cannot starve a reindex
REINDEX_LOCK = "reindex.lock"  # held for a whole reindex
SCRATCH_PREFIX = ".index-rebuild-"


class Quarantine:
    """``quarantine/``: objects, index, journal, the incoming spool and failed inputs."""

    def __init__(self, root: Path, *, index: str | None = None, host: str | None = None):
        """``host``: the name this process journals as (``host_name.py``; by default from
        the environment, the settings of the home ``root`` lies in, or the machine's name).
        A host name that cannot name a file raises ``HostNameError``."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_address = index_address(self.root, index)
        self.access = Access.load(self.root)
        self.store = ObjectStore(self.root, self.access).ensure()
        self.host = host_name(self.root.parent, host)
        self.journal = Journal(self.root / "journal", host=self.host, mode=self.access.file_mode)
        self.incoming = self.root / "incoming"
        self.failed_dir = self.root / "failed"
        self._index: QuarantineIndex | PostgresIndex | None = None

    @classmethod
    def open(cls, workspace: Workspace) -> Quarantine:
        return cls(workspace.ensure().quarantine, index=workspace.index,
                   host=workspace.host_name)     # the home's settings: quarantine's parent

    @property
    def index(self) -> QuarantineIndex | PostgresIndex:
        if self._index is None and self.index_address:
            from workbench.quarantine.pgindex import PostgresIndex
            self._index = PostgresIndex(self.index_address)
        if self._index is None:
            fresh = not (self.root / INDEX_NAME).exists()
            self._index = QuarantineIndex(self.root / INDEX_NAME)
            if fresh:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        self.access.path(Path(f"{self.root / INDEX_NAME}{suffix}"))
        return self._index

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) by every writer from its journal line to its index commit, so a
        reindex, which holds it exclusively, sees every journaled event it must keep."""
        with file_lock(self.root / WRITE_GATE):
            pass
        with file_lock(self.root / WRITE_LOCK, shared=True):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No writer between its journal line and its index commit while this is held."""
        with file_lock(self.root / WRITE_GATE), file_lock(self.root / WRITE_LOCK):
            yield

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
        with self.writing():
            self.journal.append([{"event": "status", "sha256": sha, "status": status,
                                  "note": note, "actor": actor, "at": at}])
            self.index.apply_status(sha, status, actor=actor, at=at, note=note)
        return sha

    def tag(self, ident: str, add: Iterable[str] = (), remove: Iterable[str] = (), *,
            actor: str | None = None) -> list[str]:
        sha = self.resolve(ident)
        add, remove = [t for t in add if t.strip()], [t for t in remove if t.strip()]
        for tag in add:
            if "," in tag or len(tag) > 64:
                raise BadTag(f"tag {tag!r}: no commas, at most 64 characters")
        actor = actor or current_actor()
        at = stamp()
        with self.writing():
            self.journal.append([{"event": "tags", "sha256": sha, "add": add, "remove": remove,
                                  "actor": actor, "at": at}])
            return self.index.apply_tags(sha, add, remove, actor=actor, at=at)

    def export_zip(self, idents: Sequence[str], out: Path, *, actor: str | None = None) -> list[str]:
        """Write the raw messages into an AES-256 zip, password ``infected`` (the field's habit)."""
        import pyzipper

        shas = [self.resolve(i) for i in idents]
        out = Path(out)
        # A fresh temp file beside OUT (never a name someone could plant a link at), private
        # like the objects it holds, renamed over OUT once complete.
        with atomic_output(out, mode=0o600) as fh, pyzipper.AESZipFile(
                fh, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as zf:
            zf.setpassword(EXPORT_PASSWORD)
            for sha in shas:
                zf.writestr(f"{sha}.eml", self.store.read(sha))
        actor = actor or current_actor()
        at = stamp()
        with self.writing():
            self.journal.append([{"event": "export", "sha256": sha, "actor": actor, "at": at,
                                  "detail": str(out)} for sha in shas])
            for sha in shas:
                self.index.log("export", actor=actor, at=at, sha256=sha, detail=str(out))
        return shas

    # -- checks and recovery ----------------------------------------------------------

    def fsck(self, *, verify_hashes: bool = True, repair: bool = False) -> FsckReport:
        """Check objects, index and journal against each other; ``repair`` fixes what it can
        without losing anything (torn journal lines, unjournaled and unindexed sightings,
        object modes)."""
        report = FsckReport()
        with self.exclusive():       # one consistent view of the index and the journal
            indexed_rows = self.index.sighting_rows()
            indexed = self.index.all_shas()
            events = list(self.journal.events())
            report.torn_journal_lines = self.journal.torn()
        report.messages = len(indexed)
        for sha in self.store.iter_objects():
            report.objects += 1
            mode = self.store.path_for(sha).stat().st_mode
            if mode & 0o222:
                report.writable_objects.append(sha)
            if self.store.loose(sha):
                report.loose_objects.append(sha)
            if verify_hashes and not self.store.verify(sha):
                report.corrupt_objects.append(sha)
        for sha in sorted(indexed):
            if not self.store.exists(sha):
                report.missing_objects.append(sha)
        journaled_ids = {e.get("id") for e in events if e["event"] == "sighting"}
        journaled = {e["sha256"] for e in events if e["event"] == "sighting"}
        report.unindexed_sightings = sorted(journaled - indexed)
        unjournaled = [r for r in indexed_rows if r["id"] not in journaled_ids]
        report.unjournaled_sightings = sorted({r["sha256"] for r in unjournaled})
        report.tmp_leftovers = self.store.clean_tmp()
        with contextlib.suppress(LockBusy), file_lock(self.root / REINDEX_LOCK, wait=False):
            report.tmp_leftovers += self._remove_scratch()
        report.failed_inputs = len(self.index.failed(limit=1_000_000))
        if repair:
            self._repair(report, unjournaled)
        return report

    def _repair(self, report: FsckReport, unjournaled: list[Any]) -> None:
        if report.torn_journal_lines:
            taken = self.journal.repair()
            report.repaired.append(f"took {taken} torn line(s) out of the journal "
                                   f"(kept in journal/torn-fragments.<host>.txt)")
            salvaged = {e.get("id") for e in self.journal.events() if e["event"] == "sighting"}
            unjournaled = [r for r in unjournaled if r["id"] not in salvaged]
        if unjournaled:
            # The index row is all that is left of these sightings: write them to the
            # journal so that a reindex keeps them.
            self.journal.append([{"event": "sighting", **dict(r),
                                  "actor": "fsck"} for r in unjournaled])
            report.repaired.append(f"journaled {len(unjournaled)} sighting(s) that only "
                                   f"the index had")
        for sha in report.loose_objects:
            self.store.tighten(sha)
        if report.loose_objects:
            report.repaired.append(f"set the mode of {len(report.loose_objects)} object(s) "
                                   f"to {self.access.object_mode:04o}")
        if report.unindexed_sightings or report.torn_journal_lines:
            rebuilt = self.reindex()
            report.repaired.append(f"reindexed: {rebuilt.messages} messages")

    def reindex(self) -> ReindexReport:
        """Rebuild the index from the objects and the journal while ingest goes on.

        The new index is built in a file beside the live one; then, holding the write
        lock (ingest and triage wait, readers do not), the journal lines written
        meanwhile are added and the live index's rows are replaced in one transaction.
        Readers see the old index or the new one. The audit log is only appended to:
        it is restored from the journal only when it is empty (a lost index).
        """
        with file_lock(self.root / REINDEX_LOCK):       # one reindex at a time
            self._remove_scratch()
            return self._reindex()

    def _remove_scratch(self) -> int:
        """Scratch indexes of a reindex that died (call holding the reindex lock)."""
        count = 0
        for leftover in self.root.glob(f"{SCRATCH_PREFIX}*"):
            leftover.unlink(missing_ok=True)
            count += 1
        return count

    def _reindex(self) -> ReindexReport:
        report = ReindexReport()
        messages: dict[str, NewMessage] = {}
        actors: dict[tuple[str, str], str] = {}
        fd, name = tempfile.mkstemp(prefix=SCRATCH_PREFIX, suffix=".sqlite", dir=self.root)
        os.close(fd)
        scratch = Path(name)
        try:
            rebuilt = QuarantineIndex(scratch)
            rebuilt.db.execute("PRAGMA synchronous=OFF")     # a scratch file: a crash drops it
            try:
                events, positions = self.journal.read()
                self._replay(rebuilt, events, messages, actors, report)
                crash_point("reindex.built")
                with self.exclusive():
                    more, positions = self.journal.read(positions)
                    report.caught_up = len(more)
                    self._replay(rebuilt, more, messages, actors, report)
                    report.messages = rebuilt.count()
                    rebuilt.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    rebuilt.close()
                    self._swap_in(scratch, actors, report)
                    crash_point("reindex.swapped")
            finally:
                rebuilt.close()
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{scratch}{suffix}").unlink(missing_ok=True)
        return report

    def _replay(self, index: QuarantineIndex, events: list[dict[str, Any]],
                messages: dict[str, NewMessage], actors: dict[tuple[str, str], str],
                report: ReindexReport) -> None:
        for event in events:
            kind, sha = event["event"], event.get("sha256", "")
            if kind == "sighting" and sha not in messages:
                try:
                    messages[sha] = message_from_bytes(sha, self.store.read(sha))
                except ObjectNotFound:
                    if sha not in report.missing_objects:
                        report.missing_objects.append(sha)
                    continue
            if kind == "sighting" and sha in messages:
                actor = event.get("actor", "ingest")
                actors["sighting", event["id"]] = actor
                report.sightings += index.record(
                    [messages[sha]],
                    [Sighting(id=event["id"], sha256=sha, tower=event.get("tower", ""),
                              server=event.get("server", ""), reason=event.get("reason", ""),
                              seen_at=event["seen_at"], source=event.get("source", ""))],
                    actor=actor)
            elif kind == "status" and sha in messages:
                index.apply_status(sha, event["status"], actor=event.get("actor", ""),
                                   at=event["at"], note=event.get("note", ""))
                report.status_changes += 1
            elif kind == "tags" and sha in messages:
                index.apply_tags(sha, event.get("add", []), event.get("remove", []),
                                 actor=event.get("actor", ""), at=event["at"])
            elif kind == "failed":
                actors["failed", event["id"]] = event.get("actor", "ingest")
                index.record_failed([FailedInput(**{k: event[k] for k in (
                    "id", "at", "reason", "size", "source", "stored_as", "tower", "server")})],
                    actor=event.get("actor", "ingest"))
                report.failed += 1
            elif kind == "export" and sha in messages:
                index.log("export", actor=event.get("actor", ""), at=event["at"], sha256=sha,
                          detail=event.get("detail", ""))

    def _swap_in(self, scratch: Path, actors: dict[tuple[str, str], str],
                 report: ReindexReport) -> None:
        """Replace the live index's rows by the rebuilt ones, in one transaction."""
        live = self.index
        if not isinstance(live, QuarantineIndex):
            live.replace_from(scratch, actors, json.dumps(to_data(report)), at=stamp(),
                              actor=current_actor())
            return
        db = live.db
        db.execute("ATTACH DATABASE ? AS rebuilt", (str(scratch),))
        try:
            with live.transaction():
                old_sightings = {r[0] for r in db.execute("SELECT id FROM main.sightings")}
                old_failed = {r[0] for r in db.execute("SELECT id FROM main.failed")}
                audit_empty = db.execute("SELECT count(*) FROM main.audit").fetchone()[0] == 0
                # what dissection found (search content) is not in the journal: kept by
                # message across the swap, which gives the messages new rowids
                db.execute("CREATE TEMP TABLE kept_content AS "
                           "SELECT sha256, body, names, strings FROM main.message_content")
                db.execute("CREATE TEMP TABLE kept_hashes AS SELECT * FROM main.artifact_hashes")
                for table in ("messages", "sightings", "failed"):
                    db.execute(f"DELETE FROM main.{table}")
                if live.text_index:
                    db.execute("DELETE FROM main.messages_fts")   # whatever a VACUUM left
                db.execute("DELETE FROM main.message_content")    # (the trigger's leftovers too)
                columns = ", ".join(MESSAGE_COLUMNS)
                db.execute(f"INSERT INTO main.messages ({columns}) "
                           f"SELECT {columns} FROM rebuilt.messages ORDER BY rowid")
                db.execute("INSERT INTO main.message_content (rowid, sha256, body, names, strings) "
                           "SELECT m.rowid, k.sha256, k.body, k.names, k.strings "
                           "FROM temp.kept_content k JOIN main.messages m ON m.sha256 = k.sha256")
                db.execute("INSERT OR IGNORE INTO main.artifact_hashes SELECT k.* FROM temp.kept_hashes k "
                           "WHERE k.message_sha256 IN (SELECT sha256 FROM main.messages)")
                db.execute("DROP TABLE temp.kept_content")
                db.execute("DROP TABLE temp.kept_hashes")
                db.execute("INSERT INTO main.sightings SELECT * FROM rebuilt.sightings")
                db.execute("INSERT INTO main.failed SELECT * FROM rebuilt.failed")
                if audit_empty:
                    db.execute("INSERT INTO main.audit (at, actor, action, sha256, detail, note) "
                               "SELECT at, actor, action, sha256, detail, note FROM rebuilt.audit "
                               "ORDER BY id")
                else:
                    # Keep the log as it is; add what only the journal knew.
                    db.executemany(
                        "INSERT INTO main.audit (at, actor, action, sha256, detail) VALUES (?,?,?,?,?)",
                        journal_audit_rows(db.execute("SELECT * FROM rebuilt.sightings").fetchall(),
                                           db.execute("SELECT * FROM rebuilt.failed").fetchall(),
                                           actors, old_sightings, old_failed))
                db.execute("INSERT INTO main.audit (at, actor, action, detail) VALUES (?,?,?,?)",
                           (stamp(), current_actor(), "reindex", json.dumps(to_data(report))))
        finally:
            db.execute("DETACH DATABASE rebuilt")

    def summary(self) -> dict[str, Any]:
        return {**self.index.stats(), "root": str(self.root), "at": to_data(utcnow())}
