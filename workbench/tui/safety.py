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

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from workbench.terminal_text import UNSAFE, visible

__all__ = ["ControlFilter", "visible"]

_UNSAFE = UNSAFE     # one definition, shared with the command line (workbench.terminal_text)


class ControlFilter(LineFilter):
    """Drops control and bidi characters from rendered lines (they have no width)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(not s.control and _UNSAFE.search(s.text) for s in segments):
            return segments
        return [s if s.control else Segment(_UNSAFE.sub("", s.text), s.style) for s in segments]
