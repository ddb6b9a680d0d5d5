"""workbench hooks install: the pre-commit hook runs the fast validation and blocks a broken rule."""

from __future__ import annotations

import git
import pytest

from tests.support.signatures import SigRepo
from workbench.cli import main
from workbench.exitcodes import E_CONFLICT, E_OK
from workbench.release.hooks import MARKER, install_hook
from workbench.release.signature_repository import SignatureRepositoryError


@pytest.mark.slow
def test_hook_blocks_a_broken_rule_and_lets_a_good_change_through(sig: SigRepo, monkeypatch) -> None:
    monkeypatch.delenv("WORKBENCH", raising=False)
    assert main(["--home", str(sig.workspace.home), "--signatures", str(sig.root), "hooks", "install"]) == E_OK
    hook = sig.root / ".git" / "hooks" / "pre-commit"
    assert MARKER in hook.read_text() and hook.stat().st_mode & 0o111
    path = sig.rule_file("spam/gtube.yar")
    good = path.read_text()
    path.write_text(good.replace("$gtube\n}", "$gtube and\n}"))
    sig.repo.git.add(A=True)
    with pytest.raises(git.GitCommandError) as err:
        sig.repo.git.commit("-m", "broken rule")
    assert "SPAM_GTUBE_TestString" in str(err.value) and "FAILED" in str(err.value)
    path.write_text(good.replace('description = "The GTUBE', 'description = "GTUBE: the'))
    sig.repo.git.add(A=True)
    sig.repo.git.commit("-m", "reword")
    assert sig.repo.head.commit.message.strip() == "reword"


def test_foreign_hook_is_kept_unless_forced(sig: SigRepo) -> None:
    hooks = sig.root / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-commit").write_text("#!/bin/sh\necho theirs\n")
    with pytest.raises(SignatureRepositoryError, match="--force"):
        install_hook(sig.root)
    assert main(["--signatures", str(sig.root), "hooks", "install"]) == E_CONFLICT
    done = install_hook(sig.root, force=True)
    assert (hooks / "pre-commit.before-workbench").read_text() == "#!/bin/sh\necho theirs\n"
    assert done.backup and MARKER in (hooks / "pre-commit").read_text()
    again = install_hook(sig.root)
    assert again.replaced and not again.backup


def test_hooks_path_setting_is_honoured(sig: SigRepo) -> None:
    with sig.repo.config_writer() as cw:
        cw.set_value("core", "hooksPath", ".githooks")
    done = install_hook(sig.root)
    assert done.path == str(sig.root / ".githooks" / "pre-commit")
