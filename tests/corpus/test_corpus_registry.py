"""The corpora registry: adding, re-adding, labels, hashes, the built-in quarantine corpus."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.corpus_lab import (
    CLEAN_NOISY,
    CLEAN_README,
    DROPPER,
    LOADER,
    FakeArtifact,
    Lab,
    sha256,
)
from workbench.corpus.corpus_registry import (
    QUARANTINE_CORPUS,
    CorpusError,
    CorpusRegistry,
    UnknownCorpus,
)
from workbench.quarantine.object_store import ObjectStore
from workbench.rules.goodware import GoodwareDB


def test_add_stores_each_content_once_and_records_every_path(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        files = reg.files("mal")
        info = reg.info("mal")
    assert {f.sha256 for f in files} == {sha256(DROPPER), sha256(LOADER)}
    assert info.files == 2 and info.members == 3
    assert info.bytes == len(DROPPER) + len(LOADER)
    by_sha = {f.sha256: f for f in files}
    # duplicates keep the first path by name; contents come from the object store
    assert by_sha[sha256(DROPPER)].original_name == "copy/dropper-again.exe"
    assert by_sha[sha256(LOADER)].original_name == "docs/loader.pdf"
    for f in files:
        assert f.path_in_store == ObjectStore(lab.workspace.quarantine).path_for(f.sha256)
        assert f.path_in_store.read_bytes() == (DROPPER if f.sha256 == sha256(DROPPER) else LOADER)


def test_re_adding_is_idempotent_and_picks_up_new_files(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        again = reg.add("mal", lab.malicious, "malicious")
        assert (again.seen, again.added, again.unchanged, again.new_objects) == (3, 0, 3, 0)
        (lab.malicious / "new.bin").write_bytes(b"fresh sample")
        os.utime(lab.malicious / "dropper.exe", ns=(1, 1))      # touched, same content
        third = reg.add("mal", lab.malicious, "malicious")
        assert third.added == 1 and third.new_objects == 1 and third.unchanged == 3
        assert reg.info("mal").files == 3
        assert reg.add("mal", lab.malicious, "malicious").added == 0


def test_label_is_kept_and_names_are_checked(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        with pytest.raises(CorpusError, match="labelled malicious"):
            reg.add("mal", lab.clean, "clean")
        with pytest.raises(CorpusError, match="label"):
            reg.add("x", lab.clean, "suspicious")
        for bad in ("", "../up", "a b", QUARANTINE_CORPUS, "-dash"):
            with pytest.raises(CorpusError):
                reg.add(bad, lab.clean, "clean")
        with pytest.raises(FileNotFoundError):
            reg.add("gone", lab.root / "nope", "clean")
        assert reg.names() == ["goodware", "mal"]


def test_unreadable_entries_are_reported_and_the_rest_added(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "ok.txt").write_bytes(b"fine")
    os.mkfifo(folder / "pipe")                       # reading it would block forever
    (folder / "dangling").symlink_to(folder / "nowhere")
    with CorpusRegistry(lab.workspace) as reg:
        report = reg.add("mixed", folder, "clean")
        assert report.added == 1
        assert {(e.path, e.reason) for e in report.errors} == {
            ("pipe", "not a regular file"), ("dangling", "No such file or directory")}
        assert [f.original_name for f in reg.files("mixed")] == ["ok.txt"]


def test_a_single_file_can_be_a_corpus(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        report = reg.add("one", lab.clean / "readme.txt", "clean")
        assert report.added == 1
        assert [f.original_name for f in reg.files("one")] == ["readme.txt"]


def test_clean_corpora_feed_the_goodware_database_once(lab: Lab) -> None:
    db = GoodwareDB.open_for(lab.workspace, readonly=True)
    assert db is not None
    with db:
        assert db.contains(sha256(CLEAN_README)) and db.contains(sha256(CLEAN_NOISY))
        assert not db.contains(sha256(DROPPER))
    with CorpusRegistry(lab.workspace) as reg:
        assert reg.add("goodware", lab.clean, "clean").goodware_files == 0


def test_remove_forgets_membership_but_keeps_objects(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        assert reg.remove("goodware") == 2
        assert reg.names() == ["mal"]
        with pytest.raises(UnknownCorpus):
            reg.files("goodware")
        with pytest.raises(UnknownCorpus):
            reg.remove("goodware")
    assert ObjectStore(lab.workspace.quarantine).exists(sha256(CLEAN_README))


def test_find_hashes_resolves_md5_sha1_and_sha256(lab: Lab) -> None:
    md5 = hashlib.md5(DROPPER).hexdigest()
    sha1 = hashlib.sha1(LOADER).hexdigest().upper()
    with CorpusRegistry(lab.workspace) as reg:
        found = reg.find_hashes([md5, sha1, sha256(CLEAN_README), "f" * 64, "nothex"],
                                ["mal", "goodware"])
    assert [(m.sha256, m.corpus, m.label) for m in found[md5]] == [(sha256(DROPPER), "mal", "malicious")]
    assert [m.sha256 for m in found[sha1.lower()]] == [sha256(LOADER)]
    assert [(m.corpus, m.label) for m in found[sha256(CLEAN_README)]] == [("goodware", "clean")]
    assert found["f" * 64] == [] and found["nothex"] == []


def test_quarantine_corpus_comes_from_the_dissect_catalog(lab: Lab, fake_catalog: list[FakeArtifact]) -> None:
    store = ObjectStore(lab.workspace.quarantine)
    put = store.put_bytes(LOADER)
    fake_catalog.append(FakeArtifact(put.sha256, "invoice.pdf", "application/pdf", put.size,
                                     "m" * 64, store.path_for(put.sha256)))
    fake_catalog.append(FakeArtifact(put.sha256, "again.pdf", "application/pdf", put.size,
                                     "n" * 64, store.path_for(put.sha256)))
    with CorpusRegistry(lab.workspace) as reg:
        files = reg.files(QUARANTINE_CORPUS)
        assert [(f.sha256, f.original_name) for f in files] == [(put.sha256, "again.pdf")]
        assert reg.info(QUARANTINE_CORPUS).builtin
        assert reg.list()[-1].name == QUARANTINE_CORPUS
        found = reg.find_hashes([put.sha256], [QUARANTINE_CORPUS])
        assert [m.corpus for m in found[put.sha256]] == [QUARANTINE_CORPUS]


def _listed(reg: CorpusRegistry, name: str) -> list[tuple[str, str, int]]:
    """What ``members`` should say, straight from the files table."""
    return [(r[0], r[1], r[2]) for r in reg.db.execute(
        "SELECT sha256, MIN(path), size FROM files WHERE corpus=? GROUP BY sha256 "
        "ORDER BY MIN(path), sha256", (name,))]


def test_a_corpus_state_changes_with_its_files_and_only_then(lab: Lab, tmp_path: Path) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        mal, good = reg.state("mal"), reg.state("goodware")
        reg.add("mal", lab.malicious, "malicious")              # nothing new: nothing changes
        assert (reg.state("mal"), reg.state("goodware")) == (mal, good)
        (lab.malicious / "new.bin").write_bytes(b"new content")
        reg.add("mal", lab.malicious, "malicious")
        assert reg.state("mal") != mal and reg.state("goodware") == good
        mal = reg.state("mal")
        # any writer, not only this class: the registry's triggers keep the state
        reg.db.execute("UPDATE files SET path='renamed.bin' WHERE corpus='mal' AND path='new.bin'")
        assert reg.state("mal") != mal
        mal = reg.state("mal")
        reg.db.execute("DELETE FROM files WHERE corpus='mal' AND path='renamed.bin'")
        assert reg.state("mal") != mal
        good = reg.state("goodware")
        reg.remove("goodware")
        gone = reg.state("goodware")
        assert gone != good
        reg.add("goodware", lab.clean, "clean")               # the same files again: a new state
        assert reg.state("goodware") not in (good, gone)


def test_members_follow_every_change_to_a_corpus(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        before = reg.members("mal")
        assert [(s, n, z) for s, _, n, z in before] == _listed(reg, "mal")
        assert [p for _, p, _, _ in before] == [str(reg.store.path_for(s)) for s, _, _, _ in before]
        assert reg.members("mal") == before                    # from the kept list this time
        reg.db.execute("DELETE FROM files WHERE corpus='mal' AND path='copy/dropper-again.exe'")
        after = reg.members("mal")
        assert [(s, n, z) for s, _, n, z in after] == _listed(reg, "mal")
        assert after != before                   # the dropper's first name is now its other path


def test_a_damaged_kept_member_list_is_read_again(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        expected = reg.members("mal")
        reg.db.execute("UPDATE member_lists SET members = x'00ff00'")
        assert reg.members("mal") == expected


def test_the_first_version_s_triggers_are_replaced(lab: Lab) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        reg.db.execute("CREATE TRIGGER files_inserted AFTER INSERT ON files BEGIN SELECT 1; END")
    with CorpusRegistry(lab.workspace) as reg:
        triggers = {r[0] for r in reg.db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        assert "files_inserted" not in triggers and "stamp_files_insert" in triggers
