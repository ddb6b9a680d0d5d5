"""Printable strings in a file: ASCII and UTF-16LE, with their offsets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_PRINTABLE = rb"[\x20-\x7e\t]"


@dataclass(frozen=True)
class ExtractedString:
    offset: int          # byte offset of the first character in the file
    encoding: str        # "ascii" or "utf-16le"
    text: str

    @property
    def length(self) -> int:
        """Bytes the string covers in the file."""
        return len(self.text) * (2 if self.encoding == "utf-16le" else 1)


def _ascii_re(min_len: int) -> re.Pattern[bytes]:
    return re.compile(_PRINTABLE + b"{%d,}" % min_len)


def _wide_re(min_len: int) -> re.Pattern[bytes]:
    return re.compile(b"(?:" + _PRINTABLE + b"\x00){%d,}" % min_len)


def iter_strings(data: bytes, *, min_len: int = 4, wide: bool = True) -> Iterator[ExtractedString]:
    """ASCII strings, then UTF-16LE ones, each in offset order."""
    for m in _ascii_re(min_len).finditer(data):
        yield ExtractedString(m.start(), "ascii", m.group().decode("ascii"))
    if wide:
        for m in _wide_re(min_len).finditer(data):
            yield ExtractedString(m.start(), "utf-16le", m.group().decode("utf-16le"))


def extract_strings(data: bytes, *, min_len: int = 4, wide: bool = True,
                    offset: int = 0, limit: int | None = None) -> list[ExtractedString]:
    """All strings sorted by offset; ``offset``/``limit`` page through them."""
    found = sorted(iter_strings(data, min_len=min_len, wide=wide), key=lambda s: (s.offset, s.encoding))
    end = None if limit is None else offset + limit
    return found[offset:end]
