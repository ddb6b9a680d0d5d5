"""Compile rule text with both engines (libyara via yara-python, and YARA-X) and report as findings."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yara
import yara_x

from workbench.rules.compiler_messages import (
    externals_hint,
    libyara_message,
    undefined_identifier,
    unknown_module,
    yarax_message,
)
from workbench.rules.findings import Finding
from workbench.rules.parse import RuleFile

ExternalValue = bool | int | float | str

# Modules yara-python wheels from PyPI are built without (they need extra C libraries).
_PYPI_MISSING_HINT = ("yara-python from PyPI is built without the magic, cuckoo, dex, macho, lnk and "
                      "androguard modules; the scanner uses yara-python, so this rule cannot run here. "
                      "Drop the import, or build yara-python against a libyara with the module")

def _externals_hint(message: str) -> str:
    """For an undefined identifier: most often an external variable the policy does not declare."""
    name = undefined_identifier(message)
    return externals_hint(name) if name else ""


@functools.cache
def engine_versions() -> dict[str, str]:
    versions = {"yara-python": yara.__version__, "libyara": yara.YARA_VERSION}
    try:
        versions["yara-x"] = importlib.metadata.version("yara-x")
    except importlib.metadata.PackageNotFoundError:
        versions["yara-x"] = "unknown"
    return versions


def _rule_at(rf: RuleFile, line: int) -> str:
    for r in rf.rules:
        if r.start_line <= line <= r.end_line:
            return r.name
    return ""


def _subject(message: str) -> str:
    return re.sub(r"\bline \d+\b|\(\d+\)", "", message).strip()


def libyara_findings(rf: RuleFile, *, externals: Mapping[str, ExternalValue] | None = None) -> list[Finding]:
    """Compile errors (only the first: libyara stops there) and every warning from yara-python."""
    file = str(rf.path) if rf.path else ""
    base = rf.path.parent if rf.path else Path.cwd()

    def include(requested: str, including: str | None, namespace: str) -> str | None:
        parent = Path(including).parent if including else base
        target = (parent / requested) if not Path(requested).is_absolute() else Path(requested)
        try:
            return target.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    findings: list[Finding] = []
    try:
        rules = yara.compile(source=rf.text, externals=dict(externals or {}), include_callback=include,
                             error_on_warning=False)
    except yara.SyntaxError as exc:
        findings.append(_libyara_finding(str(exc), file, rf, "C101", "error"))
        return findings
    except yara.Error as exc:
        findings.append(Finding("C101", "error", file, 0, 0, f"yara-python: {exc}",
                                "fix the rule so libyara compiles it", subject=_subject(str(exc))))
        return findings
    for warning in getattr(rules, "warnings", []) or []:
        findings.append(_libyara_finding(str(warning), file, rf, "C102", "warning"))
    return findings


def libyara_findings_together(files: Sequence[RuleFile], *,
                              externals: Mapping[str, ExternalValue] | None = None
                              ) -> list[list[Finding]] | None:
    """``libyara_findings`` of each file, from one compile of them all; None when that compile
    fails (then only one file at a time says which errors are whose).

    Each file is its own namespace, included by number so every warning names its file.
    A compile has a fixed cost (the atom automaton, the modules) that 274 files paid 274
    times: 2.3 s of CPU alone against 0.35 s together. Files that include others are
    left to the caller (``None`` for them here is not possible: they must not be passed).
    """
    texts = {str(k): rf.text for k, rf in enumerate(files)}
    try:
        rules = yara.compile(sources={f"wb{k}": f'include "{k}"' for k in texts},
                             externals=dict(externals or {}),
                             include_callback=lambda requested, _including, _ns: texts.get(requested),
                             error_on_warning=False)
    except yara.Error:
        return None
    out: list[list[Finding]] = [[] for _ in files]
    for warning in getattr(rules, "warnings", []) or []:
        said = libyara_message(str(warning))
        if not said.file.isdigit() or int(said.file) >= len(files):
            return None
        k = int(said.file)
        rf = files[k]
        out[k].append(_libyara_finding(f"line {said.line}: {said.text}", str(rf.path) if rf.path else "",
                                       rf, "C102", "warning"))
    return out


def _libyara_finding(text: str, file: str, rf: RuleFile, check: str, severity: str) -> Finding:
    said = libyara_message(text)
    line, message = said.line, said.text
    where = said.file or file
    module = unknown_module(message)
    rule = _rule_at(rf, line) if where == file else ""
    if module and check == "C101":
        return Finding("C105", "error", where, line, 1,
                       f'module "{module}" is not available in yara-python {yara.__version__}',
                       _PYPI_MISSING_HINT, rule, subject=f"module {module}")
    hint = ("fix the rule so libyara (yara-python, the scanner's engine) compiles it" if severity == "error"
            else "libyara warns that this slows scanning or is likely a mistake")
    hint = _externals_hint(message) or hint
    return Finding(check, severity, where, line, 0, f"yara-python: {message}", hint, rule,  # type: ignore[arg-type]
                   subject=_subject(message))


def yarax_findings(rf: RuleFile, *, externals: Mapping[str, ExternalValue] | None = None) -> list[Finding]:
    """Every compile error and warning from YARA-X, with line and column."""
    path = str(rf.path) if rf.path else None
    return yarax_findings_of(rf, _yarax_compile(rf.text, path, dict(externals or {})))


YaraxRaw = tuple[list[dict], list[dict]]       # YARA-X's errors and warnings, as it gives them


def _yarax_compile(text: str, path: str | None, externals: dict[str, ExternalValue]) -> YaraxRaw:
    compiler = yara_x.Compiler()
    if path:
        compiler.add_include_dir(str(Path(path).parent))
    for name, value in externals.items():
        compiler.define_global(name, value)
    try:
        compiler.add_source(text, origin=path)
    except yara_x.CompileError:
        pass        # every error is also in compiler.errors()
    return list(compiler.errors()), list(compiler.warnings())


def yarax_compile_many(items: list[tuple[str, str | None]], externals: dict[str, ExternalValue]
                       ) -> list[YaraxRaw]:
    """YARA-X's raw findings for (text, path) items; runs in a helper process (see lint.py)."""
    return [_yarax_compile(text, path, externals) for text, path in items]


