"""Hostile text stays text: control and bidi characters shown as visible stand-ins.

Mail is attacker-controlled: a subject, a file name or a body can carry ESC
sequences (set the window title, rewrite the screen) or bidi overrides that make
``gpj.exe`` read as ``exe.jpg``. Every text the CLI prints and every untrusted field
the TUI draws goes through ``visible()``.
"""

from __future__ import annotations

import re

from workbench.document import clean_text

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI}]")
_UNSAFE_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}]")     # tab and newline kept

_VISIBLE = {c: chr(0x2400 + c) for c in range(0x20)}       # ␀ .. ␟, e.g. ESC -> ␛
_VISIBLE[0x7F] = "␡"
_VISIBLE.update({c: "�" for c in range(0x80, 0xA0)})
_VISIBLE.update({ord(c): f"⟨U+{ord(c):04X}⟩" for c in BIDI})
_VISIBLE_MULTILINE = {k: v for k, v in _VISIBLE.items() if k not in (0x09, 0x0A)}


def visible(text: str, *, multiline: bool = False) -> str:
    """``text`` with control and bidi characters shown as visible stand-ins
    (newlines and tabs kept when ``multiline``)."""
    text = clean_text(text)
    # a multi-line text always has a newline: searching for it sent every report through translate
    if not (_UNSAFE_MULTILINE if multiline else UNSAFE).search(text):
        return text
    return text.translate(_VISIBLE_MULTILINE if multiline else _VISIBLE)


_RAW_IN_JSON = re.compile(f"[\x7f-\x9f{BIDI}]")     # what json.dumps(ensure_ascii=False) leaves raw


def json_for_terminal(document: str) -> str:
    """A JSON text with C1 controls and bidi characters written as ``\\uXXXX`` escapes:
    the same data to a parser, nothing a terminal would act on (``json.dumps`` already
    escapes C0 controls). These characters only occur inside JSON strings, where an
    escape is always valid."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int], width: int = 24) -> str:
    """Counts as one line of block characters (folded into ``width`` buckets); a zero is a
    blank, so a quiet hour reads as a gap, not as the lowest bar."""
    if not counts:
        return ""
    if len(counts) > width:
        step = len(counts) / width
        counts = [sum(counts[int(i * step):int((i + 1) * step)]) for i in range(width)]
    top = max(counts) or 1
    return "".join(SPARK[min(len(SPARK) - 1, (n * (len(SPARK) - 1) + top - 1) // top)] if n else " "
                   for n in counts)
