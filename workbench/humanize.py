"""Sizes, durations, ages and UTC timestamps as people type and read them, in one vocabulary.

Every shell (CLI, TUI) and every core module that stamps or shows a time uses these:
a size is ``1.5 MiB``, a duration ``12h`` or ``7d``, an age ``5m`` (a caller writes
``5m ago`` or ``silent for 5m``), a stored timestamp is UTC ISO 8601 with a ``Z`` and a
shown one is ``2026-11-02 09:30:00`` (UTC, as everything in the workspace).
"""

from __future__ import annotations

import datetime as dt
import re

# --------------------------------------------------------------------------- sizes


def size(n: int | float) -> str:
    """``512 B``, ``1.5 KiB``, ``12.0 MiB``, ``3.2 GiB`` (binary units, one decimal)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# ----------------------------------------------------------------------- durations

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
    """The largest whole units, e.g. ``1d``, ``7d``, ``36h``, ``90s``: what
    :func:`parse_duration` reads back."""
    seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else float(delta)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, length in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length and seconds % length == 0:
            return f"{sign}{int(seconds // length)}{unit}"
    if seconds >= 86400:
        return f"{sign}{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{sign}{seconds / 3600:.1f}h"
    return f"{sign}{seconds:g}s"


def age(seconds: float) -> str:
    """How long ago, rounded for a glance: ``45s``, ``5m``, ``3h``, ``4d``.

    The one spelling of an age (the fleet's reasons, the fleet board, lists); the caller
    adds the words around it (``5m ago``, ``silent for 3h``).
    """
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


# ---------------------------------------------------------------------- timestamps


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(when: dt.datetime | None) -> dt.datetime:
    when = when or utc_now()
    if when.tzinfo is None:          # the workspace keeps UTC; a naive time is taken as UTC
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def stamp(when: dt.datetime | None = None) -> str:
    """Stored timestamps (index, audit log, journal): UTC, ISO 8601 with microseconds and a
    ``Z``, so they sort as text."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_seconds(when: dt.datetime | None = None, *, zone: bool = True) -> str:
    """``2026-11-02T09:30:00Z`` (``zone=False`` drops the ``Z``, for index comparisons)."""
    text = _utc(when).strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z" if zone else text


def utc_day(when: dt.datetime | None = None) -> str:
    """``2026-11-02``: the UTC day, for folder names and changelog headings."""
    return _utc(when).strftime("%Y-%m-%d")


def parse_utc(text: str) -> dt.datetime:
    """An ISO 8601 time with ``Z``, an offset or none (taken as UTC), as an aware UTC datetime."""
    when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return _utc(when)


def shown(value: str | dt.datetime | None, *, seconds: bool = True) -> str:
    """A stored time as a person reads it: ``2026-11-02 09:30:00`` (``seconds=False``:
    ``2026-11-02 09:30``), in UTC. Text that is not a time is shown as it is; none is ``""``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            when = parse_utc(value)
        except ValueError:
            return value
    else:
        when = _utc(value)
    return when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def clock(when: dt.datetime | None = None) -> str:
    """``09:30:00`` UTC: when something on screen was last refreshed."""
    return _utc(when).strftime("%H:%M:%S")
