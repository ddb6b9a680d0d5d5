"""What the YARA compilers say, taken apart once: position, text, an undefined identifier.

libyara (through yara-python) gives one string per error or warning, with the position
in one of three forms; YARA-X gives a dict per error or warning. The linter
(``rules/compilers.py``), validation (``release/validate.py``) and the scanner's ruleset
(``corpus/ruleset.py``) all read them here. No engine is imported: a command that only
reads cached results must not pay for loading one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# "line N: msg" (compiled from a string), "FILE(N): msg" (from a file, or an include:
# a batch compile names its includes "0", "1" ...)
_LIBYARA_POSITION = re.compile(r"^(?:line (?P<line>\d+)|(?P<file>.+?)\((?P<fline>\d+)\)): (?P<msg>.*)$", re.S)
# libyara: undefined identifier "x"; YARA-X: unknown identifier `x`
_UNDEFINED = re.compile(r'(?:undefined|unknown) identifier "?`?(?P<name>[A-Za-z_][A-Za-z0-9_]*)')
_UNKNOWN_MODULE = re.compile(r'unknown module "?`?(?P<name>[A-Za-z0-9_]+)')


@dataclass(frozen=True)
class LibyaraMessage:
    """One libyara error or warning: ``file`` as libyara named it ("" for a string), ``line`` 0 if none."""

    file: str
    line: int
    text: str


@dataclass(frozen=True)
class YaraxMessage:
    """One YARA-X error or warning, as far as a finding needs it."""

    code: str
    title: str
    detail: str               # the primary label's text ("" if none)
    line: int                 # 0 if none
    column: int
    origin: str               # the file the primary label points into ("" if none)
    notes: list[str]          # the footers' texts

    @property
    def summary(self) -> str:
        """``code: title (detail)``, the detail left out when the title says it already."""
        text = f"{self.code}: {self.title}"
        return f"{text} ({self.detail})" if self.detail and self.detail not in self.title else text


def libyara_message(text: str) -> LibyaraMessage:
    """libyara's string taken apart; one without a position keeps its whole text."""
    text = text.strip()
    m = _LIBYARA_POSITION.match(text)
    if m is None:
        return LibyaraMessage("", 0, text)
    if m.group("line"):
        return LibyaraMessage("", int(m.group("line")), m.group("msg"))
    return LibyaraMessage(m.group("file"), int(m.group("fline")), m.group("msg"))


def yarax_message(item: Mapping[str, Any]) -> YaraxMessage:
    """YARA-X's dict (``Compiler.errors()`` / ``warnings()``) taken apart."""
    labels = item.get("labels") or []
    primary = labels[0] if labels else {}
    return YaraxMessage(
        code=str(item.get("code", "")), title=str(item.get("title", "")),
        detail=str(primary.get("text", "")).strip(),
        line=int(item.get("line") or primary.get("line") or 0),
        column=int(item.get("column") or primary.get("column") or 0),
        origin=str(primary.get("code_origin") or ""),
        notes=[str(f.get("text", "")) for f in item.get("footers") or [] if f.get("text")])


def undefined_identifier(message: str) -> str:
    """The identifier either engine says is undefined ("" if the message is about something else)."""
    m = _UNDEFINED.search(message)
    return m.group("name") if m else ""


def unknown_module(message: str) -> str:
    """The module either engine says it does not have ("" if the message is about something else)."""
    m = _UNKNOWN_MODULE.search(message)
    return m.group("name") if m else ""


def externals_hint(name: str) -> str:
    """Why an identifier may be undefined: most often an external the policy does not declare."""
    return (f"if {name} is an external variable, declare it under [externals] in "
            f"signatures/workbench.toml with its default value (e.g. {name} = \"\"); "
            f"otherwise fix the name")
