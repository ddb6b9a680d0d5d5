"""Ingest from files, folders, Maildirs, mboxes, the spool and memory; failures are kept."""

from __future__ import annotations

import json
import mailbox
import os

import pytest

from workbench.quarantine.ingest import ingest_bytes, ingest_paths, ingest_spool
from workbench.quarantine.object_store import sha256_file


def test_ingest_a_file_indexes_headers_and_keeps_bytes(quarantine, tmp_path, mail):
    raw = mail(1, subject="Invoice due", attachment="invoice.zip")
    path = tmp_path / "one.eml"
    path.write_bytes(raw)
    summary = ingest_paths(quarantine, [path], tower="t12", server="mx03", reason="stuck")
    assert (summary.accepted, summary.duplicates, summary.failed) == (1, 0, 0)
    row = quarantine.index.list("")[0]
    assert row.subject == "Invoice due"
    assert (row.tower, row.server, row.reason, row.status) == ("t12", "mx03", "stuck", "new")
    assert row.attachment_names == ["invoice.zip"] and row.attachment_count == 1
    assert quarantine.store.read(row.sha256) == raw
    assert path.exists(), "a user's file is never removed"


def test_duplicates_are_counted_not_stored_twice(quarantine, tmp_path, mail):
    raw = mail(2)
    for n in range(3):
        (tmp_path / f"copy{n}.eml").write_bytes(raw)
    summary = ingest_paths(quarantine, [tmp_path])
    assert summary.accepted == 1 and summary.duplicates == 2
    assert [m.new for m in summary.messages] == [True, False, False]   # one batch, one first copy
    row = quarantine.index.list("")[0]
    assert row.sightings == 3
    assert len(list(quarantine.store.iter_objects())) == 1
    again = ingest_paths(quarantine, [tmp_path / "copy0.eml"])
    assert again.repeated == 1 and quarantine.index.get(row.sha256).sightings == 3


def test_maildir_and_mbox(quarantine, tmp_path, mail):
    md = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(3):
        md.add(mail(10 + n))
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for n in range(4):
        box.add(mail(20 + n))
    box.flush()
    box.close()
    summary = ingest_paths(quarantine, [tmp_path / "Maildir", tmp_path / "inbox.mbox"])
    assert summary.accepted == 7
    subjects = {r.subject for r in quarantine.index.list("", limit=100)}
    assert {f"Message number {n}" for n in (10, 11, 12, 20, 21, 22, 23)} == subjects


def _spool(quarantine, tower, server, name, data, sidecar=None):
    folder = quarantine.incoming / tower / server
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    if sidecar is not None:
        (folder / (name + ".json")).write_text(json.dumps(sidecar))
    return folder / name


def test_spool_reason_from_header_or_sidecar_and_files_removed(quarantine, mail):
    a = _spool(quarantine, "t01", "mx01", "a.eml", b"X-Quarantine-Reason: unknown-virus\n" + mail(1))
    b = _spool(quarantine, "t02", "mx09", "b.eml", mail(2),
               {"reason": "stuck", "received_at": "2026-11-20T10:00:00Z"})
    partial = _spool(quarantine, "t02", "mx09", "c.eml.tmp", mail(3))
    summary = ingest_spool(quarantine)
    assert summary.accepted == 2
    rows = {r.subject: r for r in quarantine.index.list("", limit=10)}
    assert rows["Message number 1"].reason == "unknown-virus"
    assert (rows["Message number 1"].tower, rows["Message number 1"].server) == ("t01", "mx01")
    assert rows["Message number 2"].reason == "stuck"
    assert rows["Message number 2"].first_seen.startswith("2026-11-20T10:00:00")
    assert not a.exists() and not b.exists() and not b.with_name("b.eml.json").exists()
    assert partial.exists(), "a tower's half-written .tmp file is left alone"


def test_spool_sweep_in_batches_removes_every_file_once_durable_and_reads_again_as_no_ops(quarantine, mail):
    """Several batches: each batch's files go (on the removal threads) only after its commit,
    all are gone when the sweep returns; the same message spooled again is not a new one;
    sidecars are still read and a symlinked spool file keeps the identity it had."""
    from workbench.quarantine.ingest import Ingester, spool_items

    paths = [_spool(quarantine, f"t{n % 2}", "mx01", f"{n}.eml", mail(n),
                     {"reason": "stuck"} if n % 3 == 0 else None) for n in range(7)]
    outside = quarantine.root.parent / "elsewhere.eml"
    outside.write_bytes(mail(50))
    (quarantine.incoming / "t0" / "mx01" / "link.eml").symlink_to(outside)
    identities = {i.source: i.identity for i in spool_items(quarantine.incoming)}
    assert identities[str(quarantine.incoming / "t0" / "mx01" / "link.eml")].startswith(f"{outside.resolve()}|")
    assert identities[str(paths[1])].startswith(f"{paths[1].resolve()}|")
    summary = Ingester(quarantine, batch=2).run(spool_items(quarantine.incoming))
    assert summary.accepted == 8 and quarantine.index.count() == 8
    assert [p for p in quarantine.incoming.rglob("*") if p.is_file() or p.is_symlink()] == []
    assert outside.exists()                       # the link went, not what it pointed at
    assert {r.reason for r in quarantine.index.list("reason:stuck", limit=10)} == {"stuck"}
    assert quarantine.index.count("reason:stuck") == 3
    again = _spool(quarantine, "t0", "mx01", "0.eml", mail(0))
    again_summary = ingest_spool(quarantine)
    assert again_summary.accepted == 0 and not again.exists() and quarantine.index.count() == 8


