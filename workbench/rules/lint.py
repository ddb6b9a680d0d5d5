"""Lint YARA rules: both engines' diagnostics plus the house checks, as one LintReport."""

from __future__ import annotations

import hashlib
import marshal
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from workbench.durable import atomic_write
from workbench.rules.checks import PARSER_CHECK, Check, LintContext, all_checks, check_catalog
from workbench.rules.compilers import (
    ExternalValue,
    YaraxRaw,
    engine_versions,
    libyara_findings,
    libyara_findings_together,
    yarax_compile_many,
    yarax_findings,
    yarax_findings_of,
)
from workbench.rules.findings import Baseline, Finding, LintReport
from workbench.rules.parse import RuleFile, iter_rule_paths, parse_file, parse_text
from workbench.rules.policy import Policy

__all__ = ["Baseline", "Finding", "LintReport", "YaraxAhead", "all_checks", "check_catalog", "lint_files",
           "lint_paths", "lint_text"]

def lint_externals(policy: Policy, externals: Mapping[str, ExternalValue] | None) -> dict[str, ExternalValue]:
    """Explicit externals, else the policy's ``[externals]`` table (owned by release settings)."""
    if externals is not None:
        return dict(externals)
    table = policy.section("externals")
    return {k: v for k, v in table.items() if isinstance(v, bool | int | float | str)}


def _house_findings(rf: RuleFile, ctx: LintContext, checks: list[Check]) -> list[Finding]:
    return [f for rule in rf.rules for check in checks for f in check.check(rule, rf, ctx)]


def _lint_one(rf: RuleFile, ctx: LintContext, checks: list[Check],
              externals: dict[str, ExternalValue], libyara: list[Finding] | None = None,
              yarax: list[Finding] | None = None, house: list[Finding] | None = None) -> list[Finding]:
    if libyara is None:
        libyara = libyara_findings(rf, externals=externals)
    if yarax is None:
        yarax = yarax_findings(rf, externals=externals)
    findings = libyara + yarax
    if rf.errors and not any(f.severity == "error" and f.id.startswith("C") for f in findings):
        file = str(rf.path) if rf.path else ""
        for err in rf.errors:
            line = int(err.split(":", 1)[0].removeprefix("line ") or 0) if err.startswith("line ") else 0
            findings.append(Finding(PARSER_CHECK, "warning", file, line, 1, f"workbench parser: {err}",
                                    "both engines accept this but the house checks skipped it; "
                                    "please report the construct", subject=err.split(":", 1)[-1].strip()))
    findings.extend(house if house is not None else _house_findings(rf, ctx, checks))
    return findings


HELPER_MIN_FILES = 32        # fewer, and a helper's start-up costs more than it saves


class _YaraxHelper:
    """YARA-X compiling part of a large set of files in a second process.

    YARA-X compiling each file is most of linting a real ruleset (2.3 s of CPU for the
    ReversingLabs set against 0.35 s for libyara) and holds the GIL: the first files,
    about half the text, go to a helper process (a plain ``python -c``, so no caller's
    main module is imported again) while this one does the rest. The findings are the
    same (the same compile of the same text); a helper that fails is done here instead.
    """

    def __init__(self, files: list[RuleFile], externals: dict[str, ExternalValue]):
        self.files: list[RuleFile] = []
        self.externals = externals
        self._ids: set[int] = set()
        self._out: list[bytes] = []
        self._thread: threading.Thread | None = None
        self.items: list[tuple[str, str | None]] = []
        if len(files) < HELPER_MIN_FILES or (os.cpu_count() or 1) < 2:
            return
        total, half = sum(len(rf.text) for rf in files), 0
        for rf in files:
            if half >= total / 2:
                break
            self.files.append(rf)
            half += len(rf.text)
        self._start([(rf.text, _origin(rf)) for rf in self.files])
        self._ids = {id(rf) for rf in self.files}

    @classmethod
    def of_items(cls, items: list[tuple[str, str | None]], externals: dict[str, ExternalValue]
                 ) -> _YaraxHelper | None:
        """A helper compiling (text, path) items not parsed yet; None on a single core."""
        if (os.cpu_count() or 1) < 2:
            return None
        helper = cls([], externals)
        helper._start(items)
        return helper

    def raw_results(self) -> Iterator[tuple[tuple[str, str | None], YaraxRaw]]:
        """(item, raw findings) for the items the helper was given (compiled here if it failed)."""
        yield from zip(self.items, self._raws(), strict=True)

    def _start(self, items: list[tuple[str, str | None]]) -> None:
        self.items = items
        data = pickle.dumps((items, self.externals), pickle.HIGHEST_PROTOCOL)

        def talk() -> None:
            try:
                done = subprocess.run(
                    [sys.executable, "-c", "from workbench.rules.compilers import yarax_helper_main as m; m()"],
                    input=data, capture_output=True, check=False)
                if done.returncode == 0:
                    self._out.append(done.stdout)
            except OSError:
                pass

        self._thread = threading.Thread(target=talk, name="yarax-helper", daemon=True)
        self._thread.start()

    def takes(self, rf: RuleFile) -> bool:
        return id(rf) in self._ids

    def results(self) -> Iterator[tuple[RuleFile, YaraxRaw]]:
        if self._thread is None:
            return
        yield from zip(self.files, self._raws(), strict=True)

    def _raws(self) -> list[YaraxRaw]:
        assert self._thread is not None
        self._thread.join()
        raws: list[YaraxRaw] | None = None
        if self._out:
            try:
                raws = pickle.loads(self._out[0])
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
                raws = None
        if raws is None or len(raws) != len(self.items):       # the helper failed: here, then
            raws = yarax_compile_many(self.items, self.externals)
        return raws

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()


