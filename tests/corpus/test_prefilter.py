"""The prefilter in use: never a different answer than a full scan, and fewer files read."""

from __future__ import annotations

import base64
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import yara
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.support.corpus_lab import (
    CLEAN_NOISY,
    DROPPER,
    LOADER,
    Lab,
    edit_rules,
    sha256,
    write_files,
)
from workbench.corpus import prefilter
from workbench.corpus.atoms import Requirements
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.corpus.gramindex import INDEX_DIR, GramIndex
from workbench.corpus.incremental import resolve
from workbench.corpus.prefilter import index_corpora
from workbench.corpus.rule_testing import run_rule_tests
from workbench.corpus.ruleset import load_ruleset
from workbench.corpus.scanner import ScanCancelled, ScanTarget
from workbench.document import to_data

# -- the property: random corpora and random rules, prefiltered == full scan ------------

WORDS = ["evil", "EviL", "payload", "cmd.exe", "loader", "http://x", "abcd", "ABCDEF", "zq9!"]
REGEX_SHAPES = ["{w}", "{w}[0-9]+\\.{w}", "({w}|zzzz)", "{w}?x", "{w}{{1,2}}", "zzzz|{w}",
                "[a-z]{w}", "{w}.", "\\d*{w}", "{w}x?y"]


def _wide(b: bytes) -> bytes:
    return b"".join(bytes([c, 0]) for c in b)


@st.composite
def string_spec(draw: st.DrawFn) -> dict[str, object]:
    """A YARA string: its word, kind and modifiers (rendered by ``render``, planted by ``forms``)."""
    spec: dict[str, object] = {"word": draw(st.sampled_from(WORDS)),
                               "kind": draw(st.sampled_from(["text", "text", "hex", "regex"]))}
    if spec["kind"] == "text":
        family = draw(st.sampled_from(["plain", "xor", "base64"]))
        if family == "plain":
            mods = draw(st.lists(st.sampled_from(["ascii", "wide", "nocase", "fullword", "private"]),
                                 unique=True, max_size=3))
        elif family == "xor":
            mods = [draw(st.sampled_from(["xor", "xor(1-3)", "xor(2)"]))]
            mods += draw(st.lists(st.sampled_from(["ascii", "wide"]), unique=True, max_size=2))
        else:
            mods = draw(st.lists(st.sampled_from(["base64", "base64wide"]), unique=True,
                                 min_size=1, max_size=2))
        spec["mods"] = mods
    elif spec["kind"] == "hex":
        data = str(spec["word"]).encode()
        parts = [f"{b:02X}" for b in data]
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(1, len(parts) - 2))
            parts[at] = draw(st.sampled_from(["??", f"{data[at] >> 4:X}?", "[0-2]",
                                              f"~{data[at] ^ 1:02X}", f"( {data[at]:02X} | 00 )"]))
        spec["hex"] = parts
    else:
        spec["shape"] = draw(st.sampled_from(REGEX_SHAPES))
        spec["mods"] = draw(st.lists(st.sampled_from(["wide", "ascii", "nocase", "fullword"]),
                                     unique=True, max_size=2))
        spec["flags"] = draw(st.sampled_from(["", "i", "s"]))
    return spec


def render(name: str, spec: dict[str, object]) -> str:
    word = str(spec["word"])
    if spec["kind"] == "text":
        literal = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} = {literal} {' '.join(spec['mods'])}"               # type: ignore[arg-type]
    if spec["kind"] == "hex":
        return f"{name} = {{ {' '.join(spec['hex'])} }}"                    # type: ignore[arg-type]
    body = "".join("\\" + c if c in ".^$*+?()[]{}|\\/" else c for c in word)
    pattern = str(spec["shape"]).format(w=body)
    return f"{name} = /{pattern}/{spec['flags']} {' '.join(spec['mods'])}"  # type: ignore[arg-type]


