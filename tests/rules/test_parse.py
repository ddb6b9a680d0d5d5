"""The YARA parser: positions, sections, literals that look like syntax, recovery, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yara
import yara_x

from workbench.rules.parse import compute_fingerprint, parse_file, parse_paths, parse_text

TRICKY = r'''
import "pe"
include "other.yar"
/* a commented-out rule { condition: true } */
private global rule MAL_Demo_Tricky_Doc : demo doc
{
    meta:
        id = "x"
        description = "Quote \"x\" brace } and \x41"
        version = 2
        offset = -5
        enabled = true
        hash = "aa"
        hash = "bb"
    strings:
        $a = "abc}" ascii wide nocase // trailing comment
        $h = { 4D 5A [2-4] ( 90 | 91 ) ?? /* note } */ }
        $r = /ab+c\/d{1,3}/is
        $x = "xyz" base64("!@#$%^&*(){}[].,|ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu")
        $ = "anon"
    condition:
        uint16(0) == 0x5A4D and filesize < 2MB and "}" == "}" and
        pe.sections[0].name matches /}\// and
        for any i in (1..#a): ( @a[i] > 10 ) and 2 of them
}
rule Second { condition: filesize \ 2 > 10 }
'''


def test_parses_every_part_with_positions() -> None:
    f = parse_text(TRICKY, Path("t.yar"))
    assert f.errors == []
    assert f.imports == ["pe"] and f.includes == ["other.yar"]
    assert [r.name for r in f.rules] == ["MAL_Demo_Tricky_Doc", "Second"]
    r = f.rules[0]
    assert (r.is_private, r.is_global, r.tags) == (True, True, ["demo", "doc"])
    assert (r.start_line, r.end_line, r.condition_line) == (5, 25, 22)
    assert r.meta_values("hash") == ["aa", "bb"]
    assert r.meta_value("description") == 'Quote "x" brace } and A'
    assert r.meta_value("version") == 2 and r.meta_value("offset") == -5 and r.meta_value("enabled") is True
    assert r.meta_line("version") == 10
    assert [(s.identifier, s.kind, s.line, s.column) for s in r.strings] == [
        ("$a", "text", 16, 9), ("$h", "hex", 17, 9), ("$r", "regex", 18, 9),
        ("$x", "text", 19, 9), ("$", "text", 20, 9)]
    assert r.strings[0].value == '"abc}"' and r.strings[0].modifiers == ["ascii", "wide", "nocase"]
    assert r.strings[1].value == "{ 4D 5A [2-4] ( 90 | 91 ) ?? /* note } */ }"
    assert r.strings[2].value == r"/ab+c\/d{1,3}/is"
    assert r.strings[3].modifier_names == {"base64"}
    assert r.condition.startswith("uint16(0) == 0x5A4D") and r.condition.endswith("2 of them")
    assert r.text.startswith("private global rule MAL_Demo_Tricky_Doc") and r.text.endswith("}")
    assert TRICKY.splitlines()[r.start_line - 1].startswith("private global rule")
    second = f.rules[1]
    assert second.condition == r"filesize \ 2 > 10"
    assert second.text == r"rule Second { condition: filesize \ 2 > 10 }"
    assert second.imports == ["pe"] and second.namespace == "default"


def test_syntax_error_is_reported_and_later_rules_survive() -> None:
    src = 'rule A { condition: true }\nrule B { strings: $a = "open condition: $a }\nrule C { condition: false }\n'
    f = parse_text(src)
    assert [r.name for r in f.rules] == ["A", "C"]
    assert len(f.errors) == 1 and f.errors[0].startswith("line 2:")


def test_unclosed_rule_and_bad_meta_are_errors() -> None:
    assert parse_text("rule A { condition: true").errors
    bad = parse_text("rule A { meta: x = nope condition: true }")
    assert bad.rules == [] and "line 1" in bad.errors[0]
    assert parse_text("rule A { condition: true } /* open").errors


def test_fingerprint_ignores_layout_comments_and_metadata() -> None:
    a = parse_text('rule A { meta: v = 1 strings: $a = "x" wide ascii $h = {4d5a} '
                   'condition: $a and $h }').rules[0]
    b = parse_text('rule A {\n meta:\n  v = 2\n  author = "me"\n strings:\n  $a = "x" ascii wide\n'
                   '  $h = { 4D 5A } // mz\n condition:\n  $a  and\n  $h /* both */\n}').rules[0]
    c = parse_text('rule A { strings: $a = "x" ascii wide $h = { 4D 5A } condition: $a or $h }').rules[0]
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert a.fingerprint == compute_fingerprint(a.strings, a.condition)
    assert len(a.fingerprint) == 64


def test_agrees_with_libyara_on_rule_names(tmp_path: Path) -> None:
    f = parse_text(TRICKY.replace('include "other.yar"', ""))
    compiled = yara.compile(source=TRICKY.replace('include "other.yar"', ""))
    yara_x.compile(TRICKY.replace('include "other.yar"', ""))
    assert {r.identifier for r in compiled} == {r.name for r in f.rules}


def test_parse_paths_walks_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yar").write_text("rule One { condition: true }")
    (tmp_path / "two.yara").write_text("rule Two { condition: true }")
    (tmp_path / "notes.txt").write_text("rule Not { condition: true }")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yar").write_text("rule Hidden { condition: true }")
    files = parse_paths([tmp_path, tmp_path / "two.yara"])
    assert [r.name for f in files for r in f.rules] == ["One", "Two"]
    assert files[0].rules[0].file == tmp_path / "a" / "one.yar"


def test_non_utf8_file_is_read_and_flagged(tmp_path: Path) -> None:
    p = tmp_path / "latin.yar"
    p.write_bytes(b'rule L { meta: d = "caf\xe9" condition: true }')
    f = parse_file(p)
    assert f.rules[0].meta_value("d") == "café"
    assert "not UTF-8" in f.errors[0]


@pytest.mark.slow
def test_parses_thousands_of_rules() -> None:
    body = "\n".join(
        f'rule R{i} : t {{ meta: id = "{i}" hash = "{i:064x}" strings: $a = "string{i}" wide '
        f'$h = {{ 4D 5A ?? {i % 256:02X} }} $r = /abc{i}[0-9]+/ condition: uint16(0) == 0x5A4D and any of them }}'
        for i in range(5000))
    f = parse_text(body)      # speed: bench/rules.py
    assert len(f.rules) == 5000 and not f.errors
    assert f.rules[4999].name == "R4999" and f.rules[4999].meta_value("id") == "4999"
