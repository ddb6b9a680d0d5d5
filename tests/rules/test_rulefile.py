"""Rule files: the default path, appending (refusals, hoisted imports), status, metadata, writes."""

from __future__ import annotations

import datetime as dt
import stat
import threading
from pathlib import Path

import pytest
import yara

from workbench.rules.parse import parse_text
from workbench.rules.refresh import refresh_metadata
from workbench.rules.rulefile import (
    RuleFileError,
    append_rule,
    default_rule_path,
    merge_rules,
    set_rule_status,
    write_rule_file,
)

RULE = '''import "pe"
rule MAL_Emotet_Loader {
    meta:
        category = "MAL"
        family = "Emotet"
        status = "TESTING"
    strings:
        $a = "abc"
    condition:
        $a and pe.number_of_sections > 1
}
'''


def test_path_comes_from_category_and_family_metadata(tmp_path: Path) -> None:
    assert default_rule_path(tmp_path, RULE) == tmp_path / "rules" / "mal" / "emotet.yar"


def test_path_falls_back_to_the_rule_name_then_draft(tmp_path: Path) -> None:
    text = 'rule PHISH_Docu_Sign { condition: true }'
    assert default_rule_path(tmp_path, text) == tmp_path / "rules" / "phish" / "docu.yar"
    assert default_rule_path(tmp_path, "not yara") == tmp_path / "rules" / "draft" / "draft.yar"
    hostile = 'rule x { meta: category = "../../etc" family = "a/b" condition: true }'
    path = default_rule_path(tmp_path, hostile)
    assert path.resolve().is_relative_to(tmp_path / "rules")


def test_merge_hoists_new_imports_and_keeps_both_rules() -> None:
    existing = 'import "math"\nrule MAL_Emotet_Old { condition: true }\n'
    merged = merge_rules(existing, RULE)
    assert merged.startswith('import "pe"\nimport "math"\n')
    assert merged.count('import "pe"') == 1
    assert "MAL_Emotet_Old" in merged and "MAL_Emotet_Loader" in merged
    yara.compile(source=merged)
    assert merge_rules("", RULE).count("import") == 1


def test_append_creates_then_appends_with_imports_hoisted(tmp_path: Path) -> None:
    """The CLI used to append a draft's ``import`` below the file's rules; now hoisted as the UI did."""
    path = tmp_path / "rules" / "mal" / "emotet.yar"
    first = append_rule(path, 'rule MAL_Emotet_Old { condition: true }\n')
    assert first.created and first.names == ["MAL_Emotet_Old"]
    second = append_rule(path, RULE)
    assert not second.created and second.names == ["MAL_Emotet_Loader"]
    text = path.read_text()
    assert text == second.text and text.startswith('import "pe"\n')
    yara.compile(source=text)


def test_append_refuses_a_taken_name_and_files_that_do_not_parse(tmp_path: Path) -> None:
    """The UI's copy checked neither (issue 14): both shells now refuse, leaving the file alone."""
    path = tmp_path / "emotet.yar"
    path.write_text(RULE)
    with pytest.raises(RuleFileError, match="already has a rule named MAL_Emotet_Loader") as taken:
        append_rule(path, RULE)
    assert taken.value.taken == ["MAL_Emotet_Loader"]
    assert path.read_text() == RULE

    path.write_text("rule Broken {\n")
    with pytest.raises(RuleFileError, match="does not parse") as broken:
        append_rule(path, RULE)
    assert broken.value.taken == []
    assert path.read_text() == "rule Broken {\n"

    path.write_text(RULE)
    with pytest.raises(RuleFileError, match="the rule does not parse"):
        append_rule(path, "rule Half {")
    assert path.read_text() == RULE
    assert [p.name for p in tmp_path.iterdir()] == ["emotet.yar"]       # no temp left behind


def test_set_status_changes_only_the_status_of_the_rule_under_the_line() -> None:
    text = RULE + RULE.replace("MAL_Emotet_Loader", "MAL_Emotet_Two").replace('import "pe"\n', "")
    second_line = text.index("MAL_Emotet_Two")
    line = text[:second_line].count("\n") + 2
    changed = set_rule_status(text, "RELEASED", line)
    assert changed is not None
    new, name = changed
    assert name == "MAL_Emotet_Two"
    assert new.count('status = "RELEASED"') == 1 and new.count('status = "TESTING"') == 1
    before = {r.name: r.fingerprint for r in parse_text(text).rules}
    assert {r.name: r.fingerprint for r in parse_text(new).rules} == before
    assert set_rule_status("rule A { condition: true }", "RELEASED", 1) is None


def test_update_metadata_refreshes_only_stale_rules() -> None:
    rule = RULE.replace('status = "TESTING"', 'status = "TESTING"\n        fingerprint = "00"\n'
                        '        version = 3\n        modified = "2026-01-01"')
    fresh = refresh_metadata(rule, today=dt.date(2026, 12, 7)).text
    parsed = parse_text(fresh).rules[0]
    assert parsed.meta_value("fingerprint") == parsed.fingerprint
    assert parsed.meta_value("version") == 4 and parsed.meta_value("modified") == "2026-12-07"
    assert refresh_metadata(fresh, today=dt.date(2027, 1, 1)).text == fresh


def test_write_replaces_with_ordinary_permissions_and_keeps_a_mode(tmp_path: Path) -> None:
    target = tmp_path / "rules" / "mal" / "x.yar"
    write_rule_file(target, "one")
    write_rule_file(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) & 0o044 == 0o044       # not mkstemp's 0600
    target.chmod(0o640)
    write_rule_file(target, "three")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["x.yar"]      # no temp left behind


def test_two_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    """``rule fmt`` used a fixed ``.x.yar.fmt-tmp`` and ``rule draft --out`` ``.x.yar.draft-tmp``:
    two writers at once would write into one temp file. Every writer now gets its own."""
    target = tmp_path / "x.yar"
    texts = [f"rule R{n} {{ condition: true }}\n" * 2000 for n in range(8)]
    start = threading.Barrier(len(texts))
    errors: list[BaseException] = []

    def write(text: str) -> None:
        start.wait()
        try:
            for _ in range(5):
                write_rule_file(target, text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in texts                 # one writer's whole text, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["x.yar"]
