"""Lint: every check fires on the construct it names and stays quiet on the house rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.lint_rules import house_rule
from workbench.rules.lint import check_catalog, lint_paths, lint_text
from workbench.rules.policy import Policy


def ids(text: str, policy: Policy) -> list[str]:
    return [f.id for f in lint_text(text, None, policy).findings]


def test_house_rule_lints_clean(policy: Policy) -> None:
    report = lint_text(house_rule(), None, policy)
    assert report.findings == [] and report.ok and report.rules == 1
    assert {"yara-python", "yara-x"} <= set(report.engines)


@pytest.mark.parametrize("kwargs, check", [
    ({"strings": '$x1 = "ab"', "condition": "uint16(0) == 0x5A4D and $x1"}, "P401"),
    ({"strings": '$x1 = { 4D ?? 5A ?? 90 }'}, "P401"),
    ({"strings": '$x1 = "Invoice" nocase'}, "P402"),
    ({"strings": '$x1 = "Invoice7" ascii wide nocase'}, "P403"),
    ({"strings": r'$x1 = /https?:\/\/evil.*\.exe/'}, "P404"),
    ({"strings": r'$x1 = /evil.{2,}x/'}, "P404"),
    ({"strings": r'$x1 = /[a-z]{3}[0-9]+ab/'}, "P405"),
    ({"strings": r'$x1 = /(abcd|ef)gh/'}, "P405"),
    ({"condition": "uint16(0) == 0x5A4D and 2 of them"}, "P406"),
    ({"condition": "uint16(0) == 0x5A4D and 2 of ($x*)"}, "P406"),
    ({"condition": "uint16(0) == 0x5A4D and $x1 and for any i in (0..filesize) : (uint8(i) == 0x90)"},
     "P407"),
    ({"imports": 'import "math"', "condition": "math.entropy(0, filesize) > 7 and $x1"}, "P408"),
    ({"strings": "\n    ".join(f'$x{i} = "WBDEMO-{i:04d}"' for i in range(21))}, "P409"),
    ({"imports": 'import "pe"', "condition": "pe.is_dll() and $x1"}, "P410"),
    ({"strings": "$x1 = { 68 74 74 70 3A 2F 2F }"}, "P411"),
    ({"strings": "$x1 = { 68 00 74 00 74 00 70 00 3A 00 2F 00 }"}, "P411"),
    ({"name": "loader_rule"}, "N301"),
    ({"name": "SUSP_Demo_Loader_Exe"}, "N302"),
    ({"name": "MAL_Other_Loader_Exe"}, "N303"),
    ({"status": "LIVE"}, "M203"),
    ({"category": "EVIL", "name": "EVIL_Demo_Loader_Exe"}, "M203"),
    ({"extra_meta": '\n    author = "again"'}, "M204"),
    ({"imports": 'import "magic"'}, "C105"),
    ({"condition": "uint16(0) == 0x5A4D and $x1 and undefined_thing"}, "C101"),
    ({"condition": "uint16(0) == 0x5A4D and $x1 and undefined_thing"}, "C103"),
    ({"strings": r'$x1 = /WBDEMO-{LOADER/'}, "C103"),     # YARA-X rejects the unescaped brace
])
def test_each_check_fires(policy: Policy, kwargs: dict, check: str) -> None:
    assert check in ids(house_rule(**kwargs), policy)


def test_checks_stay_quiet_on_sound_constructs(policy: Policy) -> None:
    sound = house_rule(
        imports='import "pe"\nimport "math"',
        strings='$x1 = "Invoice7" nocase\n    $x2 = /https?:\\/\\/evil\\.example\\/[a-z]{1,20}\\.exe/\n'
                '    $x3 = { 4D 5A 90 00 ?? ?? [2-4] 50 45 }',
        condition="uint16(0) == 0x5A4D and filesize < 1MB and pe.is_dll() and 2 of them and "
                  "math.entropy(0, filesize) > 7")
    assert ids(sound, policy) == []
    bounded_loop = house_rule(condition="uint16(0) == 0x5A4D and filesize < 1MB and $x1 and "
                                        "for any i in (0..filesize) : (uint8(i) == 0x90)")
    assert "P407" not in ids(bounded_loop, policy)


def test_metadata_types_are_checked(policy: Policy) -> None:
    text = house_rule().replace('"0f8fad5b-d9cb-469f-a165-70867728950e"', '"not-a-uuid"') \
        .replace('date = "2026-01-02"', 'date = "02/01/2026"').replace("version = 1", 'version = "1"')
    report = lint_text(text, None, policy)
    bad = sorted(f.subject.split("=")[0] for f in report.findings if f.id == "M202")
    assert bad == ["date", "id", "version"]
    assert all(f.line > 0 and f.column > 0 for f in report.findings)


def test_missing_metadata_and_stale_fingerprint(policy: Policy) -> None:
    text = house_rule().replace('    family = "Demo"\n', "")
    assert "M201" in ids(text, policy)
    edited = house_rule().replace('"WBDEMO-LOADER-CFG"', '"WBDEMO-LOADER-CFG2"')
    assert ids(edited, policy) == ["M205"]
    later = house_rule().replace('modified = "2026-01-03"', 'modified = "2025-12-01"')
    assert ids(later, policy) == ["M206"]


def test_duplicate_names_across_files(tmp_path: Path, policy: Policy) -> None:
    (tmp_path / "a.yar").write_text(house_rule())
    (tmp_path / "b.yar").write_text(house_rule())
    report = lint_paths([tmp_path], policy)
    dups = [f for f in report.findings if f.id == "N304"]
    assert len(dups) == 1 and dups[0].file.endswith("b.yar") and "a.yar:2" in dups[0].message
    # the editor lints one buffer and passes the names other files define
    known = {"MAL_Demo_Loader_Exe": str(tmp_path / "a.yar")}
    assert "N304" in [f.id for f in lint_text(house_rule(), tmp_path / "c.yar", policy,
                                              known_rules=known).findings]


def test_compile_errors_carry_positions(policy: Policy) -> None:
    text = house_rule(condition="uint16(0) == 0x5A4D and $x1 and\n    nope")
    report = lint_text(text, Path("x.yar"), policy)
    libyara = next(f for f in report.findings if f.id == "C101")
    yarax = next(f for f in report.findings if f.id == "C103")
    assert libyara.line == yarax.line == text.splitlines().index("    nope") + 1
    assert yarax.column == 5 and libyara.rule == "MAL_Demo_Loader_Exe"
    assert not report.ok


def test_libyara_warnings_are_reported(policy: Policy) -> None:
    text = house_rule(strings=r'$x1 = /WBDEMO.*CFG/')
    messages = [f.message for f in lint_text(text, None, policy).findings if f.id == "C102"]
    assert any(".*" in m for m in messages)


def test_unavailable_module_is_said_plainly(policy: Policy) -> None:
    text = house_rule(imports='import "cuckoo"')
    found = [f for f in lint_text(text, None, policy).findings if f.id == "C105"]
    assert found and "yara-python" in found[0].message and "PyPI" in found[0].hint


def test_policy_disables_and_overrides(policy: Policy) -> None:
    text = house_rule(strings='$x1 = "Invoice" nocase')
    custom = Policy(disabled_checks=("P402",), severity_overrides={"P411": "error"})
    assert "P402" not in ids(text, custom)
    hexed = house_rule(strings="$x1 = { 68 74 74 70 3A 2F 2F }")
    assert [f.severity for f in lint_text(hexed, None, custom).findings if f.id == "P411"] == ["error"]


def test_externals_from_policy_table() -> None:
    text = house_rule(condition="uint16(0) == 0x5A4D and $x1 and wb_enabled")
    plain = Policy()
    with_ext = Policy(raw={"externals": {"wb_enabled": True}})
    assert "C101" in ids(text, plain)
    assert ids(text, with_ext) == []


def test_includes_resolve_next_to_the_file(tmp_path: Path, policy: Policy) -> None:
    (tmp_path / "common.yar").write_text(house_rule("MAL_Demo_Base_Exe"))
    main = tmp_path / "main.yar"
    main.write_text('include "common.yar"\n' + house_rule())
    report = lint_paths([main], policy)
    assert [f for f in report.findings if f.id.startswith("C")] == []


def test_catalog_lists_every_check_once() -> None:
    catalog = check_catalog()
    found = [c["id"] for c in catalog]
    assert len(found) == len(set(found))
    assert {"C101", "C103", "M201", "N304", "P401", "P411"} <= set(found)
    assert all(c["hint"] and c["severity"] in ("error", "warning", "info") for c in catalog)


def test_a_fifty_rule_file_lints_clean_twice(policy: Policy) -> None:
    # Speed is measured by bench/rules.py, not asserted here; this checks that linting the
    # same buffer again (what the editor does on every pause) gives the same clean result.
    text = "\n".join(house_rule(f"MAL_Demo_Loader{i}_Exe", strings=f'$x1 = "WBDEMO-{i:05d}"')
                     for i in range(50))
    first = lint_text(text, None, policy)
    again = lint_text(text, None, policy)
    assert first.rules == again.rules == 50
    assert first.findings == again.findings == []


# -- issue 19, defect 2: checks that were wrong on a real public ruleset ---------------------------

def test_p407_ignores_a_string_searched_in_a_range(policy: Policy) -> None:
    """``$s in (X..filesize)`` is one search of a range, not a loop over offsets."""
    ranged = house_rule(condition="uint16(0) == 0x5A4D and $x1 in (0x100..filesize)")
    assert "P407" not in ids(ranged, policy)
    counted = house_rule(condition="uint16(0) == 0x5A4D and #x1 in (0..filesize) > 2")
    assert "P407" not in ids(counted, policy)
    loop = house_rule(condition="uint16(0) == 0x5A4D and $x1 and "
                                "for any i in (0..filesize) : (uint8(i) == 0x90)")
    assert "P407" in ids(loop, policy)
    nested = house_rule(condition="uint16(0) == 0x5A4D and $x1 and "
                                  "for all i in (1..#x1) : (@x1[i] in (0..filesize))")
    assert "P407" not in ids(nested, policy)


@pytest.mark.parametrize("regex, fires", [
    (r"/\(evil[^)]{1,20}\)payload/", False),         # a ")" inside a class closes no group
    (r"/abc([^)]+)defg/", False),
    (r"/(ab[^)]c)de/", True),
    (r"/(?:payload)[0-9]+/", False),                  # the group's literal must occur
    (r"/(abcd|ef)gh/", True),
    (r"/[a-z]{3}[0-9]+ab/", True),
    (r"/(evil)?ab/", True),                           # an optional group's literal is not required
])
def test_p405_reads_regexes_with_the_prefilters_parser(policy: Policy, regex: str, fires: bool) -> None:
    text = house_rule(strings=f'$x1 = "WBDEMO-LOADER-CFG"\n    $x2 = {regex}')
    assert ("P405" in ids(text, policy)) is fires


def test_p404_is_not_confused_by_a_paren_in_a_class(policy: Policy) -> None:
    text = house_rule(strings='$x1 = "WBDEMO-LOADER-CFG"\n    $x2 = /payload([^)]{1,8})\\.exe/')
    assert "P404" not in ids(text, policy)


def test_p410_accepts_pe_is_pe_and_guards_each_or_branch(policy: Policy) -> None:
    pe = 'import "pe"'
    assert "P410" not in ids(house_rule(imports=pe, condition="pe.is_pe and pe.number_of_sections > 2 and $x1"),
                             policy)
    assert "P410" not in ids(house_rule(imports=pe, condition="$x1 and (uint16(0) == 0x5A4D and pe.is_dll())"),
                             policy)
    # a script rule: a header check at the start would stop the script branch matching
    script = house_rule(imports=pe, condition="$x1 or pe.imports(\"kernel32.dll\", \"VirtualAlloc\")")
    found = [f for f in lint_text(script, None, policy).findings if f.id == "P410"]
    assert len(found) == 1 and "branch" in found[0].hint and "start the condition" not in found[0].hint
    guarded = house_rule(imports=pe, condition="$x1 or (uint16(0) == 0x5A4D and pe.is_dll())")
    assert "P410" not in ids(guarded, policy)
    bare = house_rule(imports=pe, condition="pe.is_dll() and $x1")
    found = [f for f in lint_text(bare, None, policy).findings if f.id == "P410"]
    assert len(found) == 1 and found[0].hint.startswith("start the condition")


def test_p411_is_not_repeated_by_the_yarax_warning(policy: Policy) -> None:
    text = house_rule(strings="$x1 = { 68 74 74 70 3A 2F 2F 65 76 69 6C }")
    findings = lint_text(text, None, policy).findings
    assert [f.id for f in findings if f.line == findings[0].line] == ["P411"]
    assert not any("text_as_hex" in f.subject for f in findings)
    # with P411 disabled, YARA-X's warning is still there: the finding is reported once, not never
    quiet = Policy(disabled_checks=("P411",))
    assert any("text_as_hex" in f.subject for f in lint_text(text, None, quiet).findings)


def test_no_finding_is_reported_twice(policy: Policy) -> None:
    text = house_rule(strings="$x1 = { 68 74 74 70 3A 2F 2F 65 76 69 6C }", condition="$x1 and bogus_name")
    keys = [(f.id, f.line, f.column, f.message) for f in lint_text(text, None, policy).findings]
    assert len(keys) == len(set(keys))


def test_an_undefined_identifier_hint_names_the_externals_table(policy: Policy) -> None:
    text = house_rule(condition="uint16(0) == 0x5A4D and $x1 and filename == \"x.exe\"")
    hints = [f.hint for f in lint_text(text, None, policy).findings if f.id in ("C101", "C103")]
    assert hints and all("[externals]" in h for h in hints)


def test_yarax_findings_are_remembered_by_content_and_never_stale(tmp_path: Path, policy: Policy) -> None:
    """`rule lint` keeps YARA-X's findings per file content: a second run gives the same
    report without compiling, and an edited file (or other externals) is compiled again."""
    from workbench.document import to_data
    from workbench.rules.lint import YaraxMemo, lint_files
    from workbench.rules.parse import parse_file

    path = tmp_path / "r.yar"
    path.write_text(house_rule(strings=r'$x1 = /WBDEMO-{LOADER/'))
    memo = tmp_path / "state" / "yarax-findings"

    def lint(memo_path: Path | None, externals: dict[str, str] | None = None) -> object:
        return to_data(lint_files([parse_file(path)], policy, memo=memo_path, externals=externals))

    first = lint(memo)
    assert "C103" in {f["id"] for f in first["findings"]}           # YARA-X rejects the brace
    assert YaraxMemo(memo, {}).get(parse_file(path)) is not None
    assert lint(memo) == first == lint(None)
    path.write_text(house_rule(strings=r'$x1 = /WBDEMO-\{LOADER/'))
    assert YaraxMemo(memo, {}).get(parse_file(path)) is None         # new content: compiled again
    assert "C103" not in {f["id"] for f in lint(memo)["findings"]}
    assert YaraxMemo(memo, {"owner": "x"}).get(parse_file(path)) is None


def test_yarax_started_ahead_gives_the_same_findings(tmp_path: Path, policy: Policy) -> None:
    """YARA-X started on the texts before they are parsed (``rule lint``): the same report
    as linting the parsed files alone, and its findings are remembered."""
    from workbench.document import to_data
    from workbench.rules.lint import HELPER_MIN_FILES, YaraxAhead, lint_files
    from workbench.rules.parse import parse_file, read_rule_text

    paths = []
    for i in range(HELPER_MIN_FILES + 8):
        path = tmp_path / f"r{i:02d}.yar"
        # YARA-X warns of text written as hex, libyara of a slow string; some files do not compile
        body = "condition: $a and undefined_thing" if i % 7 == 0 else "condition: $a"
        path.write_text(f'rule R{i} {{ strings: $a = {{ 41 42 43 44 }} {body} }}\n'
                        f'rule S{i} {{ strings: $b = /a.*b/ condition: $b }}\n')
        paths.append(path)
    reads = [read_rule_text(p) for p in paths]
    memo = tmp_path / "state" / "yarax-findings"
    ahead = YaraxAhead([(text, str(p)) for p, (text, _) in zip(paths, reads, strict=True)], {}, memo)
    try:
        files = [parse_file(p, read=r) for p, r in zip(paths, reads, strict=True)]
        started = lint_files(files, policy, memo=memo, ahead=ahead)
    finally:
        ahead.close()
    alone = lint_files([parse_file(p) for p in paths], policy)
    assert to_data(started) == to_data(alone)
    assert any(f.id.startswith("C") and "undefined_thing" in f.message for f in alone.findings)
    # everything YARA-X said is remembered: a second helper has nothing to compile
    again = YaraxAhead([(text, str(p)) for p, (text, _) in zip(paths, reads, strict=True)], {}, memo)
    assert again._helper is None