AHEAD_SHARE = 0.9       # of the text YARA-X has to compile, given to a helper started early


class YaraxAhead:
    """YARA-X started on a set of rule files before they are even parsed.

    YARA-X compiling the files is the largest part of a cold `rule lint` of a real set
    (2.3 s of CPU for the ReversingLabs rules), parsing and the house checks and libyara
    the rest (about 1.8 s). A helper process given AHEAD_SHARE of the text YARA-X has not
    seen (``memo``) while this process parses and checks keeps both cores busy from the
    start; the findings are the same (the same compile of the same text, path and
    externals). :func:`lint_files` takes the files it was given from it.
    """

    def __init__(self, items: list[tuple[str, str | None]], externals: Mapping[str, ExternalValue],
                 memo: Path | None = None):
        self.externals = dict(externals)
        known = YaraxMemo(memo, self.externals)
        todo = [(text, path) for text, path in items if known.text_key(text, path) not in known.known]
        total, share, chosen = sum(len(t) for t, _ in todo), 0, []
        for text, path in todo:
            if share >= total * AHEAD_SHARE:
                break
            chosen.append((text, path))
            share += len(text)
        self._helper = _YaraxHelper.of_items(chosen, self.externals) if len(chosen) >= HELPER_MIN_FILES \
            else None
        self._taken = {(path, text) for text, path in chosen} if self._helper is not None else set()
        self._raws: dict[tuple[str | None, str], YaraxRaw] | None = None

    def takes(self, rf: RuleFile, externals: Mapping[str, ExternalValue]) -> bool:
        return dict(externals) == self.externals and (_origin(rf), rf.text) in self._taken

    def get(self, rf: RuleFile) -> YaraxRaw:
        if self._raws is None:
            assert self._helper is not None
            self._raws = {(path, text): raw for (text, path), raw in self._helper.raw_results()}
        return self._raws[(_origin(rf), rf.text)]

    def close(self) -> None:
        if self._helper is not None:
            self._helper.close()


def _origin(rf: RuleFile) -> str | None:
    return str(rf.path) if rf.path else None


YARAX_MEMO = "yarax-findings"     # under the workspace's state/: see YaraxMemo
_MEMO_FORMAT = "wb-yarax-1"
_MEMO_KEPT = 20_000               # entries (a few hundred bytes each) kept across runs


class YaraxMemo:
    """YARA-X's raw findings for rule files it compiled before, by content.

    What YARA-X says of a file without includes depends only on its text, its path (the
    origin it names), the externals and YARA-X's version, which is the key; compiling
    the files again was most of `rule lint` on a real ruleset. Files with includes are
    always compiled (what they include may have changed). A memo that cannot be read is
    an empty one; one that cannot be written costs the next run time, not findings.
    """

    def __init__(self, path: Path | None, externals: Mapping[str, ExternalValue]):
        self.path = path
        self._salt = marshal.dumps((_MEMO_FORMAT, engine_versions().get("yara-x", ""),
                                    sorted((k, repr(v)) for k, v in externals.items())))
        self.known: dict[str, YaraxRaw] = {}
        self._new: dict[str, YaraxRaw] = {}
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    tag, known = marshal.load(fh)
                if tag == _MEMO_FORMAT and isinstance(known, dict):
                    self.known = known
            except (OSError, ValueError, EOFError, TypeError):
                pass

    def key(self, rf: RuleFile) -> str | None:
        if self.path is None or rf.includes:
            return None
        return self.text_key(rf.text, _origin(rf))

    def text_key(self, text: str, path: str | None) -> str:
        """The key of a file without includes (one with includes is never kept)."""
        return hashlib.sha256(self._salt + (path or "").encode("utf-8", "surrogateescape") + b"\0"
                              + text.encode("utf-8", "surrogateescape")).hexdigest()

    def get(self, rf: RuleFile) -> YaraxRaw | None:
        key = self.key(rf)
        got = self.known.get(key) if key is not None else None
        return (list(got[0]), list(got[1])) if got is not None else None

    def put(self, rf: RuleFile, raw: YaraxRaw) -> None:
        key = self.key(rf)
        if key is not None:
            self._new[key] = raw

    def save(self) -> None:
        if self.path is None or not self._new:
            return
        kept = {k: v for k, v in self.known.items() if k not in self._new}
        kept = dict(list(kept.items())[-(_MEMO_KEPT - len(self._new)):]) if len(kept) + len(self._new) > _MEMO_KEPT \
            else kept
        kept.update(self._new)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, marshal.dumps((_MEMO_FORMAT, kept)))
        except (OSError, ValueError):
            pass


