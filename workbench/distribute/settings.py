"""Durations and the update repository's settings (metadata lifetimes, what to keep)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.durable import atomic_write

DEFAULT_HOST = "127.0.0.1"   # workbench serve listens on loopback unless told otherwise
DEFAULT_PORT = 8470

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str | int | float) -> dt.timedelta:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` (and sums like ``1d12h``) as a timedelta."""
    if isinstance(text, int | float):
        if text <= 0:
            raise ValueError(f"duration {text!r} must be positive")
        return dt.timedelta(seconds=text)
    pos, total = 0, 0.0
    source = text.strip()
    if not source:
        raise ValueError("empty duration")
    while pos < len(source):
        m = _DURATION.match(source, pos)
        if not m or m.end() == pos:
            raise ValueError(f"duration {text!r}: use a number with s, m, h, d or w (e.g. 12h, 7d)")
        total += float(m.group(1)) * _UNITS[m.group(2).lower()]
        pos = m.end()
    if total <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return dt.timedelta(seconds=total)


def format_duration(delta: dt.timedelta | float) -> str:
    """The largest whole units, e.g. ``1d``, ``7d``, ``36h``, ``90s``."""
    seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else float(delta)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{sign}{int(seconds // size)}{unit}"
    if seconds >= 86400:
        return f"{sign}{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{sign}{seconds / 3600:.1f}h"
    return f"{sign}{seconds:g}s"


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
