"""Journals per ingest host: each host appends to files of its own, every reader merges them.

Several ingest hosts behind a load balancer share one quarantine folder (NFS, CephFS),
where a lock across hosts cannot be trusted. Each host writes only its own
``journal/<YYYY-MM>.<host>.jsonl``; reindex, fsck and repair read all of them in one order.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import Serve, upload_at_once, workbench
from tests.support.quarantine_mail import make_mail
from workbench.cli import main
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.exitcodes import E_USAGE
from workbench.humanize import stamp
from workbench.quarantine import journal as journal_module
from workbench.quarantine.host_name import HOST_ENV, HostNameError, host_name, safe_host_name
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.journal import ORDER_KEYS, file_host
from workbench.quarantine.service import Quarantine
from workbench.workspace import Workspace

_lost = itertools.count(1)


@pytest.fixture
def lost_index(index_backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[Path], str | None]]:
    """Lose the quarantine's index (the SQLite file deleted, or a new empty PostgreSQL
    schema); returns the address to open the quarantine with afterwards."""
    schemas: list[str] = []

    def lose(root: Path) -> str | None:
        if index_backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{root / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
            return None
        import psycopg

        server = request.getfixturevalue("postgres_server")
        schema = f"lost{next(_lost)}"
        with psycopg.connect(server.address("workbench"), autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        return str(server.address("workbench", search_path=f"{schema},public"))

    yield lose
    if schemas:
        import psycopg

        server = request.getfixturevalue("postgres_server")
        with psycopg.connect(server.address("workbench"), autocommit=True) as db:
            for schema in schemas:
                db.execute(f"DROP SCHEMA {schema} CASCADE")


def index_state(q: Quarantine) -> dict[str, Any]:
    """What the index holds that the journal must rebuild: messages (with status, tags and
    sightings), every sighting, failed inputs, and the audit log of each message in order."""
    rows = q.index.list("", limit=100_000)
    shas = sorted(r.sha256 for r in rows)
    return {
        "messages": sorted((r.sha256, r.first_seen, r.last_seen, r.sightings, r.tower, r.server,
                            r.reason, r.status, tuple(r.tags)) for r in rows),
        "sightings": sorted(tuple(r) for r in q.index.sighting_rows()),
        "failed": sorted((f.id, f.reason, f.source) for f in q.index.failed(limit=100_000)),
        "audit": {sha: [(a.at, a.actor, a.action, a.detail, a.note)
                        for a in q.index.audit(sha, limit=100_000)] for sha in shas},
    }


def journal_lines(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Each journal file's events, by file name, in file order."""
    return {p.name: [json.loads(line) for line in p.read_bytes().splitlines()]
            for p in sorted((root / "journal").glob("*.jsonl"))}


# -- the host name ------------------------------------------------------------------------