def yarax_helper_main() -> None:
    """A helper process's body (lint.py): pickled (items, externals) in, the raw findings out."""
    import pickle
    import sys

    items, externals = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(yarax_compile_many(items, externals), pickle.HIGHEST_PROTOCOL))


def yarax_findings_of(rf: RuleFile, raw: YaraxRaw) -> list[Finding]:
    file = str(rf.path) if rf.path else ""
    errors, warnings = raw
    return [_yarax_finding(item, file, rf, check, severity)
            for item, check, severity in ([(e, "C103", "error") for e in errors]
                                          + [(w, "C104", "warning") for w in warnings])]


def _yarax_finding(item: dict, file: str, rf: RuleFile, check: str, severity: str) -> Finding:
    said = yarax_message(item)
    where = said.origin if said.origin and said.origin != file else file
    line, column, title, detail = said.line, said.column, said.title, said.detail
    message = f"yara-x {said.summary}"
    hint = "; ".join(said.notes) or ("fix the rule so YARA-X compiles it: rules must stay valid for both engines"
                                     if severity == "error" else "YARA-X warns that this is slow or likely a mistake")
    hint = _externals_hint(f"{title} {detail}") or hint
    module = unknown_module(title)
    if module and severity == "error":
        return Finding("C105", "error", where, line, column,
                       f'module "{module}" is not available in YARA-X {engine_versions()["yara-x"]}',
                       "drop the import: rules must compile with both engines", _rule_at(rf, line),
                       subject=f"yara-x module {module}")
    rule = _rule_at(rf, line) if where == file else ""
    return Finding(check, severity, where, line, column, message, hint, rule,  # type: ignore[arg-type]
                   subject=f"{said.code}:{title}:{detail}")
