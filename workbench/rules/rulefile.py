"""Rule files as the analyst keeps them: where a rule goes, appending one, status and metadata edits.

The CLI (``rule draft --out``, ``campaigns draft --out``) and the UI's editor (save, append,
set status) call these, so a rule joins a file the same way from either shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workbench.durable import KEEP_MODE, atomic_write
from workbench.errors import Kind, WorkbenchError
from workbench.rules.parse import parse_text

_IMPORT = re.compile(r'^\s*import\s+"([^"]+)"\s*$', re.MULTILINE)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_STATUS = re.compile(r'(^[ \t]*status[ \t]*=[ \t]*)"[^"\n]*"', re.MULTILINE)


class RuleFileError(WorkbenchError, ValueError):
    """A rule that cannot join a file: the file or the rule does not parse, or a name is taken.

    Nothing was written. ``taken`` lists the names the file already has (empty otherwise).
    """

    kind = Kind.INPUT

    def __init__(self, message: str, *, taken: list[str] | None = None) -> None:
        super().__init__(message)
        self.taken = taken or []


@dataclass(frozen=True)
class Appended:
    """What ``append_rule`` wrote: the file, its whole new text, the rules added."""

    path: Path
    text: str
    names: list[str]
    created: bool                  # the file did not exist before


def _component(value: object, fallback: str) -> str:
    text = _SAFE.sub("_", str(value or "").strip()).strip("._").lower()
    return text or fallback


def default_rule_path(signatures: Path, text: str) -> Path:
    """``signatures/rules/<category>/<family>.yar`` from the first rule's metadata.

    Without ``category`` or ``family`` metadata the rule name's
    ``<CATEGORY>_<Family>_...`` parts are used, then ``draft``.
    """
    rules = parse_text(text).rules
    category: object = ""
    family: object = ""
    if rules:
        rule = rules[0]
        category = rule.meta_value("category") or ""
        family = rule.meta_value("family") or ""
        parts = rule.name.split("_")
        if not category and len(parts) >= 2:
            category = parts[0]
        if not family and len(parts) >= 2:
            family = parts[1]
        if not family:
            family = rule.name
    return signatures / "rules" / _component(category, "draft") / f"{_component(family, 'draft')}.yar"


def merge_rules(existing: str, addition: str, *, where: str = "the file") -> str:
    """``addition``'s rules after ``existing``'s, its new imports hoisted to the top once.

    Raises RuleFileError when either text does not parse or when ``existing`` already
    has a rule of one of ``addition``'s names (YARA would refuse the whole file).
    """
    have = parse_text(existing)
    if have.errors:
        raise RuleFileError(f"{where} does not parse ({have.errors[0]}); not appending to it")
    new = parse_text(addition)
    if new.errors:
        raise RuleFileError(f"the rule does not parse ({new.errors[0]}); fix it or save it on its own")
    taken = {r.name for r in have.rules}
    clash = [r.name for r in new.rules if r.name in taken]
    if clash:
        raise RuleFileError(f"{where} already has a rule named {', '.join(clash)}", taken=clash)
    imported = set(_IMPORT.findall(existing))
    wanted = [name for name in _IMPORT.findall(addition) if name not in imported]
    body = _IMPORT.sub("", addition).strip("\n")
    head = "".join(f'import "{name}"\n' for name in dict.fromkeys(wanted))
    existing = existing.rstrip("\n")
    return f"{head}{existing}\n\n{body}\n" if existing else f"{head}{body}\n"


def append_rule(path: Path, text: str) -> Appended:
    """Add the rules of ``text`` to the file at ``path`` (created if missing), atomically.

    Refuses (RuleFileError, the file untouched) a file or a rule that does not parse and
    a name the file already has; imports the addition needs are hoisted to the top.
    """
    try:
        existing = path.read_text(encoding="utf-8")
        created = False
    except FileNotFoundError:
        existing, created = "", True
    except UnicodeDecodeError:
        raise RuleFileError(f"{path} is not UTF-8 text; not appending to it") from None
    merged = merge_rules(existing, text, where=str(path))
    write_rule_file(path, merged)
    return Appended(path, merged, [r.name for r in parse_text(text).rules], created)


def write_rule_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, keeping the file's mode (an ordinary file's if new)."""
    atomic_write(path, text, mode=KEEP_MODE)


def set_rule_status(text: str, status: str, line: int) -> tuple[str, str] | None:
    """``text`` with the ``status`` metadata of the rule at ``line`` (1-based) set to ``status``.

    Returns (new text, rule name), or None when no rule there has a status line. Only the
    metadata changes: the fingerprint (strings and condition) stays what it was.
    """
    rules = parse_text(text).rules
    if not rules:
        return None
    rule = next((r for r in rules if r.start_line <= line <= r.end_line), rules[0])
    body = text[rule.start_offset:rule.end_offset]
    new_body, found = _STATUS.subn(lambda m: f'{m.group(1)}"{status}"', body, count=1)
    if not found:
        return None
    return text[:rule.start_offset] + new_body + text[rule.end_offset:], rule.name
