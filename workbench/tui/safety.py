"""Hostile text stays text: no control or bidi characters reach the analyst's terminal.

Mail is attacker-controlled: a subject, a file name or a body can carry ESC
sequences (set the window title, rewrite the screen, on some terminals worse) or
bidi overrides that make ``gpj.exe`` read as ``exe.jpg``. Rich and Textual pass
such characters through to the terminal. Two layers stop them:

- ``visible()`` turns them into visible stand-ins where we draw untrusted fields
  (subjects, senders, file names, headers), so the analyst sees they are there;
- ``ControlFilter`` removes any that remain from every line just before it is
  written, whichever widget drew it (the guarantee, at the output boundary).
"""

from __future__ import annotations

import re

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")

_VISIBLE = {c: chr(0x2400 + c) for c in range(0x20)}       # ␀ .. ␟, e.g. ESC -> ␛
_VISIBLE[0x7F] = "␡"
_VISIBLE.update({c: "�" for c in range(0x80, 0xA0)})
_VISIBLE.update({ord(c): f"⟨U+{ord(c):04X}⟩" for c in _BIDI})
_VISIBLE_MULTILINE = {k: v for k, v in _VISIBLE.items() if k not in (0x09, 0x0A)}


def visible(text: str, *, multiline: bool = False) -> str:
    """``text`` with control and bidi characters shown as visible stand-ins."""
    if not _UNSAFE.search(text):
        return text
    return text.translate(_VISIBLE_MULTILINE if multiline else _VISIBLE)


class ControlFilter(LineFilter):
    """Drops control and bidi characters from rendered lines (they have no width)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(not s.control and _UNSAFE.search(s.text) for s in segments):
            return segments
        return [s if s.control else Segment(_UNSAFE.sub("", s.text), s.style) for s in segments]
