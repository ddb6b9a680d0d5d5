"""A ruleset to test: parsed rule files flattened into one namespace, each rule with a cache key.

The cache key of a rule (its *effective fingerprint*) covers everything that can
change what the rule matches: its normalised strings and condition (the house
``fingerprint``), its name and modifiers, the imports of its file, the keys of
the rules its condition names, every global rule of the namespace, and the
libyara version. Anything else (metadata, layout, comments) leaves the key, and
so the cached results, alone.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import pickle
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import yara

from workbench.corpus import runmemo
from workbench.corpus.scanner import SCAN_ENGINE, ScanRules, compile_scanner
from workbench.durable import atomic_write
from workbench.errors import Kind, WorkbenchError
from workbench.rules.parse import RULE_SUFFIXES, RuleFile, RuleSource, parse_file

ExternalValue = bool | int | float | str

KEY_VERSION = "wb-scan-1"
PARSE_CACHE = "rule-parse-cache"        # under state/: parsed rule files by content hash
_STAT_KEYS = "stat-keys"                 # in it: each rule file's stat and content hash
_ENTRY_FORMAT = "wb-parsed-2"
_NOT_UTF8 = "file is not UTF-8"
_TEXT_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_REGEX_LITERAL = re.compile(r"\bmatches\s*/(?:[^/\\\n]|\\.)*/[a-z]*")
_REFERENCE = re.compile(r"(?<![\w.$#@!])([A-Za-z_]\w*)(\*?)")
_KEYWORDS = frozenset({         # YARA's reserved words that may appear in a condition
    "all", "and", "any", "at", "contains", "defined", "endswith", "entrypoint", "false",
    "filesize", "for", "icontains", "iendswith", "iequals", "in", "int16", "int16be", "int32",
    "int32be", "int8", "int8be", "istartswith", "matches", "none", "not", "of", "or",
    "startswith", "them", "true", "uint16", "uint16be", "uint32", "uint32be", "uint8", "uint8be"})


@dataclass(frozen=True)
class RuleProblem:
    """A syntax or compile error (or warning) pointed back at the rule file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RulesetError(WorkbenchError, ValueError):
    """The rules cannot be compiled; ``problems`` says where and why."""

    kind = Kind.INPUT

    def __init__(self, problems: Sequence[RuleProblem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems[:5]) +
                         (f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""))

    def describe(self) -> str:
        files = {p.file for p in self.problems if p.file}
        head = f"rules in {len(files)} files do not compile" if len(files) > 1 else "rules do not compile"
        return head + ":\n  " + "\n  ".join(str(p) for p in self.problems)


class RuleSummary(NamedTuple):
    """What reports and cache keys need of a rule: kept apart so they never unpickle its parse."""

    name: str
    file: str                      # "" when the rule came from no file
    start_line: int
    end_line: int
    fingerprint: str
    is_private: bool
    is_global: bool
    base: str                      # digest of what the rule alone contributes to its key
    names: tuple[tuple[str, bool], ...]     # identifiers its condition may name (with ``*``?)
    hashes: tuple[str, ...]        # its ``hash`` metadata, lower case
    layout: str                    # digest of its exact text: where each of its lines falls


def summarize(source: RuleSource) -> RuleSummary:
    return RuleSummary(source.name, str(source.file or ""), source.start_line, source.end_line,
                       source.fingerprint, source.is_private, source.is_global,
                       _digest([source.name, f"private={source.is_private}",
                                f"global={source.is_global}", source.fingerprint,
                                *sorted(set(source.imports))]),
                       condition_names(source), tuple(rule_hashes(source)), _digest([source.text]))


class _LazyRules:
    """A rule file's parsed rules, read from the parse cache when one rule's full source is needed."""

    def __init__(self, parsed: RuleFile | None = None, *, stored: Path | str | None = None,
                 source: str | None = None, key: str = ""):
        self._parsed = parsed
        self._stored = stored          # the pickled parse in the cache
        self._source = source          # the rule file, parsed again if the cache lost it ...
        self._key = key                # ... and only while its content is what was loaded

    def rules(self) -> list[RuleSource]:
        if self._parsed is None:
            assert self._stored is not None and self._source is not None
            try:
                with open(self._stored, "rb") as fh:
                    self._parsed = pickle.load(fh)
            except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                    TypeError):
                self._parsed = self._parse_again(self._source)
        assert self._parsed is not None
        return self._parsed.rules

    def _parse_again(self, source: str) -> RuleFile:
        try:
            unchanged = _content_key(source, _read(source)) == self._key
        except OSError:
            unchanged = False
        if not unchanged:
            raise RulesetError([RuleProblem(source, 0, "the file changed while it was being "
                                                       "tested; test again")])
        parsed = parse_file(Path(source))
        _prepare(parsed)
        return parsed


