"""Where the shared public ruleset (ReversingLabs, MIT) is: read in place, never copied here."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def _public_ruleset() -> Path:
    """``$WORKBENCH_PUBLIC_RULESET``, else ``shared/`` beside the checkout (as CI lays it out),
    else the workplace's ``/work/shared`` (a worktree or a clone elsewhere)."""
    if os.environ.get("WORKBENCH_PUBLIC_RULESET"):
        return Path(os.environ["WORKBENCH_PUBLIC_RULESET"])
    for shared in (_REPO.parent / "shared", Path("/work/shared")):
        candidate = shared / "rulesets" / "reversinglabs"
        if (candidate / "yara").is_dir():
            return candidate
    return _REPO.parent / "shared" / "rulesets" / "reversinglabs"


PUBLIC_RULESET = _public_ruleset()