@pytest.mark.parametrize(("content", "why"), [
    (b"", "empty"),
    (os.urandom(64) + b"\x00" * 8, "NUL"),
    (b"just some words\n", "header"),
])
def test_spool_junk_moves_to_failed_with_a_reason(quarantine, content, why):
    path = _spool(quarantine, "t07", "mx02", "junk.eml", content)
    summary = ingest_spool(quarantine)
    assert summary.failed == 1 and summary.accepted == 0
    assert not path.exists()
    (failure,) = quarantine.index.failed()
    kept = quarantine.root / failure.stored_as
    assert kept.read_bytes() == content, "the input is kept byte for byte"
    reason = json.loads(kept.with_name(kept.name + ".reason.json").read_text())
    assert why.lower() in reason["reason"].lower()
    assert reason["tower"] == "t07"


def test_oversized_message_is_kept_in_failed_not_loaded(quarantine, tmp_path, mail):
    big = tmp_path / "big.eml"
    big.write_bytes(mail(5) + b"x" * 5000)
    summary = ingest_paths(quarantine, [big], max_message=1000)
    assert summary.failed == 1 and "limit" in summary.failures[0].reason
    kept = quarantine.root / summary.failures[0].stored_as
    assert sha256_file(kept) == sha256_file(big)
    assert quarantine.index.count() == 0


def test_malformed_mail_is_stored_and_flagged(quarantine, tmp_path):
    raw = (b"From: =?utf-8?q?broken=ZZ?= <<<@@>\nTo: undisclosed-recipients:;\n"
           b"Subject: =?x-unknown?b?////?=\nDate: Tuesday the 32nd\n"
           b"Content-Type: multipart/mixed\n\nhello\n")
    (tmp_path / "m.eml").write_bytes(raw)
    summary = ingest_paths(quarantine, [tmp_path / "m.eml"])
    assert summary.accepted == 1 and summary.flagged == 1
    (row,) = quarantine.index.list("has:defects")
    assert quarantine.store.read(row.sha256) == raw
    assert any("Date" in d for d in row.defects)


def test_ingest_bytes_is_the_same_path_as_the_spool(quarantine, mail):
    summary = ingest_bytes(quarantine, mail(9), tower="t99", server="mx36", reason="stuck",
                           source="http:127.0.0.1")
    assert summary.accepted == 1
    (row,) = quarantine.index.list("tower:t99")
    assert row.server == "mx36"
    bad = ingest_bytes(quarantine, b"\x00\x01", tower="t99", server="mx36", reason="stuck",
                       source="http:127.0.0.1")
    assert bad.failed == 1 and quarantine.index.failed()[0].source == "http:127.0.0.1"