class RuleEntry:
    """One rule of the flattened ruleset: its summary at once, its parsed source when asked."""

    # slots: a run makes one per rule, and a re-test has little else to do
    __slots__ = ("_lazy", "_source", "deps", "encoding", "hashes", "index", "key", "name", "summary")

    def __init__(self, index: int, source: RuleSource | None = None, encoding: str = "utf-8", *,
                 summary: RuleSummary | None = None, lazy: tuple[_LazyRules, int] | None = None):
        if source is None and lazy is None:
            raise ValueError("a rule entry needs its source or a way to load it")
        self.index = index
        self.encoding = encoding              # how the file's text maps back to its exact bytes
        self._source = source
        self._lazy = lazy
        self.summary = summary if summary is not None else summarize(self.source)
        self.name = self.summary.name
        self.key = ""
        self.deps: list[int] = []             # rules its condition names
        self.hashes = self.summary.hashes     # its ``hash`` metadata, lower case

    def __repr__(self) -> str:
        return f"RuleEntry({self.index}, {self.name!r}, key={self.key[:12]!r})"

    @property
    def source(self) -> RuleSource:
        if self._source is None:
            assert self._lazy is not None
            lazy, position = self._lazy
            self._source = lazy.rules()[position]
        return self._source

    @property
    def file(self) -> str:
        return self.summary.file

    @property
    def start_line(self) -> int:
        return self.summary.start_line

    @property
    def is_global(self) -> bool:
        return self.summary.is_global

    @property
    def is_private(self) -> bool:
        return self.summary.is_private

    @property
    def reported(self) -> bool:
        """libyara reports only non-private rules."""
        return not self.summary.is_private


@dataclass
class CompiledSubset:
    rules: ScanRules               # what scans them (scanner.compile_scanner)
    indices: list[int]             # the rules compiled, in order
    warnings: list[RuleProblem]


