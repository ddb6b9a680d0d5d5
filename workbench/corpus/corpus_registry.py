"""The corpora registry: named, labelled sets of files kept in the object store."""

from __future__ import annotations

import builtins
import hashlib
import json
import marshal
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from workbench.corpus.database import open_database, transaction
from workbench.document import iso, utcnow
from workbench.errors import Kind, WorkbenchError
from workbench.workspace import Workspace

if TYPE_CHECKING:    # the gram index needs numpy: imported when a corpus is added, not to test
    from workbench.corpus.gramindex import GramIndex, IndexWriter
    from workbench.quarantine.object_store import ObjectStore

REGISTRY_NAME = "corpora.sqlite"
LABELS = ("malicious", "clean")
QUARANTINE_CORPUS = "quarantine"
QUARANTINE_LABEL = "quarantine"        # unverified: hits are listed, neither TP nor FP
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_IN_MEMORY_LIMIT = 64 * 1024 * 1024   # larger files are hashed and stored in two streaming passes
_CHUNK = 1 << 20
_BATCH = 200
_INDEX_THREADS = 1            # gram filters computed beside the hashing and storing

def _stamping_trigger(name: str, event: str, corpora: tuple[str, ...]) -> str:
    """A trigger that moves the registry's counter and stamps each of ``corpora`` with it."""
    stamps = "".join(
        f"    UPDATE corpus_changes SET generation = (SELECT generation FROM registry_state) "
        f"WHERE corpus = {corpus};\n"
        f"    INSERT INTO corpus_changes SELECT {corpus}, generation FROM registry_state\n"
        f"        WHERE NOT EXISTS (SELECT 1 FROM corpus_changes WHERE corpus = {corpus});\n"
        for corpus in corpora)
    return (f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} BEGIN\n"
            f"    UPDATE registry_state SET generation = generation + 1;\n{stamps}END;\n")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS corpora (
    name TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    corpus TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL DEFAULT 0,
    goodware INTEGER NOT NULL DEFAULT 0,
    added TEXT NOT NULL,
    PRIMARY KEY (corpus, sha256, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_path ON files(corpus, path);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE INDEX IF NOT EXISTS files_md5 ON files(md5);
CREATE INDEX IF NOT EXISTS files_sha1 ON files(sha1);

-- Change tracking, kept by triggers so no writer can forget it: every change to a
-- corpus's files or label moves a global counter, and the corpus remembers the value.
-- A saved test result or member list is valid while its corpora's values are unchanged;
-- ``instance`` (random, per registry file) keeps a recreated registry from repeating them.
-- (No INSERT OR REPLACE in the triggers: the firing statement's own conflict policy,
-- e.g. ``INSERT OR IGNORE INTO files``, would replace it, and the value would stay.)
CREATE TABLE IF NOT EXISTS registry_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance TEXT NOT NULL,
    generation INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_state(id, instance, generation)
    VALUES (1, lower(hex(randomblob(16))), 0);
CREATE TABLE IF NOT EXISTS corpus_changes (
    corpus TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
) WITHOUT ROWID;
-- Triggers of the first version, which used INSERT OR REPLACE (see above): replaced.
DROP TRIGGER IF EXISTS files_inserted;
DROP TRIGGER IF EXISTS files_deleted;
DROP TRIGGER IF EXISTS files_changed;
DROP TRIGGER IF EXISTS corpora_inserted;
DROP TRIGGER IF EXISTS corpora_deleted;
DROP TRIGGER IF EXISTS corpora_relabelled;
-- Each corpus's distinct contents as ``members`` lists them, kept for the state they were read at.
CREATE TABLE IF NOT EXISTS member_lists (
    corpus TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    members BLOB NOT NULL
) WITHOUT ROWID;
""" + "".join(
    _stamping_trigger(f"stamp_{table}_{event.split()[0].lower()}", f"{event} ON {table}", corpora)
    for table, event, corpora in (
        ("files", "INSERT", ("NEW.corpus",)),
        ("files", "DELETE", ("OLD.corpus",)),
        ("files", "UPDATE OF corpus, sha256, path, size", ("OLD.corpus", "NEW.corpus")),
        ("corpora", "INSERT", ("NEW.name",)),
        ("corpora", "DELETE", ("OLD.name",)),
        ("corpora", "UPDATE OF name, label", ("OLD.name", "NEW.name"))))
_TRIGGERS_VERSION = "t2"       # in every state: values stamped by the first triggers are never reused


class CorpusError(WorkbenchError, ValueError):
    """A corpus request that cannot be done (bad name or label, label conflict)."""

    kind = Kind.USAGE


class UnknownCorpus(WorkbenchError, KeyError):
    """No corpus of that name."""

    kind = Kind.NOT_FOUND

    def describe(self) -> str:
        return f"no corpus named {self.message!r} (see 'workbench corpus list')"


@dataclass(frozen=True)
class CorpusFile:
    """One member file: its content in the store and the name it had where it came from."""

    sha256: str
    path_in_store: Path
    original_name: str
    size: int


@dataclass
class CorpusInfo:
    name: str
    label: str
    files: int                   # distinct contents
    bytes: int                   # of the distinct contents
    members: int                 # paths, duplicates included
    sources: list[str] = field(default_factory=list)
    created: str = ""
    updated: str = ""
    builtin: bool = False


@dataclass
class AddError:
    path: str
    reason: str


@dataclass
class AddReport:
    """What ``corpus add`` did; re-adding a folder only picks up what is new."""

    name: str
    label: str
    source: str
    seen: int = 0                # regular files walked
    added: int = 0               # new memberships (path, content)
    unchanged: int = 0           # already members with the same size and mtime
    new_objects: int = 0         # contents the store did not hold before
    bytes_added: int = 0         # of the distinct contents new to this corpus (as `corpus list` counts)
    files_total: int = 0         # the corpus after the add: distinct contents and their bytes,
    bytes_total: int = 0         # the same figures `corpus list` shows
    goodware_files: int = 0      # files fed to the goodware string database
    indexed: int = 0             # contents added to the gram index (state/gram-index)
    notes: list[str] = field(default_factory=list)
    errors: list[AddError] = field(default_factory=list)


class MemberList(NamedTuple):
    """A corpus's distinct contents as parallel tuples, ordered as :meth:`CorpusRegistry.members`.

    A test run reads every file of every corpus it tests; one object per file cost
    more than the rest of a re-test.
    """

    shas: tuple[str, ...]
    names: tuple[str, ...]             # the first original name, by name
    sizes: tuple[int, ...]
    paths: tuple[str, ...] | None      # None: each is the object store's ``path_for(sha)``


@dataclass(frozen=True)
class HashMatch:
    """A file a ``hash`` metadata value names: which corpus holds it and as what."""

    sha256: str
    corpus: str
    label: str
    original_name: str


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise CorpusError(f"corpus name {name!r}: letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit, at most 64 characters")
    if name == QUARANTINE_CORPUS:
        raise CorpusError(f"{QUARANTINE_CORPUS!r} is the built-in corpus of quarantined artifacts")
    return name


class CorpusRegistry:
    """``state/corpora.sqlite``: which stored contents belong to which named corpus.

    The contents live in the quarantine's object store (content-addressed, so a file
    in several corpora, or also quarantined, is kept once). The built-in corpus
    ``quarantine`` is every artifact extracted from quarantined mail; it is not
    stored here but read from the dissect catalog on demand.
    """

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.path = workspace.state / REGISTRY_NAME
        self._db: sqlite3.Connection | None = None
        self._store: ObjectStore | None = None

    @property
    def store(self) -> ObjectStore:
        """The quarantine's object store (imported on first use: a re-test rarely reads it)."""
        if self._store is None:
            from workbench.quarantine.object_store import ObjectStore

            self._store = ObjectStore(self.workspace.quarantine)
        return self._store

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_database(self.path, _SCHEMA)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> CorpusRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)

    # -- adding -----------------------------------------------------------------------

    def add(self, name: str, path: Path | str, label: str, *,
            progress: Callable[[AddReport], None] | None = None) -> AddReport:
        """Copy every regular file under ``path`` into the store and record it in ``name``.

        Idempotent: a file already recorded under the same relative path with the
        same size and mtime is not read again. Unreadable files are listed in
        ``errors`` and skipped; the rest are added. A corpus keeps its label: adding
        with another label raises :class:`CorpusError`.
        """
        validate_name(name)
        if label not in LABELS:
            raise CorpusError(f"label {label!r}: one of {', '.join(LABELS)}")
        root = Path(path).expanduser().resolve()
        if not root.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        self.store.ensure()
        report = AddReport(name=name, label=label, source=str(root))
        now = iso(utcnow())
        with self._transaction() as db:
            row = db.execute("SELECT label, sources FROM corpora WHERE name=?", (name,)).fetchone()
            if row is not None and row["label"] != label:
                raise CorpusError(f"corpus {name!r} is labelled {row['label']}; "
                                  f"remove it first to relabel it {label}", kind=Kind.CONFLICT)
            sources = json.loads(row["sources"]) if row else []
            if str(root) not in sources:
                sources.append(str(root))
            if row is None:
                db.execute("INSERT INTO corpora(name, label, sources, created, updated) "
                           "VALUES (?,?,?,?,?)", (name, label, json.dumps(sources), now, now))
            else:
                db.execute("UPDATE corpora SET sources=?, updated=? WHERE name=?",
                           (json.dumps(sources), now, name))

        known = {(r["path"], r["size"], r["mtime_ns"]) for r in self.db.execute(
            "SELECT path, size, mtime_ns FROM files WHERE corpus=?", (name,))}
        before = self.info(name).bytes
        from workbench.corpus.gramindex import INDEX_DIR, GramIndex

        index = GramIndex(self.workspace.state / INDEX_DIR)
        try:
            self._add_files(name, root, now, known, index, report, progress)
        finally:
            index.close()
        after = self.info(name)
        # one content under two paths is one file of the corpus: count it once, as `list` does
        report.files_total, report.bytes_total = after.files, after.bytes
        report.bytes_added = after.bytes - before
        if label == "clean":
            self._feed_goodware(name, report)
        with self._transaction() as db:
            db.execute("UPDATE corpora SET updated=? WHERE name=?", (iso(utcnow()), name))
        return report

    def _add_files(self, name: str, root: Path, now: str, known: set[tuple[str, int, int]],
                   index: GramIndex, report: AddReport,
                   progress: Callable[[AddReport], None] | None) -> None:
        pending: list[tuple[object, ...]] = []
        threads = index.writer(threads=_INDEX_THREADS)
        writer: IndexWriter | None = threads
        try:
            for file_path, rel in _walk(root, report):
                report.seen += 1
                try:
                    st = file_path.stat()
                    if (rel, st.st_size, st.st_mtime_ns) in known:
                        report.unchanged += 1
                        continue
                    sha, md5, sha1, size, created, data = self._store_file(file_path, st.st_size)
                except OSError as exc:
                    report.errors.append(AddError(rel, exc.strerror or str(exc)))
                    continue
                writer = self._index(writer, sha, data, report)
                report.new_objects += int(created)
                pending.append((name, sha, rel, size, md5, sha1, st.st_mtime_ns, now))
                if len(pending) >= _BATCH:
                    self._record(pending, report)
                    if progress is not None:
                        progress(report)
            self._record(pending, report)
            if writer is not None:
                self._index_flush(writer, report)
        finally:
            threads.close()

    def _index(self, writer: IndexWriter | None, sha: str, data: bytes | None,
               report: AddReport) -> IndexWriter | None:
        """Add a new content's grams to the index (from the bytes already read, when small).

        The index is only a speed-up: if it cannot be written, the files are indexed
        when a test first needs them, and the add goes on.
        """
        if writer is None:
            return None
        try:
            if data is not None:
                writer.add_bytes(sha, data)
            else:
                writer.add_file(sha, self.store.path_for(sha))
        except OSError as exc:
            report.notes.append(f"gram index not updated ({exc}); files are indexed when first needed")
            return None
        return writer

    def _index_flush(self, writer: IndexWriter, report: AddReport) -> None:
        try:
            writer.flush()
        except OSError as exc:
            report.notes.append(f"gram index not updated ({exc}); files are indexed when first needed")
        report.indexed = writer.added

    def _store_file(self, file_path: Path, size: int
                    ) -> tuple[str, str, str, int, bool, bytes | None]:
        """Store a file; returns sha256, md5, sha1, size, whether it is new, and its bytes if small."""
        md5, sha1 = hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False)
        data: bytes | None = None
        if size <= _IN_MEMORY_LIMIT:
            data = file_path.read_bytes()
            md5.update(data)
            sha1.update(data)
            put = self.store.put_bytes(data, durable=False)
        else:
            with open(file_path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    md5.update(chunk)
                    sha1.update(chunk)
            with open(file_path, "rb") as fh:
                put = self.store.put_stream(fh, durable=False)
        return put.sha256, md5.hexdigest(), sha1.hexdigest(), put.size, put.created, data

    def _record(self, pending: list[tuple[object, ...]], report: AddReport) -> None:
        if not pending:
            return
        type(self.store).sync()      # objects durable before the registry points at them
        with self._transaction() as db:
            for row in pending:
                cur = db.execute(
                    "INSERT OR IGNORE INTO files(corpus, sha256, path, size, md5, sha1, mtime_ns, "
                    "added) VALUES (?,?,?,?,?,?,?,?)", row)
                if cur.rowcount:
                    report.added += 1
                else:       # same content, same path, new mtime: remember the mtime
                    db.execute("UPDATE files SET mtime_ns=? WHERE corpus=? AND sha256=? AND path=?",
                               (row[6], row[0], row[1], row[2]))
                    report.unchanged += 1
        pending.clear()

    def _feed_goodware(self, name: str, report: AddReport) -> None:
        """Every file of a clean corpus goes into the goodware string database, once."""
        try:
            from workbench.rules.goodware import GoodwareDB
        except ModuleNotFoundError as exc:
            if exc.name != "workbench.rules.goodware":
                raise
            report.notes.append("goodware string database not available yet; "
                                "files will be fed to it on the next add")
            return
        shas = [r["sha256"] for r in self.db.execute(
            "SELECT DISTINCT sha256 FROM files WHERE corpus=? AND goodware=0", (name,))]
        if not shas:
            return
        goodware = GoodwareDB.open_for(self.workspace)
        assert goodware is not None
        with goodware:
            for start in range(0, len(shas), _BATCH):
                chunk = shas[start:start + _BATCH]
                goodware.add_files((sha, self.store.read(sha)) for sha in chunk)
                with self._transaction() as db:
                    db.executemany("UPDATE files SET goodware=1 WHERE corpus=? AND sha256=?",
                                   [(name, sha) for sha in chunk])
                report.goodware_files += len(chunk)

    # -- reading ----------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        if name == QUARANTINE_CORPUS:
            return True
        return self.db.execute("SELECT 1 FROM corpora WHERE name=?", (name,)).fetchone() is not None

    def label(self, name: str) -> str:
        if name == QUARANTINE_CORPUS:
            return QUARANTINE_LABEL
        row = self.db.execute("SELECT label FROM corpora WHERE name=?", (name,)).fetchone()
        if row is None:
            raise UnknownCorpus(name)
        return str(row["label"])

    def names(self) -> list[str]:
        return [r["name"] for r in self.db.execute("SELECT name FROM corpora ORDER BY name")]

    def list(self, *, include_builtin: bool = True) -> builtins.list[CorpusInfo]:
        """Every registered corpus (and the built-in ``quarantine`` one), by name."""
        infos = [self.info(name) for name in self.names()]
        if include_builtin:
            infos.append(self.info(QUARANTINE_CORPUS))
        return infos

    def info(self, name: str) -> CorpusInfo:
        if name == QUARANTINE_CORPUS:
            files = self.files(name)
            return CorpusInfo(name=name, label=QUARANTINE_LABEL, files=len(files),
                              bytes=sum(f.size for f in files), members=len(files),
                              sources=[str(self.workspace.quarantine)], builtin=True)
        row = self.db.execute("SELECT * FROM corpora WHERE name=?", (name,)).fetchone()
        if row is None:
            raise UnknownCorpus(name)
        counts = self.db.execute(
            "SELECT COUNT(*) AS members, COUNT(DISTINCT sha256) AS files FROM files WHERE corpus=?",
            (name,)).fetchone()
        size = self.db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT sha256, size FROM files "
            "WHERE corpus=?)", (name,)).fetchone()[0]
        return CorpusInfo(name=name, label=row["label"], files=counts["files"], bytes=int(size),
                          members=counts["members"], sources=json.loads(row["sources"]),
                          created=row["created"], updated=row["updated"])

    def files(self, name: str) -> builtins.list[CorpusFile]:
        """The distinct contents of a corpus (first path by name for duplicates), by name."""
        if name == QUARANTINE_CORPUS:
            return self._quarantine_files()
        if not self.exists(name):
            raise UnknownCorpus(name)
        out: dict[str, CorpusFile] = {}
        for r in self.db.execute("SELECT sha256, path, size FROM files WHERE corpus=? "
                                 "ORDER BY path, sha256", (name,)):
            if r["sha256"] not in out:
                out[r["sha256"]] = CorpusFile(r["sha256"], self.store.path_for(r["sha256"]),
                                              r["path"], r["size"])
        return list(out.values())

    def members(self, name: str) -> builtins.list[tuple[str, str, str, int]]:
        """``files`` as plain (sha256, path in store, original name, size) tuples, built fast."""
        _, listed = self.snapshot(name)
        paths = listed.paths if listed.paths is not None else self.store_paths(listed.shas)
        return list(zip(listed.shas, paths, listed.names, listed.sizes, strict=True))

    def store_paths(self, shas: Iterable[str]) -> builtins.list[str]:
        """Where the object store keeps each content (``ObjectStore.path_for``, as text)."""
        objects = str(self.store.objects)
        return [f"{objects}/{sha[:2]}/{sha[2:4]}/{sha}" for sha in shas]

    def state(self, name: str) -> str:
        """A value that changes whenever the corpus's files or label do (registered corpora).

        ``files_inserted`` and its sibling triggers keep it, so every writer does.
        """
        row = self.db.execute(
            "SELECT s.instance, c.generation FROM registry_state s "
            "LEFT JOIN corpus_changes c ON c.corpus = ?", (name,)).fetchone()
        return f"{row[0]}:{_TRIGGERS_VERSION}:{row[1] or 0}"

    def snapshot(self, name: str) -> tuple[str, MemberList]:
        """The corpus's distinct contents and the :meth:`state` they belong to.

        A registered corpus's list is kept in ``member_lists`` for its state, so a run
        that finds the corpus unchanged decodes one row instead of grouping its files.
        The quarantine's state is a digest of its list (read from the catalog each time).
        """
        if name == QUARANTINE_CORPUS:
            files = self._quarantine_files()
            listed = MemberList(tuple(f.sha256 for f in files), tuple(f.original_name for f in files),
                                tuple(f.size for f in files), tuple(str(f.path_in_store) for f in files))
            digest = hashlib.sha256()
            for sha, original, size in zip(listed.shas, listed.names, listed.sizes, strict=True):
                digest.update(f"{sha}\0{original}\0{size}\0".encode("utf-8", "surrogateescape"))
            return f"quarantine:{digest.hexdigest()}", listed
        cursor = self.db.cursor()
        cursor.row_factory = None             # plain tuples: sqlite3.Row costs a fifth here
        cursor.execute("BEGIN")               # the state and the files read at one moment
        try:
            if cursor.execute("SELECT 1 FROM corpora WHERE name=?", (name,)).fetchone() is None:
                raise UnknownCorpus(name)
            state = self.state(name)
            row = cursor.execute("SELECT members FROM member_lists WHERE corpus=? AND state=?",
                                 (name, state)).fetchone()
            kept = _decode_members(row[0]) if row is not None else None
            if kept is not None:
                return state, kept
            rows = cursor.execute("SELECT sha256, MIN(path), size FROM files WHERE corpus=? "
                                  "GROUP BY sha256 ORDER BY MIN(path), sha256", (name,)).fetchall()
        finally:
            cursor.execute("COMMIT")
        listed = MemberList(tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                            tuple(r[2] for r in rows), None)
        try:                                  # only a speed-up: a busy or read-only registry skips it
            with self._transaction() as db:
                db.execute("INSERT OR REPLACE INTO member_lists(corpus, state, members) VALUES (?,?,?)",
                           (name, state, marshal.dumps(listed[:3])))
        except sqlite3.Error:
            pass
        return state, listed

    def _quarantine_files(self) -> builtins.list[CorpusFile]:
        out: dict[str, CorpusFile] = {}
        for art in extracted_artifacts(self.workspace):
            name = art.filename or art.sha256
            known = out.get(art.sha256)
            if known is None or name < known.original_name:     # first name, as for folders
                out[art.sha256] = CorpusFile(art.sha256, Path(art.path), name, int(art.size))
        return sorted(out.values(), key=lambda f: (f.original_name, f.sha256))

    def find_hashes(self, hashes: Iterable[str], corpora: Iterable[str], *,
                    quarantine: Mapping[str, str] | None = None) -> dict[str, builtins.list[HashMatch]]:
        """Resolve md5, sha1 or sha256 hex values to the files of ``corpora`` that have them.

        ``quarantine`` (sha256 -> name) is the built-in corpus as the caller already read it.
        """
        wanted = {h.strip().lower() for h in hashes if h.strip()}
        names = list(corpora)
        found: dict[str, builtins.list[HashMatch]] = {h: [] for h in wanted}
        registered = [n for n in names if n != QUARANTINE_CORPUS]
        columns = {32: "md5", 40: "sha1", 64: "sha256"}
        for value in sorted(wanted):
            column = columns.get(len(value))
            if column is None or not registered:
                continue
            marks = ",".join("?" * len(registered))
            for r in self.db.execute(
                    f"SELECT f.sha256, f.corpus, c.label, MIN(f.path) AS path FROM files f "
                    f"JOIN corpora c ON c.name = f.corpus WHERE f.{column}=? "
                    f"AND f.corpus IN ({marks}) GROUP BY f.sha256, f.corpus ORDER BY f.corpus",
                    (value, *registered)):
                found[value].append(HashMatch(r["sha256"], r["corpus"], r["label"], r["path"]))
        if QUARANTINE_CORPUS in names:
            if quarantine is None:
                quarantine = {f.sha256: f.original_name for f in self._quarantine_files()}
            for value in wanted:
                if value in quarantine:
                    found[value].append(HashMatch(value, QUARANTINE_CORPUS, QUARANTINE_LABEL,
                                                  quarantine[value]))
        return found

    # -- removing ---------------------------------------------------------------------

    def remove(self, name: str) -> int:
        """Forget a corpus; returns how many memberships went. Stored objects stay."""
        validate_name(name)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM corpora WHERE name=?", (name,)).fetchone() is None:
                raise UnknownCorpus(name)
            count = db.execute("DELETE FROM files WHERE corpus=?", (name,)).rowcount
            db.execute("DELETE FROM corpora WHERE name=?", (name,))
        return int(count)


