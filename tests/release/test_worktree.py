"""``workbench release changes`` and ``release commit``: the release screen's use cases, from the CLI."""

from __future__ import annotations

import json

import pytest

from tests.support.signatures import SigRepo, house_rule, set_meta
from workbench.cli import main
from workbench.exitcodes import E_FINDINGS, E_NOT_FOUND, E_OK
from workbench.release.worktree import commit_changes


def run_cli(sig: SigRepo, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(sig.workspace.home), "--signatures", str(sig.root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_changes_then_a_refused_commit_then_a_commit(sig: SigRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(sig, capsys, "release", "changes", "--json")
    view = json.loads(out)
    assert code == E_OK and view["latest"] is None and view["uncommitted"] == {}
    assert {c["kind"] for c in view["changes"]} == {"added"}          # no release yet: every rule

    new = sig.rule_file("mal/wbnew.yar")
    new.write_text(house_rule("MAL_WbNew_Marker", strings='        $a = "WBDEMO-NEW-MARKER"',
                              condition="$a and $missing"))
    code, out, _ = run_cli(sig, capsys, "release", "changes")
    assert code == E_OK and "MAL_WbNew_Marker" in out and "untracked" in out
    code, out, _ = run_cli(sig, capsys, "release", "changes", "--diff", "rules/mal/wbnew.yar")
    assert code == E_OK and out.startswith("new file rules/mal/wbnew.yar")
    assert run_cli(sig, capsys, "release", "changes", "--diff", "rules/nope.yar")[0] == E_NOT_FOUND

    # the changed rule does not compile: checked as the pre-commit hook does, not committed
    head = sig.repo.head.commit.hexsha
    code, out, err = run_cli(sig, capsys, "release", "commit")
    assert code == E_FINDINGS and "not committed" in err and "wbnew.yar" in out
    assert sig.repo.head.commit.hexsha == head and sig.repo.is_dirty(untracked_files=True)

    new.unlink()
    set_meta(sig.rule_file("spam/gtube.yar"), "SPAM_GTUBE_TestString", "status", "NOISY")
    code, out, _ = run_cli(sig, capsys, "release", "commit", "--json")
    done = json.loads(out)
    assert code == E_OK, [f for f in done["check"]["findings"] if f["severity"] == "error"]
    assert done["message"] == "Add SPAM_GTUBE_TestString"     # from the changes (no release yet)
    assert done["files"] == ["rules/spam/gtube.yar"]
    assert sig.repo.head.commit.hexsha == done["commit"] != head
    assert not sig.repo.is_dirty(untracked_files=True)

    code, out, _ = run_cli(sig, capsys, "release", "commit", "-m", "again")
    assert code == E_OK and "nothing to commit" in out


def test_commit_changes_takes_a_message(sig: SigRepo) -> None:
    (sig.root / "README.md").write_text("notes\n")
    outcome = commit_changes(sig.workspace, "Describe the repository")
    assert outcome.committed and sig.repo.head.commit.message.strip() == "Describe the repository"
