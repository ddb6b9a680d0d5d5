"""Dissection: every message and attachment taken apart into a tree of artifacts, safely.

The public names load lazily so ``import workbench.dissect`` stays light (no oletools,
pefile or libmagic until a dissection runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.dissect.model import Artifact, Dissection, Limits
    from workbench.dissect.walker import dissect_bytes, dissect_message

_EXPORTS = {
    "Artifact": "workbench.dissect.model",
    "Dissection": "workbench.dissect.model",
    "Limits": "workbench.dissect.model",
    "dissect_bytes": "workbench.dissect.walker",
    "dissect_message": "workbench.dissect.walker",
}
__all__ = ["Artifact", "Dissection", "Limits", "dissect_bytes", "dissect_message"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench.dissect' has no attribute {name!r}")
