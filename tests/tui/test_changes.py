"""What the release screen reads: rule changes since the last release, git states, diffs, commits."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from tests.support.signatures import house_rule, set_meta
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.release.service import make_release
from workbench.release.signature_repository import SignatureRepositoryError
from workbench.release.worktree import (
    Change,
    commit_message,
    commit_signatures,
    file_diff,
    read_signatures,
    rule_path,
)
from workbench.workspace import Workspace


def set_in_file(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_before_the_first_release_every_rule_is_added(sig_workspace: Workspace) -> None:
    view = read_signatures(sig_workspace)
    assert view.problem == "" and view.branch == "main" and len(view.head) == 12
    assert view.latest is None and view.base == "" and view.uncommitted == {}
    assert {c.kind for c in view.changes} == {"added"}
    names = {c.rule for c in view.changes}
    assert {"TEST_EICAR_TestFile_Plain", "MAL_WbLoader_Config_Overlay"} <= names
    eicar = next(c for c in view.changes if c.rule == "TEST_EICAR_TestFile_Plain")
    assert eicar.file == "rules/test/eicar.yar" and eicar.git == "" and eicar.line >= 1
    lines = (sig_workspace.signatures / eicar.file).read_text().splitlines()
    assert lines[eicar.line - 1].startswith("rule TEST_EICAR_TestFile_Plain")
    assert view.ships == sum(1 for c in view.changes if c.status in ("RELEASED", "NOISY"))
    assert not view.repository and view.published == set()


def test_changes_since_a_release_and_their_git_state(sig_workspace: Workspace) -> None:
    root = sig_workspace.signatures
    repository = UpdateRepository.for_workspace(sig_workspace)
    repository.init(RepositorySettings())
    first = make_release(sig_workspace, message="first")
    publish_bundle(repository, Path(first.bundle_path))
    # a modified condition, a status change, a removed rule, a new rule file, a corpus edit
    gtube = root / "rules" / "spam" / "gtube.yar"
    set_meta(gtube, "SPAM_GTUBE_TestString", "status", "NOISY")
    rtf = root / "rules" / "mal" / "wbrtfobj.yar"
    rtf.unlink()
    new = root / "rules" / "mal" / "wbnew.yar"
    new.write_text(house_rule("MAL_WbNew_Marker", strings='        $a = "WBDEMO-NEW-MARKER"',
                              condition="$a"))
    (root / "corpora" / "clean" / "notes.txt").write_text("just notes\n")

    view = read_signatures(sig_workspace)
    assert view.latest is not None and view.latest.serial == 1 and view.base == "signatures-1"
    assert view.published == {1} and view.newest_published == 1
    kinds = {(c.kind, c.rule): c for c in view.changes}
    assert kinds[("added", "MAL_WbNew_Marker")].git == "untracked"
    removed = kinds[("removed", "MAL_WbRtfObj_Package_Rtf")]
    assert removed.git == "deleted" and removed.previous_status == "TESTING"
    status = kinds[("status", "SPAM_GTUBE_TestString")]
    assert (status.previous_status, status.status, status.git) == ("RELEASED", "NOISY", "modified")
    other = [c for c in view.changes if c.kind == "file"]
    assert [(c.file, c.git) for c in other] == [("corpora/clean/notes.txt", "untracked")]
    assert view.uncommitted == {"rules/spam/gtube.yar": "modified", "rules/mal/wbrtfobj.yar": "deleted",
                                "rules/mal/wbnew.yar": "untracked", "corpora/clean/notes.txt": "untracked"}

    # the diff of a changed file against the release tag, and of a new file
    diff = file_diff(sig_workspace, "rules/spam/gtube.yar", view.base)
    assert '-        status = "RELEASED"' in diff and '+        status = "NOISY"' in diff
    added = file_diff(sig_workspace, "rules/mal/wbnew.yar", view.base)
    assert added.startswith("new file rules/mal/wbnew.yar") and "+        $a = \"WBDEMO-NEW-MARKER\"" in added
    assert "no changes since signatures-1" in file_diff(sig_workspace, "rules/test/eicar.yar", view.base)

    # committing takes everything, deletions included; changes stay until the next release
    sha = commit_signatures(sig_workspace, "rework")
    repo = git.Repo(root)
    assert repo.head.commit.hexsha == sha and repo.head.commit.message.strip() == "rework"
    assert not repo.is_dirty(untracked_files=True)
    assert "rules/mal/wbrtfobj.yar" not in repo.git.ls_files()
    after = read_signatures(sig_workspace)
    assert after.uncommitted == {} and {c.git for c in after.changes} == {""}
    assert {(c.kind, c.rule) for c in after.changes} == set(kinds)
    with pytest.raises(SignatureRepositoryError, match="nothing to commit"):
        commit_signatures(sig_workspace, "again")


def test_a_modified_rule_counts_once_with_its_versions(sig_workspace: Workspace) -> None:
    make_release(sig_workspace, message="first")
    eicar = sig_workspace.signatures / "rules" / "test" / "eicar.yar"
    set_in_file(eicar, "filesize < 128", "filesize < 256")
    view = read_signatures(sig_workspace)
    [change] = [c for c in view.changes if c.rule]
    assert (change.kind, change.rule, change.git) == ("modified", "TEST_EICAR_TestFile_Plain", "modified")


def test_problems_are_said_not_raised(tmp_path: Path, sig_workspace: Workspace) -> None:
    missing = Workspace(tmp_path / "home", signatures_override=tmp_path / "nowhere")
    assert "no signatures folder" in read_signatures(missing).problem
    loose = tmp_path / "loose"
    (loose / "rules").mkdir(parents=True)
    (loose / "workbench.toml").write_text((sig_workspace.signatures / "workbench.toml").read_text())
    (loose / "rules" / "a.yar").write_text(house_rule("MAL_Loose_Rule", strings='        $a = "loose"',
                                                      condition="$a"))
    view = read_signatures(Workspace(tmp_path / "home", signatures_override=loose))
    assert "not in a git repository" in view.problem
    assert [(c.kind, c.rule) for c in view.changes] == [("added", "MAL_Loose_Rule")]
    assert file_diff(Workspace(tmp_path / "home", signatures_override=loose), "rules/a.yar", "") \
        .startswith("new file rules/a.yar")
    (loose / "workbench.toml").write_text("[broken\n")
    assert read_signatures(Workspace(tmp_path / "home", signatures_override=loose)).problem \
        .startswith("policy:")


@pytest.mark.parametrize(("changes", "message"), [
    ([Change("added", "MAL_A_X", "rules/a.yar")], "Add MAL_A_X"),
    ([Change("added", "MAL_A_X", "a"), Change("added", "MAL_B_X", "b"),
      Change("modified", "MAL_C_X", "c")], "Add 2 rules; Update MAL_C_X"),
    ([Change("status", "MAL_C_X", "c"), Change("removed", "MAL_D_X", "d")],
     "Update MAL_C_X; Remove MAL_D_X"),
    ([Change("file", "", "corpora/clean/x.txt")], "Update corpora/clean/x.txt"),
    ([Change("file", "", "a"), Change("file", "", "b")], "Update 2 files"),
    ([], ""),
])
def test_commit_message_from_the_changes(changes: list[Change], message: str) -> None:
    assert commit_message(changes) == message


def test_rule_path_takes_absolute_and_relative(sig_workspace: Workspace) -> None:
    root = sig_workspace.signatures.resolve()
    assert rule_path(sig_workspace, "rules/a.yar") == root / "rules" / "a.yar"
    assert rule_path(sig_workspace, str(root / "x.yar")) == root / "x.yar"
