"""Turning result documents (dataclasses) into JSON-ready data, one encoder for every command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
from pathlib import Path
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text that can be encoded: lone surrogates repaired.

    Python's mail parser keeps undecodable 8-bit header bytes as surrogate escapes
    (``caf\\udce9``); those cannot be written as UTF-8 (to a terminal, a JSON file or
    SQLite). They become the bytes they stand for, read as UTF-8 when that works and
    as Windows-1252 (what such mail nearly always is) otherwise; any other lone
    surrogate becomes U+FFFD.
    """
    if text.isascii() or not _SURROGATE.search(text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def to_data(value: Any) -> Any:
    """Convert dataclasses, enums, paths, dates and bytes into plain JSON data."""
    if isinstance(value, str):
        return clean_text(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get("internal")}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_data(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.hex()
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(to_data(value), indent=indent, ensure_ascii=False, sort_keys=False)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(ts: dt.datetime) -> str:
    return to_data(ts)