def test_the_host_name_is_asked_in_order_and_made_safe_for_a_file_name(tmp_path, monkeypatch):
    import socket

    monkeypatch.delenv(HOST_ENV, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    assert host_name(home) == safe_host_name(socket.gethostname())
    (home / "settings.toml").write_text('host_name = "Ingest 2.example/corp"\n')
    assert host_name(home) == "ingest-2.example-corp"
    monkeypatch.setenv(HOST_ENV, "from-env")
    assert host_name(home) == "from-env"
    assert host_name(home, "Flag") == "flag"
    assert safe_host_name("../..") == "" and safe_host_name(".hidden-") == "hidden"
    assert len(safe_host_name("x" * 300)) == 64
    with pytest.raises(HostNameError):
        host_name(home, "///")
    (home / "settings.toml").write_text("host_name = [\n")
    monkeypatch.delenv(HOST_ENV)
    with pytest.raises(HostNameError):
        host_name(home)


def test_serve_refuses_a_host_name_that_cannot_name_a_file(tmp_path, capsys):
    home = Workspace(tmp_path / "home").ensure().home
    assert main(["--home", str(home), "serve", "--port", "1", "--host-name", "../"]) == E_USAGE
    assert "host name" in capsys.readouterr().err


# -- two real ingest hosts ----------------------------------------------------------------


@pytest.mark.slow
def test_two_serve_hosts_write_two_journals_and_reindex_gives_the_same_index(
        tmp_path, monkeypatch, lost_index):
    """Two `workbench serve` processes with their own host names take uploads at once (the
    same messages racing to both), analysts on two more hosts triage the same messages:
    each host's lines are in its own file only, in its own order, and a reindex (and a
    rebuild of a lost index) gives back the index they built."""
    workspace = Workspace(tmp_path / "home").ensure()
    UpdateRepository.for_workspace(workspace).init(RepositorySettings())
    token = TokenStore.for_workspace(workspace).add("t01")[1]
    servers = {name: Serve(workspace.home, host_name=name) for name in ("ingest-a", "ingest-b")}
    urls = [s.url for s in servers.values()]
    try:
        acknowledged, failures = upload_at_once(urls, token, make_mail, per_uploader=40, shared=20)
    finally:
        for server in servers.values():
            server.stop()
    assert not failures
    shared = sorted(set(acknowledged[0]) & set(acknowledged[1]))[:3]
    assert shared, "no message reached both hosts"
    # triage from two analysts' hosts, alternating on the same messages
    for step, (analyst, status) in enumerate([("desk-z", "triaged"), ("desk-a", "drafted"),
                                              ("desk-z", "signed")]):
        monkeypatch.setenv(HOST_ENV, analyst)
        for sha in shared:
            workbench(workspace.home, "quarantine", "set-status", sha, status)
            workbench(workspace.home, "quarantine", "tag", sha, f"+step{step}")
    monkeypatch.delenv(HOST_ENV)

    root = workspace.quarantine
    files = journal_lines(root)
    month = next(iter(files)).split(".")[0]
    assert set(files) == {f"{month}.{h}.jsonl" for h in ("ingest-a", "ingest-b", "desk-a", "desk-z")}
    raw = {name: set((root / "journal" / name).read_bytes().splitlines()) for name in files}
    for one, other in itertools.combinations(raw, 2):
        assert not raw[one] & raw[other], f"a line of {one} is also in {other}"
    for name, events in files.items():
        assert {e["host"] for e in events} == {file_host(root / "journal" / name)}
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), name
        assert [e["written_at"] for e in events] == sorted(e["written_at"] for e in events)
    for which, host in enumerate(("ingest-a", "ingest-b")):
        theirs = Counter(e["sha256"] for e in files[f"{month}.{host}.jsonl"] if e["event"] == "sighting")
        assert theirs == acknowledged[which], f"{host}'s acknowledged uploads are in its journal"

    with Quarantine(root) as q:
        before = index_state(q)
    assert all(status == "signed" and tags == ("step0", "step1", "step2")
               for sha, *_, status, tags in before["messages"] if sha in shared)
    workbench(workspace.home, "quarantine", "fsck")
    workbench(workspace.home, "quarantine", "reindex")
    with Quarantine(root) as q:
        after = index_state(q)
        reindex_rows = [a for a in q.index.audit(limit=100) if a.action == "reindex"]
    assert after == before and len(reindex_rows) == 1

    address = lost_index(root)
    with Quarantine(root, index=address) as q:
        report = q.reindex()
        assert report.messages == len(before["messages"])
        rebuilt = index_state(q)
    # a lost index's audit log is restored from the journal: the same rows, in the same
    # order for each message (sightings of two hosts in the journal's merged order)
    assert {k: v for k, v in rebuilt.items() if k != "audit"} == \
           {k: v for k, v in before.items() if k != "audit"}
    for sha in shared:
        assert [r for r in rebuilt["audit"][sha] if r[2] != "sighting"] == \
               [r for r in before["audit"][sha] if r[2] != "sighting"]
    assert {sha: sorted(rows) for sha, rows in rebuilt["audit"].items()} == \
           {sha: sorted(rows) for sha, rows in before["audit"].items()}


