"""workbench release: refusals, serials, changelog, commit and tag, reproducible bundles, revert."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.signatures import (
    HOUSE,
    SigRepo,
    change_gtube,
    init_repo,
    refresh_fingerprint,
    set_meta,
)
from workbench.cli import main
from workbench.exitcodes import E_CONFLICT, E_INPUT, E_NOT_FOUND, E_OK
from workbench.release.build import prepare_commit
from workbench.release.bundle import BundleError, load_extracted, open_bundle
from workbench.release.release_store import ReleaseStore
from workbench.release.service import ReleaseRefused, make_release, revert_release
from workbench.release.signature_repository import SignatureRepository
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def run_cli(sig: SigRepo, *args: str) -> int:
    return main(["--home", str(sig.workspace.home), "--signatures", str(sig.root), *args])


@pytest.fixture
def released(sig: SigRepo):
    outcome = make_release(sig.workspace, message="first release")
    return sig, outcome


def test_first_release_commits_tags_and_stores_a_loadable_bundle(released, tmp_path: Path) -> None:
    sig, outcome = released
    assert (outcome.serial, outcome.tag, outcome.previous_serial) == (1, "signatures-1", None)
    assert outcome.rules_shipped == 8 and outcome.rules_total == 9           # the TESTING rule stays home
    head = sig.repo.head.commit
    assert head.hexsha == outcome.commit and head.message.startswith("Release signatures-1")
    assert set(head.stats.files) == {"CHANGELOG.md"}
    tag = sig.repo.tags["signatures-1"]
    assert tag.tag is not None and "first release" in tag.tag.message       # annotated, with the note
    assert tag.commit == head
    changelog = (sig.root / "CHANGELOG.md").read_text()
    assert "## signatures-1" in changelog and "`TEST_EICAR_Zip_Crc`" in changelog
    release = ReleaseStore(sig.workspace).get(1)
    bundle = open_bundle(release.bundle_path)
    assert bundle.sha256 == release.bundle_sha256
    m = bundle.manifest
    assert m.commit == head.hexsha and m.serial == 1
    assert "MAL_WbRtfObj_Package_Rtf" not in {r.name for r in m.rules}
    assert {r.status for r in m.rules} == {"RELEASED"}
    assert len(m.selftest) == 8
    loaded = load_extracted(bundle.extract_to(tmp_path / "unpacked"))
    assert loaded.loaded_from == "compiled" and len(loaded.selftest) == 8
    # the blanked-out TESTING rule keeps line numbers of the shipped sources equal to the repository's
    src = (tmp_path / "unpacked" / "rules" / "mal" / "wbloader.yar").read_text()
    assert src == sig.rule_file("mal/wbloader.yar").read_text()
    assert "rules/mal/wbrtfobj.yar" not in {f.path for f in m.files}


def test_same_commit_builds_byte_identical_bundles(released, tmp_path: Path) -> None:
    sig, outcome = released
    repo = SignatureRepository(sig.root)
    stored = ReleaseStore(sig.workspace).get(1)
    created = sig.repo.head.commit.committed_datetime
    a = prepare_commit(repo, outcome.commit).prepared.write(tmp_path / "a.tar.gz", serial=1, created=created,
                                                            commit=outcome.commit)
    b = prepare_commit(repo, outcome.commit).prepared.write(tmp_path / "b.tar.gz", serial=1, created=created,
                                                            commit=outcome.commit)
    assert a.path.read_bytes() == b.path.read_bytes() == stored.bundle_path.read_bytes()
    # the working tree does not leak in: an uncommitted edit changes nothing
    sig.rule_file("spam/gtube.yar").write_text("rule broken {")
    c = prepare_commit(repo, outcome.commit).prepared.write(tmp_path / "c.tar.gz", serial=1, created=created,
                                                            commit=outcome.commit)
    assert c.sha256 == a.sha256


def test_refuses_a_dirty_tree_and_nothing_to_release(released, capsys) -> None:
    sig, _ = released
    with pytest.raises(ReleaseRefused, match="nothing to release"):
        make_release(sig.workspace)
    (sig.root / "README.md").write_text("notes that do not change what ships\n")
    sig.commit("readme")
    with pytest.raises(ReleaseRefused, match="bundle would ship what signatures-1 ships"):
        make_release(sig.workspace)
    (sig.root / "rules" / "test" / "new.yar").write_text("// draft\n")
    assert run_cli(sig, "release") == E_CONFLICT
    assert "uncommitted changes (rules/test/new.yar)" in capsys.readouterr().err
    assert ReleaseStore(sig.workspace).last_serial() == 1


def test_refuses_when_validation_fails(sig: SigRepo, capsys) -> None:
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 12MB"))
    sig.commit("stale fingerprint")
    assert run_cli(sig, "release") == E_CONFLICT
    captured = capsys.readouterr()
    assert "validation failed" in captured.err and "V201" in captured.out
    assert "signatures-1" not in [t.name for t in sig.repo.tags]
    assert ReleaseStore(sig.workspace).list() == []


def test_second_release_has_a_changelog_and_the_next_serial(released) -> None:
    sig, _ = released
    change_gtube(sig, status="RELEASED")
    outcome = make_release(sig.workspace, message="gtube and rtf")
    assert outcome.serial == 2 and outcome.previous_serial == 1
    log = outcome.changelog
    assert [c.name for c in log.modified] == ["SPAM_GTUBE_TestString"]
    assert (log.modified[0].previous_version, log.modified[0].version) == ("1", "2")
    assert [(c.name, c.previous_status, c.status) for c in log.status_changed] == [
        ("MAL_WbRtfObj_Package_Rtf", "TESTING", "RELEASED")]
    assert not log.added and not log.removed
    assert outcome.rules_shipped == 9
    text = (sig.root / "CHANGELOG.md").read_text()
    assert text.index("## signatures-2") < text.index("## signatures-1")
    assert ReleaseStore(sig.workspace).get(2).changelog == log


def test_version_bump_is_checked_against_the_last_release(released) -> None:
    sig, _ = released
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 12MB"))
    refresh_fingerprint(path, "SPAM_GTUBE_TestString")
    sig.commit("forgot to bump")
    with pytest.raises(ReleaseRefused) as err:
        make_release(sig.workspace)
    # the same modified date is fine (a same-day edit); the version must still go up
    assert {f.id for f in err.value.validation.findings if f.severity == "error"} == {"V501"}


def test_dry_run_changes_nothing(released, capsys) -> None:
    sig, _ = released
    change_gtube(sig)
    head = sig.repo.head.commit
    assert run_cli(sig, "release", "--dry-run") == E_OK
    assert "would release signatures-2" in capsys.readouterr().out
    assert sig.repo.head.commit == head and "signatures-2" not in [t.name for t in sig.repo.tags]
    assert ReleaseStore(sig.workspace).last_serial() == 1


def test_a_failed_release_never_gives_its_serial_again(released, monkeypatch) -> None:
    sig, _ = released
    change_gtube(sig)

    def disk_full(*args, **kwargs):
        raise BundleError("disk full")

    monkeypatch.setattr(ReleaseStore, "add", disk_full)
    with pytest.raises(BundleError):
        make_release(sig.workspace)
    monkeypatch.undo()
    set_meta(sig.rule_file("spam/gtube.yar"), "SPAM_GTUBE_TestString", "description", "retry")
    sig.commit("retry")
    outcome = make_release(sig.workspace)
    assert outcome.serial == 3
    assert [r.serial for r in ReleaseStore(sig.workspace).list()] == [1, 3]


def test_lost_state_still_continues_after_the_newest_tag(released, tmp_path: Path) -> None:
    sig, _ = released
    change_gtube(sig)
    fresh = Workspace.resolve(tmp_path / "other-home", signatures=sig.root).ensure()
    assert make_release(fresh).serial == 2


def test_revert_reships_old_content_under_a_new_serial(released, tmp_path: Path) -> None:
    sig, first = released
    change_gtube(sig)
    make_release(sig.workspace)
    head = sig.repo.head.commit
    outcome = revert_release(sig.workspace, 1, message="gtube change misfires")
    assert (outcome.serial, outcome.reverts, outcome.commit) == (3, 1, first.commit)
    assert sig.repo.head.commit == head                    # the branch is untouched
    assert sig.repo.tags["signatures-3"].commit.hexsha == first.commit
    store = ReleaseStore(sig.workspace)
    old, new = store.get(1).manifest, store.get(3).manifest
    assert new.serial == 3 and old.rules == new.rules and old.commit == new.commit
    assert [f for f in old.files if f.path != "compiled.yarc"] == [f for f in new.files if f.path != "compiled.yarc"]
    assert [c.name for c in outcome.changelog.modified] == ["SPAM_GTUBE_TestString"]
    assert load_extracted(open_bundle(store.get(3).bundle_path).extract_to(tmp_path / "x")).rule_count == 8
    # after a revert, releasing the branch again is allowed (it differs from what towers now run)
    assert make_release(sig.workspace).serial == 4


def test_revert_unknown_serial(sig: SigRepo) -> None:
    assert run_cli(sig, "release", "revert", "7") == E_NOT_FOUND


def test_list_show_verify(released, capsys) -> None:
    sig, _ = released
    assert run_cli(sig, "release", "list", "--json") == E_OK
    listed = json.loads(capsys.readouterr().out)["releases"]
    assert [r["serial"] for r in listed] == [1] and listed[0]["message"] == "first release"
    assert "folder" not in listed[0]
    assert run_cli(sig, "release", "show", "1") == E_OK
    out = capsys.readouterr().out
    assert "MAL_WbLoader_Config_Overlay" in out and "9 added" in out
    assert run_cli(sig, "release", "show", "1", "--json") == E_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"]["rule_count"] == 8 and shown["release"]["tag"] == "signatures-1"
    assert run_cli(sig, "release", "show", "9") == E_NOT_FOUND
    assert run_cli(sig, "release", "verify", "1") == E_OK
    assert "8 self-tests passed" in capsys.readouterr().out


def test_verify_refuses_a_tampered_bundle(released, tmp_path: Path, capsys) -> None:
    sig, _ = released
    path = ReleaseStore(sig.workspace).get(1).bundle_path
    with tarfile.open(path, "r:gz") as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf]
    forged = tmp_path / "signatures-1.tar.gz"
    with tarfile.open(forged, "w:gz") as tf:
        for info, data in members:
            if info.name == "rules/spam/gtube.yar":
                data = data.replace(b"filesize < 10MB", b"filesize < 99MB")
            tf.addfile(info, io.BytesIO(data))
    assert run_cli(sig, "release", "verify", str(forged)) == E_INPUT
    assert "sha256 does not match" in capsys.readouterr().err


def test_release_of_a_subfolder_of_a_bigger_repository(tmp_path: Path) -> None:
    """As in the workbench's own repository, where signatures/ is one folder among many."""
    top = tmp_path / "mono"
    shutil.copytree(HOUSE, top / "signatures", ignore=shutil.ignore_patterns("CHANGELOG.md"))
    (top / "README.md").write_text("other things\n")
    repo = init_repo(top, "mono")
    (top / "README.md").write_text("someone else's uncommitted work\n")      # outside signatures/: fine
    ws = Workspace.resolve(top).ensure()
    outcome = make_release(ws)
    assert outcome.serial == 1
    assert set(repo.head.commit.stats.files) == {"signatures/CHANGELOG.md"}
    assert repo.is_dirty(path="README.md")
