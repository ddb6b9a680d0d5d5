"""A full disk: the journal is whole or rolled back, uploads fail (507) instead of being
acknowledged, fsck finds and repairs torn lines and sightings only the index has.

The real full disk is a small tmpfs mounted for the test (root can; elsewhere those tests
skip); a fault-injecting write layer covers the short write everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.disks import fill, small_tmpfs
from tests.support.processes import Serve, upload, workbench
from tests.support.quarantine_mail import make_mail
from workbench.cli import main
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.quarantine import journal as journal_module
from workbench.quarantine.index import Sighting
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine, QuarantineUnavailable
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


@pytest.fixture
def home_cli(workspace, capsys):
    def run(*args: str) -> tuple[int, str]:
        code = main(["--home", str(workspace.home), *args])
        return code, capsys.readouterr().out
    return run


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "4m") as folder:
        yield folder


def grow(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def assert_journal_whole(q: Quarantine) -> None:
    for path in q.journal.files():
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path.name} ends in a fragment"
        for line in data.splitlines():
            json.loads(line)
    assert q.journal.torn() == []


def test_ingest_until_the_disk_is_full_acknowledges_only_what_is_kept(small_disk):
    root = small_disk / "quarantine"
    acknowledged: list[str] = []
    with Quarantine(root) as q:
        for n in range(10_000):
            raw = make_mail(n) + os.urandom(24_000).hex().encode()[:40_000]
            try:
                summary = ingest_bytes(q, raw, tower="t", server="s", reason="stuck", source="x")
            except QuarantineUnavailable as exc:
                assert exc.full
                break
            acknowledged.append(summary.messages[0].sha256)
        else:
            pytest.fail("the disk never filled")
        assert len(acknowledged) > 5
        assert_journal_whole(q)
        assert set(acknowledged) <= q.index.all_shas()
        report = q.fsck()
        assert not report.unjournaled_sightings and not report.torn_journal_lines
        assert not report.corrupt_objects and not report.missing_objects
        grow(small_disk, "16m")
        report = q.fsck(repair=True)
        assert q.fsck().ok
        assert set(acknowledged) <= q.index.all_shas()


def test_a_journal_line_that_does_not_fit_is_rolled_back(small_disk):
    root = small_disk / "quarantine"
    with Quarantine(root) as q:
        sha = ingest_bytes(q, make_mail(1), tower="t", server="s", reason="r",
                           source="x").messages[0].sha256
        path = q.journal.files()[0]
        size = path.stat().st_size
        filler = fill(small_disk)
        with pytest.raises(OSError) as caught:
            q.set_status(sha, "triaged", note="n" * 50_000)
        assert caught.value.errno == errno.ENOSPC
        assert path.stat().st_size == size, "the part of the line that fit was not rolled back"
        filler.unlink()
        q.set_status(sha, "signed", note="after the clean-up")
        assert_journal_whole(q)
        assert q.index.get(sha).status == "signed"
        assert q.fsck().ok


def test_serve_answers_507_on_a_full_disk_and_acknowledges_nothing_lost(tmp_path):
    with small_tmpfs(tmp_path / "disk", "64m") as disk:
        workspace = Workspace(disk / "home").ensure()
        UpdateRepository.for_workspace(workspace).init(RepositorySettings())
        token = TokenStore.for_workspace(workspace).add("t01")[1]
        serve = Serve(workspace.home)
        acknowledged = []
        try:
            with httpx.Client() as client:
                for n in range(3):
                    response = upload(client, serve.url, token, make_mail(n))
                    assert response.status_code == 201
                    acknowledged.append(response.json()["sha256"])
                filler = fill(disk)
                refused = upload(client, serve.url, token, make_mail(100) + b"x" * 20_000)
                assert refused.status_code == 507, refused.text
                filler.unlink()
                response = upload(client, serve.url, token, make_mail(101))
                assert response.status_code == 201
                acknowledged.append(response.json()["sha256"])
                assert httpx.get(f"{serve.url}/v1/health").status_code == 200
        finally:
            serve.stop()
        workbench(workspace.home, "quarantine", "fsck", "--repair")
        workbench(workspace.home, "quarantine", "fsck")
        with Quarantine(workspace.quarantine) as q:
            assert set(acknowledged) <= q.index.all_shas()
            assert_journal_whole(q)


# -- the same faults without a real full disk -----------------------------------------------


def test_a_short_write_then_enospc_rolls_the_journal_back(quarantine, monkeypatch):
    sha = ingest_bytes(quarantine, make_mail(1), tower="t", server="s", reason="r",
                       source="x").messages[0].sha256
    path = quarantine.journal.files()[0]
    size = path.stat().st_size
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:      # what a nearly full disk does
        if len(data) > 10:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", full_disk)
    with pytest.raises(OSError):
        quarantine.set_status(sha, "triaged", note="this line does not fit")
    monkeypatch.undo()
    assert path.stat().st_size == size
    quarantine.set_status(sha, "signed")
    assert_journal_whole(quarantine)
    assert quarantine.fsck().ok


def test_an_upload_that_cannot_be_journaled_is_not_acknowledged(quarantine, monkeypatch):
    def no_space(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", no_space)
    with pytest.raises(QuarantineUnavailable) as caught:
        ingest_bytes(quarantine, make_mail(7), tower="t", server="s", reason="r", source="x")
    monkeypatch.undo()
    assert caught.value.full
    assert quarantine.index.count() == 0, "indexed without a journal line"


def test_a_fragment_left_by_a_dead_writer_is_set_aside_not_glued_onto(quarantine):
    ingest_bytes(quarantine, make_mail(1), tower="t", server="s", reason="r", source="x")
    path = quarantine.journal.files()[0]
    with open(path, "ab") as fh:
        fh.write(b'{"event": "sighting", "sha2')          # a writer died mid-line
    second = ingest_bytes(quarantine, make_mail(2), tower="t", server="s", reason="r",
                          source="x").messages[0].sha256
    assert_journal_whole(quarantine)
    assert b'"sha2' in quarantine.journal.torn_fragments.read_bytes()
    assert second in {e["sha256"] for e in quarantine.journal.events()}


def test_fsck_reports_and_repairs_torn_lines_and_unjournaled_sightings(quarantine, home_cli):
    first = make_mail(1)
    ingest_bytes(quarantine, first, tower="t", server="s", reason="r", source="x")
    path = quarantine.journal.files()[0]
    # What the old journal did on a full disk: a fragment, then the next line glued on.
    glued = ingest_bytes(quarantine, make_mail(2), tower="t", server="s", reason="r", source="x")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b'{"event": "sighting", "id": "to' + lines[1])
    # And a sighting the index has but the journal lost.
    lost = make_mail(3)
    lost_sha = quarantine.store.put_bytes(lost).sha256
    from workbench.quarantine.service import message_from_bytes
    quarantine.index.record([message_from_bytes(lost_sha, lost)],
                            [Sighting(id="lost-1", sha256=lost_sha, tower="t", server="s",
                                      reason="r", seen_at="2026-12-01T00:00:00.000000Z")])
    report = quarantine.fsck()
    assert not report.ok
    assert [t.line for t in report.torn_journal_lines] == [2]
    # The glued line's sighting is indexed but, unparseable, lost to the journal too.
    assert report.unjournaled_sightings == sorted([lost_sha, glued.messages[0].sha256])
    code, out = home_cli("quarantine", "fsck")
    assert code == 1 and "TORN" in out and "UNJOURNALED" in out
    code, out = home_cli("quarantine", "fsck", "--repair")
    assert code == 0, out
    assert "repaired" in out
    assert quarantine.fsck().ok
    # Nothing was lost: a reindex (which trusts the journal) keeps all three.
    events = [e for e in quarantine.journal.events() if e["event"] == "sighting"]
    assert len(events) == 3, "the glued event was salvaged, not journaled twice"
    quarantine.reindex()
    assert quarantine.index.all_shas() == {hashlib.sha256(first).hexdigest(),
                                           glued.messages[0].sha256, lost_sha}