# YARA-X warnings a house check already reports, with a suggestion, at the same place
_SAME_AS_HOUSE_CHECK = {"text_as_hex": "P411"}


def _finish(findings: list[Finding], policy: Policy) -> list[Finding]:
    out = []
    for f in findings:
        if f.id in policy.disabled_checks:
            continue
        override = policy.severity_overrides.get(f.id)
        if override:
            f.severity = override  # type: ignore[assignment]
        out.append(f)
    house = {(f.id, f.file, f.line) for f in out}
    seen: set[tuple[str, str, int, int, str]] = set()
    unique = []
    for f in out:
        code = f.subject.split(":", 1)[0] if f.id == "C104" else ""
        if code in _SAME_AS_HOUSE_CHECK and (_SAME_AS_HOUSE_CHECK[code], f.file, f.line) in house:
            continue            # one finding is reported once
        key = (f.id, f.file, f.line, f.column, f.message)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    unique.sort(key=Finding.sort_key)
    return unique


def lint_files(files: list[RuleFile], policy: Policy, *, baseline: Baseline | None = None,
               externals: Mapping[str, ExternalValue] | None = None,
               known_rules: Mapping[str, str] | None = None, memo: Path | None = None,
               ahead: YaraxAhead | None = None) -> LintReport:
    """Lint already-parsed files together (duplicate names are checked across all of them).

    ``memo``: a file where YARA-X's findings are kept by content (:class:`YaraxMemo`);
    ``ahead``: YARA-X started on some of these files before they were parsed.
    """
    ctx = LintContext(policy, known_rules=dict(known_rules or {}))
    ctx.add_files(files)
    checks = all_checks()
    ext = lint_externals(policy, externals)
    findings: list[Finding] = []
    # libyara compiles the files without includes together (the same findings, a seventh
    # of the time), each file alone only when that fails or it includes others
    alone = [rf for rf in files if not rf.includes]
    together = libyara_findings_together(alone, externals=ext) if len(alone) > 1 else None
    known = {id(rf): found for rf, found in zip(alone, together, strict=True)} if together else {}
    yarax = YaraxMemo(memo, ext)
    remembered = {id(rf): raw for rf in files if (raw := yarax.get(rf)) is not None}
    # files the helper started ahead compiles come last: its results are waited for then
    later = [rf for rf in files if id(rf) not in remembered and ahead is not None and ahead.takes(rf, ext)]
    taken = {id(rf) for rf in later}
    # without one started ahead, YARA-X on half the files it has not seen, beside this process
    helper = _YaraxHelper([rf for rf in files if id(rf) not in remembered], ext) if ahead is None \
        else _YaraxHelper([], ext)
    house: dict[int, list[Finding]] = {}
    try:
        for rf in files:
            if helper.takes(rf):
                continue
            if id(rf) in taken:       # its house checks now, while the helper compiles it
                house[id(rf)] = _house_findings(rf, ctx, checks)
                continue
            raw = remembered.get(id(rf))
            if raw is None:
                raw = yarax_compile_many([(rf.text, _origin(rf))], ext)[0]
                yarax.put(rf, raw)
            findings.extend(_lint_one(rf, ctx, checks, ext, known.get(id(rf)), yarax_findings_of(rf, raw)))
        for rf in later:
            assert ahead is not None
            raw = ahead.get(rf)
            yarax.put(rf, raw)
            findings.extend(_lint_one(rf, ctx, checks, ext, known.get(id(rf)), yarax_findings_of(rf, raw),
                                      house.pop(id(rf))))
        for rf, raw in helper.results():
            yarax.put(rf, raw)
            findings.extend(_lint_one(rf, ctx, checks, ext, known.get(id(rf)), yarax_findings_of(rf, raw)))
    finally:
        helper.close()
    yarax.save()
    report = LintReport(files=[str(rf.path) if rf.path else "" for rf in files],
                        rules=sum(len(rf.rules) for rf in files),
                        findings=_finish(findings, policy), engines=dict(engine_versions()))
    if baseline is not None:
        baseline.apply(report)
    return report


def lint_paths(paths: Iterable[Path], policy: Policy, *, baseline: Baseline | None = None,
               externals: Mapping[str, ExternalValue] | None = None) -> LintReport:
    """Lint files and folders (walked for *.yar / *.yara). OSError if a path cannot be read."""
    files = [parse_file(p) for p in iter_rule_paths(paths)]
    return lint_files(files, policy, baseline=baseline, externals=externals)


def lint_text(text: str, file: Path | None, policy: Policy, *, baseline: Baseline | None = None,
              externals: Mapping[str, ExternalValue] | None = None,
              known_rules: Mapping[str, str] | None = None) -> LintReport:
    """Lint an editor buffer. ``known_rules`` (name -> file) finds names taken by other files."""
    rf = parse_text(text, Path(file) if file else None)
    return lint_files([rf], policy, baseline=baseline, externals=externals, known_rules=known_rules)
