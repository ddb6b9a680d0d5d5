"""The one exception base: a failure the user can act on, with a kind each shell maps once.

A core module raises a subclass of :class:`WorkbenchError` whose ``kind`` says what went
wrong in terms a person (and a script) can act on. The CLI maps the kind to an exit code
in one place (``workbench.cli.main``, table ``EXIT_CODES``); the terminal UI shows the
message with a title for the kind in one place (``WorkbenchApp.report_worker_error``).
The message itself says what happened and what to do; no shell rewrites it.
"""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    """What kind of failure; each maps to one exit code (docs/cli.md) and one UI title."""

    USAGE = "usage"            # bad arguments, option values or query syntax
    NOT_FOUND = "not-found"    # an id, serial, path or corpus that does not exist, or is ambiguous
    INPUT = "input"            # input was rejected (not mail, a malformed rule, a bad bundle)
    CONFLICT = "conflict"      # refused because of state: a dirty tree, a lock held, failed validation
    REMOTE = "remote"          # a server or repository could not be reached or refused
    LOCAL = "local"            # this machine failed: a full disk, no permission


class WorkbenchError(Exception):
    """A failure with a message for a person; subclasses set ``kind`` (an instance may too)."""

    kind: Kind = Kind.CONFLICT
    topic: str = ""     # what the message is about, when the message does not say: "query", "policy"

    def __init__(self, *args: object, kind: Kind | None = None) -> None:
        super().__init__(*args)
        if kind is not None:
            self.kind = kind       # an instance may say more than its class

    @property
    def message(self) -> str:
        """The message without the quotes ``KeyError`` puts around its argument."""
        return str(self.args[0]) if len(self.args) == 1 else str(self)

    def describe(self) -> str:
        """The message as every shell shows it: ``query: unknown field 'towr'``."""
        text = self.message
        return f"{self.topic}: {text}" if self.topic and not text.startswith(self.topic + ":") else text


# Titles the terminal UI puts over a failure of each kind.
UI_TITLES: dict[Kind, str] = {
    Kind.USAGE: "Not understood",
    Kind.NOT_FOUND: "Not found",
    Kind.INPUT: "Input rejected",
    Kind.CONFLICT: "Refused",
    Kind.REMOTE: "Server unreachable or refused",
    Kind.LOCAL: "This machine failed",
}


def error_kind(exc: BaseException) -> Kind | None:
    """The kind of a workbench error; ``None`` for anything else (a bug, or the OS)."""
    return exc.kind if isinstance(exc, WorkbenchError) else None