def _ingest_as(root: str, host: str, start: int, count: int) -> None:
    with Quarantine(Path(root), host=host) as q:
        for n in range(start, start + count):
            ingest_bytes(q, make_mail(n), tower="t", server=host, reason="r", source=f"p{start}")
            q.tag(hashlib.sha256(make_mail(n)).hexdigest(), [f"p{start}"])


@pytest.mark.slow
def test_processes_of_one_host_share_its_file_and_its_sequence(quarantine):
    """Two processes on each of two hosts at once: one file per host, each host's
    sequence without gap or repeat however its processes interleave."""
    import multiprocessing

    root = quarantine.root
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ingest_as, args=(str(root), host, start, 25))
             for host, start in (("alpha", 0), ("alpha", 100), ("zulu", 200), ("zulu", 300))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    files = journal_lines(root)
    assert sorted(file_host(root / "journal" / n) for n in files) == ["alpha", "zulu"]
    for name, events in files.items():
        assert [e["seq"] for e in events] == list(range(1, 101)), name
        assert {e["source"] for e in events if e["event"] == "sighting"} == \
               ({"p0", "p100"} if "alpha" in name else {"p200", "p300"})
    assert quarantine.index.count() == 100
    assert quarantine.fsck().ok


# -- the order of replay ------------------------------------------------------------------


def test_a_status_set_on_one_host_then_on_another_replays_to_the_second(quarantine, lost_index):
    """Host names sort against the order of events (zulu first, then alpha), so a replay by
    file name would end on the wrong status and tags."""
    root = quarantine.root
    quarantine.close()
    zulu, alpha = Quarantine(root, host="zulu"), Quarantine(root, host="alpha")
    sha = ingest_bytes(zulu, make_mail(1), tower="t", server="s", reason="r",
                       source="x").messages[0].sha256
    ingest_bytes(alpha, make_mail(1), tower="t2", server="s2", reason="r", source="y")
    zulu.set_status(sha, "triaged", note="zulu first")
    zulu.tag(sha, ["wave-1", "emotet"])
    alpha.set_status(sha, "signed", note="alpha after")
    alpha.tag(sha, remove=["wave-1"])
    zulu.tag(sha, ["wave-2"])
    alpha.set_status(sha, "drafted", note="alpha last")
    before = index_state(zulu)
    assert zulu.index.get(sha).status == "drafted"
    assert zulu.index.get(sha).tags == ["emotet", "wave-2"]
    zulu.close()
    alpha.close()
    names = sorted(p.name for p in (root / "journal").glob("*.jsonl"))
    assert [file_host(root / "journal" / n) for n in names] == ["alpha", "zulu"]

    with Quarantine(root, host="zulu") as q:
        q.reindex()
        assert index_state(q) == before
    address = lost_index(root)
    with Quarantine(root, index=address, host="alpha") as q:
        q.reindex()
        after = index_state(q)
    assert after == before, "the rebuilt index replayed the hosts' events out of order"


def test_a_host_whose_clock_is_ahead_does_not_reorder_what_follows_it(quarantine, lost_index,
                                                                      monkeypatch):
    """Host alpha's clock runs a year ahead. zulu sets a status after alpha's (it saw alpha's
    line, acknowledged): zulu's line is written after alpha's newest line, so the replay
    keeps the order in which they happened, not the order the clocks say."""
    root = quarantine.root
    quarantine.close()
    zulu, alpha = Quarantine(root, host="zulu"), Quarantine(root, host="alpha")
    sha = ingest_bytes(zulu, make_mail(1), tower="t", server="s", reason="r",
                       source="x").messages[0].sha256
    ahead = "2099-01-01T00:00:00.000000Z"
    # alpha's clock (the clock is not a part of the workbench; the journal reads it here)
    monkeypatch.setattr(journal_module, "stamp",
                        lambda when=None: ahead if when is None else stamp(when))
    alpha.set_status(sha, "triaged", note="alpha, clock ahead")
    monkeypatch.undo()
    zulu.set_status(sha, "signed", note="zulu, after")
    events = [e for e in zulu.journal.events() if e["event"] == "status"]
    assert [e["host"] for e in events] == ["alpha", "zulu"]
    assert events[1]["written_at"] > ahead
    zulu.close()
    alpha.close()
    with Quarantine(root, index=lost_index(root), host="zulu") as q:
        q.reindex()
        assert q.index.get(sha).status == "signed"


