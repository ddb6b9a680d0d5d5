"""What the test and release screens draw, built without Textual: rows, cells and texts."""

from __future__ import annotations

from workbench.corpus.retrohunt import RetroMatch, RetroMessage
from workbench.corpus.rule_testing import FalseNegative, FileMatch, MatchDetail, RuleResult
from workbench.release.worktree import Change
from workbench.rules.findings import Finding
from workbench.tui.release_rows import change_cells, finding_cells, finding_text
from workbench.tui.testing_rows import match_cells, match_rows, missed_rows, retro_cells, rule_cells


def _plain(cells: list[object]) -> list[str]:
    return [getattr(c, "plain", c) for c in cells]  # type: ignore[misc]


def _rule(**kw: object) -> RuleResult:
    return RuleResult("MAL_X", "rules/x.yar", 3, "k", "f", False, **kw)  # type: ignore[arg-type]


def test_match_rows_one_per_instance_and_files_without_details() -> None:
    hit = FileMatch("a" * 64, "dropper.exe", ["mal", "mal2"], 100, 2,
                    [MatchDetail("$a", 16, 4, b"EVIL", b"", b""), MatchDetail("$b", 40, 2, b"\x90\x90", b"", b"")])
    bare = FileMatch("b" * 64, "other.bin", ["mal"], 50, 0)
    rows = match_rows([hit, bare])
    assert [(r.name, r.offset, r.identifier) for r in rows] == [
        ("dropper.exe", 16, "$a"), ("dropper.exe", 40, "$b"), ("other.bin", None, "")]
    assert match_cells(rows[0]) == ["dropper.exe", "mal, mal2", "0x10", "$a", "EVIL"]
    assert match_cells(rows[1])[-1] == "90 90"


def test_rule_cells_say_the_verdict() -> None:
    assert _plain(rule_cells(_rule(tp_count=2)))[-1] == "✓ pass"
    assert _plain(rule_cells(_rule(fp_count=1)))[-1] == "✗ 1 false positive(s)"
    missed = _rule(false_negatives=[FalseNegative("c" * 64, "timeout", detail="30 s")])
    assert _plain(rule_cells(missed))[-1] == "✗ 1 missed"
    assert missed_rows(missed)[0].reason == "timeout: 30 s"


def test_retro_cells_name_the_rules_and_where_they_matched() -> None:
    msg = RetroMessage("d" * 64, "Invoice\x1b[2J", "a@b.example", "2026-11-02T09:30:00.000000Z", "t12", "new",
                       [], [RetroMatch("MAL_X", "e" * 64, "invoice.zip/payload.exe"), RetroMatch("MAL_Y")])
    cells = retro_cells(msg)
    assert cells[0] == "2026-11-02 09:30" and cells[4] == "MAL_X, MAL_Y"
    assert cells[5] == "(the message), invoice.zip/payload.exe"
    assert "\x1b" not in cells[3]                  # hostile subjects stay text


def test_release_cells_and_finding_text() -> None:
    change = Change("modified", "MAL_X", "rules/mal/x.yar", status="RELEASED", previous_status="TESTING",
                    version="2", previous_version="1", git="modified")
    assert _plain(change_cells(change)) == ["modified", "MAL_X", "mal/x.yar", "1 → 2", "TESTING → RELEASED",
                                            "modified"]
    finding = Finding("V401", "error", "rules/mal/x.yar", 7, 1, "too slow", "bound the regex", "MAL_X", "")
    assert _plain(finding_cells(finding)) == ["error", "V401", "x.yar:7", "MAL_X", "too slow"]
    text = finding_text(finding, None).plain
    assert "rules/mal/x.yar:7:1" in text and "→ bound the regex" in text
