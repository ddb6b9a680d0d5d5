"""Lint checks over parsed rules: one small class per finding, each with an id, severity and fix hint."""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from workbench.corpus.atoms import regex_runs
from workbench.rules.findings import Finding, Severity
from workbench.rules.parse import (
    RuleFile,
    RuleSource,
    RuleString,
    Token,
    decode_text_literal,
    yara_text_literal,
)
from workbench.rules.policy import Policy, name_part

# -- the condition ---------------------------------------------------------------------------


def top_level_terms(tokens: list[Token], joiner: str = "and") -> list[list[Token]]:
    """Split at ``joiner`` outside parentheses/brackets; one term if there is none."""
    terms: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.text in ("(", "["):
            depth += 1
        elif t.text in (")", "]"):
            depth -= 1
        if depth == 0 and t.kind == "word" and t.text == joiner:
            terms.append([])
            continue
        terms[-1].append(t)
    return [t for t in terms if t]


def _strip_parens(term: list[Token]) -> list[Token]:
    while len(term) >= 2 and term[0].text == "(" and term[-1].text == ")":
        depth = 0
        for i, t in enumerate(term):
            depth += t.text == "("
            depth -= t.text == ")"
            if depth == 0 and i < len(term) - 1:
                return term
        term = term[1:-1]
    return term


# -- string analysis ---------------------------------------------------------------------

_HEX_TOKEN = re.compile(r"\[[^\]]*\]|~?[0-9A-Fa-f?]{2}|[()|]|//[^\n]*|/\*.*?\*/|\S", re.S)
# the same tokens, a run of known bytes (with the blanks between them) taken as one: real
# rules' hex strings with jumps run to kilobytes, and a token a byte cost their lint seconds
_HEX_RUN_TOKEN = re.compile(r"((?:[0-9A-Fa-f]{2}[ \t\r\n\f\v]*)+)|" + _HEX_TOKEN.pattern, re.S)


_PLAIN_HEX = re.compile(r"[0-9A-Fa-f?\s]*")
_PAIR_RUNS = re.compile(r"(?:[0-9A-Fa-f]{2})+|\?\?|..")     # left to right: byte-aligned


@functools.lru_cache(maxsize=4096)         # several checks ask about the same string
def _plain_runs(value: str) -> tuple[str, ...] | None:
    """A hex string of bytes and wildcards only (no comment, jump, alternative or ``~``) as
    runs of known bytes, ``??`` and other two-character tokens, without tokenising it byte
    by byte: real rules' hex strings run to kilobytes, and most are of this kind."""
    body = value[1:-1]
    if not _PLAIN_HEX.fullmatch(body):
        return None
    words = body.split()
    if any(map((1).__and__, map(len, words))):       # a token of odd length (tested in C)
        return None
    compact = "".join(words)
    return tuple(_PAIR_RUNS.findall(compact))


def hex_bytes(value: str) -> list[int | None] | None:
    """The bytes of a plain hex string (``None`` for ``??``), or None if it has jumps/alternatives."""
    runs = _plain_runs(value)
    if runs is not None:          # the same answer as the loop below, token for token
        plain: list[int | None] = []
        for run in runs:
            if run == "??":
                plain.append(None)
            elif "?" in run:
                return None
            else:
                plain.extend(bytes.fromhex(run))
        return plain
    out: list[int | None] = []
    for m in _HEX_RUN_TOKEN.finditer(value[1:-1]):
        tok = m.group()
        if m.lastindex == 1:
            out.extend(bytes.fromhex(tok))
            continue
        if tok.startswith(("//", "/*")):
            continue
        if tok.startswith(("[", "(", "|", ")", "~")) or len(tok) != 2:
            return None
        if tok == "??":
            out.append(None)
        elif "?" in tok:
            return None
        else:
            out.append(int(tok, 16))
    return out


