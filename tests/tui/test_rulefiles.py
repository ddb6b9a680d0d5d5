"""Marks and the artifact view's prompts (rule files: tests/rules/test_rulefile.py)."""

from __future__ import annotations

from workbench.tui.marks import Mark, Marks, hex_string
from workbench.tui.screens.artifact import parse_family
from workbench.tui.screens.modals import parse_tag_edit


def test_marks_toggle_and_group_by_sample() -> None:
    marks = Marks()
    a = Mark("a" * 64, "text", "evil.example", 10, "ascii")
    b = Mark("b" * 64, "hex", hex_string(b"MZ\x90\x00"), 0)
    assert marks.toggle(a) and marks.toggle(b)
    assert b.value == "4D 5A 90 00"
    assert marks.samples() == ["a" * 64, "b" * 64]
    assert [m.value for m in marks.texts()] == ["evil.example"]
    assert not marks.toggle(Mark("a" * 64, "text", "evil.example", 99, "ascii"))   # same string
    assert len(marks) == 1 and a not in marks


def test_family_and_tag_prompts() -> None:
    assert parse_family("MAL Emotet") == ("MAL", "Emotet")
    assert parse_family("phish/docu sign") == ("PHISH", "DocuSign")
    assert parse_family("Qakbot") == ("MAL", "Qakbot")
    assert parse_family("  ") == ("MAL", "Unknown")
    assert parse_tag_edit("+a b -c - +") == (["a", "b"], ["c"])
