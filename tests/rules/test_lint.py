"""Lint: every check fires on the construct it names and stays quiet on the house rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rules.conftest import house_rule
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
