"""A fast parser of YARA source files that keeps each rule's exact source positions."""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from workbench.errors import Kind, WorkbenchError

MetaValue = str | int | float | bool
StringKind = Literal["text", "hex", "regex"]

RULE_SUFFIXES = (".yar", ".yara")

# Recovery after a syntax error: resume at the next line that starts a rule or an import.
_RESUME = re.compile(r"^[ \t]*(?:(?:private|global)\s+)*rule\b|^[ \t]*(?:import|include)\b", re.M)
_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)+", re.S)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_ID = re.compile(r"\$[A-Za-z0-9_]*\*?")
_TEXT_LIT = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_HEX_STOP = re.compile(r'[}/"${]')        # what ends (or breaks) a hex string
_REGEX_LIT = re.compile(r"/(?:[^/\\\n]|\\.)*/[a-z]*")
_NUMBER = re.compile(r"-?\s*(?:0x[0-9A-Fa-f]+|0o[0-7]+|\d+(?:\.\d+)?)(?:KB|MB)?")
# Tokens of a condition (or a modifier): in YARA ``/`` never divides, it opens a regex.
_TOKEN = re.compile(
    r'(?P<str>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<regex>/(?:[^/\\\n]|\\.)*/[a-z]*)"
    r"|(?P<word>[$#@!][A-Za-z0-9_]*\*?|\d+\.\d+|\w+(?:\.[A-Za-z_]\w*)*)"
    r"|(?P<op>[<>=!]=|\.\.|<<|>>|\S)",
    re.S,
)


class Token(NamedTuple):
    """A condition token (a named tuple: a real rule's condition is hundreds of them, and a
    frozen dataclass each cost linting the ReversingLabs set a second)."""

    kind: str           # "str", "regex", "word" or "op"
    text: str
    start: int          # offset inside the tokenised text


def tokenize(text: str) -> list[Token]:
    """Tokens of a condition or modifier, comments dropped."""
    return [Token(m.lastgroup or "op", m.group(), m.start()) for m in _TOKEN.finditer(text)
            if m.lastgroup != "comment"]


class YaraSyntaxError(WorkbenchError, ValueError):
    """Raised inside the parser; collected into ``RuleFile.errors`` with its line."""

    kind = Kind.INPUT

    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.pos = pos


@dataclass
class RuleString:
    identifier: str                 # "$a"; "$" for anonymous strings
    kind: StringKind
    value: str                      # source text of the value: '"abc"', '{ 4D 5A }', '/ab+c/i'
    modifiers: list[str]            # as written: "ascii", "wide", "xor(0x01-0xff)", "base64(\"..\")"
    line: int
    column: int = 1

    @property
    def modifier_names(self) -> set[str]:
        """Modifier keywords without their arguments: {"xor", "wide", ...}."""
        return {m.split("(", 1)[0] for m in self.modifiers}


@dataclass
class MetaEntry:
    """One metadata line, with where it is (for findings that point at it)."""

    key: str
    value: MetaValue
    line: int
    column: int = 1
    value_start: int = 0            # character offsets of the value's source text in the file
    value_end: int = 0


@dataclass
class RuleSource:
    name: str
    tags: list[str]
    is_private: bool
    is_global: bool
    meta: list[tuple[str, MetaValue]]
    strings: list[RuleString]
    condition: str
    imports: list[str]
    file: Path | None
    namespace: str
    start_line: int
    end_line: int
    text: str
    fingerprint: str
    meta_entries: list[MetaEntry] = field(default_factory=list)
    condition_line: int = 0
    name_column: int = 1
    start_offset: int = 0           # character offsets of ``text`` in the file
    end_offset: int = 0
    condition_offset: int = 0       # character offset of ``condition`` in the file

    @functools.cached_property
    def condition_tokens(self) -> list[Token]:
        """The condition's tokens (computed once; several checks read them)."""
        return tokenize(self.condition)

    def meta_values(self, key: str) -> list[MetaValue]:
        """Every value of ``key`` in order (``hash`` may repeat)."""
        return [v for k, v in self.meta if k == key]

    def meta_value(self, key: str, default: MetaValue | None = None) -> MetaValue | None:
        """The first value of ``key``, or ``default``."""
        for k, v in self.meta:
            if k == key:
                return v
        return default

    def meta_line(self, key: str) -> int:
        """Line of the first ``key`` entry, else the rule's first line."""
        for entry in self.meta_entries:
            if entry.key == key:
                return entry.line
        return self.start_line


