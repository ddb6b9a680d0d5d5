"""Several ``workbench serve`` processes ingesting at once into one index and one store."""

from __future__ import annotations

from tests.support.processes import Serve, upload_at_once, workbench
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
    try:
        # messages 0-29 go to both servers, from every uploader: duplicates race
        per_server, failures = upload_at_once([s.url for s in servers], token, make_mail,
                                              per_uploader=60, shared=30)
    finally:
        for server in servers:
            server.stop()
    acknowledged = per_server[0] + per_server[1]
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