def test_missing_path_is_a_clear_error(quarantine, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        ingest_paths(quarantine, [tmp_path / "nope"])


def test_every_write_moves_last_change(quarantine, mail):
    """Readers (the TUI list) poll last_change() to learn that their view is old."""
    seen = [quarantine.index.last_change()]
    summary = ingest_bytes(quarantine, mail(1), tower="t01", server="mx01", reason="stuck", source="a")
    seen.append(quarantine.index.last_change())
    sha = summary.messages[0].sha256
    quarantine.set_status(sha, "triaged")
    seen.append(quarantine.index.last_change())
    quarantine.tag(sha, ["campaign"])
    seen.append(quarantine.index.last_change())
    ingest_bytes(quarantine, b"\x00\x01", tower="t01", server="mx01", reason="stuck", source="b")
    seen.append(quarantine.index.last_change())
    assert seen[0] == 0 and seen == sorted(set(seen))
    assert quarantine.index.last_change() == seen[-1]       # reading changes nothing


def test_a_sighting_given_twice_in_one_batch_is_indexed_once(quarantine, tmp_path, mail):
    """The same file twice in one call is one sighting (one id): one row, one audit entry."""
    path = tmp_path / "twice.eml"
    path.write_bytes(mail(31))
    summary = ingest_paths(quarantine, [path, path])
    assert (summary.accepted, summary.duplicates, summary.repeated) == (1, 0, 0)
    assert [m.new for m in summary.messages] == [True, False]
    (row,) = quarantine.index.list("")
    assert row.sightings == 1
    assert [e.action for e in quarantine.index.audit(row.sha256)] == ["sighting"]
    again = ingest_paths(quarantine, [path, path])
    assert (again.accepted, again.duplicates, again.repeated) == (0, 0, 1)
    assert quarantine.index.get(row.sha256).sightings == 1


def _pooled_spool(quarantine, mail) -> None:
    """A spool of 90 files: 80 messages, 6 of them spooled again, and 4 junk files."""
    for n in range(80):
        _spool(quarantine, f"t{n % 3}", f"mx{n % 2}", f"{n:03d}.eml", mail(n),
               {"reason": "stuck"} if n % 7 == 0 else None)
    for n in range(6):
        _spool(quarantine, "t9", "mx1", f"again{n}.eml", mail(n))
    for n in range(4):
        _spool(quarantine, "t9", "mx2", f"junk{n}.eml", b"not mail %d\n" % n)


def _state(quarantine) -> list[tuple[object, ...]]:
    rows = quarantine.index.list("", limit=1000)
    return sorted((r.sha256, r.subject, r.sightings, r.reason, r.from_addr, r.attachment_names,
                   r.defects) for r in rows)


def test_batches_prepared_by_worker_processes_match_one_prepared_here(quarantine, mail, tmp_path,
                                                                      index_backend):
    """A batch of 64 or more is read, stored and summarised by worker processes: the counts,
    the rows and the failures are exactly those of the same spool prepared in this process,
    duplicates within the batch count once as a message and once per copy as a sighting."""
    from workbench.quarantine.ingest import Ingester, spool_items
    from workbench.quarantine.service import Quarantine

    _pooled_spool(quarantine, mail)
    pooled = Ingester(quarantine)
    summary = pooled.run(spool_items(quarantine.incoming))
    assert pooled.prepared_by_workers == 90
    assert (summary.accepted, summary.duplicates, summary.repeated, summary.failed) == (80, 6, 0, 4)
    assert [m.new for m in summary.messages[-6:]] == [False] * 6      # the copies, last in the spool
    assert sum(m.new for m in summary.messages) == 80
    assert [p for p in quarantine.incoming.rglob("*") if p.is_file()] == []
    assert len(quarantine.index.failed()) == 4

    if index_backend == "postgresql":
        return                      # the comparison below needs a second index of its own
    here = Quarantine(tmp_path / "second")
    _pooled_spool(here, mail)
    serial = Ingester(here)
    serial.POOL_MIN = 10**9
    second = serial.run(spool_items(here.incoming))
    assert serial.prepared_by_workers == 0
    assert [(m.sha256, m.new, m.subject, m.defects) for m in second.messages] == \
        [(m.sha256, m.new, m.subject, m.defects) for m in summary.messages]
    assert (second.accepted, second.duplicates, second.failed) == (80, 6, 4)
    assert _state(here) == _state(quarantine)
    here.close()


def test_a_spool_of_several_pooled_batches_is_taken_once_and_again_as_no_ops(quarantine, mail):
    """Batches of 70: each next batch is prepared while the one before commits; every file
    is taken once, and the same files spooled again are sightings already known."""
    from workbench.quarantine.ingest import Ingester, spool_items

    files = [_spool(quarantine, f"t{n % 4}", "mx01", f"{n:04d}.eml", mail(n)) for n in range(230)]
    ingester = Ingester(quarantine, batch=70)
    summary = ingester.run(spool_items(quarantine.incoming))
    assert ingester.prepared_by_workers == 210            # the last batch of 20 is prepared here
    assert (summary.accepted, summary.duplicates, summary.failed) == (230, 0, 0)
    assert quarantine.index.count() == 230 and not any(p.exists() for p in files)
    journaled = [e for e in quarantine.journal.events() if e["event"] == "sighting"]
    assert len(journaled) == 230 and len({e["id"] for e in journaled}) == 230


def test_pooled_batches_beside_other_threads_use_a_fork_server(quarantine, mail):
    """With another thread running (the UI runs the watcher beside its own), the workers come
    from a fork server, not a fork of this process, and the batch is taken the same way."""
    import threading

    from workbench.quarantine.ingest import Ingester, _pool_context, spool_items

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _pool_context().get_start_method() in ("forkserver", "spawn")
        _pooled_spool(quarantine, mail)
        ingester = Ingester(quarantine)
        summary = ingester.run(spool_items(quarantine.incoming))
    finally:
        stop.set()
        other.join()
    assert ingester.prepared_by_workers == 90
    assert (summary.accepted, summary.duplicates, summary.failed) == (80, 6, 4)
    assert quarantine.index.count() == 80
