"""The git pre-commit hook that validates the rules a commit changes (the fast path)."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench.durable import atomic_write
from workbench.release.signature_repository import SignatureRepository, SignatureRepositoryError

MARKER = "# installed by `workbench hooks install`"


@dataclass
class HookInstall:
    path: str
    replaced: bool          # an earlier workbench hook was updated
    backup: str             # where a foreign hook was moved ("" when there was none)


def hook_script(signatures: Path, *, python: str | None = None) -> str:
    """A POSIX shell hook: ``validate --changed-since HEAD`` (a full validation before the first commit)."""
    py = shlex.quote(python or sys.executable)
    sig = shlex.quote(str(signatures))
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return f"""#!/bin/sh
{MARKER}
# Validates the signature rules changed since HEAD (staged or not) before each commit.
# Skip once with `git commit --no-verify`; set WORKBENCH to use another workbench command.
if [ -n "$WORKBENCH" ]; then
    set -- $WORKBENCH
else
    set -- {py} -c {shlex.quote(code)}
fi
if git rev-parse --verify -q HEAD >/dev/null; then
    exec "$@" validate {sig} --changed-since HEAD
else
    exec "$@" validate {sig}
fi
"""


def install_hook(signatures: Path, *, force: bool = False, python: str | None = None) -> HookInstall:
    """Write the pre-commit hook into the repository holding ``signatures``.

    A hook the workbench wrote before is replaced; any other hook is kept unless
    ``force``, in which case it is moved aside to ``pre-commit.before-workbench``.
    """
    repo = SignatureRepository(signatures).require_git()
    configured = repo.config_reader().get_value("core", "hooksPath", "")
    if configured:
        hooks = Path(str(configured)).expanduser()
        if not hooks.is_absolute():
            hooks = Path(repo.working_tree_dir or repo.git_dir) / hooks
    else:
        hooks = Path(repo.git_dir) / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    path = hooks / "pre-commit"
    replaced, backup = False, ""
    if path.exists() or path.is_symlink():
        current = path.read_text(errors="replace") if path.is_file() else ""
        if MARKER in current:
            replaced = True
        elif not force:
            raise SignatureRepositoryError(f"{path} already exists and was not written by the workbench: "
                                  "use --force to move it aside")
        else:
            target = path.with_name("pre-commit.before-workbench")
            os.replace(path, target)
            backup = str(target)
    atomic_write(path, hook_script(Path(signatures).resolve(), python=python), mode=0o755)
    return HookInstall(str(path), replaced, backup)
