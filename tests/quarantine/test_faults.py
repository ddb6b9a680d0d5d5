"""Fault injection: real processes killed at each durable step, reindex under live uploads.

Every test asserts the promise of docs/quarantine.md: an acknowledged input is kept and
indexed, and fsck is clean or repairs it. ``WORKBENCH_CRASH_AT=step`` makes a real
``workbench`` process SIGKILL itself at that step (``workbench.durable.crash_point``).
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.processes import Serve, upload, workbench
from tests.support.quarantine_mail import indexed_shas, make_mail
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def fill_spool(root: Path, numbers: range) -> dict[Path, str]:
    files = {}
    for n in numbers:
        folder = root / "incoming" / f"t{n % 3}" / "mx01"
        folder.mkdir(parents=True, exist_ok=True)
        raw = make_mail(n)
        path = folder / f"{n:05d}.eml"
        path.write_bytes(raw)
        files[path] = hashlib.sha256(raw).hexdigest()
    return files


# -- ingest -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [40, 600])
@pytest.mark.parametrize("step", ["ingest.objects", "ingest.journaled", "ingest.indexed"])
def test_ingest_killed_at_each_durable_step_loses_nothing(tmp_path, step, count):
    """40 files: one batch prepared in the ingest process; 600: two batches prepared by
    worker processes, the second while the first commits. The workers die with the killed
    ingest (were one left, it would hold the spool lock and the second ingest would hang)."""
    home = tmp_path / "home"
    root = home / "quarantine"
    files = fill_spool(root, range(count))
    workbench(home, "quarantine", "ingest", str(root / "incoming"), crash_at=step)
    with Quarantine(root) as q:
        indexed = q.index.all_shas()
        # Nothing is lost: each message is indexed or its spool file is still there.
        for path, sha in files.items():
            assert sha in indexed or path.exists(), f"{step}: {path.name} lost"
        report = q.fsck(repair=True)
        assert not report.corrupt_objects and not report.missing_objects
        assert q.fsck().ok, f"{step}: fsck --repair left problems"
    # Running the ingest again brings in the rest, each message once.
    workbench(home, "quarantine", "ingest", str(root / "incoming"))
    with Quarantine(root) as q:
        assert q.index.all_shas() == set(files.values())
        assert q.index.stats()["sightings"] == len(files)
        assert q.fsck().ok
    assert not any(p.exists() for p in files)


# -- the server: uploads acknowledged before a kill, uploads during a reindex -------------


@pytest.fixture
def serving_home(tmp_path) -> Iterator[tuple[Path, str]]:
    workspace = Workspace(tmp_path / "home").ensure()
    UpdateRepository.for_workspace(workspace).init(RepositorySettings())
    token = TokenStore.for_workspace(workspace).add("t01")[1]
    yield workspace.home, token


def test_serve_killed_after_journaling_keeps_every_acknowledged_upload(serving_home):
    home, token = serving_home
    serve = Serve(home, crash_at="ingest.journaled@6")
    acknowledged: list[str] = []
    try:
        with httpx.Client() as client:
            for n in range(10):
                try:
                    response = upload(client, serve.url, token, make_mail(n))
                except httpx.HTTPError:
                    break                           # the server died mid-request: no receipt
                assert response.status_code == 201
                acknowledged.append(response.json()["sha256"])
        assert serve.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        serve.stop()
    assert len(acknowledged) == 5
    root = home / "quarantine"
    assert set(acknowledged) <= indexed_shas(root)
    # The sixth was journaled, never acknowledged: fsck finds it and --repair indexes it.
    done = workbench(home, "quarantine", "fsck", check=False)
    assert done.returncode == 1 and "UNINDEXED" in done.stdout
    workbench(home, "quarantine", "fsck", "--repair")
    assert len(indexed_shas(root)) == 6
    workbench(home, "quarantine", "fsck")


def test_reindex_beside_a_running_serve_keeps_every_acknowledged_upload(serving_home):
    home, token = serving_home
    root = home / "quarantine"
    serve = Serve(home)
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def uploader(start: int) -> None:
        with httpx.Client() as client:
            n = start
            while not stop.is_set() and n < start + 400:
                response = upload(client, serve.url, token, make_mail(n))
                if response.status_code in (200, 201):
                    acknowledged.append(response.json()["sha256"])
                else:
                    failures.append(f"{response.status_code} {response.text}")
                n += 1

    counts: list[int] = []

    def reader() -> None:                      # a reader never sees a half-built index
        while not stop.is_set():
            try:
                counts.append(len(indexed_shas(root)))
            except (sqlite3.Error, psycopg.Error):
                pass
            time.sleep(0.02)

    try:
        with httpx.Client() as client:
            for n in range(5):
                assert upload(client, serve.url, token, make_mail(50_000 + n)).status_code == 201
        workbench(home, "quarantine", "reindex")
        with Quarantine(root) as q:
            early = [(a.id, a.action, a.sha256) for a in q.index.audit(limit=1000)]
        threads = [threading.Thread(target=uploader, args=(s,)) for s in (0, 10_000)]
        threads.append(threading.Thread(target=reader))
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 300
            while len(acknowledged) < 5 and not failures and time.monotonic() < deadline:
                time.sleep(0.05)
            for _ in range(3):
                workbench(home, "quarantine", "reindex")
            while len(acknowledged) < 40 and not failures and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=300)
    finally:
        serve.stop()
    assert not failures
    assert counts == sorted(counts), "a reader saw the quarantine shrink during a reindex"
    assert set(acknowledged) <= indexed_shas(root), "an acknowledged upload is not indexed"
    workbench(home, "quarantine", "fsck")
    with Quarantine(root) as q:
        audit = q.index.audit(limit=100_000)
        kept = {(a.id, a.action, a.sha256) for a in audit}
        assert set(early) <= kept, "the reindex rewrote earlier audit rows"
        assert sum(a.action == "reindex" for a in audit) == 4
        assert sum(a.action == "sighting" for a in audit) == 5 + len(acknowledged)
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException),
                           match="append-only"):
            q.index.db.execute("DELETE FROM audit")
    assert not list(root.glob(".index-rebuild-*"))


# -- reindex killed -----------------------------------------------------------------------


@pytest.mark.parametrize("step", ["reindex.built", "reindex.swapped"])
def test_reindex_killed_leaves_a_whole_index(tmp_path, step):
    home = tmp_path / "home"
    root = home / "quarantine"
    fill_spool(root, range(30))
    workbench(home, "quarantine", "ingest", str(root / "incoming"))
    with Quarantine(root) as q:
        sha = sorted(q.index.all_shas())[0]
        q.set_status(sha, "triaged", note="looked at it")
        before = q.index.list("", limit=100)
        audit_before = q.index.audit(limit=1000)
    workbench(home, "quarantine", "reindex", crash_at=step)
    assert list(root.glob(".index-rebuild-*")), "the killed reindex left its scratch index"
    with Quarantine(root) as q:
        assert q.index.list("", limit=100) == before
        assert q.index.audit(limit=1000)[-len(audit_before):] == audit_before
        report = q.fsck()
        assert report.ok
    assert not list(root.glob(".index-rebuild-*")), "fsck removes a dead reindex's scratch index"
    workbench(home, "quarantine", "reindex")
    with Quarantine(root) as q:
        assert q.index.list("", limit=100) == before
