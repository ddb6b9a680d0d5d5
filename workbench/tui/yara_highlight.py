"""A small YARA tokenizer that feeds the rule editor's highlight map.

No tree-sitter grammar for YARA is packaged, and Pygments' ``YaraLexer`` mis-lexes
conditions such as ``#b > 2 and filesize < 1MB``. This lexer is context-aware where
YARA is: ``/`` starts a regex only after ``=`` or ``matches`` (elsewhere it divides),
``{`` starts a hex string only after ``=`` (elsewhere it opens a rule body), and a
word before ``=`` in a ``meta:`` section is a key. It never raises: text that is not
YARA yet (the analyst is typing) is highlighted as far as it makes sense.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """Token kinds; ``HIGHLIGHT_NAMES`` maps them to TextArea theme style names."""

    COMMENT = "comment"
    KEYWORD = "keyword"            # rule, import, private, global ...
    OPERATOR_WORD = "operator"     # and, or, not, of, them, at, in, matches ...
    SECTION = "section"            # meta:, strings:, condition:
    RULE_NAME = "rule_name"
    TAG = "tag"
    META_KEY = "meta_key"
    STRING = "string"              # "text"
    HEX = "hex"                    # { 4D 5A ?? [2-4] }
    REGEX = "regex"                # /ab+c/is
    VARIABLE = "variable"          # $a, #a, @a[1], !a[1], $a*
    MODIFIER = "modifier"          # nocase wide ascii fullword xor base64 private
    BUILTIN = "builtin"            # filesize, entrypoint, uint16be ...
    MODULE = "module"              # pe.imports, math.entropy
    NUMBER = "number"
    BOOLEAN = "boolean"


HIGHLIGHT_NAMES: dict[Kind, str] = {
    Kind.COMMENT: "comment",
    Kind.KEYWORD: "keyword",
    Kind.OPERATOR_WORD: "keyword.operator",
    Kind.SECTION: "heading",
    Kind.RULE_NAME: "type.class",
    Kind.TAG: "tag",
    Kind.META_KEY: "yaml.field",
    Kind.STRING: "string",
    Kind.HEX: "inline_code",
    Kind.REGEX: "string.documentation",
    Kind.VARIABLE: "function",
    Kind.MODIFIER: "keyword.function",
    Kind.BUILTIN: "type.builtin",
    Kind.MODULE: "class",
    Kind.NUMBER: "number",
    Kind.BOOLEAN: "boolean",
}

KEYWORDS = frozenset({"rule", "private", "global", "import", "include"})
SECTIONS = frozenset({"meta", "strings", "condition"})
OPERATOR_WORDS = frozenset({
    "and", "or", "not", "of", "them", "at", "in", "all", "any", "none", "for", "matches",
    "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith",
    "iequals", "defined",
})
MODIFIERS = frozenset({"nocase", "wide", "ascii", "fullword", "xor", "base64", "base64wide",
                       "private"})
BUILTINS = frozenset({
    "filesize", "entrypoint",
    *(f"{sign}int{bits}{end}" for sign in ("", "u") for bits in (8, 16, 32) for end in ("", "be")),
})
BOOLEANS = frozenset({"true", "false"})
MODULES = frozenset({"pe", "elf", "math", "hash", "dotnet", "time", "console", "string",
                     "cuckoo", "magic", "macho", "dex", "lnk", "vt"})

_NORMAL = re.compile(r"""
  (?P<ws>\s+)
