"""fmt: canonical layout, idempotent, refuses broken input, refreshes stale fingerprints."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yara
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.lint_rules import house_rule
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


# -- issue 19, defect 3: fmt settles ------------------------------------------------------------

COMMENTED = ('rule MAL_Demo_Commented_Exe {\n  /* one\n\n     two */\n  strings:\n    $a = "abcd1"\n'
             '  condition:\n    /*\n\n    x\n    */\n    $a\n}\n/* top\n\n\nend */\n')


def test_blank_lines_in_block_comments_do_not_drift() -> None:
    once = format_text(COMMENTED)
    assert format_text(once) == once
    assert "\n\n     two */" in once          # the blank comment line stays empty


_comment_line = st.text(alphabet=" abc*/\t", max_size=8).filter(lambda s: "*/" not in s and "/*" not in s)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_comment_line, min_size=1, max_size=5), indent=st.integers(0, 6),
       where=st.sampled_from(["before", "meta", "condition", "after"]))
def test_fmt_is_idempotent_with_any_block_comment(lines: list[str], indent: int, where: str) -> None:
    comment = "/*" + "\n".join(" " * indent + line for line in lines) + "*/"
    parts = {"before": "", "meta": "", "condition": "", "after": ""}
    parts[where] = comment
    text = (f'{parts["before"]}\nrule MAL_Demo_Prop_Exe {{\n  meta:\n    {parts["meta"]}\n    author = "x"\n'
            f'  strings:\n    $a = "abcd1"\n  condition:\n    {parts["condition"]}\n    $a\n}}\n{parts["after"]}\n')
    once = format_text(text)
    assert format_text(once) == once


def _compiled(text: str) -> list[tuple[str, tuple[str, ...], list[tuple[str, object]]]]:
    rules = yara.compile(source=text)
    return sorted((r.identifier, tuple(r.tags), sorted(r.meta.items())) for r in rules)


@pytest.mark.slow
def test_fmt_settles_on_every_file_of_a_public_ruleset(public_ruleset: Path) -> None:
    """fmt(fmt(x)) == fmt(x), and the formatted rules compile to the same rules."""
    from workbench.rules.parse import iter_rule_paths

    checked = 0
    for path in iter_rule_paths([public_ruleset]):
        text = path.read_text(encoding="utf-8")
        once = format_text(text)
        assert format_text(once) == once, path
        assert [r.fingerprint for r in parse_text(once).rules] == [r.fingerprint for r in parse_text(text).rules]
        assert _compiled(once) == _compiled(text), path
        checked += 1
    assert checked > 200
