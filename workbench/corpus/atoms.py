"""What a file must contain for a rule to match: the literal atoms of its strings, combined by its condition.

The prefilter (``gramindex.py``) skips a file only when this module says the rule
cannot match it, so everything here errs one way: a requirement may be weaker
than the truth (more files stay candidates), never stronger. Whatever is not
understood becomes :data:`ANYTHING` (every file is a candidate).

- A string's requirement is a :class:`Contains`: one of several *variants* is in
  the file, each variant a tuple of byte atoms that must all be in it. ``wide``
  gives the UTF-16LE-style form (and ``ascii wide`` both), ``xor`` one variant per
  key, ``base64``/``base64wide`` the three encodings' stable middles, hex strings
  their top-level runs of fixed bytes (wildcards, jumps, ``~`` and alternation
  groups split runs), regexes their top-level literal runs per alternative.
  ``nocase`` needs nothing: the index folds ASCII case on both sides.
- A rule's requirement follows its condition: ``and``/``or`` of the parts it
  understands (``$a``, ``$a at``/``in``, ``#a > N``, ``N of (...)``, ``all of``,
  rule references, globals, and header checks such as ``uint16(0) == 0x5A4D``,
  which the index answers exactly from each file's first bytes); ``not``,
  ``none of``, loops, arithmetic, modules and anything else are :data:`ANYTHING`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from workbench.rules.parse import RuleSource, RuleString, Token, tokenize

if TYPE_CHECKING:
    from workbench.corpus.ruleset import RuleEntry

MIN_ATOM = 4                 # bytes: the index holds 4-grams, shorter atoms say nothing
MAX_XOR_KEYS = 256
HEAD_BYTES = 16              # the index keeps each file's first bytes: header checks are exact


@dataclass(frozen=True)
class Anything:
    """No requirement: any file may match."""

    def __repr__(self) -> str:
        return "ANYTHING"


@dataclass(frozen=True)
class Nothing:
    """No file can match (a condition of ``false``)."""

    def __repr__(self) -> str:
        return "NOTHING"


@dataclass(frozen=True)
class Contains:
    """One of ``variants`` is in the file; a variant is atoms (each >= 4 bytes) that are all in it."""

    variants: tuple[tuple[bytes, ...], ...]
    label: str = ""


@dataclass(frozen=True)
class HeadIs:
    """The file's bytes at ``offset`` (within its first HEAD_BYTES) are ``data``:
    what ``uint16(0) == 0x5A4D`` and the like say."""

    offset: int
    data: bytes


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Formula, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Formula, ...]


Formula: TypeAlias = Anything | Nothing | Contains | HeadIs | AllOf | AnyOf
ANYTHING = Anything()
NOTHING = Nothing()


def contains(variants: Iterable[Iterable[bytes]], label: str = "") -> Formula:
    """A :class:`Contains`, or :data:`ANYTHING` when some variant has no atom long enough."""
    out: dict[tuple[bytes, ...], None] = {}
    for variant in variants:
        atoms = tuple(dict.fromkeys(a for a in variant if len(a) >= MIN_ATOM))
        if not atoms:
            return ANYTHING          # this variant may be anywhere: so may the string
        out[atoms] = None
    if not out:
        return NOTHING
    return Contains(tuple(out), label)


def all_of(parts: Iterable[Formula]) -> Formula:
    flat: dict[Formula, None] = {}
    for p in parts:
        if isinstance(p, Nothing):
            return NOTHING
        if isinstance(p, AllOf):
            flat.update(dict.fromkeys(p.parts))
        elif not isinstance(p, Anything):
            flat[p] = None
    if not flat:
        return ANYTHING
    return next(iter(flat)) if len(flat) == 1 else AllOf(tuple(flat))


def any_of(parts: Iterable[Formula]) -> Formula:
    flat: dict[Formula, None] = {}
    for p in parts:
        if isinstance(p, Anything):
            return ANYTHING
        if isinstance(p, AnyOf):
            flat.update(dict.fromkeys(p.parts))
        elif not isinstance(p, Nothing):
            flat[p] = None
    if not flat:
        return NOTHING
    return next(iter(flat)) if len(flat) == 1 else AnyOf(tuple(flat))


# -- strings --------------------------------------------------------------------------

_TEXT_ESCAPES = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord('"'): 34, ord("\\"): 92}
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_KNOWN_MODIFIERS = frozenset({"ascii", "wide", "nocase", "fullword", "private", "xor",
                              "base64", "base64wide"})
_B64_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def decode_text(literal: str, encoding: str = "utf-8") -> bytes | None:
    """The bytes libyara searches for a text string literal (quotes included); None if unsure.

    Escapes are decoded at byte level, so ``"\\xe9"`` is one byte and ``"é"`` in a
    UTF-8 rule file is two, as libyara sees them.
    """
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        return None
    raw = literal[1:-1].encode(encoding, "surrogateescape")
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(raw):
            return None
        e = raw[i + 1]
        if e in _TEXT_ESCAPES:
            out.append(_TEXT_ESCAPES[e])
            i += 2
        elif e == ord("x") and i + 3 < len(raw) and raw[i + 2] in _HEX_DIGITS \
                and raw[i + 3] in _HEX_DIGITS:
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            return None
    return bytes(out)


def widen(data: bytes) -> bytes:
    """libyara's ``wide``: a zero after every byte (the last zero left off: a weaker, safe atom)."""
    out = bytearray(2 * len(data))
    out[0::2] = data
    return bytes(out[:-1])