@st.composite
def planted(draw: st.DrawFn, spec: dict[str, object]) -> bytes:
    """Bytes a string may match in (often does): the forms its modifiers search for, or near misses."""
    word = str(spec["word"]).encode()
    mods = set(spec.get("mods", []))                                        # type: ignore[call-overload]
    twist = draw(st.integers(0, 5))
    if twist == 0:
        word = word.swapcase()
    elif twist == 1:
        word = word[:-1] + b"#"                                             # a near miss
    if spec["kind"] == "regex":
        shape = str(spec["shape"])
        word = {"{w}[0-9]+\\.{w}": word + str(draw(st.integers(0, 99))).encode() + b"." + word,
                "{w}?x": word[:-1] + draw(st.sampled_from([word[-1:], b""])) + b"x",
                "{w}{{1,2}}": word + draw(st.sampled_from([b"", word[-1:]])),
                "{w}x?y": word + draw(st.sampled_from([b"xy", b"y", b"xxy"])),
                "\\d*{w}": b"12" + word}.get(shape, word)
    if "xor" in "".join(mods):
        key = draw(st.integers(0, 4))
        form = _wide(word) if "wide" in mods and draw(st.booleans()) else word
        return bytes(c ^ key for c in form)
    if "base64" in mods or "base64wide" in mods:
        encoded = base64.b64encode(draw(st.binary(max_size=2)) + word + draw(st.binary(max_size=2)))
        return _wide(encoded) if "base64wide" in mods and draw(st.booleans()) else encoded
    if "wide" in mods and draw(st.booleans()):
        return _wide(word)
    return word


