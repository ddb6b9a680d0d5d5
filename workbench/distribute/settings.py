"""The update repository's settings (metadata lifetimes, what to keep)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.durable import atomic_write

DEFAULT_HOST = "127.0.0.1"   # workbench serve listens on loopback unless told otherwise
DEFAULT_PORT = 8470


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid after it is signed, in seconds."""

    root: float = 365 * 86400
    targets: float = 7 * 86400
    snapshot: float = 7 * 86400
    timestamp: float = 1 * 86400

    def period(self, role: str) -> dt.timedelta:
        return dt.timedelta(seconds=float(getattr(self, role)))


@dataclass(frozen=True)
class RepositorySettings:
    """``state/repository/settings.json``: lifetimes and retention of the update repository.

    ``keep_releases`` bundles stay listed as targets (towers only install the newest,
    older ones stay for audit and for towers that are far behind);
    ``keep_metadata_versions`` old snapshot/targets versions stay on disk so a tower
    that read the previous timestamp a moment ago can still finish its update.
    """

    expiry: ExpiryPolicy = field(default_factory=ExpiryPolicy)
    keep_releases: int = 10
    keep_metadata_versions: int = 10

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RepositorySettings:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text(encoding="utf-8"))
        expiry = ExpiryPolicy(**{k: float(v) for k, v in raw.get("expiry", {}).items()
                                 if k in ExpiryPolicy.__dataclass_fields__})
        return cls(expiry=expiry, keep_releases=int(raw.get("keep_releases", 10)),
                   keep_metadata_versions=int(raw.get("keep_metadata_versions", 10)))
