"""The engine over a quarantined message: tree, store, cache, catalog, progress callback, JSON."""

from __future__ import annotations

import json

from workbench.dissect.cache import DissectCache
from workbench.dissect.catalog import find_parents, iter_extracted, undissected
from workbench.dissect.engine import dissect_bytes, dissect_message
from workbench.dissect.formats.archive import ArchiveReport
from workbench.dissect.formats.message import MessageReport
from workbench.dissect.model import Artifact
from workbench.dissect.worker import WorkerPool
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
    from workbench.quarantine.store import ObjectStore

    store = ObjectStore(tmp_path / "q").ensure()
    data = build_zip([("e.com", EICAR)])
    with DissectCache(tmp_path / "c.sqlite") as cache:
        dissect_bytes(data, "e.zip", store=store, cache=cache, pool=pool)
    with DissectCache(tmp_path / "c.sqlite") as cache:
        again = dissect_bytes(data, "e.zip", store=store, cache=cache, pool=pool)
    assert again.root.cached and isinstance(again.root.children[0], Artifact)
    assert again.root.children[0].sha256 == EICAR_SHA
