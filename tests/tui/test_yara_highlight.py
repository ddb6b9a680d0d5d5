"""The YARA tokenizer behind the editor's highlighting: context-sensitive cases and byte offsets."""

from __future__ import annotations

import yara

from workbench.tui.yara_highlight import HIGHLIGHT_NAMES, Kind, highlight_map, tokenize


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind.name, text[t.start:t.end]) for t in tokenize(text)]


def test_condition_pygments_gets_wrong() -> None:
    # Pygments' YaraLexer mis-lexes this: '#b' is a count, '1MB' one number
    assert kinds("condition: #b > 2 and filesize < 1MB") == [
        ("SECTION", "condition:"), ("VARIABLE", "#b"), ("NUMBER", "2"),
        ("OPERATOR_WORD", "and"), ("BUILTIN", "filesize"), ("NUMBER", "1MB"),
    ]


def test_slash_is_regex_after_equals_or_matches_and_division_elsewhere() -> None:
    text = 'strings: $r = /ab\\/c+/is condition: filesize / 2 > 1 and pe.sections[0].name matches /te.t/'
    got = kinds(text)
    assert ("REGEX", "/ab\\/c+/is") in got
    assert ("REGEX", "/te.t/") in got
    assert ("NUMBER", "2") in got                 # after a division, not swallowed by a regex
    assert sum(1 for k, _ in got if k == "REGEX") == 2


def test_brace_is_hex_after_equals_and_a_body_elsewhere() -> None:
    text = "rule a : t1 t2 {\n strings:\n  $h = { 4D 5A ?? [2-4]\n   ( 90 | 00 ) }\n condition: $h }"
    got = kinds(text)
    assert ("RULE_NAME", "a") in got
    assert ("TAG", "t1") in got and ("TAG", "t2") in got
    assert ("HEX", "{ 4D 5A ?? [2-4]\n   ( 90 | 00 ) }") in got
    assert ("VARIABLE", "$h") in got


def test_meta_keys_strings_modifiers_and_comments() -> None:
    text = ('import "pe"\n/* a\n block */ private rule X {\n meta:\n  author = "me" // who\n'
            '  score = 80\n  ok = true\n strings:\n  $a = "x\\"y" nocase wide xor(1-2)\n'
            ' condition:\n  any of them and !a[1] != 3 and @a[1] < 0x10 and $a at pe.entry_point\n}')
    got = kinds(text)
    for expected in [("KEYWORD", "import"), ("STRING", '"pe"'), ("COMMENT", "/* a\n block */"),
                     ("KEYWORD", "private"), ("KEYWORD", "rule"), ("RULE_NAME", "X"),
                     ("META_KEY", "author"), ("COMMENT", "// who"), ("META_KEY", "score"),
                     ("BOOLEAN", "true"), ("STRING", '"x\\"y"'), ("MODIFIER", "nocase"),
                     ("MODIFIER", "wide"), ("MODIFIER", "xor"), ("OPERATOR_WORD", "any"),
                     ("OPERATOR_WORD", "them"), ("VARIABLE", "!a"), ("VARIABLE", "@a"),
                     ("NUMBER", "0x10"), ("OPERATOR_WORD", "at"), ("MODULE", "pe.entry_point")]:
        assert expected in got, expected


def test_unfinished_text_never_raises() -> None:
    for text in ['rule a { strings: $a = "unterminated', "rule a { strings: $h = { 4D 5A",
                 "/* open comment", "rule", "$", "{", "condition: /", 'rule x { meta: a = "é"']:
        tokenize(text)
        highlight_map(text)


def test_every_kind_has_a_theme_style_name() -> None:
    assert set(HIGHLIGHT_NAMES) == set(Kind)


def test_highlight_map_uses_utf8_byte_offsets_and_splits_lines() -> None:
    text = 'rule a {\n meta:\n  d = "héllo" /* x\n y */\n condition: true }'
    spans = highlight_map(text)
    line = text.split("\n")[2]
    string_span = next(s for s in spans[2] if s[2] == "string")
    start, end = string_span[0], string_span[1]
    raw = line.encode("utf-8")
    assert raw[start:end].decode("utf-8") == '"héllo"'
    # the block comment runs to the end of line 2 and continues on line 3
    assert (raw.index(b"/*"), None, "comment") in spans[2]
    assert (0, 5, "comment") in spans[3]            # " y */"


def test_a_real_rule_is_covered_without_gaps_in_its_strings() -> None:
    text = ('rule MAL_Test_Rule : mail {\n meta:\n  author = "a"\n strings:\n'
            '  $a = "EICAR" ascii\n  $b = { 58 35 4F }\n  $c = /X5O!P%@AP/\n condition:\n'
            '  2 of ($a, $b, $c) and #a == 1\n}\n')
    yara.compile(source=text)          # the sample itself is valid YARA
    got = dict((v, k) for k, v in kinds(text))
    assert got['"EICAR"'] == "STRING" and got["{ 58 35 4F }"] == "HEX"
    assert got["/X5O!P%@AP/"] == "REGEX" and got["#a"] == "VARIABLE"
