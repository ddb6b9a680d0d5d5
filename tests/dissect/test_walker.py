"""The engine over a quarantined message: tree, store, cache, catalog, progress callback, JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workbench.dissect.cache import DissectCache
from workbench.dissect.catalog import find_parents, iter_extracted, undissected
from workbench.dissect.formats.archive import ArchiveReport
from workbench.dissect.formats.message import MessageReport
from workbench.dissect.model import Artifact, Dissection, Limits
from workbench.dissect.walker import dissect_bytes, dissect_message
from workbench.dissect.worker import WorkerFailed, WorkerPool, run_task
from workbench.document import dumps
from workbench.quarantine.ingest import ingest_bytes
from workbench.samples.archives import build_zip
from workbench.samples.mail import EICAR, Attachment, Mail, build_message

EICAR_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def _ingest(quarantine, subject: str = "Invoice") -> str:  # type: ignore[no-untyped-def]
    raw = build_message(Mail("a@evil.example", "b@corp.example", subject, text="see attached",
                             attachments=[Attachment("invoice.zip", build_zip([("invoice.com", EICAR)]))]))
    ingest_bytes(quarantine, raw, tower="t1", server="s1", reason="test", source="test")
    return quarantine.index.list()[0].sha256 if subject == "Invoice" else next(
        r.sha256 for r in quarantine.index.list() if r.subject == subject)


def test_dissect_message_stores_children_caches_reports_and_catalogs(quarantine, workspace, pool: WorkerPool) -> None:  # type: ignore[no-untyped-def]
    sha = _ingest(quarantine)
    seen: list[str] = []
    first = dissect_message(quarantine, sha[:10], on_node=lambda n: seen.append(n.path), pool=pool)
    paths = [n.path for n in first.root.walk()]
    assert paths == ["message", "message/part 1", "message/part 2/invoice.zip",
                     "message/part 2/invoice.zip/invoice.com"]
    assert seen == paths                                 # parents before children, every node once
    assert first.message_sha256 == sha and first.status == "ok"
    eicar = first.root.find("message/part 2/invoice.zip/invoice.com")
    assert eicar is not None and eicar.sha256 == EICAR_SHA
    assert quarantine.store.read(EICAR_SHA) == EICAR     # extracted children join the store
    assert (workspace.state / "dissect.sqlite").exists()

    second = dissect_message(quarantine, sha, pool=pool)
    assert all(n.cached for n in second.root.walk() if n.dissector)
    assert isinstance(second.root.report, MessageReport) and second.root.report.subject == "Invoice"
    archive = second.root.find("message/part 2/invoice.zip")
    assert isinstance(archive.report, ArchiveReport) and archive.report.members[0].name == "invoice.com"
    assert [(n.path, n.sha256, n.status) for n in second.root.walk()] == \
        [(n.path, n.sha256, n.status) for n in first.root.walk()]
    fresh = dissect_message(quarantine, sha, use_cache=False, pool=pool)
    assert not any(n.cached for n in fresh.root.walk())

    parents = find_parents(workspace, EICAR_SHA)
    assert [(p.message_sha256, p.tree_path) for p in parents] == [(sha, "message/part 2/invoice.zip/invoice.com")]
    assert parents[0].path.read_bytes() == EICAR
    listed = list(iter_extracted(workspace))
    assert {a.sha256 for a in listed} >= {EICAR_SHA}
    assert undissected(workspace) == []


def test_same_attachment_in_two_messages_has_two_parents(quarantine, workspace, pool: WorkerPool) -> None:  # type: ignore[no-untyped-def]
    a = _ingest(quarantine, "Invoice")
    b = _ingest(quarantine, "Reminder")
    assert set(undissected(workspace)) == {a, b}
    for sha in (a, b):
        dissect_message(quarantine, sha, pool=pool)
    assert {p.message_sha256 for p in find_parents(workspace, EICAR_SHA)} == {a, b}
    assert len([x for x in iter_extracted(workspace) if x.sha256 == EICAR_SHA]) == 1
    assert len([x for x in iter_extracted(workspace, unique=False) if x.sha256 == EICAR_SHA]) == 2


def test_json_document_shape(pool: WorkerPool) -> None:
    result = dissect_bytes(build_zip([("a.txt", b"hello")]), "a.zip", pool=pool)
    doc = json.loads(dumps(result))
    assert set(doc) == {"root", "message_sha256", "nodes", "expanded_bytes", "elapsed_ms", "limits", "problems"}
    root = doc["root"]
    for key in ("path", "filename", "safe_name", "declared_type", "magic", "mime", "extension", "flags",
                "size", "md5", "sha1", "sha256", "ssdeep", "tlsh", "entropy", "entropy_windows", "status",
                "reason", "report", "children", "dissector", "dissector_version"):
        assert key in root
    assert root["report"]["format"] == "zip" and root["children"][0]["path"] == "a.zip/a.txt"


def test_cache_survives_a_new_process_view(tmp_path, pool: WorkerPool) -> None:  # type: ignore[no-untyped-def]
    from workbench.quarantine.object_store import ObjectStore

    store = ObjectStore(tmp_path / "q").ensure()
    data = build_zip([("e.com", EICAR)])
    with DissectCache(tmp_path / "c.sqlite") as cache:
        dissect_bytes(data, "e.zip", store=store, cache=cache, pool=pool)
    with DissectCache(tmp_path / "c.sqlite") as cache:
        again = dissect_bytes(data, "e.zip", store=store, cache=cache, pool=pool)
    assert again.root.cached and isinstance(again.root.children[0], Artifact)
    assert again.root.children[0].sha256 == EICAR_SHA


def _mixed_message() -> bytes:
    from workbench.samples.documents import build_pdf
    from workbench.samples.office import AUTOOPEN_SHELL_MACRO, build_vba_document

    return build_message(Mail("a@evil.example", "b@corp.example", "Mixed", text="password: infected",
                              attachments=[Attachment("invoice.zip", build_zip([("invoice.com", EICAR)])),
                                           Attachment("statement.pdf", build_pdf("S", javascript="app.alert(1)")),
                                           Attachment("order.doc", build_vba_document(AUTOOPEN_SHELL_MACRO))]))


def _facts(result: Dissection) -> list[tuple[object, ...]]:
    return [(n.path, n.sha256, n.md5, n.sha1, n.ssdeep, n.tlsh, n.entropy, tuple(n.entropy_windows), n.mime,
             n.magic, n.dissector, n.status, n.reason) for n in result.root.walk()]


def test_worker_lanes_give_what_one_process_gives(pool: WorkerPool) -> None:
    raw = _mixed_message()
    isolated = dissect_bytes(raw, as_message=True, pool=pool)
    inline = dissect_bytes(raw, as_message=True, limits=Limits(isolate=False))
    assert _facts(isolated) == _facts(inline)
    assert len(_facts(isolated)) >= 8 and all(n.ssdeep and n.md5 for n in isolated.root.walk())


def test_same_bytes_twice_are_fingerprinted_once(pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.dissect.walker as engine

    kinds: list[str] = []

    def counting(kind: str, *args: Any, **kwargs: Any) -> Any:
        kinds.append(kind)
        return run_task(kind, *args, **kwargs)

    monkeypatch.setattr(engine, "run_task", counting)
    zipped = build_zip([("invoice.com", EICAR)])
    raw = build_message(Mail("a@evil.example", "b@corp.example", "Twice", text="see attached",
                             attachments=[Attachment("a.zip", zipped), Attachment("b.zip", zipped)]))
    result = dissect_bytes(raw, as_message=True, pool=pool)
    shas = [n.sha256 for n in result.root.walk()]
    assert len(shas) == 6 and len(set(shas)) == 4           # message, body, the zip twice, EICAR twice
    assert kinds.count("fingerprint") == 4
    a, b = result.root.children[1], result.root.children[2]
    assert (a.ssdeep, a.entropy_windows) == (b.ssdeep, b.entropy_windows) and a.path != b.path


def test_a_failed_fingerprint_leaves_hashes_and_a_note(pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.dissect.walker as engine

    def no_fingerprints(kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "fingerprint":
            raise WorkerFailed("worker died by SIGSEGV (native crash)")
        return run_task(kind, *args, **kwargs)

    monkeypatch.setattr(engine, "run_task", no_fingerprints)
    result = dissect_bytes(build_zip([("invoice.com", EICAR)]), "e.zip", pool=pool)
    eicar = result.root.children[0]
    assert eicar.sha256 == EICAR_SHA and eicar.md5 == "44d88612fea8a8f36de82e1278abb02f"
    assert eicar.ssdeep == "" and any("fingerprint failed: worker died by SIGSEGV" in n for n in eicar.notes)
    assert result.root.dissector == "zip" and result.root.report.members[0].name == "invoice.com"


def test_a_dissector_that_dies_keeps_the_type_and_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.dissect.formats.pdf import PdfDissector
    from workbench.samples.documents import build_pdf

    def dies(self: PdfDissector, data: bytes, ctx: Any) -> Any:
        raise MemoryError

    # In-process, so the patched dissector runs; the engine takes the same path when a worker
    # dies after it sent the type (the stepwise protocol itself: tests/dissect/test_worker.py).
    monkeypatch.setattr(PdfDissector, "dissect", dies)
    root = dissect_bytes(build_pdf("S", javascript="app.alert(1)"), "s.pdf",
                         limits=Limits(isolate=False)).root
    assert root.status == "parser-error" and "pdf: out of memory" in root.reason and root.report is None
    assert root.dissector == "pdf" and root.mime == "application/pdf"
    assert root.ssdeep and root.md5 and root.entropy > 0


def test_identities_of_an_older_version_are_recomputed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from workbench.dissect.cache import IDENTITY_VERSION
    from workbench.dissect.identify import identify

    ident = identify(EICAR, fuzzy_max=1 << 20)
    with DissectCache(tmp_path / "c.sqlite") as cache:
        cache.put_identity(EICAR_SHA, ident)
        assert cache.get_identity(EICAR_SHA)["ssdeep"] == ident.ssdeep
        cache.db.execute("UPDATE identities SET data = ?", (dumps(ident, indent=None),))  # as version 1 wrote it
        assert cache.get_identity(EICAR_SHA) is None
    assert IDENTITY_VERSION >= 2


def test_answers_a_subverted_worker_could_send_are_failures_not_crashes(
        pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.dissect.walker as engine
    from workbench.dissect.walker import _type_answer

    with pytest.raises(WorkerFailed, match="unknown dissector"):
        _type_answer(("data", "application/zip", "os.system"))
    with pytest.raises(WorkerFailed, match="for a type"):
        _type_answer(["data", "application/zip", "zip"])
    assert _type_answer(("Zip archive data", "application/zip", "zip"))[2] is not None

    def lying(kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "fingerprint":
            return "not a fingerprint"
        if kind == "dissect":
            return {"children": [b"x"]}
        return run_task(kind, *args, **kwargs)

    monkeypatch.setattr(engine, "run_task", lying)
    result = dissect_bytes(build_zip([("invoice.com", EICAR)]), "e.zip", pool=pool)
    assert result.root.md5 and any("the worker answered a str" in n for n in result.root.notes)
    # a dissector run on its own (identity known from this run's memo) that answers garbage
    again = engine._Run(limits=Limits(), store=None, cache=None, on_node=None, pool=pool, lanes=None)  # type: ignore[arg-type]
    zip_dissector = engine.by_name("zip")
    outcome, children, _cached = again.run_dissector(zip_dissector, b"PK", "0" * 64, None)  # type: ignore[arg-type]
    assert outcome.status == "parser-error" and "answered a dict" in outcome.reason and children == []


def test_a_cached_report_is_the_same_typed_document_as_a_fresh_one(quarantine, pool: WorkerPool) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from workbench.samples.mail import received
    from workbench.samples.pe import build_pe

    when = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
    raw = build_message(Mail("a@evil.example", "b@corp.example", "PE", text="x", date=when,
                             headers=[received("mx.corp.example", "relay.evil.example", "192.0.2.1", when)],
                             attachments=[Attachment("a.exe", build_pe())]))
    ingest_bytes(quarantine, raw, tower="t1", server="s1", reason="test", source="test")
    sha = next(r.sha256 for r in quarantine.index.list() if r.subject == "PE")
    fresh = dissect_message(quarantine, sha, pool=pool)
    cached = dissect_message(quarantine, sha, pool=pool)
    assert cached.root.cached and not fresh.root.cached
    assert cached.root.report == fresh.root.report
    assert isinstance(cached.root.report.received[0].date, dt.datetime)
    assert cached.root.children[1].report == fresh.root.children[1].report
    assert isinstance(cached.root.children[1].report.compile_time, dt.datetime)


def test_cached_reports_are_compressed_and_old_plain_rows_read_the_same(quarantine, workspace, pool: WorkerPool) -> None:  # type: ignore[no-untyped-def]
    """Reports, child lists and identities are stored packed (a BLOB, much smaller than their
    JSON); rows an older workbench wrote as plain JSON text are read back to the same tree."""
    import sqlite3

    from workbench.dissect.cache import pack, unpack

    sha = _ingest(quarantine)
    fresh = dissect_message(quarantine, sha, pool=pool)
    db = sqlite3.connect(workspace.state / "dissect.sqlite")
    stored = db.execute("SELECT report, children FROM reports UNION ALL "
                        "SELECT data, '[]' FROM identities").fetchall()
    assert stored and all(isinstance(report, bytes) for report, _ in stored)
    packed = sum(len(report) for report, _ in stored)
    plain = sum(len(dumps(unpack(report), indent=None).encode()) for report, _ in stored)
    assert packed * 2 < plain                         # at least halved (about a quarter here)

    cached = dissect_message(quarantine, sha, pool=pool)
    assert all(n.cached for n in cached.root.walk() if n.dissector)

    # what a workbench before compression wrote: the same JSON, as TEXT
    for table, key, cols in (("reports", "key", ("report", "children")), ("identities", "sha256", ("data",))):
        for row in db.execute(f"SELECT {key}, {', '.join(cols)} FROM {table}").fetchall():
            values = [dumps(unpack(v), indent=None) for v in row[1:]]
            db.execute(f"UPDATE {table} SET {', '.join(c + ' = ?' for c in cols)} WHERE {key} = ?",
                       (*values, row[0]))
    db.commit()
    assert {type(v) for (v,) in db.execute("SELECT report FROM reports")} == {str}
    db.close()
    old = dissect_message(quarantine, sha, pool=pool)
    assert all(n.cached for n in old.root.walk() if n.dissector)

    def tree(d: Dissection) -> Any:
        data = json.loads(dumps(d))
        for node in [data["root"]]:
            stack = [node]
            while stack:
                n = stack.pop()
                n.pop("elapsed_ms", None)
                n.pop("cached", None)
                stack.extend(n.get("children", []))
        return data["root"]
    assert tree(old) == tree(cached) == tree(fresh)
    with DissectCache.open(workspace) as cache:
        assert cache.reports_of(sha)["message"]["subject"] == "Invoice"   # plain rows, the campaigns' reader
    assert unpack(pack({"a": [1, "é"]})) == {"a": [1, "é"]}
    with pytest.raises(ValueError, match="unknown way"):
        unpack(b"\x7fnot ours")


@pytest.mark.parametrize("jobs", [1, 2])
def test_catalog_all_keeps_what_it_dissected_when_a_message_fails(quarantine, workspace, jobs: int) -> None:  # type: ignore[no-untyped-def]
    """Catalog entries are committed in batches after the store's sync; a message that fails
    stops the run, and the entries of those dissected before it are still committed."""
    from workbench.dissect.catalog import catalog_all
    from workbench.quarantine.index import UnknownId

    good = [_ingest(quarantine, "Invoice"), _ingest(quarantine, "Reminder")]
    assert catalog_all(workspace, jobs=jobs, todo=[good[0]]) == 1
    with pytest.raises(UnknownId):
        catalog_all(workspace, jobs=1, todo=[good[1], "f" * 64])
    assert undissected(workspace) == []                 # both messages are in the catalog
    assert {p.message_sha256 for p in find_parents(workspace, EICAR_SHA)} == set(good)
