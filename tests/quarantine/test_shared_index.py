"""Several ``workbench serve`` processes ingesting at once into one index and one store."""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from tests.support.processes import Serve, upload, workbench
from tests.support.quarantine_mail import indexed_shas, make_mail
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace


def test_two_serve_processes_ingest_into_one_quarantine(tmp_path, index_backend):
    """Two ingest processes (two hosts behind a load balancer, in production) take uploads
    at once, the same message often reaching both: every acknowledged copy is one sighting,
    each message one row and one object, and fsck and reindex agree with what they wrote."""
    workspace = Workspace(tmp_path / "home").ensure()
    UpdateRepository.for_workspace(workspace).init(RepositorySettings())
    token = TokenStore.for_workspace(workspace).add("t01")[1]
    servers = [Serve(workspace.home), Serve(workspace.home)]
    acknowledged: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def uploader(worker: int) -> None:
        with httpx.Client() as client:
            for n in range(60):
                # messages 0-29 go to both servers, from every uploader: duplicates race
                number = n % 30 if n % 2 == 0 else 1000 * (worker + 1) + n
                server = servers[(n + worker) % 2]
                response = upload(client, server.url, token, make_mail(number))
                with lock:
                    if response.status_code in (200, 201):
                        acknowledged[response.json()["sha256"]] += 1
                    else:
                        failures.append(f"{response.status_code} {response.text}")

    try:
        threads = [threading.Thread(target=uploader, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        for server in servers:
            server.stop()
    assert not failures
    assert sum(acknowledged.values()) == 240
    root = workspace.quarantine
    assert indexed_shas(root) == set(acknowledged)
    with Quarantine(root) as q:
        assert {sha: q.index.get(sha).sightings for sha in acknowledged} == dict(acknowledged)
        assert sum(a.action == "sighting" for a in q.index.audit(limit=10**6)) == 240
        assert sum(1 for _ in q.store.iter_objects()) == len(acknowledged)
        before = q.index.list("", limit=1000)
    workbench(workspace.home, "quarantine", "fsck")      # exits 0 only when all is well
    workbench(workspace.home, "quarantine", "reindex")
    with Quarantine(root) as q:
        assert q.index.list("", limit=1000) == before
