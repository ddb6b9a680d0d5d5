"""Where the editor saves a rule, and how a draft joins an existing family file (no Textual)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from workbench.rules.parse import parse_text

_IMPORT = re.compile(r'^\s*import\s+"([^"]+)"\s*$', re.MULTILINE)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_STATUS = re.compile(r'(^[ \t]*status[ \t]*=[ \t]*)"[^"\n]*"', re.MULTILINE)


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


def merge_into(existing: str, addition: str) -> str:
    """``addition``'s rules appended to ``existing``, its imports hoisted to the top once."""
    have = set(_IMPORT.findall(existing))
    wanted = [name for name in _IMPORT.findall(addition) if name not in have]
    body = _IMPORT.sub("", addition).strip("\n")
    head = "".join(f'import "{name}"\n' for name in dict.fromkeys(wanted))
    existing = existing.rstrip("\n")
    return f"{head}{existing}\n\n{body}\n" if existing else f"{head}{body}\n"


def _umask() -> int:
    """The process umask, read without setting it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a rule file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)     # mkstemp makes 0600; a rule file is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
