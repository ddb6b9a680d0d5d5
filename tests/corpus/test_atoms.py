"""Requirement extraction: the atoms each string kind and modifier yields, and how conditions combine them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from workbench.corpus.atoms import (
    ANYTHING,
    NOTHING,
    AllOf,
    AnyOf,
    Contains,
    Formula,
    HeadIs,
    Requirements,
    decode_text,
    hex_runs,
    regex_runs,
    string_requirement,
)
from workbench.corpus.ruleset import load_ruleset
from workbench.rules.parse import RuleString


def text(value: str, *mods: str) -> Formula:
    return string_requirement(RuleString("$a", "text", value, list(mods), 1))


def hexs(value: str) -> Formula:
    return string_requirement(RuleString("$a", "hex", value, [], 1))


def regex(value: str, *mods: str) -> Formula:
    return string_requirement(RuleString("$a", "regex", value, list(mods), 1))


def variants(f: Formula) -> set[tuple[bytes, ...]]:
    assert isinstance(f, Contains), f
    return set(f.variants)


# -- text strings -----------------------------------------------------------------------


def test_plain_text_and_escapes_are_decoded_at_byte_level() -> None:
    assert variants(text('"abcd"')) == {(b"abcd",)}
    assert decode_text(r'"a\x41\n\t\r\"\\b"') == b'aA\n\t\r"\\b'
    assert decode_text('"café"') == "café".encode()            # UTF-8 in the rule file: 2 bytes
    assert decode_text('"caf\xe9"', "latin-1") == b"caf\xe9"     # a Latin-1 rule file: 1 byte
    assert decode_text(r'"\xe9"') == b"\xe9"                     # an escape is one byte
    assert text(r'"ab\qcd"') is ANYTHING                         # unknown escape: not understood
    assert text(r'"ab\x4"') is ANYTHING


def test_short_strings_say_nothing() -> None:
    assert text('"abc"') is ANYTHING
    assert variants(text('"abcd"', "fullword", "private")) == {(b"abcd",)}


def test_wide_ascii_and_nocase() -> None:
    assert variants(text('"abcd"', "wide")) == {(b"a\0b\0c\0d",)}       # last zero left off
    assert variants(text('"abcd"', "ascii", "wide")) == {(b"abcd",), (b"a\0b\0c\0d",)}
    assert variants(text('"AbCd"', "nocase")) == {(b"AbCd",)}          # the index folds case
    assert text('"ab"', "wide") is ANYTHING                             # a\0b: three bytes


def test_xor_keys_and_ranges() -> None:
    every = variants(text('"abcd"', "xor"))
    assert len(every) == 256 and (b"abcd",) in every
    assert (bytes(c ^ 0x20 for c in b"abcd"),) in every
    assert variants(text('"abcd"', "xor(0x01-0x03)")) == {
        (bytes(c ^ k for c in b"abcd"),) for k in (1, 2, 3)}
    assert variants(text('"abcd"', "xor(5)")) == {(bytes(c ^ 5 for c in b"abcd"),)}
    assert len(variants(text('"abcd"', "xor(nonsense)"))) == 256       # not understood: all keys
    # libyara xors the wide form, its zeros included
    assert variants(text('"abcd"', "xor(4)", "wide")) == {(bytes(c ^ 4 for c in b"a\0b\0c\0d"),)}


def test_base64_atoms_are_the_ones_libyara_documents() -> None:
    got = variants(text('"This program cannot"', "base64"))
    assert got == {(b"VGhpcyBwcm9ncmFtIGNhbm5vd",), (b"RoaXMgcHJvZ3JhbSBjYW5ub3",),
                   (b"UaGlzIHByb2dyYW0gY2Fubm90",)}
    wide = variants(text('"This program cannot"', "base64wide"))
    assert (b"V\0G\0h\0p\0c\0y\0B\0w\0c\0m\x009\0n\0c\0m\0F\0t\0I\0G\0N\0h\0b\0m\x005\0v\0d",) in wide
    both = variants(text('"This program cannot"', "base64", "base64wide"))
    assert len(both) == 6
    alphabet = "!@#$%^&*(){}[]ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[:64]
    custom = variants(text('"This program cannot"', f'base64("{alphabet}")'))
    table = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                            alphabet.encode())
    assert (b"VGhpcyBwcm9ncmFtIGNhbm5vd".translate(table),) in custom
    assert text('"This program cannot"', 'base64("short")') is ANYTHING


def test_base64_atoms_are_in_every_encoding_of_the_string() -> None:
    needle = b"evil.example/payload"
    atoms = {v[0] for v in variants(text(f'"{needle.decode()}"', "base64"))}
    for before in (b"", b"x", b"xy", b"xyz"):
        for after in (b"", b"!", b"!!"):
            encoded = base64.b64encode(before + needle + after)
            assert any(a in encoded for a in atoms)


def test_unknown_modifiers_are_not_understood() -> None:
    assert text('"abcdef"', "someday") is ANYTHING


# -- hex strings --------------------------------------------------------------------------


def test_hex_runs_split_at_wildcards_jumps_groups_and_negations() -> None:
    assert hex_runs("{ 4D 5A 90 00 03 ?? 00 00 00 04 }") == [b"MZ\x90\x00\x03", b"\0\0\0\x04"]
    assert hex_runs("{ 41 42 43 44 [2-4] 45 46 47 48 }") == [b"ABCD", b"EFGH"]
    assert hex_runs("{ 41 42 43 44 [-] 45 46 }") == [b"ABCD", b"EF"]
    assert hex_runs("{ 41 42 43 44 ( 01 02 | 03 04 05 06 07 ) 45 46 47 48 }") == [b"ABCD", b"EFGH"]
    assert hex_runs("{ 41 42 43 44 4? 45 46 47 48 ?5 49 }") == [b"ABCD", b"EFGH", b"I"]
    assert hex_runs("{ 41 42 43 44 ~00 45 46 47 48 }") == [b"ABCD", b"EFGH"]
    assert hex_runs("{ 41 42 // a comment\n 43 44 /* more */ 45 }") == [b"ABCDE"]
    assert hex_runs("{ 41 42 | 43 44 }") is None                   # not valid at the top level
    assert hex_runs("{ 41 42 ( 43 }") is None
    assert variants(hexs("{ 41 42 43 44 ?? 45 46 47 48 }")) == {(b"ABCD", b"EFGH")}
    assert hexs("{ 41 ?? 42 ?? 43 ?? 44 }") is ANYTHING            # no run of four bytes
    assert hexs("{ ( 41 42 43 44 | 45 46 47 48 ) }") is ANYTHING


# -- regexes ------------------------------------------------------------------------------


def test_regex_literal_runs() -> None:
    assert regex_runs(rb"abcd[0-9]+efgh") == [[b"abcd", b"efgh"]]
    assert regex_runs(rb"abcde?fgh") == [[b"abcd", b"fgh"]]            # optional e dropped
    assert regex_runs(rb"abcdx+yz") == [[b"abcdx", b"yz"]]             # x at least once, then a break
    assert regex_runs(rb"abcdx{2,3}yz") == [[b"abcdx", b"yz"]]
    assert regex_runs(rb"abcdx{0,3}yz") == [[b"abcd", b"yz"]]
    assert regex_runs(rb"ab\.cd\x41e\/f") == [[b"ab.cdAe/f"]]
    assert regex_runs(rb"\d\w+abcd\s") == [[b"abcd"]]
    assert regex_runs(rb"ab(cd|ef)+ghij") == [[b"ab", b"ghij"]]
    assert regex_runs(rb"abcd|efgh") == [[b"abcd"], [b"efgh"]]
    assert regex_runs(rb"[a|]bcde") == [[b"bcde"]]                     # | inside a class
    assert regex_runs(rb"abc{") is None                                # libyara reads it literally
    assert regex_runs(rb"ab\qcd") is None


def test_regex_requirements() -> None:
    assert variants(regex("/abcd[0-9]+efgh/")) == {(b"abcd", b"efgh")}
    assert variants(regex("/abcd|efgh/")) == {(b"abcd",), (b"efgh",)}
    assert regex("/abcd|ef/") is ANYTHING                   # one branch with no atom
    assert regex("/(abcd|efgh)/") is ANYTHING
    assert variants(regex("/abcd/is")) == {(b"abcd",)}
    assert variants(regex("/abcd/", "wide")) == {(b"a\0b\0c\0d",)}
    assert variants(regex("/abcd/", "ascii", "wide")) == {(b"abcd",), (b"a\0b\0c\0d",)}
    assert variants(regex("/caf\u00e9 x/")) == {("caf\u00e9 x".encode(),)}


# -- conditions ---------------------------------------------------------------------------


def requirement(tmp_path: Path, rules: str, name: str) -> Formula:
    path = tmp_path / "r.yar"
    path.write_text(rules)
    ruleset = load_ruleset([path])
    return Requirements(ruleset.entries).of_rule(ruleset.by_name[name].index)


A = Contains(((b"aaaa",),), "$a")
B = Contains(((b"bbbb",),), "$b")
C = Contains(((b"cccc",),), "$c")


def cond(tmp_path: Path, condition: str, strings: str = '$a = "aaaa" $b = "bbbb" $c = "cccc"') -> Formula:
    return requirement(tmp_path, f"rule r {{ strings: {strings} condition: {condition} }}", "r")


@pytest.mark.parametrize(("condition", "expected"), [
    ("$a", A),
    ("$a and $b", AllOf((A, B))),
    ("$a or $b", AnyOf((A, B))),
    ("$a or $b and $c", AnyOf((A, AllOf((B, C))))),          # and binds tighter than or
    ("($a or $b) and $c", AllOf((AnyOf((A, B)), C))),
    ("not $a", ANYTHING),
    ("$a and not $b", A),
    ("not $a or $b", ANYTHING),
    ("any of them", AnyOf((A, B, C))),
    ("1 of them", AnyOf((A, B, C))),
    ("2 of ($a, $b)", AnyOf((A, B))),
    ("all of them", AllOf((A, B, C))),
    ("all of ($a, $c)", AllOf((A, C))),
    ("50% of them", AnyOf((A, B, C))),
    ("none of them", ANYTHING),
    ("0 of them", ANYTHING),
    ("any of them in (0..100)", AnyOf((A, B, C))),
    ("all of ($a, $b) at 0", AllOf((A, B))),
    ("#a > 2", A),
    ("#a > 0", A),
    ("#a >= 1", A),
    ("#a == 3", A),
    ("#a >= 0", ANYTHING),
    ("#a == 0", ANYTHING),
    ("#a < 3", ANYTHING),
    ("2 < #a", A),
    ("#a in (0..100) > 1", A),
    ("$a at 0", A),
    ("$a at pe.entry_point + 4", A),
    ("$a in (0..filesize)", A),
    ("for any of ($a, $b) : ($ at 0)", ANYTHING),
    ("for any i in (1..#a) : (@a[i] > 10)", ANYTHING),
    ("uint16(0) == 0x5A4D and filesize < 1MB and $a", AllOf((HeadIs(0, b"MZ"), A))),
    ("filesize < 10 or $a", ANYTHING),
    ("(uint16(0) == 0x5A4D) and ($a or $b) and $c", AllOf((HeadIs(0, b"MZ"), AnyOf((A, B)), C))),
    ("uint32(0) == 0x46445025", HeadIs(0, b"%PDF")),
    ("0x5A4D == uint16(0)", HeadIs(0, b"MZ")),
    ("uint16be(0) == 0x4D5A", HeadIs(0, b"MZ")),
    ("uint32be(4) == 1", HeadIs(4, b"\0\0\0\1")),
    ("uint8(3) == 4", HeadIs(3, b"\4")),
    ("uint32(0) == 0x46445025 or uint32(0) == 0x04034B50", AnyOf((HeadIs(0, b"%PDF"), HeadIs(0, b"PK\3\4")))),
    ("uint16(0) == 0x15A4D", ANYTHING),                          # never true: not worth a special case
    ("uint32(14) == 1", ANYTHING),                               # beyond the first 16 bytes
    ("uint16(0) != 0x5A4D", ANYTHING),
    ("uint16(uint32(0x3C)) == 0x4550", ANYTHING),
    ("int16(0) == 1", ANYTHING),
    ("uint16(0) == 0x5A4D + 1", ANYTHING),
    ("@a[1] < 100 and $b", B),
    ("!a[1] == 4 and $b", B),
    ("true", ANYTHING),
    ("false", NOTHING),
    ("$a and false", NOTHING),
    ("$a or false", A),
    ("#a + #b > 3", ANYTHING),
    ("(#a > 3) == true and $b", B),
])
def test_conditions(tmp_path: Path, condition: str, expected: Formula) -> None:
    assert cond(tmp_path, condition) == expected


def test_string_sets_by_prefix_and_anonymous_strings(tmp_path: Path) -> None:
    strings = '$x1 = "xxxx1" $x2 = "xxxx2" $y = "yyyy" $ = "zzzz"'
    got = cond(tmp_path, "any of ($x*)", strings)
    assert isinstance(got, AnyOf) and {p.label for p in got.parts} == {"$x1", "$x2"}  # type: ignore[union-attr]
    got = cond(tmp_path, "all of them", strings)
    assert isinstance(got, AllOf) and len(got.parts) == 4
    got = cond(tmp_path, "any of ($*)", strings)
    assert isinstance(got, AnyOf) and len(got.parts) == 4


def test_a_string_that_may_be_anywhere_weakens_only_what_it_is_part_of(tmp_path: Path) -> None:
    strings = '$a = "aaaa" $b = "bb" $c = "cccc"'
    assert cond(tmp_path, "any of them", strings) is ANYTHING
    assert cond(tmp_path, "all of them", strings) == AllOf((A, C))
    assert cond(tmp_path, "$b and $c", strings) == C


def test_rule_references_and_globals(tmp_path: Path) -> None:
    rules = """
