"""The scanning engine (boreal) finds exactly the (rule, file) matches libyara finds, on a real ruleset.

``scanner.compile_scanner`` lets boreal find which files match (docs/benchmarks.md) and
libyara report them; this runs both over a small clean set (system programs and
libraries, the Windows PE files Python packages ship) and files made to match: boreal
alone must match every (rule, file) pair libyara matches (its fast mode may match a
few more: those files are scanned again), and the checked scanner give libyara's report
to the byte. The ruleset is the shared ReversingLabs one (../shared/rulesets);
the test skips where it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import boreal
import pytest
import yara

from tests.support.rulesets import PUBLIC_RULESET
from workbench.corpus.scanner import CheckedScanner, ScanTarget, compile_scanner, scan_files
from workbench.rules.parse import parse_file

RULESET: Path | None = PUBLIC_RULESET / "yara" if (PUBLIC_RULESET / "yara").is_dir() else None
pytestmark = pytest.mark.skipif(RULESET is None, reason="the shared ReversingLabs ruleset is not here")


def clean_set(folder: Path) -> list[Path]:
    """A few system programs and libraries, and the real (benign) PE files pip and setuptools ship."""
    picked = [Path(sys.executable).resolve(), Path(shutil.which("ls") or "/bin/ls"),
              Path(yara.__file__), *Path(os.__file__).parent.glob("lib-dynload/_ssl*.so")]
    for name in ("pip/_vendor/distlib", "setuptools"):
        for base in map(Path, sys.path):
            picked.extend(sorted((base / name).glob("*.exe"))[:4])
    return [p for p in dict.fromkeys(picked) if p.is_file()]


_HEX = re.compile(r"\[(\d*)(?:-\d*)?\]|\(|\)|\||[0-9A-Fa-f?]{2}|~[0-9A-Fa-f?]{2}")


def hex_example(value: str) -> bytes:
    """Bytes a hex string matches: wildcards as 00, the shortest jumps, the first alternative."""
    out, skip, depth = bytearray(), -1, 0
    for m in _HEX.finditer(value):
        tok = m.group()
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
            if skip > depth:
                skip = -1
        elif tok == "|":
            skip = depth if skip < 0 else skip
        elif skip >= 0:
            continue
        elif tok.startswith("["):
            out += b"\x00" * int(m.group(1) or 0)
        elif tok.startswith("~"):
            out.append(0 if tok[1:].replace("?", "0").upper() != "00" else 1)
        else:
            out.append(int(tok.replace("?", "0"), 16))
    return bytes(out)


def strings_only(rule_files: list[Path]) -> tuple[str, bytes]:
    """Each rule's strings with ``any of them`` as its condition, and bytes that hold an
    example of each text and hex string: the real patterns, made to match."""
    rules, examples = [], []
    for f in rule_files:
        for rule in parse_file(f).rules:
            if not rule.strings:
                continue
            for st in rule.strings:
                if st.kind == "hex":
                    examples.append(hex_example(st.value))
                elif st.kind == "text" and "\\" not in st.value:
                    examples.append(st.value[1:-1].encode("latin-1", "replace"))
            body = "\n    ".join(f"{st.identifier} = {st.value} {' '.join(st.modifiers)}".rstrip()
                                  for st in rule.strings)
            rules.append(f"rule {rule.name}_strings {{\n  strings:\n    {body}\n"
                         f"  condition:\n    any of them\n}}\n")
    return "\n".join(rules), b"\x00".join(examples)


def planted(folder: Path, body: bytes) -> list[Path]:
    """Files holding those examples after a PE and an ELF header."""
    out = []
    for name, head in (("pe.bin", b"MZ\x90\x00" + b"\x00" * 56 + b"\x80\x00\x00\x00"),
                       ("elf.bin", b"\x7fELF\x02\x01\x01" + b"\x00" * 57)):
        path = folder / name
        path.write_bytes(head + body + b"\x00" + body[::-1])
        out.append(path)
    return out


def pairs(rules: boreal.Scanner | yara.Rules, targets: list[ScanTarget]) -> set[tuple[str, str]]:
    """(rule, file) pairs of one engine alone (boreal in its fast mode, as the scanner runs it)."""
    kw = {"fast": True} if isinstance(rules, boreal.Scanner) else {}
    return {(m.rule, t.sha256) for t in targets for m in rules.match(str(t.path), timeout=120, **kw)}


@pytest.mark.slow
def test_boreal_matches_exactly_what_libyara_matches_on_a_real_ruleset() -> None:
    assert RULESET is not None
    files = sorted(RULESET.rglob("*.yara"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "all.yar"
        # one namespace, as `workbench test` compiles them (names are unique in this set)
        imports = sorted({line for f in files for line in f.read_text().splitlines()
                          if line.startswith("import ")})
        source.write_text("\n".join(imports) + "\n" + "\n".join(
            "\n".join(line for line in f.read_text().splitlines() if not line.startswith("import "))
            for f in files))
        reference = yara.compile(filepath=str(source))
        scanner = compile_scanner(str(source), reference)
        assert isinstance(scanner, CheckedScanner), "boreal must accept the ruleset"
        variants, examples = strings_only(files)
        targets = [ScanTarget(f"{i:064x}", p, p.stat().st_size)
                   for i, p in enumerate([*clean_set(Path(tmp)), *planted(Path(tmp), examples)])]
        assert len(targets) >= 6
        ours = scan_files(scanner, targets, threads=2, timeout=120)
        theirs = scan_files(reference, targets, threads=2, timeout=120)
        assert not ours.errors and not theirs.errors and not ours.timeouts and not theirs.timeouts
        assert ours.results == theirs.results    # rules, strings, offsets, lengths, data, counts
        # every file libyara matches, boreal matches (more only costs a second scan)
        assert pairs(scanner.fast, targets) >= pairs(reference, targets)
        # the same strings, each rule's condition ``any of them``: real patterns that match
        strings = Path(tmp) / "strings.yar"
        strings.write_text(variants)
        reference = yara.compile(filepath=str(strings))
        scanner = compile_scanner(str(strings), reference)
        assert isinstance(scanner, CheckedScanner)
        ours = scan_files(scanner, targets, threads=2, timeout=120)
        theirs = scan_files(reference, targets, threads=2, timeout=120)
        # every file libyara matches, boreal matches (more only costs a second scan)
        assert pairs(scanner.fast, targets) >= pairs(reference, targets)
    assert not ours.errors and not theirs.errors and not ours.timeouts and not theirs.timeouts
    assert ours.results == theirs.results
    matched = {hit.rule for hits in theirs.results.values() for hit in hits}
    assert len(matched) > 200, "the planted examples must make many rules match"