def test_the_merge_order_is_total_and_the_same_for_every_reader(quarantine):
    root = quarantine.root
    quarantine.close()
    hosts = [Quarantine(root, host=h) for h in ("h1", "h2", "h3")]
    shas = [ingest_bytes(q, make_mail(n), tower="t", server="s", reason="r",
                         source="x").messages[0].sha256 for n, q in enumerate(hosts)]
    for round_ in range(4):
        for q in hosts:
            q.tag(shas[round_ % 3], [f"{q.host}-{round_}"])
    merged = list(hosts[0].journal.events())
    assert merged == list(hosts[2].journal.events())
    keys = [(e["written_at"], e["host"], e["seq"]) for e in merged]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # the incremental read a reindex catches up with gives the same events
    first, positions = hosts[1].journal.read()
    hosts[1].tag(shas[0], ["late"])
    more, _ = hosts[1].journal.read(positions)
    assert first == merged and [e["add"] for e in more] == [["late"]]
    for q in hosts:
        q.close()


# -- the journal of older versions --------------------------------------------------------


def test_a_single_file_journal_of_older_versions_still_reindexes(quarantine, lost_index):
    """Older versions wrote one ``journal/<YYYY-MM>.jsonl`` for every host, lines without
    host, seq or written_at. Such a quarantine rebuilds the same index, and appends made
    after the upgrade (per host) replay after the old file's lines."""
    q = quarantine
    shas = []
    for n in range(4):
        shas.append(ingest_bytes(q, make_mail(n), tower=f"t{n}", server="mx", reason="stuck",
                                 source="x").messages[0].sha256)
    ingest_bytes(q, make_mail(0), tower="t9", server="mx9", reason="stuck", source="y")
    ingest_bytes(q, b"\x00junk", tower="t9", server="mx9", reason="stuck", source="y")
    q.set_status(shas[0], "triaged")
    q.tag(shas[1], ["emotet", "wave-3"])
    q.tag(shas[1], remove=["wave-3"])
    q.set_status(shas[0], "signed", note="released")
    before = index_state(q)
    root = q.root
    # The same history as the older version wrote it: one file, keys sorted, no order keys.
    events = list(q.journal.events())
    for path in q.journal.files():
        path.unlink()
    legacy = root / "journal" / f"{events[0]['written_at'][:7]}.jsonl"
    legacy.write_bytes(b"".join(
        json.dumps({k: v for k, v in e.items() if k not in ORDER_KEYS}, ensure_ascii=False,
                   sort_keys=True).encode() + b"\n" for e in events))
    assert file_host(legacy) == ""
    q.close()

    address = lost_index(root)
    with Quarantine(root, index=address) as rebuilt:
        report = rebuilt.reindex()
        assert report.messages == 4 and report.failed == 1
        assert index_state(rebuilt) == before
        assert rebuilt.fsck().ok
        # after the upgrade: a host's file beside the old one, replayed after it
        rebuilt.set_status(shas[0], "drafted")
        rebuilt.tag(shas[1], ["after-upgrade"])
        live = index_state(rebuilt)
        rebuilt.reindex()
        assert index_state(rebuilt) == live
    assert legacy.read_bytes().count(b"\n") == len(events), "the old file is only read"
    with Quarantine(root, index=lost_index(root)) as again:
        again.reindex()
        assert again.index.get(shas[0]).status == "drafted"
        assert again.index.get(shas[1]).tags == ["after-upgrade", "emotet"]


