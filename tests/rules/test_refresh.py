"""refresh_metadata: an edited rule gets the fingerprint, version and modified the release policy wants."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.lint_rules import house_rule
from workbench.rules.parse import parse_text
from workbench.rules.refresh import MetadataError, refresh_metadata

RELEASED = house_rule("MAL_Demo_Loader_Exe", status="RELEASED")
EDITED = RELEASED.replace('"WBDEMO-LOADER-CFG"', '"WBDEMO-LOADER-CFG2"')
WRITTEN = dt.date(2026, 1, 3)           # the rule's modified date


def _meta(text: str, key: str) -> object:
    return parse_text(text).rules[0].meta_value(key)


def previous() -> dict:
    return {r.name: r for r in parse_text(RELEASED).rules}


def test_a_same_day_edit_bumps_version_and_keeps_modified() -> None:
    out = refresh_metadata(EDITED, today=WRITTEN, previous=previous())
    rule = parse_text(out.text).rules[0]
    assert rule.meta_value("fingerprint") == rule.fingerprint
    assert rule.meta_value("version") == 2 and rule.meta_value("modified") == "2026-01-03"
    assert {(c.key, c.old, c.new) for c in out.changes if c.key != "fingerprint"} == {("version", "1", "2")}
    assert out.summary().startswith("MAL_Demo_Loader_Exe: fingerprint ")
    assert "version 1→2" in out.summary()


def test_a_later_edit_moves_modified_to_today() -> None:
    out = refresh_metadata(EDITED, today=dt.date(2026, 2, 1), previous=previous())
    assert _meta(out.text, "modified") == "2026-02-01" and _meta(out.text, "version") == 2


def test_saving_again_does_not_bump_twice() -> None:
    once = refresh_metadata(EDITED, today=WRITTEN, previous=previous()).text
    again = once.replace('"WBDEMO-LOADER-CFG2"', '"WBDEMO-LOADER-CFG3"')
    twice = refresh_metadata(again, today=WRITTEN, previous=previous())
    assert _meta(twice.text, "version") == 2
    assert [c.key for c in twice.changes] == ["fingerprint"]
    # and nothing left to do: the same text comes back, no changes
    assert refresh_metadata(twice.text, today=WRITTEN, previous=previous()).changes == []


def test_a_future_modified_is_brought_back_to_today() -> None:
    future = EDITED.replace('modified = "2026-01-03"', 'modified = "2027-01-01"')
    out = refresh_metadata(future, today=WRITTEN, previous=previous())
    assert _meta(out.text, "modified") == "2026-01-03"


def test_an_unchanged_rule_is_left_byte_for_byte() -> None:
    assert refresh_metadata(RELEASED, today=WRITTEN, previous=previous()).text == RELEASED
    assert refresh_metadata(RELEASED, today=WRITTEN).changes == []


def test_without_a_release_a_stale_fingerprint_bumps_by_one() -> None:
    out = refresh_metadata(EDITED, today=dt.date(2026, 3, 4))
    assert _meta(out.text, "version") == 2 and _meta(out.text, "modified") == "2026-03-04"


def test_a_rule_new_since_the_release_keeps_its_version() -> None:
    out = refresh_metadata(EDITED, today=WRITTEN, previous={})
    assert _meta(out.text, "version") == 1
    assert parse_text(out.text).rules[0].meta_value("fingerprint") == parse_text(out.text).rules[0].fingerprint


def test_broken_text_is_refused() -> None:
    with pytest.raises(MetadataError):
        refresh_metadata('rule A { strings: $a = "open condition: $a }')
