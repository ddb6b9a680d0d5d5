"""Concurrent writers, a killed ingest, fsck and reindex: nothing accepted is ever lost."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pyzipper

from tests.support.quarantine_mail import indexed_shas, make_mail
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import EXPORT_PASSWORD, Quarantine

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def _ingest_worker(root: str, start: int, count: int) -> None:
    with Quarantine(Path(root)) as q:
        for n in range(start, start + count):
            ingest_bytes(q, make_mail(n), tower=f"t{start}", server="mx01", reason="stuck",
                         source=f"worker{start}")


def _triage_worker(root: str, shas: list[str], rounds: int) -> None:
    with Quarantine(Path(root)) as q:
        for r in range(rounds):
            for sha in shas:
                q.set_status(sha, "triaged" if r % 2 else "drafted", actor=f"analyst{os.getpid()}")
                q.tag(sha, [f"round{r}"], actor=f"analyst{os.getpid()}")


def test_concurrent_ingest_and_analysts_share_one_quarantine(quarantine):
    seed = [make_mail(10_000 + n) for n in range(5)]
    shas = [hashlib.sha256(m).hexdigest() for m in seed]
    for m in seed:
        ingest_bytes(quarantine, m, tower="t0", server="mx0", reason="stuck", source="seed")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ingest_worker, args=(str(quarantine.root), 1000 * i, 40))
             for i in range(1, 5)]
    procs += [ctx.Process(target=_triage_worker, args=(str(quarantine.root), shas, 6))
              for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert quarantine.index.count() == 5 + 4 * 40
    statuses = [a for a in quarantine.index.audit(limit=10_000) if a.action == "status"]
    assert len(statuses) == 2 * 6 * 5, "every analyst action is in the audit log"
    for sha in shas:
        assert set(quarantine.index.get(sha).tags) == {f"round{r}" for r in range(6)}
    report = quarantine.fsck()
    assert report.ok and report.objects == 165


def _indexed(root: Path) -> int:
    import sqlite3

    import psycopg

    try:
        return len(indexed_shas(root))
    except (sqlite3.Error, psycopg.Error):
        return 0


INGEST_CHILD = """
import sys
from pathlib import Path
from workbench.quarantine.ingest import ingest_spool
from workbench.quarantine.service import Quarantine
q = Quarantine(Path(sys.argv[1]))
ingest_spool(q)
"""


def test_killed_ingest_loses_nothing_and_leaves_no_half_object(quarantine):
    originals = {}
    for n in range(2500):
        raw = make_mail(n) + b"padding " * (n % 200)
        folder = quarantine.incoming / f"t{n % 5}" / "mx01"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{n:05d}.eml"
        path.write_bytes(raw)
        originals[path] = hashlib.sha256(raw).hexdigest()
    child = subprocess.Popen([sys.executable, "-c", INGEST_CHILD, str(quarantine.root)])
    # Kill as soon as the first batch is committed: four batches are still to come.
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None and _indexed(quarantine.root) == 0:
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    q = Quarantine(quarantine.root)
    indexed = q.index.all_shas()
    assert 0 < len(indexed) < 2500, "the kill landed mid-ingest"
    for path, sha in originals.items():
        assert sha in indexed or path.exists(), f"{path.name} was lost"
    report = q.fsck()
    assert not report.corrupt_objects and not report.missing_objects
    for sha in q.store.iter_objects():
        assert q.store.verify(sha)
    # Run the ingest again: everything arrives exactly once.
    subprocess.run([sys.executable, "-c", INGEST_CHILD, str(quarantine.root)], check=True)
    assert q.index.count() == 2500
    assert not any(p.exists() for p in originals)
    assert q.fsck().ok
    q.close()


def test_fsck_finds_corruption_and_missing_objects(quarantine):
    a = ingest_bytes(quarantine, make_mail(1), tower="t", server="s", reason="r", source="x").messages[0].sha256
    b = ingest_bytes(quarantine, make_mail(2), tower="t", server="s", reason="r", source="x").messages[0].sha256
    assert quarantine.fsck().ok
    path = quarantine.store.path_for(a)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    quarantine.store.remove(b)
    report = quarantine.fsck()
    assert not report.ok
    assert report.corrupt_objects == [a] and report.missing_objects == [b]
    assert report.writable_objects == [a]


def test_reindex_rebuilds_everything_the_index_held(quarantine, tmp_path):
    shas = []
    for n in range(6):
        s = ingest_bytes(quarantine, make_mail(n, attachment="a.zip" if n % 2 else None),
                         tower=f"t{n}", server="mx1", reason="unknown-virus", source="x")
        shas.append(s.messages[0].sha256)
    ingest_bytes(quarantine, make_mail(0), tower="t9", server="mx9", reason="stuck", source="y")
    ingest_bytes(quarantine, b"\x00junk", tower="t9", server="mx9", reason="stuck", source="y")
    quarantine.set_status(shas[0], "signed", note="rule MAL_X released")
    quarantine.tag(shas[1], ["emotet", "wave-3"])
    quarantine.tag(shas[1], remove=["wave-3"])
    before = [r for r in quarantine.index.list("", limit=100)]
    audit_before = [(a.action, a.sha256, a.note) for a in quarantine.index.audit(limit=1000)]
    quarantine.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(quarantine.root / "index.sqlite") + suffix).unlink(missing_ok=True)

    q = Quarantine(quarantine.root)
    report = q.reindex()
    assert report.messages == 6 and report.sightings == 7 and report.failed == 1
    after = q.index.list("", limit=100)
    assert after == before
    row = q.index.get(shas[0])
    assert row.status == "signed" and row.sightings == 2 and row.tower == "t9"
    assert q.index.get(shas[1]).tags == ["emotet"]
    audit_after = [(a.action, a.sha256, a.note) for a in q.index.audit(limit=1000)
                   if a.action != "reindex"]
    assert sorted(audit_after) == sorted(audit_before)
    assert len(q.index.failed()) == 1
    q.close()


def test_audit_log_is_append_only(quarantine, index_backend):
    import sqlite3

    import psycopg
    import pytest

    s = ingest_bytes(quarantine, make_mail(1), tower="t", server="s", reason="r", source="x")
    quarantine.set_status(s.messages[0].sha256, "triaged")
    refused = sqlite3.IntegrityError if index_backend == "sqlite" else psycopg.errors.RaiseException
    attempts = ["DELETE FROM audit", "UPDATE audit SET actor = 'mallory'"]
    if index_backend == "postgresql":
        attempts.append("TRUNCATE audit")
    for statement in attempts:
        with pytest.raises(refused, match="append-only"):
            quarantine.index.db.execute(statement)
    assert len(quarantine.index.audit()) == 2


def test_export_writes_an_aes_zip_with_the_fields_password(quarantine, tmp_path):
    raw = make_mail(3)
    sha = ingest_bytes(quarantine, raw, tower="t", server="s", reason="r", source="x").messages[0].sha256
    out = tmp_path / "out.zip"
    quarantine.export_zip([sha[:10]], out)
    with pyzipper.AESZipFile(out) as zf:
        zf.setpassword(EXPORT_PASSWORD)
        assert zf.read(f"{sha}.eml") == raw
        assert zf.getinfo(f"{sha}.eml").flag_bits & 0x1
    assert [a.action for a in quarantine.index.audit(sha)][-1] == "export"