@st.composite
def case(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """A ruleset of 1-3 rules and 2-6 files made of its strings' forms and noise."""
    rules, specs = [], []
    for r in range(draw(st.integers(1, 3))):
        names = [f"$s{i}" for i in range(draw(st.integers(1, 3)))]
        rule_specs = [draw(string_spec()) for _ in names]
        specs.extend(rule_specs)
        cond = draw(condition(names))
        if r and draw(st.integers(0, 3)) == 0:
            cond = f"(r0 {draw(st.sampled_from(['and', 'or']))} {cond})"
        # every string must be referenced; this adds nothing to what the condition requires
        cond = f"({cond}) or (any of them and false)"
        modifier = "global " if r == 0 and draw(st.integers(0, 5)) == 0 else ""
        rules.append(f"{modifier}rule r{r} {{\n strings:\n  " +
                     "\n  ".join(render(n, sp) for n, sp in zip(names, rule_specs, strict=True)) +
                     f"\n condition:\n  {cond}\n}}\n")
    chunk = st.one_of(st.sampled_from(specs).flatmap(planted), st.binary(max_size=6),
                      st.sampled_from([b" ", b"\0", b"\n"]))
    heads = st.sampled_from([b"", b"", b"MZ", b"%PDF", b"M", b"MZev"])
    files = draw(st.lists(st.tuples(heads, st.lists(chunk, max_size=8)).map(
        lambda hc: hc[0] + b"".join(hc[1])), min_size=2, max_size=6))
    return "\n".join(rules), files


@st.composite
def condition(draw: st.DrawFn, names: list[str], depth: int = 0) -> str:
    counts = ["#" + n[1:] for n in names]
    decisive = [*names, *(f"{c} > {draw(st.integers(0, 2))}" for c in counts),
                *(f"{n} at 0" for n in names), *(f"{n} in (0..64)" for n in names),
                "any of them", "all of them", "2 of them", f"{counts[0]} == 1", f"{counts[0]} >= 2"]
    other = ["none of them", "not " + names[0], "filesize < 100", "true", "false",
             "for any of them : ($ at 0)", f"{counts[0]} == 0", "uint16(0) == 0x5A4D",
             "uint32(0) == 0x46445025", "uint8(2) == 0x65", "uint16be(0) == 0x4D5A"]
    if depth >= 2 or draw(st.booleans()):
        return draw(st.sampled_from(decisive if draw(st.integers(0, 3)) else other))
    left = draw(condition(names, depth + 1))
    right = draw(condition(names, depth + 1))
    op = draw(st.sampled_from(["and", "or"]))
    return f"({left} {op} {right})" if draw(st.booleans()) else f"{left} {op} {right}"


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@pytest.mark.slow
@given(example=case())
def test_prefiltered_results_equal_a_full_scan(example: tuple[str, list[bytes]]) -> None:
    source, files = example
    try:
        compiled = yara.compile(source=source)
    except yara.Error:
        assume(False)
        return
    folder = Path(tempfile.mkdtemp(prefix="wb-prop-"))
    try:
        (folder / "rules.yar").write_text(source)
        targets = []
        for i, data in enumerate(files):
            path = folder / f"f{i}"
            path.write_bytes(data)
            targets.append(ScanTarget(f"{i:064x}", str(path), len(data)))
        index = GramIndex(folder / "gi").open()
        with index.writer() as writer:
            for t, data in zip(targets, files, strict=True):
                writer.add_bytes(t.sha256, data)
        ruleset = load_ruleset([folder / "rules.yar"])
        # 1. every file a rule matches is among its candidates
        reader = index.reader()
        requirements = Requirements(ruleset.entries)
        for t, data in zip(targets, files, strict=True):
            for match in compiled.match(data=data):
                entry = ruleset.by_name[match.rule]
                candidates = reader.candidates(requirements.of_rule(entry.index), [t.sha256])
                assert t.sha256 in candidates, (match.rule, data, source)
        # 2. end to end: the engine with the prefilter gives what it gives without
        with_index = resolve(ruleset, targets, cache=None, threads=1, index=index)
        without = resolve(ruleset, targets, cache=None, threads=1, index=None)
        event(f"matches: {'some' if without.hits else 'none'}")
        event(f"files ruled out: {'some' if with_index.files_skipped else 'none'}")
        assert with_index.hits == without.hits
        assert with_index.errors == without.errors == {}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("string", "condition", "data"), [
    ('"evil" xor(1-3)', "$a", bytes(c ^ 2 for c in b"payload evil")),
    ('"evil" xor', "$a", bytes(c ^ 0x41 for c in b"evil")),
    ('"evil" xor wide', "$a", bytes(c ^ 7 for c in b"e\0v\0i\0l\0")),
    ('"evil" wide', "$a", b"e\0v\0i\0l\0"),
    ('"evil" nocase', "$a", b"EvIL"),
    ('"This program" base64', "$a", base64.b64encode(b"xThis program")),
    ('"This program" base64', "$a", base64.b64encode(b"xyThis program")),
    ('"This program" base64wide', "$a", _wide(base64.b64encode(b"This program"))),
    ("{ 65 76 69 6C ?? 6F 6E 65 }", "$a", b"evil one"),
    ("{ 65 76 [1-3] 69 6C 6F 6E }", "$a", b"ev--ilon"),
    ("/evil?x/", "$a", b"evix"),
    ("/ev.lpart/", "$a", b"evXlpart"),
    ("/evil+ment/", "$a", b"evilllment"),
    ("/evil/ wide", "$a", b"e\0v\0i\0l\0"),
    ("/evil/i", "$a", b"EVIL"),
    ("/abcd|wxyz/", "$a", b"wxyz"),
    ('"evil"', "not $a", b"nothing here"),
    ('"evil"', "#a == 0", b"nothing here"),
    ('"evil"', "none of them", b"nothing here"),
    ('"evil"', "$a or filesize > 3", b"nothing here"),
    ('"evil"', "for any of them : (true)", b"nothing here"),
    ('"evil"', "uint16(0) == 0x5A4D and $a", b"MZ evil"),
    ('"evil"', "uint32be(0) == 0x25504446 or $a", b"%PDF"),
    ('"evil"', "uint8(1) == 0x5A and $a", b"MZevil"),
])
def test_the_index_keeps_every_file_libyara_matches(tmp_path: Path, string: str, condition: str,
                                                    data: bytes) -> None:
    """Hand-picked cases for each modifier and condition form: yara matches, so must the index."""
    source = f"rule r {{ strings: $a = {string} condition: {condition} }}"
    assert yara.compile(source=source).match(data=data), "the case itself must match"
    (tmp_path / "r.yar").write_text(source)
    ruleset = load_ruleset([tmp_path / "r.yar"])
    index = GramIndex(tmp_path / "gi").open()
    with index.writer() as writer:
        writer.add_bytes("a" * 64, data)
        writer.add_bytes("b" * 64, b"unrelated bytes only")
    found = index.reader().candidates(Requirements(ruleset.entries).of_rule(0), ["a" * 64, "b" * 64])
    assert "a" * 64 in found


# -- in run_rule_tests and retrohunt -----------------------------------------------------------