class Ruleset:
    """Rules of several files, includes resolved, in one namespace as ``yarac a.yar b.yar`` does."""

    def __init__(self, entries: list[RuleEntry], files: list[Path],
                 externals: Mapping[str, ExternalValue] | None = None):
        self.entries = entries
        self.files = files
        self.externals = dict(externals or {})    # external variables, compiled in (policy [externals])
        self.by_name = {e.name: e for e in entries}
        self.globals = [e.index for e in entries if e.is_global]
        self._link()

    def __len__(self) -> int:
        return len(self.entries)

    # -- keys -------------------------------------------------------------------------

    def _link(self) -> None:
        for entry in self.entries:
            deps = self._references(entry)
            deps.discard(entry.index)
            entry.deps = sorted(deps)
        base = [e.summary.base for e in self.entries]
        seen: set[int] = set()
        stack = list(self.globals)
        while stack:                  # globals and everything they name, transitively
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.entries[i].deps)
        globals_digest = _digest(["globals", *sorted(base[i] for i in seen)])
        # _digest([KEY_VERSION, YARA_VERSION, base, globals, *deps]), the common prefix hashed once
        prefix = hashlib.sha256(f"{KEY_VERSION}\0{yara.YARA_VERSION}\0{SCAN_ENGINE}\0".encode())
        if self.externals:           # their values change what a rule using them matches
            prefix.update(_digest(["externals", *(f"{k}={v!r}" for k, v in sorted(self.externals.items()))])
                          .encode())
        tail = f"\0{globals_digest}\0"
        for entry in self.entries:     # definition order: a rule may only name earlier rules
            h = prefix.copy()
            h.update((base[entry.index] + tail).encode())
            for d in entry.deps:
                dep = self.entries[d]
                h.update((dep.key if d < entry.index else f"forward:{dep.name}")
                         .encode("utf-8", "surrogateescape") + b"\0")
            entry.key = h.hexdigest()

    def _references(self, entry: RuleEntry) -> set[int]:
        """Rules the condition may name: any identifier that is a rule name, or a ``Prefix*`` set.

        Erring towards too many is safe: an extra dependency only costs a rescan.
        """
        found: set[int] = set()
        by_name = self.by_name
        for name, star in entry.summary.names:
            if star:
                found.update(e.index for e in self.entries if e.name.startswith(name))
            else:
                named = by_name.get(name)
                if named is not None:
                    found.add(named.index)
        return found

    # -- subsets ----------------------------------------------------------------------

    def closure(self, indices: Iterable[int]) -> list[int]:
        """The rules plus everything they need to compile and behave the same: deps and globals."""
        out: set[int] = set()
        stack = [*indices, *self.globals]
        while stack:
            i = stack.pop()
            if i not in out:
                out.add(i)
                stack.extend(self.entries[i].deps)
        return sorted(out)

    def source_bytes(self, indices: Sequence[int]) -> tuple[bytes, list[tuple[int, RuleEntry]]]:
        """YARA source of the given rules (in ruleset order) and where each one starts."""
        chosen = [self.entries[i] for i in sorted(indices)]
        imports = sorted({imp for e in chosen for imp in e.source.imports})
        lines = [f'import "{imp}"' for imp in imports]
        chunks = [("\n".join(lines) + "\n").encode() if lines else b""]
        line = len(lines) + 1
        starts: list[tuple[int, RuleEntry]] = []
        for e in chosen:
            text = e.source.text.encode(e.encoding, "surrogateescape")
            starts.append((line, e))
            chunks.append(text + b"\n\n")
            line += text.count(b"\n") + 2
        return b"".join(chunks), starts

    def compile(self, indices: Iterable[int]) -> CompiledSubset:
        """Compile the closure of ``indices``; compile errors raise :class:`RulesetError`."""
        chosen = self.closure(indices)
        data, starts = self.source_bytes(chosen)
        fd, name = tempfile.mkstemp(prefix="wb-rules-", suffix=".yar")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            try:      # libyara: the reference (what compiles, its warnings) ...
                reference = yara.compile(filepath=name, includes=False, externals=self.externals)
            except yara.SyntaxError as exc:
                raise RulesetError(self._every_failing_file(chosen, self._locate(str(exc), starts))) from None
            except yara.Error as exc:
                raise RulesetError([RuleProblem("", 0, str(exc))]) from None
            rules = compile_scanner(name, reference, self.externals)    # ... and the faster engine scans
        finally:
            os.unlink(name)
        warnings = [self._locate(w, starts) for w in getattr(reference, "warnings", [])]
        return CompiledSubset(rules, chosen, warnings)

    def _every_failing_file(self, chosen: list[int], first: RuleProblem) -> list[RuleProblem]:
        """libyara stops at the first error: compile each file's rules alone to name every failing file."""
        by_file: dict[str, list[int]] = {}
        for i in chosen:
            by_file.setdefault(self.entries[i].file, []).append(i)
        problems = [_explained(first)]
        if len(by_file) < 2:
            return problems
        for file, indices in by_file.items():
            if file == first.file:
                continue
            data, starts = self.source_bytes(self.closure(indices))
            try:
                yara.compile(source=data.decode("utf-8", "surrogateescape"), externals=self.externals)
            except yara.SyntaxError as exc:
                problems.append(_explained(self._locate(str(exc), starts)))
            except (yara.Error, UnicodeError):
                continue
        return problems

    @staticmethod
    def _locate(message: str, starts: list[tuple[int, RuleEntry]]) -> RuleProblem:
        from workbench.rules.compiler_messages import libyara_message  # only for errors, warnings

        said = libyara_message(message)
        if not said.line:
            return RuleProblem("", 0, said.text)
        line, text = said.line, said.text.strip()
        owner: tuple[int, RuleEntry] | None = None
        for start, entry in starts:
            if start <= line:
                owner = (start, entry)
        if owner is None:
            return RuleProblem("", 0, text)
        start, entry = owner
        return RuleProblem(entry.file, entry.start_line + line - start, text)

    def rule_at(self, file: str, line: int) -> RuleEntry | None:
        for e in self.entries:
            if e.file == file and e.start_line <= line <= e.summary.end_line:
                return e
        return None


