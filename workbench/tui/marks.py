"""Strings and byte ranges the analyst marked in artifacts, waiting to become a draft rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

MarkKind = Literal["text", "hex"]


@dataclass(frozen=True)
class Mark:
    """One marked item: a string (``text``) or a byte range (``hex``, as ``4D 5A 90``)."""

    sha256: str                 # the artifact it was marked in
    kind: MarkKind
    value: str
    offset: int
    encoding: str = ""          # "ascii" / "utf-16le" for strings
    source: str = ""            # a label for people: the artifact's file name

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.sha256, self.kind, self.value, self.encoding)

    @property
    def wide(self) -> bool:
        return self.encoding == "utf-16le"


def hex_string(data: bytes) -> str:
    """Bytes as YARA hex-string content: ``4D 5A 90 00``."""
    return " ".join(f"{b:02X}" for b in data)


class Marks:
    """An ordered set of marks shared by every screen of one app."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str, str], Mark] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Mark]:
        return iter(self._items.values())

    def __contains__(self, mark: object) -> bool:
        return isinstance(mark, Mark) and mark.key in self._items

    def toggle(self, mark: Mark) -> bool:
        """Mark or unmark; True when it is now marked."""
        if mark.key in self._items:
            del self._items[mark.key]
            return False
        self._items[mark.key] = mark
        return True

    def add(self, mark: Mark) -> None:
        self._items.setdefault(mark.key, mark)

    def clear(self) -> None:
        self._items.clear()

    def samples(self) -> list[str]:
        """The artifacts the marks came from, in the order first marked."""
        return list(dict.fromkeys(m.sha256 for m in self))

    def texts(self) -> list[Mark]:
        return [m for m in self if m.kind == "text"]

    def hexes(self) -> list[Mark]:
        return [m for m in self if m.kind == "hex"]