@dataclass
class RuleFile:
    path: Path | None
    imports: list[str]
    includes: list[str]
    rules: list[RuleSource]
    errors: list[str]               # "line N: message"
    namespace: str = "default"
    text: str = field(default="", repr=False, metadata={"internal": True})
    line_index: list[int] = field(default_factory=list, repr=False, metadata={"internal": True})

    @property
    def ok(self) -> bool:
        return not self.errors

    def position(self, offset: int) -> tuple[int, int]:
        """(line, column), both 1-based, of a character offset in ``text``."""
        if not self.line_index:
            self.line_index = line_starts(self.text)
        line = bisect.bisect_right(self.line_index, offset)
        return line, offset - self.line_index[line - 1] + 1


def line_starts(text: str) -> list[int]:
    """Offsets where each line of ``text`` begins."""
    return [0] + [m.end() for m in re.finditer("\n", text)]


def normalise_string(s: RuleString) -> str:
    """A string definition with insignificant spacing and modifier order removed."""
    if s.kind == "hex":
        body = re.sub(r"//[^\n]*|/\*.*?\*/", "", s.value, flags=re.S)
        value = re.sub(r"\s+", "", body).upper()
    else:
        value = s.value
    mods = " ".join(sorted(normalise_condition(m) for m in s.modifiers))
    return f"{s.identifier}={value} {mods}".rstrip()


def normalise_condition(condition: str) -> str:
    """The condition as tokens joined by one space: layout and comments do not count."""
    # the tokens' texts straight from the matches: no Token made (a fingerprint per rule)
    return " ".join([m.group() for m in _TOKEN.finditer(condition) if m.lastgroup != "comment"])