def _explained(problem: RuleProblem) -> RuleProblem:
    """An undefined identifier is most often an external variable the policy does not declare."""
    from workbench.rules.compiler_messages import undefined_identifier

    name = undefined_identifier(problem.message)
    if not name:
        return problem
    return RuleProblem(problem.file, problem.line,
                       f"{problem.message} (if it is an external variable, declare it under [externals] "
                       f"in signatures/workbench.toml, e.g. {name} = \"\")")


def rule_hashes(source: RuleSource) -> list[str]:
    """The rule's ``hash`` metadata values, lower case."""
    return [str(v).strip().lower() for v in source.meta_values("hash") if str(v).strip()]


def condition_names(source: RuleSource) -> tuple[tuple[str, bool], ...]:
    """Identifiers in the condition outside string and regex literals, with whether a ``*`` follows.

    YARA's keywords are left out (no rule can be named one), not prefixes such as ``all*``.
    """
    condition = _REGEX_LITERAL.sub("matches //", _TEXT_LITERAL.sub('""', source.condition))
    return tuple(dict.fromkeys((m.group(1), bool(m.group(2))) for m in _REFERENCE.finditer(condition)
                               if m.group(2) or m.group(1) not in _KEYWORDS))


@dataclass
class _ParsedFile:
    """What the parse cache keeps of a rule file: summaries, and (apart) the parse itself."""

    summaries: list[RuleSummary]
    errors: list[str]
    includes: list[str]
    rules: _LazyRules

    def dumps(self) -> bytes:
        """``marshal`` of plain tuples: a re-test loads every unchanged file's summaries, and
        unpickling a named tuple per rule cost more than reading the files."""
        return marshal.dumps((_ENTRY_FORMAT, tuple(tuple(s) for s in self.summaries),
                              tuple(self.errors), tuple(self.includes)))

    @staticmethod
    def loads(data: bytes, rules: _LazyRules) -> _ParsedFile | None:
        try:
            tag, summaries, errors, includes = marshal.loads(data)
        except (ValueError, EOFError, TypeError):
            return None
        if tag != _ENTRY_FORMAT:
            return None
        make = tuple.__new__               # the named tuple without its Python-level __new__
        return _ParsedFile([make(RuleSummary, s) for s in summaries], list(errors), list(includes),
                           rules)


def load_ruleset(paths: Iterable[Path | str], *, parse_cache: Path | None = None,
                 externals: Mapping[str, ExternalValue] | None = None) -> Ruleset:
    """Parse rule files and folders (``*.yar``/``*.yara``), following includes.

    With ``parse_cache`` (a folder), parsed files are kept by content hash so an
    unchanged file is not parsed again. Raises :class:`RulesetError` for syntax
    errors and duplicate rule names and FileNotFoundError for a missing path.
    """
    loader = _Loader(parse_cache)
    for p in rule_file_names(paths):
        loader.take(p, ())
    loader.keep_stat_keys()
    entries, problems = loader.entries, loader.problems
    names: dict[str, RuleEntry] = {}
    for e in entries:
        if e.name in names:
            first = names[e.name]
            problems.append(RuleProblem(e.file, e.start_line,
                                        f"duplicated rule name {e.name!r} "
                                        f"(first defined at {first.file}:{first.start_line})"))
        else:
            names[e.name] = e
    if problems:
        raise RulesetError(problems)
    return Ruleset(entries, loader.files, externals)


def rule_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """The files ``rules.parse.iter_rule_paths`` gives, in its order, without its cost.

    Files as given; folders walked for ``*.yar``/``*.yara`` (any case), hidden names and
    symlinked folders skipped, sorted by path. It made a Path and resolved it (four
    lstat calls) for every entry walked: 2 ms of a 30 ms re-test. Files reached twice
    are left to the caller (the loader resolves each once). FileNotFoundError for a
    given path that does not exist.
    """
    return map(Path, rule_file_names(paths))