def xor_keys(modifier: str) -> list[int]:
    """Keys of ``xor``, ``xor(N)`` or ``xor(A-B)``; every key when the argument is not understood."""
    m = re.fullmatch(r"xor\s*(?:\(\s*([^)]*?)\s*\))?", modifier)
    if not m or m.group(1) is None:
        return list(range(MAX_XOR_KEYS))
    parts = [p.strip() for p in m.group(1).split("-")]
    try:
        values = [int(p, 0) for p in parts]
    except ValueError:
        return list(range(MAX_XOR_KEYS))
    if len(values) == 1 and 0 <= values[0] <= 255:
        return values
    if len(values) == 2 and 0 <= values[0] <= values[1] <= 255:
        return list(range(values[0], values[1] + 1))
    return list(range(MAX_XOR_KEYS))


def base64_atoms(data: bytes, alphabet: bytes | None = None) -> list[bytes]:
    """The parts of base64(``data``) fixed by ``data`` alone, at each of the three alignments.

    With ``k`` unknown bytes before it, the first ``2`` (k=1) or ``3`` (k=2) output
    characters mix in those bytes and the last partial one mixes in what follows;
    the characters between depend only on ``data``. libyara searches for exactly these.
    """
    out = []
    for k, skip in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\0" * k + data)
        atom = encoded[skip:(8 * (k + len(data))) // 6]
        if alphabet is not None:
            atom = atom.translate(bytes.maketrans(_B64_STANDARD, alphabet))
        out.append(atom)
    return out


def _base64_alphabet(modifier: str) -> bytes | bool | None:
    """The custom alphabet of ``base64("...")``; None for the standard one; False if not understood."""
    m = re.fullmatch(r"base64(?:wide)?\s*(?:\(\s*(\".*\")\s*\))?", modifier, re.S)
    if not m:
        return False
    if m.group(1) is None:
        return None
    alphabet = decode_text(m.group(1))
    return alphabet if alphabet is not None and len(alphabet) == 64 else False


def hex_runs(value: str) -> list[bytes] | None:
    """Runs of fixed bytes at the top level of a hex string; None if it is not understood.

    Wildcards (``??``, ``4?``), negations (``~4D``), jumps (``[2-4]``) and
    alternation groups split runs; what is inside a group is not required.
    """
    body = re.sub(r"//[^\n]*|/\*.*?\*/", " ", value, flags=re.S).strip()
    if not (body.startswith("{") and body.endswith("}")):
        return None
    body = body[1:-1]
    runs: list[bytes] = []
    cur = bytearray()
    depth = 0
    pos = 0
    while pos < len(body):
        m = _HEX_TOKEN.match(body, pos)
        if not m:
            return None
        pos = m.end()
        kind = m.lastindex
        if kind == 1:                           # whitespace
            continue
        if kind == 2 and depth == 0:            # fixed bytes (a kilobyte string: one token)
            cur += bytes.fromhex(m.group())
            continue
        if cur:
            runs.append(bytes(cur))
            cur.clear()
        t = m.group()
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
            if depth < 0:
                return None
        elif t == "|" and depth == 0:
            return None
    if depth != 0:
        return None
    if cur:
        runs.append(bytes(cur))
    return runs


# whitespace | fixed bytes | wildcards, negations and jumps | group punctuation (a run of
# bytes, or of wildcards, is one token: real hex strings are kilobytes long)
_HEX_TOKEN = re.compile(r"(\s+)|((?:[0-9A-Fa-f]{2}[ \t\r\n\f\v]*)+)"
                        r"|((?:(?:[0-9A-Fa-f]\?|\?[0-9A-Fa-f?]|~\s*[0-9A-Fa-f?]{2}|\[[^\]]*\])\s*)+)|([()|])")


def regex_runs(pattern: bytes, *, into_groups: bool = False) -> list[list[bytes]] | None:
    """Literal runs every match must contain, one list per top-level alternative; None if unsure.

    Only the top level is read: groups, classes, ``.``, anchors and class escapes
    (``\\d``, ``\\w`` ...) split runs; a quantified literal ends its run (kept when
    it must occur at least once). Anything unexpected gives None. With ``into_groups``
    a group that must occur (no ``|`` at its own top level, not optional) adds its own
    runs too: the linter's view of the literal a regex is anchored on.
    """
    branches: list[list[bytes]] = []
    runs: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(pattern)

    def end_run() -> None:
        if cur:
            runs.append(bytes(cur))
            cur.clear()

    while i < n:
        c = pattern[i]
        lit: int | None = None
        if c == 0x7C:                                   # |
            end_run()
            branches.append(runs)
            runs = []
            i += 1
            continue
        if c == 0x5C:                                   # backslash
            if i + 1 >= n:
                return None
            e = pattern[i + 1]
            if e == ord("x"):
                if i + 3 >= n or pattern[i + 2] not in _HEX_DIGITS or pattern[i + 3] not in _HEX_DIGITS:
                    return None
                lit = int(pattern[i + 2:i + 4], 16)
                i += 4
            elif e in b"ntrf":
                lit = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord("f"): 12}[e]
                i += 2
            elif e in b"dwsDWSbB":
                i += 2
            elif chr(e).isalnum():
                return None
            else:
                lit = e
                i += 2
        elif c == 0x5B:                                 # [
            j = _class_end(pattern, i)
            if j < 0:
                return None
            i = j + 1
        elif c == 0x28:                                 # (
            j = _group_end(pattern, i)
            if j < 0:
                return None
            group = pattern[i + 1:j]
            i = j + 1
            if into_groups and not ((i < n and pattern[i] in b"*?") or pattern[i:i + 2] == b"{0"
                                    or pattern[i:i + 2] == b"{,"):
                inner = regex_runs(group[2:] if group.startswith(b"?:") else group, into_groups=True) \
                    if not group.startswith(b"?") or group.startswith(b"?:") else None
                if inner is not None and len(inner) == 1:
                    end_run()
                    runs.extend(inner[0])
        elif c in b".^$":
            i += 1
        elif c in b")*+?{}]":
            return None
        else:
            lit = c
            i += 1
        at_least_once = True
        quantified = False
        if i < n and pattern[i] in b"*+?{":
            quantified = True
            q = pattern[i]
            if q == 0x7B:                               # {n}, {n,}, {n,m}, {,m}
                m = re.match(rb"\{(\d*)(?:,(\d*))?\}", pattern[i:])
                if not m or (not m.group(1) and m.group(2) is None):
                    return None
                at_least_once = bool(m.group(1)) and int(m.group(1)) >= 1
                i += m.end()
            else:
                at_least_once = q == ord("+")
                i += 1
            if i < n and pattern[i] == ord("?"):       # lazy
                i += 1
        if lit is None:
            end_run()
        elif quantified:
            if at_least_once:
                cur.append(lit)
            end_run()
        else:
            cur.append(lit)
    end_run()
    branches.append(runs)
    return branches