rule Base { strings: $a = "aaaa" condition: $a }
rule Uses { strings: $b = "bbbb" condition: Base and $b }
rule Either { strings: $c = "cccc" condition: Base or $c }
rule Sets { condition: any of (Base, Uses) }
rule Prefixed { condition: all of (Bas*) }
private rule Hidden { strings: $h = "hhhh" condition: $h }
rule ViaPrivate { condition: Hidden }
"""
    assert requirement(tmp_path, rules, "Uses") == AllOf((A, B))
    assert requirement(tmp_path, rules, "Either") == AnyOf((A, C))
    assert requirement(tmp_path, rules, "Sets") == AnyOf((A, AllOf((A, B))))
    assert requirement(tmp_path, rules, "Prefixed") == A
    assert requirement(tmp_path, rules, "ViaPrivate") == Contains(((b"hhhh",),), "$h")
    gated = rules + 'global rule Gate { strings: $g = "gggg" condition: $g }\n'
    g = Contains(((b"gggg",),), "$g")
    assert requirement(tmp_path, gated, "Base") == AllOf((A, g))
    assert requirement(tmp_path, gated, "Gate") == g


@pytest.mark.parametrize("condition", ["$a and ) or (", "$a and", "(($a)", "and $a", "$a or or $a",
                                       "any of", "any of ($a", "% of them", "any of ($a, 3)", "#a in (0..3 > 1"])
def test_token_streams_not_understood_fall_back_to_anything(condition: str) -> None:
    from workbench.corpus.atoms import _Condition
    from workbench.rules.parse import parse_text
    source = parse_text('rule r { strings: $a = "aaaa" condition: $a }').rules[0]
    source.condition = condition          # the parser would refuse these; the reader must cope
    assert _Condition(source, [A], Requirements([])).formula() is ANYTHING