def rule_file_names(paths: Iterable[Path | str]) -> list[str]:
    """:func:`rule_files` as text, with no Path made: what a re-test's run memo stamps."""
    out: list[str] = []
    for given in paths:
        root = os.fspath(given)
        if not os.path.isdir(root):
            if not os.path.exists(root):
                raise FileNotFoundError(f"no such rule file or folder: {Path(root)}")
            out.append(str(Path(root)))
            continue
        root = str(Path(root))                           # as Path would print it
        found: list[tuple[str, ...]] = []
        for folder, dirs, names in os.walk(root):        # symlinked folders are not entered
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = os.path.relpath(folder, root)
            parts = () if rel == "." else tuple(rel.split(os.sep))
            found.extend((*parts, name) for name in names if not name.startswith(".")
                         and os.path.splitext(name)[1].lower() in RULE_SUFFIXES)
        prefix = "" if root == "." else root if root.endswith(os.sep) else root + os.sep
        out.extend(path for path in (prefix + os.sep.join(parts) for parts in sorted(found))
                   if os.path.isfile(path))
    return out


class _Loader:
    """Rule files in order, includes first (a class, not a recursive closure: a closure that
    calls itself is a reference cycle, and it kept every loaded rule alive until the
    garbage collector's next full pass, which then cost a re-test a sixth of its time).

    Paths are text until a file is kept: four ``Path`` objects made per file (the file,
    its folder, the resolved file, its cache entry) cost a re-test more than reading it.
    """

    def __init__(self, parse_cache: Path | None):
        self.parse_cache = parse_cache
        self.problems: list[RuleProblem] = []
        self.entries: list[RuleEntry] = []
        self.files: list[Path] = []
        self.seen: set[str] = set()
        self._folders: dict[str, str] = {}      # folder -> its real path
        self.started = time.time()
        self.stat_keys = _StatKeys(parse_cache, self.started)

    def keep_stat_keys(self) -> None:
        self.stat_keys.save()

    def resolve(self, path: str) -> str:
        """``str(Path(path).resolve())``, each folder resolved once (a ruleset is many files
        in few folders). ``path`` is as ``Path`` prints it: no trailing or doubled separator."""
        if os.path.islink(path):
            return str(Path(path).resolve())
        parent, name = os.path.split(path)
        parent = parent or "."
        folder = self._folders.get(parent)
        if folder is None:
            folder = self._folders[parent] = os.path.realpath(parent)
        return os.path.join(folder, name)

    def take(self, path: str, chain: tuple[str, ...]) -> None:
        resolved = self.resolve(path)
        if resolved in self.seen:
            return
        self.seen.add(resolved)
        try:
            cached = _parse_cached(resolved, self.parse_cache, self.stat_keys)
        except OSError as exc:
            where = str(chain[-1]) if chain else str(path)
            self.problems.append(RuleProblem(where, 0, f"cannot read {path}: {exc.strerror or exc}"))
            return
        self.files.append(Path(resolved))
        encoding = _encoding(cached.errors)
        for err in cached.errors:
            if _NOT_UTF8 in err:
                continue
            m = re.match(r"line (\d+): (.*)", err, re.S)
            self.problems.append(RuleProblem(resolved, int(m.group(1)) if m else 0,
                                             m.group(2) if m else err))
        for inc in cached.includes:    # YARA resolves includes against the including file
            target = Path(inc) if os.path.isabs(inc) else Path(resolved).parent / inc
            if not target.exists():
                self.problems.append(RuleProblem(resolved, 0, f"include {inc!r}: no such file"))
                continue
            self.take(str(target), (*chain, resolved))
        entries = self.entries
        for j, summary in enumerate(cached.summaries):
            entries.append(RuleEntry(len(entries), None, encoding, summary=summary,
                                     lazy=(cached.rules, j)))