def _class_end(p: bytes, i: int) -> int:
    j = i + 1
    if j < len(p) and p[j] == ord("^"):
        j += 1
    if j < len(p) and p[j] == ord("]"):
        j += 1
    while j < len(p):
        if p[j] == 0x5C:
            j += 2
            continue
        if p[j] == ord("]"):
            return j
        j += 1
    return -1


def _group_end(p: bytes, i: int) -> int:
    depth = 0
    j = i
    while j < len(p):
        c = p[j]
        if c == 0x5C:
            j += 2
            continue
        if c == ord("["):
            j = _class_end(p, j)
            if j < 0:
                return -1
        elif c == ord("("):
            depth += 1
        elif c == ord(")"):
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def string_requirement(s: RuleString, encoding: str = "utf-8") -> Formula:
    """What a file must contain for string ``s`` to match in it."""
    mods = s.modifier_names
    if not mods <= _KNOWN_MODIFIERS:
        return ANYTHING
    if s.kind == "hex":
        runs = hex_runs(s.value)
        return ANYTHING if runs is None else contains([runs], s.identifier)
    if s.kind == "regex":
        m = re.fullmatch(r"/(.*)/([a-z]*)", s.value, re.S)
        if not m or "xor" in mods or mods & {"base64", "base64wide"}:
            return ANYTHING
        branches = regex_runs(m.group(1).encode(encoding, "surrogateescape"))
        if branches is None:
            return ANYTHING
        variants: list[list[bytes]] = []
        for runs in branches:
            if "wide" in mods:
                variants.append([widen(r) for r in runs])
            if "ascii" in mods or "wide" not in mods:
                variants.append(runs)
        return contains(variants, s.identifier)
    data = decode_text(s.value, encoding)
    if data is None:
        return ANYTHING
    b64 = [m for m in s.modifiers if m.split("(", 1)[0].strip() in ("base64", "base64wide")]
    if b64:
        forms: list[bytes] = []
        for modifier in b64:
            alphabet = _base64_alphabet(modifier)
            if alphabet is False:
                return ANYTHING
            atoms = base64_atoms(data, alphabet if isinstance(alphabet, bytes) else None)
            wide = modifier.startswith("base64wide")
            forms.extend(widen(a) if wide else a for a in atoms)
        return contains([[f] for f in forms], s.identifier)
    plain: list[tuple[bytes, bool]] = []          # (form, is wide)
    if "wide" in mods:
        wide_form = bytearray(2 * len(data))
        wide_form[0::2] = data
        plain.append((bytes(wide_form), True))
    if "ascii" in mods or "wide" not in mods:
        plain.append((data, False))
    if "xor" in mods:                    # libyara xors the wide form, zeros included
        keys = xor_keys(next(m for m in s.modifiers if m.split("(", 1)[0].strip() == "xor"))
        plain = [(bytes(b ^ k for b in f), w) for f, w in plain for k in keys]
    # the last byte of a wide form (a zero, or the key) is left off: a weaker, safe atom
    return contains([[f[:-1] if w else f] for f, w in plain], s.identifier)


