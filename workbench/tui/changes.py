"""What the release screen reads, now ``workbench.release.worktree`` so the CLI offers it too.

Kept as names only, so code written against this module goes on working.
"""

from __future__ import annotations

from workbench.release.worktree import (
    Change,
    SignaturesView,
    commit_message,
    commit_signatures,
    file_diff,
    read_signatures,
    rule_path,
)

__all__ = ["Change", "SignaturesView", "commit_message", "commit_signatures", "file_diff",
           "read_signatures", "rule_path"]