class _StatKeys:
    """Rule file path -> (stat, content key), so an unchanged file's parse is found without
    reading and hashing it (a real ruleset is hundreds of files); see ``runmemo.stat_key``
    and ``RACY_SECONDS`` for when a stat is trusted."""

    def __init__(self, folder: Path | None, started: float):
        self.path = f"{folder}/{_STAT_KEYS}" if folder is not None else None
        self.started = started
        self.known: dict[str, tuple[tuple[int, ...], str]] = {}
        self.changed = False
        if self.path is not None:
            try:
                with open(self.path, "rb") as fh:
                    tag, known = marshal.load(fh)
                if tag == _ENTRY_FORMAT + _PARSER_ID.hex() and isinstance(known, dict):
                    self.known = known
            except (OSError, ValueError, EOFError, TypeError):
                pass

    def key(self, path: str) -> tuple[tuple[int, ...] | None, str | None]:
        """The file's stat key, and its content key when that stat was seen before."""
        now = runmemo.stat_key(path)
        if now is None or now[1] / 1e9 > self.started - runmemo.RACY_SECONDS:
            return None, None
        seen = self.known.get(path)
        return now, (seen[1] if seen is not None and seen[0] == now else None)

    def remember(self, path: str, stat: tuple[int, ...] | None, content: str) -> None:
        if stat is not None and self.path is not None and self.known.get(path) != (stat, content):
            self.known[path] = (stat, content)
            self.changed = True

    def save(self) -> None:
        if self.changed and self.path is not None:
            folder = Path(self.path).parent
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(folder, Path(self.path),
                              marshal.dumps((_ENTRY_FORMAT + _PARSER_ID.hex(), self.known)))
            self.changed = False


def _parse_cached(path: str, folder: Path | None, stat_keys: _StatKeys | None = None) -> _ParsedFile:
    """``parse_file`` plus key parts, remembered by (file bytes, code) when a cache folder is given.

    The cache keeps two files per rule file content: ``<key>.parsed``, the summaries every
    run reads, and ``<key>.rules``, the parse itself (without what only linting reads: the
    file's text, line index and metadata positions), read only for the rules a run
    compiles or prefilters.
    """
    if folder is None:
        return _prepare(parse_file(Path(path)))
    stat, known = stat_keys.key(path) if stat_keys is not None else (None, None)
    if known is not None:
        try:
            with open(f"{folder}/{known}.parsed", "rb") as fh:
                cached = _ParsedFile.loads(fh.read(), _LazyRules(stored=f"{folder}/{known}.rules",
                                                                  source=path, key=known))
            if cached is not None:
                return cached
        except OSError:
            pass
    key = _content_key(path, _read(path))
    if stat_keys is not None:
        stat_keys.remember(path, stat, key)
    base = f"{folder}/{key}"          # text, not Path: fifty files a run
    stored = Path(f"{base}.rules")
    try:
        with open(f"{base}.parsed", "rb") as fh:
            cached = _ParsedFile.loads(fh.read(), _LazyRules(stored=stored, source=path, key=key))
        if cached is not None:
            return cached
    except OSError:
        pass
    parsed = parse_file(Path(path))
    prepared = _prepare(parsed)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder, stored, pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL))
    _write_atomically(folder, Path(f"{base}.parsed"), prepared.dumps())   # once its parse is there
    return prepared


def _read(path: str | Path) -> bytes:
    with open(path, "rb") as fh:          # not Path.read_bytes: a third of the time, 50 files a run
        return fh.read()


def _content_key(path: str | Path, data: bytes) -> str:
    return hashlib.sha256(_PARSER_ID + data + str(path).encode("utf-8", "surrogateescape")).hexdigest()


def _write_atomically(folder: Path, target: Path, data: bytes) -> None:
    # a cache: rebuilt when lost, so no fsync (a cold run writes two files per rule file)
    atomic_write(target, data, mode=0o600, durable=False)


def _prepare(parsed: RuleFile) -> _ParsedFile:
    parsed.text = ""
    parsed.line_index = []
    for rule in parsed.rules:
        rule.meta_entries = []
    return _ParsedFile([summarize(r) for r in parsed.rules], list(parsed.errors),
                       list(parsed.includes), _LazyRules(parsed))


def _parser_id() -> bytes:
    """Changes whenever the parser's or this module's code does, so cached parses never outlive it."""
    from workbench.rules import parse

    return hashlib.sha256(Path(parse.__file__).read_bytes() + Path(__file__).read_bytes()).digest()


_PARSER_ID = _parser_id()


def _encoding(errors: list[str]) -> str:
    return "latin-1" if any(_NOT_UTF8 in e for e in errors) else "utf-8"


def _digest(parts: Iterable[str]) -> str:
    """sha256 of the parts, each followed by a NUL byte."""
    return hashlib.sha256(b"".join(p.encode("utf-8", "surrogateescape") + b"\0"
                                   for p in parts)).hexdigest()
