"""What every command handler gets: the workspace, output streams and shared rendering."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from workbench.document import dumps
from workbench.errors import WorkbenchError
from workbench.exitcodes import EXIT_CODES, KINDS
from workbench.terminal_text import json_for_terminal, visible
from workbench.workspace import Workspace


class CommandError(WorkbenchError):
    """A failure a handler finds itself (options that do not go together, a missing file):
    printed without a traceback; ``code`` is one of the documented exit codes."""

    def __init__(self, message: str, code: int):
        super().__init__(message, kind=KINDS[code])

    @property
    def code(self) -> int:
        return EXIT_CODES[self.kind]


@dataclass
class Reply:
    """What a handler returns: the document ``--json`` prints, how to print it as text, and
    the exit code. ``workbench.cli.main`` chooses between the two views, once for every command."""

    document: Any
    text: Callable[[Context], None] | None = None
    code: int = 0


@dataclass
class Context:
    workspace: Workspace
    out: TextIO
    err: TextIO

    def print(self, text: str = "") -> None:
        """Text for a terminal: control and bidi characters from mail are made visible."""
        self.out.write(visible(text, multiline=True) + "\n")

    def json(self, document: Any) -> None:
        """A JSON document; bidi and C1 control characters from mail are escaped."""
        self.out.write(json_for_terminal(dumps(document)) + "\n")

    def error(self, text: str) -> None:
        self.err.write(f"workbench: error: {visible(text, multiline=True)}\n")

    def warn(self, text: str) -> None:
        self.err.write(f"workbench: warning: {visible(text, multiline=True)}\n")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON document (see docs/formats.md)")


def accept_query_terms(parser: argparse.ArgumentParser) -> None:
    """Let a query term such as ``-status:dismissed`` be an option's value or an argument.

    argparse takes any word that starts with ``-`` for an option unless it looks like a
    negative number; to this parser a negated ``field:value`` term looks like one (no
    option of ours has a ``:`` in its name), so ``-q '-status:dismissed'`` works.
    """
    parser._negative_number_matcher = re.compile(r"^-[A-Za-z]+:")


def table(rows: list[list[str]], headers: list[str], *, max_width: dict[int, int] | None = None) -> str:
    """A plain text table, columns padded to their widest cell (capped by ``max_width``)."""
    max_width = max_width or {}
    cells = [headers, *rows]

    def clip(i: int, text: str) -> str:
        limit = max_width.get(i)
        text = visible(text.replace("\n", " "))
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"

    # one look at the whole table: most are plain text, and a thousand-row report's
    # cells one by one cost a re-test most of its time
    flat = " ".join(" ".join(r) for r in cells)
    columns = [list(column) for column in zip(*cells, strict=True)]
    if visible(flat) == flat:         # no control (newline, tab) or bidi characters anywhere
        for i, limit in max_width.items():
            if i < len(columns):
                columns[i] = [c if len(c) <= limit else c[: limit - 1] + "…" for c in columns[i]]
    else:
        columns = [[clip(i, c) for c in column] for i, column in enumerate(columns)]
    widths = [max(map(len, column)) for column in columns]
    # one format per row, not a padded cell each (the same text as ljust and join)
    row = "  ".join(f"{{:<{w}}}" if w else "{}" for w in widths)
    lines = [row.format(*r).rstrip() for r in zip(*columns, strict=True)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def duration_arg(text: str) -> float:
    """An argparse type: ``90``, ``90s``, ``15m``, ``12h``, ``7d`` as seconds (positive)."""
    from workbench.humanize import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_or_zero_arg(text: str) -> float:
    """Like :func:`duration_arg`, and ``0`` turns the thing off."""
    return 0.0 if text.strip().rstrip("sS") in {"0", "0.0"} else duration_arg(text)