# -- conditions -----------------------------------------------------------------------

_NUMBER = re.compile(r"(0x[0-9A-Fa-f]+|0o[0-7]+|\d+)(KB|MB)?")
_READS = {"uint8": (1, "little"), "uint16": (2, "little"), "uint32": (4, "little"),
          "uint8be": (1, "big"), "uint16be": (2, "big"), "uint32be": (4, "big")}


def _number(text: str) -> int | None:
    m = _NUMBER.fullmatch(text)
    if not m:
        return None
    value = int(m.group(1), 0)
    return value * {None: 1, "KB": 1024, "MB": 1024 * 1024}[m.group(2)]


class Requirements:
    """Requirements of the rules of one ruleset, each worked out once."""

    def __init__(self, entries: Sequence[RuleEntry]):
        self.entries = list(entries)
        self.by_name = {e.name: e for e in self.entries}
        self.globals = [e.index for e in self.entries if e.is_global]
        self._memo: dict[int, Formula] = {}
        self._busy: set[int] = set()

    def of_rules(self, indices: Iterable[int]) -> Formula:
        """What a file must contain for at least one of these rules to match it."""
        return any_of(self.of_rule(i) for i in indices)

    def of_rule(self, index: int) -> Formula:
        """What a file must contain for rule ``index`` (and the globals that gate it) to match."""
        own = self._condition_of(index)
        entry = self.entries[index]
        if entry.is_global:
            return own
        return all_of([own, *(self._condition_of(g) for g in self.globals)])

    def _condition_of(self, index: int) -> Formula:
        if index in self._memo:
            return self._memo[index]
        if index in self._busy:          # a reference cycle (libyara refuses it): give up here
            return ANYTHING
        self._busy.add(index)
        try:
            entry = self.entries[index]
            strings = [string_requirement(s, entry.encoding) for s in entry.source.strings]
            result = _Condition(entry.source, strings, self).formula()
        finally:
            self._busy.discard(index)
        self._memo[index] = result
        return result