# -- torn lines ---------------------------------------------------------------------------


def test_fsck_repairs_a_torn_line_in_one_hosts_file_without_touching_the_others(quarantine,
                                                                               tmp_path):
    root = quarantine.root
    quarantine.close()
    alpha, zulu = Quarantine(root, host="alpha"), Quarantine(root, host="zulu")
    first = ingest_bytes(alpha, make_mail(1), tower="t", server="s", reason="r", source="x")
    glued = ingest_bytes(alpha, make_mail(2), tower="t", server="s", reason="r", source="x")
    theirs = ingest_bytes(zulu, make_mail(3), tower="t", server="s", reason="r", source="x")
    zulu.tag(theirs.messages[0].sha256, ["zulu"])
    alpha_file, zulu_file = (p for p in sorted(alpha.journal.files()))
    assert file_host(alpha_file) == "alpha" and file_host(zulu_file) == "zulu"
    # what a dead writer of an older version left: a fragment, the next line glued on
    lines = alpha_file.read_bytes().splitlines(keepends=True)
    alpha_file.write_bytes(lines[0] + b'{"event": "sighting", "id": "to' + lines[1])
    zulu_before = zulu_file.read_bytes(), zulu_file.stat().st_ino, zulu_file.stat().st_mtime_ns

    report = zulu.fsck()
    assert [(t.file, t.line) for t in report.torn_journal_lines] == [(alpha_file.name, 2)]
    repaired = zulu.fsck(repair=True)
    assert any("torn" in r for r in repaired.repaired)
    assert zulu.fsck().ok
    assert (zulu_file.read_bytes(), zulu_file.stat().st_ino,
            zulu_file.stat().st_mtime_ns) == zulu_before, "the other host's journal was touched"
    assert b'"id": "to' in (root / "journal" / "torn-fragments.alpha.txt").read_bytes()
    assert not (root / "journal" / "torn-fragments.zulu.txt").exists()
    sightings = [e for e in zulu.journal.events() if e["event"] == "sighting"]
    assert len(sightings) == 3, "the glued event was salvaged, not lost or doubled"
    assert zulu.index.all_shas() == {first.messages[0].sha256, glued.messages[0].sha256,
                                     theirs.messages[0].sha256}
    assert zulu.index.get(theirs.messages[0].sha256).tags == ["zulu"]
    alpha.close()
    zulu.close()


def test_a_torn_tail_is_cut_by_its_own_hosts_next_append(quarantine):
    root = quarantine.root
    quarantine.close()
    alpha, zulu = Quarantine(root, host="alpha"), Quarantine(root, host="zulu")
    ingest_bytes(alpha, make_mail(1), tower="t", server="s", reason="r", source="x")
    ingest_bytes(zulu, make_mail(2), tower="t", server="s", reason="r", source="x")
    alpha_file, zulu_file = sorted(alpha.journal.files())
    with open(alpha_file, "ab") as fh:
        fh.write(b'{"event": "tags", "sha2')            # alpha's writer died mid-line
    # zulu's appends read alpha's last whole line (for the clock) and leave its file alone
    ingest_bytes(zulu, make_mail(3), tower="t", server="s", reason="r", source="x")
    assert alpha_file.read_bytes().endswith(b'"sha2')
    assert zulu_file.read_bytes().endswith(b"\n") and zulu_file.read_bytes().count(b"\n") == 2
    ingest_bytes(alpha, make_mail(4), tower="t", server="s", reason="r", source="x")
    assert alpha_file.read_bytes().endswith(b"\n") and alpha.journal.torn() == []
    assert b'"sha2' in alpha.journal.torn_fragments.read_bytes()
    assert [e["seq"] for e in journal_lines(root)[alpha_file.name]] == [1, 2]
    assert hashlib.sha256(make_mail(4)).hexdigest() in {e["sha256"] for e in alpha.journal.events()}
    alpha.close()
    zulu.close()