| (?P<line_comment>//[^\n]*)
| (?P<block_comment>/\*)
| (?P<string>"(?:[^"\\\n]|\\.)*"?)
| (?P<variable>[$\#@][A-Za-z0-9_]*\*?|![A-Za-z_][A-Za-z0-9_]*)
| (?P<number>0x[0-9A-Fa-f]+|0o[0-7]+|\d+(?:\.\d+)?(?:KB|MB)?)
| (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
| (?P<punct>==|!=|<=|>=|<<|>>|\.\.|.)
""", re.VERBOSE | re.DOTALL)
_REGEX = re.compile(r"/(?:[^/\\\n]|\\.)*/?[is]*")


@dataclass(frozen=True)
class Token:
    """A highlighted span: ``start``/``end`` are character offsets into the whole text."""

    start: int
    end: int
    kind: Kind


def tokenize(text: str) -> list[Token]:
    """Tokens worth highlighting, in order (whitespace and punctuation are left out)."""
    tokens: list[Token] = []
    add = tokens.append
    pos, size = 0, len(text)
    section = ""                 # the current rule section
    previous = ""                # the previous significant token's text
    expect_rule_name = False
    in_tags = False
    while pos < size:
        m = _NORMAL.match(text, pos)
        assert m is not None         # the last alternative matches any character
        group, value, end = m.lastgroup, m.group(), m.end()
        if group == "ws":
            pos = end
            continue
        if group == "line_comment":
            add(Token(pos, end, Kind.COMMENT))
            pos = end
            continue
        if group == "block_comment":
            close = text.find("*/", end)
            end = size if close < 0 else close + 2
            add(Token(pos, end, Kind.COMMENT))
            pos = end
            continue
        if group == "punct" and value == "/" and previous in ("=", "matches"):
            rm = _REGEX.match(text, pos)
            assert rm is not None
            end = rm.end()
            add(Token(pos, end, Kind.REGEX))
        elif group == "punct" and value == "{" and previous == "=":
            end = _hex_end(text, end)
            add(Token(pos, end, Kind.HEX))
            value = "}"
        elif group == "string":
            add(Token(pos, end, Kind.STRING))
        elif group == "variable":
            add(Token(pos, end, Kind.VARIABLE))
        elif group == "number":
            add(Token(pos, end, Kind.NUMBER))
        elif group == "word":
            kind = _word_kind(text, end, value, section, previous, expect_rule_name, in_tags)
            if kind is Kind.SECTION:
                section = value
                colon = _skip_space(text, end)
                end = colon + 1
            elif kind is Kind.RULE_NAME:
                expect_rule_name = False
            if value == "rule" and kind is Kind.KEYWORD:
                expect_rule_name, in_tags, section = True, False, ""
            if kind is not None:
                add(Token(pos, end, kind))
        elif group == "punct":
            if value == ":" and previous and not section and not expect_rule_name:
                in_tags = True
            elif value == "{":
                in_tags = False
                expect_rule_name = False
        previous = value
        pos = end
    return tokens


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _hex_end(text: str, pos: int) -> int:
    """The end of a hex string opened just before ``pos`` (comments may sit inside)."""
    size = len(text)
    while pos < size:
        ch = text[pos]
        if ch == "}":
            return pos + 1
        if text.startswith("//", pos):
            newline = text.find("\n", pos)
            pos = size if newline < 0 else newline
            continue
        if text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            pos = size if close < 0 else close + 2
            continue
        if ch == '"' or text.startswith("condition", pos):
            return pos      # unterminated: stop before what is clearly not hex
        pos += 1
    return size


def _word_kind(text: str, end: int, value: str, section: str, previous: str,
               expect_rule_name: bool, in_tags: bool) -> Kind | None:
    if expect_rule_name and value not in KEYWORDS:
        return Kind.RULE_NAME
    if in_tags:
        return Kind.TAG
    if value in SECTIONS and text[_skip_space(text, end):_skip_space(text, end) + 1] == ":":
        return Kind.SECTION
    if value in KEYWORDS:
        return Kind.KEYWORD
    if section == "meta":
        following = text[_skip_space(text, end):_skip_space(text, end) + 1]
        if following == "=":
            return Kind.META_KEY
        if value in BOOLEANS:
            return Kind.BOOLEAN
        return None
    if section == "strings" and value in MODIFIERS:
        return Kind.MODIFIER
    if value in BOOLEANS:
        return Kind.BOOLEAN
    if value in OPERATOR_WORDS:
        return Kind.OPERATOR_WORD
    if value in BUILTINS:
        return Kind.BUILTIN
    if "." in value or value in MODULES:
        return Kind.MODULE
    return None


Highlight = tuple[int, int | None, str]


def highlight_map(text: str) -> dict[int, list[Highlight]]:
    """Per line: (start byte, end byte or None for end of line, style name), as TextArea wants.

    TextArea indexes highlights by UTF-8 byte offset within a line; tokens that span
    lines (block comments, hex strings) are split at each line end.
    """
    lines = text.split("\n")
    starts: list[int] = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    out: dict[int, list[Highlight]] = defaultdict(list)
    row = 0
    for token in tokenize(text):
        while row + 1 < len(starts) and starts[row + 1] <= token.start:
            row += 1
        name = HIGHLIGHT_NAMES[token.kind]
        r, start = row, token.start
        while True:
            line_start = starts[r]
            line = lines[r]
            line_end = line_start + len(line)
            if token.end <= line_end:
                out[r].append((_byte_col(line, start - line_start),
                               _byte_col(line, token.end - line_start), name))
                break
            out[r].append((_byte_col(line, start - line_start), None, name))
            r += 1
            if r >= len(lines):
                break
            start = starts[r]
    return out


def _byte_col(line: str, column: int) -> int:
    if line.isascii():
        return column
    return len(line[:column].encode("utf-8"))