@functools.lru_cache(maxsize=4096)
def hex_longest_fixed_run(value: str) -> int:
    """Longest run of fully known bytes outside alternatives (what libyara can take atoms from)."""
    runs = _plain_runs(value)
    if runs is not None:
        return max((len(r) // 2 for r in runs if "?" not in r), default=0)
    best = run = 0
    depth = 0
    for m in _HEX_RUN_TOKEN.finditer(value[1:-1]):
        tok = m.group()
        if m.lastindex == 1:
            if depth == 0:
                run += len(bytes.fromhex(tok))
                best = max(best, run)
            else:
                run = 0
            continue
        if tok.startswith(("//", "/*")):
            continue
        if tok == "(":
            depth += 1
            run = 0
        elif tok == ")":
            depth -= 1
            run = 0
        elif depth == 0 and len(tok) == 2 and "?" not in tok and not tok.startswith("~"):
            run += 1
            best = max(best, run)
        else:
            run = 0
    if best == 0 and depth == 0 and "(" in value:
        # Only alternatives: libyara takes atoms from each branch; count the shortest branch.
        inner = re.findall(r"\(([^()]*)\)", value)
        branch_runs = [hex_longest_fixed_run("{" + b + "}") for grp in inner for b in grp.split("|")]
        best = min(branch_runs) if branch_runs else 0
    return best


def text_value(s: RuleString) -> str:
    return decode_text_literal(s.value)


def regex_body(value: str) -> tuple[str, str]:
    """(pattern, flags) of ``/pattern/flags``."""
    end = value.rfind("/")
    return value[1:end], value[end + 1:]


_QUANT_OPTIONAL = re.compile(r"\*|\?|\{0*,|\{0+\}|\{,")


def _class_close(body: str, start: int) -> int:
    """Where the character class opened at ``start`` closes (a leading ``^`` and a first
    ``]`` are members, escapes are skipped); ``len(body)`` when it never does."""
    j, n = start + 1, len(body)
    if j < n and body[j] == "^":
        j += 1
    if j < n and body[j] == "]":
        j += 1
    while j < n and body[j] != "]":
        j += 2 if body[j] == "\\" else 1
    return min(j, n)


def _regex_items(body: str) -> Iterator[tuple[str, str]]:
    """Regex pieces: ("lit", char), ("any", "."), ("class", ..), ("group", inner), ("alt", "|"),
    ("anchor", ..), ("quant", ..)."""
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\\" and i + 1 < n:
            nxt = body[i + 1]
            if nxt == "x" and i + 3 < n:
                yield ("lit", body[i:i + 4])
                i += 4
            elif nxt.isalnum():
                yield ("class", body[i:i + 2])     # \d \w \s \b ...
                i += 2
            else:
                yield ("lit", nxt)
                i += 2
        elif c == "[":
            j = _class_close(body, i)
            yield ("class", body[i:j + 1])
            i = j + 1
        elif c == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if body[j] == "\\":
                    j += 2
                    continue
                if body[j] == "[":              # a ")" inside a class closes nothing: [^)]
                    j = _class_close(body, j) + 1
                    continue
                depth += body[j] == "("
                depth -= body[j] == ")"
                j += 1
            yield ("group", body[i + 1:j - 1])
            i = j
        elif c in "*+?":
            q = c
            if i + 1 < n and body[i + 1] == "?":
                q += "?"
            yield ("quant", q)
            i += len(q)
        elif c == "{" and re.match(r"\{\d*,?\d*\}", body[i:]):
            m = re.match(r"\{\d*,?\d*\}\??", body[i:])
            assert m is not None
            yield ("quant", m.group())
            i += len(m.group())
        elif c == "|":
            yield ("alt", c)
            i += 1
        elif c in "^$":
            yield ("anchor", c)
            i += 1
        elif c == ".":
            yield ("any", c)
            i += 1
        else:
            yield ("lit", c)
            i += 1


def regex_longest_literal(body: str) -> int | None:
    """Length of the longest literal run every match must contain (min over top-level branches),
    read by the prefilter's regex parser (``corpus/atoms.py``); None when it cannot tell."""
    branches = regex_runs(body.encode("utf-8", "surrogateescape"), into_groups=True)
    if branches is None:
        return None
    return min(max((len(run) for run in runs), default=0) for runs in branches)


def regex_unbounded(body: str) -> list[str]:
    """The unbounded wildcards in a regex: ``.*``, ``.+``, ``.{n,}``."""
    found = []
    items = list(_regex_items(body))
    for idx, (kind, text) in enumerate(items):
        if kind == "group":
            found.extend(regex_unbounded(text))
        if kind == "any" and idx + 1 < len(items) and items[idx + 1][0] == "quant":
            q = items[idx + 1][1].rstrip("?") or items[idx + 1][1]
            if q in ("*", "+") or re.fullmatch(r"\{\d*,\}", q):
                found.append("." + items[idx + 1][1])
    return found


def strings_matching(rule: RuleSource, pattern: str) -> list[RuleString]:
    """Strings a set item like ``$a*`` or ``$b`` refers to."""
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return [s for s in rule.strings if s.identifier.startswith(prefix)]
    return [s for s in rule.strings if s.identifier == pattern]


# -- the checks ----------------------------------------------------------------------------


@dataclass
class LintContext:
    """What the checks share: the policy and, for ruleset checks, every file."""

    policy: Policy
    known_rules: dict[str, str] = field(default_factory=dict)   # rule name -> file, from elsewhere
    first_definition: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (file, line)

    def add_files(self, files: list[RuleFile]) -> None:
        """Remember where each rule name is first defined (for duplicate names)."""
        for rf in files:
            for r in rf.rules:
                self.first_definition.setdefault(r.name, (str(rf.path) if rf.path else "", r.start_line))


class Check:
    """One lint check. Subclasses set the class attributes and implement ``check``."""

    id: ClassVar[str]
    severity: ClassVar[Severity]
    title: ClassVar[str]
    hint: ClassVar[str]

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        return iter(())

    def finding(self, rule: RuleSource, rf: RuleFile, message: str, *, line: int = 0, column: int = 0,
                subject: str = "", hint: str | None = None) -> Finding:
        return Finding(
            id=self.id, severity=self.severity, file=str(rf.path) if rf.path else "",
            line=line or rule.start_line, column=column or (1 if line else rule.name_column),
            message=message, hint=self.hint if hint is None else hint, rule=rule.name, subject=subject)

    def at_condition(self, rule: RuleSource, rf: RuleFile, token: Token | None, message: str,
                     subject: str) -> Finding:
        if token is None:
            line, column = rule.condition_line, 1
        else:
            line, column = rf.position(rule.condition_offset + token.start)
        return self.finding(rule, rf, message, line=line, column=column, subject=subject)


# ---- metadata


class RequiredMeta(Check):
    id = "M201"
    severity = "error"
    title = "required metadata missing"
    hint = "add the key to meta: (workbench rule draft writes every house key)"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        present = {k for k, _ in rule.meta}
        missing = [key for key in ctx.policy.required_meta if key not in present]
        if missing:
            yield self.finding(rule, rf, f"rule {rule.name} lacks metadata: {', '.join(missing)}",
                               subject="missing " + ",".join(missing))


def meta_type_problem(kind: str, value: object, policy: Policy) -> str | None:
    """Why ``value`` is not of policy type ``kind``, or None when it is."""
    if kind == "int":
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a number"
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if not isinstance(value, str):
        return "must be a quoted string"
    if kind in ("string", "text"):
        return None if value.strip() else "must not be empty"
    if kind == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return "must be a UUID like 0f8fad5b-d9cb-469f-a165-70867728950e"
        return None
    if kind == "date":
        try:
            dt.datetime.strptime(value, policy.date_format)
        except ValueError:
            return f"must be a date in the format {policy.date_format}"
        return None
    if kind == "hash":
        lengths = policy.hash_lengths
        if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) in lengths:
            return None
        return f"must be a hex digest of {' or '.join(str(n) for n in lengths)} characters"
    if kind == "sha256":
        return None if re.fullmatch(r"[0-9a-fA-F]{64}", value) else "must be a sha256 (64 hex characters)"
    if kind == "url":
        return None if re.match(r"https?://\S+$", value) else "must be an http(s) URL"
    return None


class MetaType(Check):
    id = "M202"
    severity = "error"
    title = "metadata value of the wrong type or format"
    hint = "fix the value to the type signatures/workbench.toml [meta.types] asks for"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        for entry in rule.meta_entries:
            kind = ctx.policy.meta_types.get(entry.key)
            if kind is None:
                continue
            problem = meta_type_problem(kind, entry.value, ctx.policy)
            if problem:
                yield self.finding(rule, rf, f"'{entry.key}' = {entry.value!r} {problem}",
                                   line=entry.line, column=entry.column, subject=f"{entry.key}={entry.value}")


class MetaAllowed(Check):
    id = "M203"
    severity = "error"
    title = "metadata value not allowed"
    hint = "use one of the values in signatures/workbench.toml [meta.allowed]"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        for entry in rule.meta_entries:
            allowed = ctx.policy.allowed_values.get(entry.key)
            if allowed is not None and entry.value not in allowed:
                yield self.finding(
                    rule, rf, f"'{entry.key}' = {entry.value!r} is not one of {', '.join(allowed)}",
                    line=entry.line, column=entry.column, subject=f"{entry.key}={entry.value}")


class MetaRepeated(Check):
    id = "M204"
    severity = "warning"
    title = "metadata key repeated"
    hint = "keep one value; only keys listed in [meta] repeatable may repeat"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        seen: set[str] = set()
        for entry in rule.meta_entries:
            if entry.key in seen and entry.key not in ctx.policy.repeatable_meta:
                yield self.finding(rule, rf, f"'{entry.key}' appears more than once",
                                   line=entry.line, column=entry.column, subject=entry.key)
            seen.add(entry.key)


class FingerprintStale(Check):
    id = "M205"
    severity = "warning"
    title = "fingerprint does not match strings and condition"
    hint = "save in the editor (ctrl+s) or run `workbench rule fmt --update-meta`: fingerprint, version, modified"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        for entry in rule.meta_entries:
            if entry.key == "fingerprint" and isinstance(entry.value, str) \
                    and re.fullmatch(r"[0-9a-fA-F]{64}", entry.value) and entry.value.lower() != rule.fingerprint:
                yield self.finding(
                    rule, rf, f"fingerprint is stale: strings or condition changed (now {rule.fingerprint[:12]}…)",
                    line=entry.line, column=entry.column, subject="fingerprint")


class ModifiedBeforeDate(Check):
    id = "M206"
    severity = "warning"
    title = "modified is earlier than date"
    hint = "set modified to the day of the last change, on or after date"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        date, modified = rule.meta_value("date"), rule.meta_value("modified")
        if not (isinstance(date, str) and isinstance(modified, str)):
            return
        try:
            d = dt.datetime.strptime(date, ctx.policy.date_format)
            m = dt.datetime.strptime(modified, ctx.policy.date_format)
        except ValueError:
            return      # M202 reports the format
        if m < d:
            yield self.finding(rule, rf, f"modified {modified} is before date {date}",
                               line=rule.meta_line("modified"), column=1, subject="modified")


# ---- naming


class NameConvention(Check):
    id = "N301"
    severity = "error"
    title = "rule name breaks the naming convention"
    hint = "name it <CATEGORY>_<Family>_<Detail>, e.g. MAL_Emotet_Loader_Doc"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        if not ctx.policy.name_regex.search(rule.name):
            yield self.finding(rule, rf, f"rule name {rule.name} does not match {ctx.policy.name_pattern}",
                               subject="name")


class NameCategory(Check):
    id = "N302"
    severity = "warning"
    title = "name prefix differs from category metadata or is not a known category"
    hint = "start the name with the rule's category (one of [meta.allowed] category)"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        m = ctx.policy.name_regex.search(rule.name)
        if not m or "category" not in m.groupdict():
            return
        prefix = m.group("category")
        category = rule.meta_value("category")
        if ctx.policy.name_category_matches_meta and isinstance(category, str) and category \
                and prefix != category:
            yield self.finding(rule, rf, f"name prefix {prefix} differs from category '{category}'",
                               subject="category")
        elif prefix not in ctx.policy.categories:
            yield self.finding(rule, rf, f"name prefix {prefix} is not a category "
                               f"({', '.join(ctx.policy.categories)})", subject="category")


class NameFamily(Check):
    id = "N303"
    severity = "warning"
    title = "family in the name differs from family metadata"
    hint = "use the family metadata as the second part of the name"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        m = ctx.policy.name_regex.search(rule.name)
        family = rule.meta_value("family")
        if not m or "family" not in m.groupdict() or not isinstance(family, str) or not family:
            return
        if m.group("family").lower() != name_part(family).lower():
            yield self.finding(rule, rf, f"name says family {m.group('family')}, metadata says '{family}'",
                               subject="family")


class DuplicateName(Check):
    id = "N304"
    severity = "error"
    title = "rule name used twice in the ruleset"
    hint = "rename one of them: names must be unique across the whole signature repository"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        here = str(rf.path) if rf.path else ""
        first = ctx.first_definition.get(rule.name)
        if first is not None and first != (here, rule.start_line):
            yield self.finding(rule, rf, f"rule {rule.name} is already defined at {first[0] or '<text>'}:{first[1]}",
                               subject=f"duplicate@{here}")
            return
        elsewhere = ctx.known_rules.get(rule.name)
        if elsewhere is not None and elsewhere != here:
            yield self.finding(rule, rf, f"rule {rule.name} is also defined in {elsewhere}",
                               subject=f"duplicate@{here}")


# ---- performance


class ShortAtom(Check):
    id = "P401"
    severity = "warning"
    title = "string too short for a good atom"
    hint = "use 4 or more fixed bytes; short atoms make YARA check nearly every offset"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        limit = ctx.policy.performance.min_atom_length
        for s in rule.strings:
            if s.kind == "text":
                size = len(text_value(s))
            elif s.kind == "hex":
                size = hex_longest_fixed_run(s.value)
            else:
                continue        # regexes: P405
            if size < limit:
                yield self.finding(rule, rf, f"{s.identifier} has only {size} fixed byte(s) (< {limit})",
                                   line=s.line, column=s.column, subject=s.identifier)


class NocaseLetters(Check):
    id = "P402"
    severity = "warning"
    title = "nocase on a letters-only string"
    hint = "drop nocase if the case is known, or add a digit or symbol; each letter doubles the atoms"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        for s in rule.strings:
            if s.kind == "text" and "nocase" in s.modifier_names:
                value = text_value(s)
                if value.isalpha():
                    yield self.finding(rule, rf, f"{s.identifier} is letters only and nocase",
                                       line=s.line, column=s.column, subject=s.identifier)


class AsciiWideNocase(Check):
    id = "P403"
    severity = "warning"
    title = "ascii wide nocase together"
    hint = "split into the forms you have seen; all three multiply the atoms YARA must search"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        for s in rule.strings:
            if {"ascii", "wide", "nocase"} <= s.modifier_names:
                yield self.finding(rule, rf, f"{s.identifier} is ascii wide nocase",
                                   line=s.line, column=s.column, subject=s.identifier)


class UnboundedRegex(Check):
    id = "P404"
    severity = "warning"
    title = "unbounded .* or .+ in a regex"
    hint = "bound the repetition, e.g. .{0,64}"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        for s in rule.strings:
            if s.kind == "regex":
                found = regex_unbounded(regex_body(s.value)[0])
                if found:
                    yield self.finding(rule, rf, f"{s.identifier} has unbounded {', '.join(found)}",
                                       line=s.line, column=s.column, subject=s.identifier)


class RegexNoLiteral(Check):
    id = "P405"
    severity = "warning"
    title = "regex without a literal of 4+ characters"
    hint = "anchor the regex on a fixed substring of 4 or more characters"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        limit = ctx.policy.performance.min_regex_literal
        for s in rule.strings:
            if s.kind == "regex":
                longest = regex_longest_literal(regex_body(s.value)[0])
                if longest is not None and longest < limit:
                    yield self.finding(rule, rf, f"{s.identifier}'s longest literal is {longest} character(s)",
                                       line=s.line, column=s.column, subject=s.identifier)


class CountExceedsStrings(Check):
    id = "P406"
    severity = "error"
    title = "N of ... asks for more strings than there are"
    hint = "lower N or add the strings: as written the expression can never be true"

    _OF = re.compile(r"^\d+$")

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        tokens = rule.condition_tokens
        for i, t in enumerate(tokens[:-2]):
            if not (self._OF.match(t.text) and tokens[i + 1].text == "of"):
                continue
            if i > 0 and tokens[i - 1].text in ("%",):
                continue
            if i + 2 < len(tokens) and tokens[i + 2].text == "%":
                continue
            n = int(t.text)
            target = tokens[i + 2]
            if target.text == "them":
                count = len(rule.strings)
            elif target.text == "(":
                items = []
                for u in tokens[i + 3:]:
                    if u.text == ")":
                        break
                    if u.text.startswith("$"):
                        items.append(u.text)
                if not items:
                    continue        # a rule set or expressions: not strings
                count = len({s.identifier for item in items for s in strings_matching(rule, item)})
            else:
                continue
            if n > count:
                yield self.at_condition(rule, rf, t, f"'{n} of {target.text}…' but only {count} string(s) match",
                                        subject=f"{n} of {target.text}")


class FilesizeLoop(Check):
    id = "P407"
    severity = "warning"
    title = "loop over filesize without a bound"
    hint = "put a filesize bound first (filesize < 2MB and for ...) or loop over match offsets"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        tokens = rule.condition_tokens
        bounded = False
        for i, t in enumerate(tokens):
            if t.text == "filesize" and i + 1 < len(tokens) and tokens[i + 1].text in ("<", "<=", "=="):
                bounded = True
            if t.text == "filesize" and i > 0 and tokens[i - 1].text in (">", ">=", "=="):
                bounded = True
            if t.text == ".." and i + 1 < len(tokens) and tokens[i + 1].text == "filesize" and not bounded \
                    and _is_loop_range(tokens, i):
                yield self.at_condition(rule, rf, tokens[i + 1], "a for loop ranges up to filesize with no bound",
                                        subject="for..filesize")
                return


def _is_loop_range(tokens: list[Token], dots: int) -> bool:
    """Whether the range around ``tokens[dots]`` (``..``) is what a ``for`` loop iterates over.

    ``$s in (0..filesize)`` is a string searched in a range (one scan); only
    ``for any i in (0..filesize)`` evaluates its body once per offset.
    """
    depth = 0
    for j in range(dots - 1, -1, -1):
        text = tokens[j].text
        if text == ")":
            depth += 1
        elif text == "(":
            if depth == 0:
                if j < 2 or tokens[j - 1].text != "in":
                    return False
                subject = tokens[j - 2].text
                if subject.startswith(("$", "#", "@", "!")):
                    return False
                # for <quantifier> <var>[, <var>] in (...)
                return any(t.text == "for" for t in tokens[max(0, j - 7):j - 2])
            depth -= 1
    return False


class MathNotLast(Check):
    id = "P408"
    severity = "warning"
    title = "math. call not last in the condition"
    hint = "move math.* terms to the end so cheaper terms short-circuit them"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        terms = top_level_terms(rule.condition_tokens)
        for term in terms[:-1]:
            for t in term:
                if t.kind == "word" and t.text.startswith("math."):
                    yield self.at_condition(rule, rf, t, f"{t.text} is not in the last 'and' term",
                                            subject=t.text)
                    break


class TooManyStrings(Check):
    id = "P409"
    severity = "warning"
    title = "too many strings"
    hint = "keep the strongest strings; split the rule if it covers several variants"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        limit = ctx.policy.performance.max_strings
        if len(rule.strings) > limit:
            yield self.finding(rule, rf, f"{len(rule.strings)} strings (more than {limit})", subject="strings")


_HEADER_CHECK = re.compile(r"^u?int(?:8|16|32)(?:be)?\(0\)(==|!=)")


def is_header_check(term: list[Token]) -> bool:
    """``uint16(0) == 0x5A4D`` and the like, or ``pe.is_pe`` (the module's own header check)."""
    text = "".join(t.text for t in _strip_parens(term))
    return bool(_HEADER_CHECK.match(text)) or text in ("pe.is_pe", "pe.is_pe==true", "pe.is_pe==1")


def _uses_pe(tokens: list[Token]) -> Token | None:
    return next((t for t in tokens if t.kind == "word" and t.text.startswith("pe.")), None)


def unguarded_pe(tokens: list[Token]) -> tuple[Token, bool] | None:
    """The first ``pe.`` use no header check guards, and whether it sits in one branch of an ``or``.

    A header check guards the ``and`` terms after it; each ``or`` branch needs its own.
    """
    branches = top_level_terms(tokens, "or")
    if len(branches) > 1:
        for branch in branches:
            found = unguarded_pe(_strip_parens(branch))
            if found is not None:
                return found[0], True
        return None
    for term in top_level_terms(tokens, "and"):
        if is_header_check(term):
            return None
        inner = _strip_parens(term)
        if inner is not term and len(inner) < len(term):
            found = unguarded_pe(inner)
            if found is not None:
                return found
            continue
        token = _uses_pe(term)
        if token is not None:
            return token, False
    return None


class PeWithoutHeaderCheck(Check):
    id = "P410"
    severity = "warning"
    title = "pe module used without a cheap header check first"
    hint = "start the condition with uint16(0) == 0x5A4D and"
    branch_hint = ("check the header inside the branch that uses pe, e.g. (uint16(0) == 0x5A4D and pe.…) "
                   "or …; a check at the start would stop the other branches matching non-PE files")

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        tokens = rule.condition_tokens
        if _uses_pe(tokens) is None:
            return
        found = unguarded_pe(tokens)
        if found is None:
            return
        token, in_branch = found
        finding = self.at_condition(rule, rf, token, f"{token.text} is used without a header check first",
                                    subject="pe")
        if in_branch:
            finding.hint = self.branch_hint
        yield finding


def _printable(b: int) -> bool:
    return 0x20 <= b < 0x7F or b in (0x09, 0x0A, 0x0D)


class HexCouldBeText(Check):
    id = "P411"
    severity = "info"
    title = "hex string that could be a text string"
    hint = "write it as a text string; it reads better and can take modifiers"

    def check(self, rule: RuleSource, rf: RuleFile, ctx: LintContext) -> Iterator[Finding]:
        minimum = ctx.policy.performance.hex_as_text_min
        for s in rule.strings:
            if s.kind != "hex":
                continue
            data = hex_bytes(s.value)
            if not data or None in data or len(data) < minimum:
                continue
            raw = bytes(b for b in data if b is not None)
            if all(_printable(b) for b in raw):
                suggestion = yara_text_literal(raw)
            elif len(raw) % 2 == 0 and all(raw[i + 1] == 0 and _printable(raw[i]) for i in range(0, len(raw), 2)):
                suggestion = yara_text_literal(raw[::2]) + " wide"
            else:
                continue
            yield self.finding(rule, rf, f"{s.identifier} is text: {suggestion}", line=s.line, column=s.column,
                               subject=s.identifier, hint=f"write {s.identifier} = {suggestion}")


RULE_CHECKS: tuple[type[Check], ...] = (
    RequiredMeta, MetaType, MetaAllowed, MetaRepeated, FingerprintStale, ModifiedBeforeDate,
    NameConvention, NameCategory, NameFamily, DuplicateName,
    ShortAtom, NocaseLetters, AsciiWideNocase, UnboundedRegex, RegexNoLiteral, CountExceedsStrings,
    FilesizeLoop, MathNotLast, TooManyStrings, PeWithoutHeaderCheck, HexCouldBeText,
)

PARSER_CHECK = "C106"


def all_checks() -> list[Check]:
    return [cls() for cls in RULE_CHECKS]


def check_catalog() -> list[dict[str, str]]:
    """Every check id with its severity, title and hint (compile checks included), for docs and SARIF."""
    compile_checks = [
        ("C101", "error", "yara-python (libyara) compile error", "fix the rule so libyara compiles it"),
        ("C102", "warning", "yara-python (libyara) compile warning", "libyara warns this is slow or a mistake"),
        ("C103", "error", "YARA-X compile error", "fix the rule so YARA-X compiles it"),
        ("C104", "warning", "YARA-X compile warning", "YARA-X warns this is slow or a mistake"),
        ("C105", "error", "module not available in an engine", "drop the import"),
        (PARSER_CHECK, "warning", "workbench parser could not read the file",
         "the engines accept it but house checks were skipped; report the construct"),
    ]
    out = [{"id": i, "severity": s, "title": t, "hint": h} for i, s, t, h in compile_checks]
    out += [{"id": c.id, "severity": c.severity, "title": c.title, "hint": c.hint} for c in all_checks()]
    return out