def extracted_artifacts(workspace: Workspace, *, unique: bool = True) -> Iterable[Any]:
    """The dissect catalog's ``ExtractedArtifact`` rows (sha256, filename, mime, size,
    message_sha256, path); none while dissection is not installed. ``unique=False``
    gives every message holding an artifact, not only the first."""
    try:
        from workbench.dissect.catalog import iter_extracted
    except ModuleNotFoundError as exc:
        if exc.name != "workbench.dissect.catalog":
            raise
        return []
    return iter_extracted(workspace, unique=unique)


def _decode_members(blob: bytes) -> MemberList | None:
    """A kept member list, or None when it is not one (written by another Python, damaged)."""
    try:
        shas, names, sizes = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if not (isinstance(shas, tuple) and isinstance(names, tuple) and isinstance(sizes, tuple)
            and len(shas) == len(names) == len(sizes)):
        return None
    return MemberList(shas, names, sizes, None)


def _walk(root: Path, report: AddReport) -> Iterator[tuple[Path, str]]:
    """Regular files under ``root`` in sorted order, with their path relative to it.

    Symlinked folders are not followed (no loops); symlinked files are. FIFOs,
    sockets and devices are listed as errors rather than read (a FIFO would block).
    """
    if not root.is_dir():
        yield from _regular(root, root.name, report)
        return
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for entry in sorted(names):
            full = Path(folder) / entry
            yield from _regular(full, full.relative_to(root).as_posix(), report)


def _regular(path: Path, rel: str, report: AddReport) -> Iterator[tuple[Path, str]]:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        report.errors.append(AddError(rel, exc.strerror or str(exc)))
        return
    if stat.S_ISREG(mode):
        yield path, rel
    else:
        report.errors.append(AddError(rel, "not a regular file"))
