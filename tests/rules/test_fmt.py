"""fmt: canonical layout, idempotent, refuses broken input, refreshes stale fingerprints."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.rules.conftest import house_rule
from workbench.rules.fmt import FormatError, format_paths, format_text, update_meta
from workbench.rules.lint import lint_text
from workbench.rules.parse import parse_text
from workbench.rules.policy import Policy

MESSY = 'rule MAL_Demo_Messy_Exe{strings:$a="abc1" wide $bb={4d 5a} condition:$a and $bb}'


def test_format_is_canonical_and_keeps_meaning() -> None:
    out = format_text(MESSY)
    assert out.splitlines()[0] == "rule MAL_Demo_Messy_Exe {"
    assert "  strings:" in out and '    $a  = "abc1" wide' in out
    assert format_text(out) == out
    assert parse_text(out).rules[0].fingerprint == parse_text(MESSY).rules[0].fingerprint


def test_broken_text_is_refused() -> None:
    with pytest.raises(FormatError, match="line 1"):
        format_text('rule A { strings: $a = "open condition: $a }')


def test_update_meta_refreshes_only_stale_rules(policy: Policy) -> None:
    fresh = house_rule("MAL_Demo_Fresh_Exe")
    stale = house_rule("MAL_Demo_Stale_Exe").replace('"WBDEMO-LOADER-CFG"', '"WBDEMO-LOADER-CFG2"')
    text = fresh + stale
    out = update_meta(text, today=dt.date(2026, 3, 4))
    assert out.startswith(fresh)                          # untouched byte for byte
    rule = parse_text(out).rules[1]
    assert rule.meta_value("fingerprint") == rule.fingerprint
    assert rule.meta_value("modified") == "2026-03-04" and rule.meta_value("version") == 2
    assert lint_text(out, None, policy).findings == []


def test_format_paths_check_writes_nothing(tmp_path: Path) -> None:
    messy = tmp_path / "messy.yar"
    messy.write_text(MESSY)
    clean = tmp_path / "clean.yar"
    clean.write_text(format_text(MESSY))
    broken = tmp_path / "broken.yar"
    broken.write_text("rule A { condition: ")
    report = format_paths([tmp_path], check=True)
    assert report.changed == [str(messy)] and list(report.errors) == [str(broken)]
    assert messy.read_text() == MESSY and broken.read_text() == "rule A { condition: "
    report = format_paths([tmp_path])
    assert messy.read_text() == format_text(MESSY)
    assert broken.read_text() == "rule A { condition: "
    assert format_paths([messy], check=True).ok