class _Condition:
    """Reads one condition's token stream into a :data:`Formula` (see the module docstring)."""

    def __init__(self, source: RuleSource, strings: list[Formula], rules: Requirements):
        self.source = source
        self.strings = strings
        self.rules = rules
        self.ids = [s.identifier for s in source.strings]

    def formula(self) -> Formula:
        try:
            return self._expr(tokenize(self.source.condition))
        except _GiveUp:
            return ANYTHING

    # -- structure --------------------------------------------------------------------

    def _expr(self, tokens: list[Token]) -> Formula:
        if not tokens:
            raise _GiveUp
        ors = _split(tokens, "or")
        if len(ors) > 1:
            return any_of(self._expr(t) for t in ors)
        ands = _split(tokens, "and")
        if len(ands) > 1:
            return all_of(self._expr(t) for t in ands)
        return self._term(tokens)

    def _term(self, t: list[Token]) -> Formula:
        first = t[0].text
        if first == "not":
            return ANYTHING
        if first == "(" and _closing(t, 0) == len(t) - 1:
            return self._expr(t[1:-1])
        if len(t) == 1 and first == "true":
            return ANYTHING
        if len(t) == 1 and first == "false":
            return NOTHING
        if first.startswith("$") and first not in ("$",) and not first.endswith("*"):
            return self._string_ref(t)
        if first.startswith("#") or (len(t) >= 3 and t[-1].text.startswith("#")):
            return self._count(t)
        if first in _READS or (len(t) == 6 and t[2].text in _READS):
            return self._header(t)
        if len(t) >= 3 and (first in ("any", "all", "none") or _number(first) is not None):
            return self._of(t)
        if len(t) == 1 and t[0].kind == "word" and first in self.rules.by_name:
            return self.rules._condition_of(self.rules.by_name[first].index)
        return ANYTHING

    # -- terms ------------------------------------------------------------------------

    def _string(self, identifier: str) -> Formula:
        found = [self.strings[i] for i, ident in enumerate(self.ids) if ident == identifier]
        return any_of(found) if found else ANYTHING

    def _string_ref(self, t: list[Token]) -> Formula:
        """``$a``, ``$a at EXPR``, ``$a in (A..B)``."""
        rest = t[1:]
        if not rest or (rest[0].text == "at" and len(rest) > 1) or \
                (rest[0].text == "in" and _parenthesised(rest, 1)):
            return self._string(t[0].text)
        return ANYTHING

    def _count(self, t: list[Token]) -> Formula:
        """``#a > N``, ``#a >= N``, ``#a == N`` (N >= 1) and the mirrored forms, ``#a in (..) > N``."""
        texts = [x.text for x in t]
        if texts[0].startswith("#"):
            ident, rest = texts[0], texts[1:]
            if rest and rest[0] == "in":
                close = _closing(t, 2) if len(t) > 2 and texts[2] == "(" else -1
                if close < 0:
                    return ANYTHING
                rest = texts[close + 1:]
            if len(rest) != 2:
                return ANYTHING
            op, value = rest[0], _number(rest[1])
        elif len(texts) == 3:
            ident, value = texts[2], _number(texts[0])
            op = {"<": ">", "<=": ">=", "==": "=="}.get(texts[1], "")
        else:
            return ANYTHING
        if value is None or ident.endswith("*") or ident == "#":
            return ANYTHING
        needs = (op == ">" and value >= 0) or (op in (">=", "==") and value >= 1)
        return self._string("$" + ident[1:]) if needs else ANYTHING

    def _header(self, t: list[Token]) -> Formula:
        """``uint16(0) == 0x5A4D`` (and uint8/uint32, big-endian forms, the value first)."""
        texts = [x.text for x in t]
        if len(texts) != 6:
            return ANYTHING
        if texts[0] in _READS and texts[1:5:2] == ["(", ")"] and texts[4] == "==":
            read, offset, value = texts[0], _number(texts[2]), _number(texts[5])
        elif texts[2] in _READS and texts[1] == "==" and texts[3:6:2] == ["(", ")"]:
            read, offset, value = texts[2], _number(texts[4]), _number(texts[0])
        else:
            return ANYTHING
        width, order = _READS[read]
        if offset is None or value is None or value >= 1 << (8 * width) or \
                offset + width > HEAD_BYTES:
            return ANYTHING
        return HeadIs(offset, value.to_bytes(width, order))  # type: ignore[arg-type]

    def _of(self, t: list[Token]) -> Formula:
        """``any|all|none|N|N% of them|(...)`` with an optional ``at``/``in`` after the set."""
        texts = [x.text for x in t]
        quant = texts[0]
        pos = 1
        percent = False
        if texts[pos] == "%":
            percent = True
            pos += 1
        if pos >= len(t) or texts[pos] != "of":
            return ANYTHING
        pos += 1
        if pos >= len(t):
            return ANYTHING
        if texts[pos] == "them":
            items = ["$*"]
            end = pos
        elif texts[pos] == "(":
            end = _closing(t, pos)
            if end < 0:
                return ANYTHING
            items = []
            for j in range(pos + 1, end):
                if texts[j] == ",":
                    continue
                if texts[j] == "*" and items and not items[-1].endswith("*"):
                    items[-1] += "*"                  # a rule set prefix: ``Family*``
                elif t[j].kind == "word":
                    items.append(texts[j])
                else:
                    return ANYTHING
        else:
            return ANYTHING
        rest = t[end + 1:]
        if rest and not ((rest[0].text == "at" and len(rest) > 1) or
                         (rest[0].text == "in" and _parenthesised(rest, 1))):
            return ANYTHING
        parts = self._set(items)
        if parts is None or not parts:
            return ANYTHING
        if quant == "all":
            return all_of(parts)
        if quant == "any":
            return any_of(parts)
        if quant == "none":
            return ANYTHING
        count = _number(quant)
        if count is None or count <= 0 or (percent and count > 100):
            return ANYTHING
        return any_of(parts)

    def _set(self, items: list[str]) -> list[Formula] | None:
        parts: list[Formula] = []
        for item in items:
            if item.startswith("$"):
                prefix = item[:-1] if item.endswith("*") else None
                hits = [self.strings[i] for i, ident in enumerate(self.ids)
                        if (ident.startswith(prefix) if prefix is not None else ident == item)]
            else:                                  # rule sets: any of (RuleA, Family*)
                prefix = item[:-1] if item.endswith("*") else None
                names = [n for n in self.rules.by_name
                         if (n.startswith(prefix) if prefix is not None else n == item)]
                hits = [self.rules._condition_of(self.rules.by_name[n].index) for n in names]
            if not hits:
                return None
            parts.extend(hits)
        return parts


class _GiveUp(Exception):
    """The condition is not understood: the rule's requirement is ANYTHING."""


def _split(tokens: list[Token], word: str) -> list[list[Token]]:
    """``tokens`` split at the keyword ``word`` outside parentheses and brackets."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.text in "([":
            depth += 1
        elif tok.kind == "op" and tok.text in ")]":
            depth -= 1
            if depth < 0:
                raise _GiveUp
        elif depth == 0 and tok.kind == "word" and tok.text == word:
            parts.append([])
            continue
        parts[-1].append(tok)
    if depth != 0 or any(not p for p in parts):
        raise _GiveUp
    return parts


def _closing(tokens: Sequence[Token], open_at: int) -> int:
    """Index of the parenthesis closing the one at ``open_at``; -1 if none."""
    depth = 0
    for j in range(open_at, len(tokens)):
        text = tokens[j].text
        if tokens[j].kind != "op":
            continue
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _parenthesised(tokens: Sequence[Token], start: int) -> bool:
    """``tokens[start:]`` is exactly one parenthesised group."""
    return start < len(tokens) and tokens[start].text == "(" and \
        _closing(tokens, start) == len(tokens) - 1
