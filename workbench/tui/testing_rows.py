"""What the test screen draws: rows and cells of rule results, matches, misses and retro-hunt hits (no Textual)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from workbench.terminal_text import visible
from workbench.tui.render import received_text

if TYPE_CHECKING:
    from workbench.corpus.retrohunt import RetroMessage
    from workbench.corpus.rule_testing import FileMatch, RuleResult

Cell = str | Text


@dataclass(frozen=True)
class MatchRow:
    """One listed match (or a file listed without match details): what a results row opens."""

    sha256: str
    name: str
    corpora: str
    size: int
    offset: int | None = None
    length: int = 0
    identifier: str = ""
    data: bytes = b""
    reason: str = ""               # for false negatives: missed, timeout, absent ...


def preview(data: bytes, width: int = 48) -> str:
    """Matched bytes as text when printable, else hex."""
    if data and all(32 <= b < 127 for b in data):
        return data.decode("ascii")[:width]
    return " ".join(f"{b:02X}" for b in data[: width // 3])


def match_rows(files: list[FileMatch]) -> list[MatchRow]:
    """``FileMatch`` entries of a rule result as rows: one per listed match instance."""
    rows: list[MatchRow] = []
    for fm in files:
        corpora = ", ".join(fm.corpora)
        if not fm.strings:
            rows.append(MatchRow(fm.sha256, fm.name, corpora, fm.size))
        for m in fm.strings:
            rows.append(MatchRow(fm.sha256, fm.name, corpora, fm.size, m.offset, m.length,
                                 m.identifier, m.data))
    return rows


def missed_rows(rule: RuleResult) -> list[MatchRow]:
    return [MatchRow(fn.sha256, fn.name or fn.hash, ", ".join(fn.corpora), 0,
                     reason=f"{fn.reason}{': ' + fn.detail if fn.detail else ''}")
            for fn in rule.false_negatives]


def rule_cells(rule: RuleResult) -> list[Cell]:
    if rule.fp_count and rule.false_negatives:
        verdict = Text("✗ FP and FN", style="bold red")
    elif rule.fp_count:
        verdict = Text(f"✗ {rule.fp_count} false positive(s)", style="bold red")
    elif rule.false_negatives:
        verdict = Text(f"✗ {len(rule.false_negatives)} missed", style="bold red")
    elif rule.warnings:
        verdict = Text(f"✓ pass · ⚠ {len(rule.warnings)}", style="yellow")
    else:
        verdict = Text("✓ pass", style="green")
    return [rule.rule, str(rule.tp_count), str(rule.fp_count), str(len(rule.false_negatives)),
            str(rule.other_count), verdict]


def match_cells(row: MatchRow) -> list[str]:
    where = f"0x{row.offset:x}" if row.offset is not None else ""
    return [visible(row.name), row.corpora, where, row.identifier, visible(preview(row.data))]


def missed_cells(row: MatchRow) -> list[str]:
    return [visible(row.name), row.corpora, row.reason]


def retro_cells(msg: RetroMessage) -> list[str]:
    via = ", ".join(sorted({m.artifact_name or "(the message)" for m in msg.matches}))
    rules = ", ".join(sorted({m.rule for m in msg.matches}))
    return [received_text(msg.first_seen), visible(msg.tower), msg.status, visible(msg.subject),
            rules, visible(via)]