def test_a_re_test_reads_only_the_files_the_edited_rule_could_match(lab: Lab) -> None:
    first = run_rule_tests(lab.workspace, [lab.rules])
    assert first.stats.files_skipped > 0                    # a cold run of 4 rules is a small group
    edit_rules(lab, "uint32(0) == 0x46445025 and $g", "filesize > 10 and $g")
    retest = run_rule_tests(lab.workspace, [lab.rules])
    # MAL_Pdf_Gtube changed; it and MAL_Pdf_Gtube_Dropper (which names it) need the GTUBE
    # bytes or the dropper's: only the loader and the dropper are read
    assert retest.stats.files_scanned == 2 and retest.stats.files_skipped == 2
    reference = run_rule_tests(lab.workspace, [lab.rules], use_cache=False, use_index=False)
    assert to_data(retest.rules) == to_data(reference.rules)
    assert reference.stats.files_scanned == 4 and reference.stats.files_skipped == 0


def test_skipped_files_are_cached_as_no_match(lab: Lab) -> None:
    run_rule_tests(lab.workspace, [lab.rules])
    again = run_rule_tests(lab.workspace, [lab.rules], use_index=False)
    assert again.stats.files_scanned == 0 and again.stats.pairs_cached == 16


def test_files_registered_before_the_index_are_indexed_when_first_needed(lab: Lab) -> None:
    shutil.rmtree(lab.workspace.state / INDEX_DIR)
    first = run_rule_tests(lab.workspace, [lab.rules])
    assert first.stats.files_indexed == 4 and first.stats.files_skipped > 0
    edit_rules(lab, "  condition:\n    $eicar\n", "  condition:\n    $eicar and filesize > 1\n")
    second = run_rule_tests(lab.workspace, [lab.rules])
    assert second.stats.files_indexed == 0
    assert {f.sha256 for f in by_name(second)["MAL_Any_Eicar"].false_positives} == {sha256(CLEAN_NOISY)}


def by_name(report):  # type: ignore[no-untyped-def]
    return {r.rule: r for r in report.rules}


def test_an_unreadable_file_the_index_lacks_is_scanned_and_reported(lab: Lab) -> None:
    shutil.rmtree(lab.workspace.state / INDEX_DIR)
    with CorpusRegistry(lab.workspace) as reg:
        path = reg.store.path_for(sha256(LOADER))
    path.chmod(0o644)
    path.unlink()
    report = run_rule_tests(lab.workspace, [lab.rules])
    plain = run_rule_tests(lab.workspace, [lab.rules], use_cache=False, use_index=False)
    assert [p.sha256 for p in report.errors] == [p.sha256 for p in plain.errors] == [sha256(LOADER)]
    assert to_data(report.rules) == to_data(plain.rules)


def test_large_groups_are_scanned_whole(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefilter, "MAX_RULES", 2)
    report = run_rule_tests(lab.workspace, [lab.rules])
    assert report.stats.files_skipped == 0 and report.stats.files_scanned == 4


def test_a_cancel_while_indexing_stops_the_run(lab: Lab, tmp_path: Path) -> None:
    many = write_files(tmp_path / "many", {f"f{i}": bytes([i]) * 5000 for i in range(40)})
    with CorpusRegistry(lab.workspace) as reg:
        reg.add("many", many, "clean")
    shutil.rmtree(lab.workspace.state / INDEX_DIR)
    cancel = threading.Event()

    def progress(p):  # type: ignore[no-untyped-def]
        if p.phase == "indexing":
            cancel.set()

    with pytest.raises(ScanCancelled):
        run_rule_tests(lab.workspace, [lab.rules], threads=1, progress=progress, cancel=cancel)


def test_corpus_add_indexes_new_contents_once(lab: Lab, tmp_path: Path) -> None:
    with CorpusRegistry(lab.workspace) as reg:
        again = reg.add("mal", lab.malicious, "malicious")
        assert again.indexed == 0                         # nothing new
        (lab.malicious / "new.bin").write_bytes(b"fresh sample with words")
        more = reg.add("mal", lab.malicious, "malicious")
        assert more.indexed == 1
        other = write_files(tmp_path / "other", {"same.exe": DROPPER})
        assert reg.add("other", other, "malicious").indexed == 0      # stored content: indexed
    with GramIndex(lab.workspace.state / INDEX_DIR) as index:
        assert index.stats().files == 5


def test_index_corpora_builds_what_is_missing(lab: Lab) -> None:
    shutil.rmtree(lab.workspace.state / INDEX_DIR)
    report = index_corpora(lab.workspace, ["mal"])
    assert (report.files, report.build.indexed) == (2, 2)
    report = index_corpora(lab.workspace)
    assert report.build.indexed == 2 and report.stats.files == 4
    assert index_corpora(lab.workspace, rebuild=True).build.indexed == 4
