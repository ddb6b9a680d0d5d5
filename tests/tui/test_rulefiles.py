"""Where the editor saves rules, appending a draft to a family file, atomic writes; marks."""

from __future__ import annotations

import stat
from pathlib import Path

import yara

from workbench.tui.marks import Mark, Marks, hex_string
from workbench.tui.rulefiles import default_rule_path, merge_into, write_atomically
from workbench.tui.screens.artifact import parse_family
from workbench.tui.screens.modals import parse_tag_edit

RULE = '''import "pe"
rule MAL_Emotet_Loader {
    meta:
        category = "MAL"
        family = "Emotet"
    strings:
        $a = "abc"
    condition:
        $a and pe.number_of_sections > 1
}
'''


def test_path_comes_from_category_and_family_metadata(tmp_path: Path) -> None:
    assert default_rule_path(tmp_path, RULE) == tmp_path / "rules" / "mal" / "emotet.yar"


def test_path_falls_back_to_the_rule_name_then_draft(tmp_path: Path) -> None:
    text = 'rule PHISH_Docu_Sign { condition: true }'
    assert default_rule_path(tmp_path, text) == tmp_path / "rules" / "phish" / "docu.yar"
    assert default_rule_path(tmp_path, "not yara") == tmp_path / "rules" / "draft" / "draft.yar"
    hostile = 'rule x { meta: category = "../../etc" family = "a/b" condition: true }'
    path = default_rule_path(tmp_path, hostile)
    assert path.resolve().is_relative_to(tmp_path / "rules")


def test_merge_hoists_new_imports_and_keeps_both_rules() -> None:
    existing = 'import "math"\nrule MAL_Emotet_Old { condition: true }\n'
    merged = merge_into(existing, RULE)
    assert merged.startswith('import "pe"\nimport "math"\n')
    assert merged.count('import "pe"') == 1
    assert "MAL_Emotet_Old" in merged and "MAL_Emotet_Loader" in merged
    yara.compile(source=merged)
    assert merge_into("", RULE).count("import") == 1


def test_write_atomically_replaces_with_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "rules" / "mal" / "x.yar"
    write_atomically(target, "one")
    write_atomically(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) & 0o044 == 0o044       # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["x.yar"]      # no temp left behind


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