def compute_fingerprint(strings: Iterable[RuleString], condition: str) -> str:
    """sha256 hex of the normalised strings and condition (the house ``fingerprint`` meta)."""
    h = hashlib.sha256()
    for s in strings:
        h.update(normalise_string(s).encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    h.update(b"condition:")
    h.update(normalise_condition(condition).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def decode_text_literal(literal: str) -> str:
    """The value of a YARA text literal (with quotes): ``\\n \\t \\r \\" \\\\ \\xHH`` decoded."""
    body = literal[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n == "x" and i + 3 < len(body) + 0 and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2:i + 4]):
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(n, "\\" + n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def yara_text_literal(data: bytes) -> str:
    """Bytes as a YARA text literal: printable ASCII kept, the rest escaped."""
    out = []
    for b in data:
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"'


def meta_literal(text: str) -> str:
    """A metadata string: quotes, backslashes and control characters escaped, Unicode kept."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


class _Parser:
    """A hand-written scanner: one pass, regexes for tokens, no backtracking."""

    def __init__(self, text: str, file: Path | None, namespace: str):
        self.text = text
        self.file = file
        self.namespace = namespace
        self.pos = 0
        self.n = len(text)
        self._line_starts = line_starts(text)
        self.imports: list[str] = []
        self.includes: list[str] = []
        self.rules: list[RuleSource] = []
        self.errors: list[str] = []

    # -- positions -------------------------------------------------------------

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self._line_starts, pos)

    def column_of(self, pos: int) -> int:
        return pos - self._line_starts[self.line_of(pos) - 1] + 1

    # -- low-level reading -----------------------------------------------------

    def skip(self) -> None:
        m = _WS.match(self.text, self.pos)
        if m:
            self.pos = m.end()
        if self.text.startswith("/*", self.pos):
            raise YaraSyntaxError("unterminated comment", self.pos)

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.pos)

    def expect(self, s: str, what: str | None = None) -> int:
        self.skip()
        if not self.text.startswith(s, self.pos):
            raise YaraSyntaxError(f"expected {what or repr(s)}, found {self._found()}", self.pos)
        start = self.pos
        self.pos += len(s)
        return start

    def match(self, pattern: re.Pattern[str], what: str) -> tuple[str, int]:
        self.skip()
        m = pattern.match(self.text, self.pos)
        if not m:
            raise YaraSyntaxError(f"expected {what}, found {self._found()}", self.pos)
        self.pos = m.end()
        return m.group(), m.start()

    def word(self) -> str | None:
        """The identifier at the cursor without consuming it."""
        self.skip()
        m = _IDENT.match(self.text, self.pos)
        return m.group() if m else None

    def _found(self) -> str:
        if self.pos >= self.n:
            return "end of file"
        snippet = self.text[self.pos:self.pos + 20].split("\n", 1)[0]
        return repr(snippet)

    # -- the grammar -----------------------------------------------------------

    def parse(self) -> None:
        while True:
            try:
                self.skip()
                if self.pos >= self.n:
                    return
                self.top_level()
            except YaraSyntaxError as exc:
                self.errors.append(f"line {self.line_of(exc.pos)}: {exc}")
                m = _RESUME.search(self.text, max(exc.pos, self.pos) + 1)
                if not m:
                    return
                self.pos = m.start()

    def top_level(self) -> None:
        start = self.pos
        word = self.word()
        if word in ("import", "include"):
            self.pos += len(word)
            lit, _ = self.match(_TEXT_LIT, f"a quoted name after {word}")
            (self.imports if word == "import" else self.includes).append(decode_text_literal(lit))
            return
        is_private = is_global = False
        while word in ("private", "global"):
            if word == "private":
                is_private = True
            else:
                is_global = True
            self.pos += len(word)
            word = self.word()
        if word != "rule":
            raise YaraSyntaxError(f"expected 'rule', 'import' or 'include', found {self._found()}", self.pos)
        self.pos += 4
        self.rule(start, is_private, is_global)

    def rule(self, start: int, is_private: bool, is_global: bool) -> None:
        name, name_pos = self.match(_IDENT, "a rule name")
        tags: list[str] = []
        if self.peek(":"):
            self.pos += 1
            while True:
                w = self.word()
                if w is None:
                    break
                tags.append(w)
                self.pos += len(w)
        self.expect("{", "'{' to open the rule body")
        meta: list[MetaEntry] = []
        strings: list[RuleString] = []
        seen_sections: set[str] = set()
        while True:
            section = self.word()
            if section not in ("meta", "strings", "condition"):
                raise YaraSyntaxError(
                    f"expected 'meta:', 'strings:' or 'condition:' in rule {name}, found {self._found()}",
                    self.pos)
            if section in seen_sections:
                raise YaraSyntaxError(f"section '{section}' repeated in rule {name}", self.pos)
            seen_sections.add(section)
            self.pos += len(section)
            self.expect(":", f"':' after {section}")
            if section == "meta":
                meta = self.meta_section()
            elif section == "strings":
                strings = self.strings_section()
            else:
                cond_start, cond_end, end = self.condition_section(name)
                break
        condition = self.text[cond_start:cond_end].strip()
        cond_first = cond_start + (len(self.text[cond_start:cond_end]) - len(self.text[cond_start:cond_end].lstrip()))
        self.rules.append(RuleSource(
            name=name, tags=tags, is_private=is_private, is_global=is_global,
            meta=[(e.key, e.value) for e in meta], strings=strings, condition=condition,
            imports=self.imports, file=self.file, namespace=self.namespace,
            start_line=self.line_of(start), end_line=self.line_of(end - 1),
            text=self.text[start:end], fingerprint=compute_fingerprint(strings, condition),
            meta_entries=meta, condition_line=self.line_of(cond_first),
            name_column=self.column_of(name_pos), start_offset=start, end_offset=end,
            condition_offset=cond_first,
        ))

    def _at_section_end(self) -> bool:
        self.skip()
        w = self.word()
        if w in ("meta", "strings", "condition"):
            after = _WS.match(self.text, self.pos + len(w))
            nxt = after.end() if after else self.pos + len(w)
            return self.text.startswith(":", nxt)
        return self.pos >= self.n or self.text.startswith("}", self.pos)

    def meta_section(self) -> list[MetaEntry]:
        entries: list[MetaEntry] = []
        while not self._at_section_end():
            key, key_pos = self.match(_IDENT, "a metadata key")
            self.expect("=", f"'=' after metadata key {key}")
            self.skip()
            value_start = self.pos
            value: MetaValue
            if self.text.startswith('"', self.pos):
                lit, _ = self.match(_TEXT_LIT, "a closed string")
                value = decode_text_literal(lit)
            elif (w := self.word()) in ("true", "false"):
                assert w is not None
                self.pos += len(w)
                value = w == "true"
            else:
                num, _ = self.match(_NUMBER, f"a string, number or true/false for {key}")
                value = _parse_number(num)
            entries.append(MetaEntry(key, value, self.line_of(key_pos), self.column_of(key_pos),
                                     value_start, self.pos))
        return entries

    def strings_section(self) -> list[RuleString]:
        strings: list[RuleString] = []
        while not self._at_section_end():
            ident, id_pos = self.match(_STRING_ID, "a string identifier like $a")
            self.expect("=", f"'=' after {ident}")
            self.skip()
            c = self.text[self.pos:self.pos + 1]
            kind: StringKind
            if c == '"':
                value, _ = self.match(_TEXT_LIT, "a closed text string")
                kind = "text"
            elif c == "{":
                value = self.hex_string()
                kind = "hex"
            elif c == "/":
                value, _ = self.match(_REGEX_LIT, "a closed regular expression")
                kind = "regex"
            else:
                raise YaraSyntaxError(f"expected a text, hex or regex value for {ident}, found {self._found()}",
                                      self.pos)
            strings.append(RuleString(ident, kind, value, self.modifiers(), self.line_of(id_pos),
                                      self.column_of(id_pos)))
        return strings

    def hex_string(self) -> str:
        start = self.pos
        i = self.pos + 1
        while i < self.n:
            stop = _HEX_STOP.search(self.text, i)      # hex strings run to kilobytes: skip to
            if stop is None:                           # the next character that matters
                break
            i = stop.start()
            c = self.text[i]
            if c == "}":
                self.pos = i + 1
                return self.text[start:self.pos]
            if c == "/" and self.text.startswith(("//", "/*"), i):
                m = _WS.match(self.text, i)
                if not m or m.end() == i:
                    break
                i = m.end()
                continue
            if c == '"' or c == "$" or c == "{":
                break
            i += 1
        raise YaraSyntaxError("unterminated hex string", start)

    def modifiers(self) -> list[str]:
        mods: list[str] = []
        while True:
            self.skip()
            m = _IDENT.match(self.text, self.pos)
            if not m or self._at_section_end():
                return mods
            start = self.pos
            self.pos = m.end()
            if self.text.startswith("(", self.pos):
                depth = 0
                while self.pos < self.n:
                    c = self.text[self.pos]
                    if c == '"':
                        lit = _TEXT_LIT.match(self.text, self.pos)
                        if not lit:
                            raise YaraSyntaxError("unterminated string in modifier", self.pos)
                        self.pos = lit.end()
                        continue
                    self.pos += 1
                    if c == "(":
                        depth += 1
                    elif c == ")":
                        depth -= 1
                        if depth == 0:
                            break
                else:
                    raise YaraSyntaxError(f"unclosed '(' in modifier {m.group()}", start)
            mods.append(self.text[start:self.pos])

    def condition_section(self, name: str) -> tuple[int, int, int]:
        """Returns (condition start, condition end, rule end) offsets.

        In YARA ``/`` never divides (``\\`` does), so outside comments it always opens a regex.
        """
        start = self.pos
        i = self.pos
        depth = 0
        while i < self.n:
            c = self.text[i]
            if c == '"':
                m = _TEXT_LIT.match(self.text, i)
                if not m:
                    raise YaraSyntaxError("unterminated string in condition", i)
                i = m.end()
                continue
            if c == "/":
                if self.text.startswith(("//", "/*"), i):
                    m = _WS.match(self.text, i)
                    if not m:
                        raise YaraSyntaxError("unterminated comment", i)
                else:
                    m = _REGEX_LIT.match(self.text, i)
                    if not m:
                        raise YaraSyntaxError("unterminated regular expression in condition", i)
                i = m.end()
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    self.pos = i + 1
                    return start, i, i + 1
                depth -= 1
            i += 1
        raise YaraSyntaxError(f"rule {name} is not closed with '}}'", start)


def _parse_number(text: str) -> int | float:
    t = re.sub(r"\s+", "", text)
    mult = 1
    if t.endswith("KB"):
        mult, t = 1024, t[:-2]
    elif t.endswith("MB"):
        mult, t = 1024 * 1024, t[:-2]
    neg = t.startswith("-")
    t = t.lstrip("-")
    if t.startswith("0x"):
        v: int | float = int(t, 16)
    elif t.startswith("0o"):
        v = int(t[2:], 8)
    elif "." in t:
        v = float(t)
    else:
        v = int(t)
    v *= mult
    return -v if neg else v


def parse_text(text: str, file: Path | None = None, namespace: str = "default") -> RuleFile:
    """Parse YARA source. Syntax errors land in ``errors``; the rules before and after survive."""
    parser = _Parser(text, file, namespace)
    parser.parse()
    return RuleFile(path=file, imports=parser.imports, includes=parser.includes, rules=parser.rules,
                    errors=parser.errors, namespace=namespace, text=text,
                    line_index=parser._line_starts)


def read_rule_text(path: Path) -> tuple[str, list[str]]:
    """A rule file's text; a file that is not UTF-8 is read as Latin-1 and says so."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        return data.decode("latin-1"), [f"line 1: file is not UTF-8 ({exc.reason} at byte {exc.start})"]


def parse_file(path: Path, namespace: str | None = None, *,
               read: tuple[str, list[str]] | None = None) -> RuleFile:
    """Parse one file (namespace ``default`` unless given). OSError if it cannot be read.

    ``read``: what :func:`read_rule_text` gave for it, when the caller read it already."""
    path = Path(path)
    text, errors = read if read is not None else read_rule_text(path)
    errors = list(errors)
    parsed = parse_text(text, path, namespace or "default")
    parsed.errors[:0] = errors
    return parsed


def iter_rule_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; folders walked (sorted) for ``*.yar`` / ``*.yara``, skipping hidden ones.
    A file reached twice (named and inside a named folder) is yielded once."""
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        found = [p]
        if p.is_dir():
            found = [child for child in sorted(p.rglob("*"))
                     if child.suffix.lower() in RULE_SUFFIXES and child.is_file()
                     and not any(part.startswith(".") for part in child.relative_to(p).parts)]
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                yield f


def parse_paths(paths: Iterable[Path]) -> list[RuleFile]:
    """Parse every rule file under ``paths`` (folders walked for *.yar / *.yara)."""
    return [parse_file(p) for p in iter_rule_paths(paths)]
