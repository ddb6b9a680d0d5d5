"""The policy file: the shipped file equals the built-in defaults; bad files give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.rules.policy import Policy, PolicyError

SHIPPED = Path(__file__).resolve().parents[2] / "signatures" / "workbench.toml"


def test_shipped_policy_matches_defaults() -> None:
    shipped, default = Policy.load(SHIPPED), Policy()
    assert shipped.required_meta == default.required_meta
    assert shipped.meta_types == default.meta_types
    assert shipped.allowed_values == default.allowed_values
    assert shipped.name_pattern == default.name_pattern
    assert shipped.performance == default.performance


def test_folder_without_policy_gives_defaults(tmp_path: Path) -> None:
    assert Policy.load(tmp_path).required_meta == Policy().required_meta


def test_overrides_and_unknown_sections_are_kept(tmp_path: Path) -> None:
    (tmp_path / "workbench.toml").write_text(
        '[meta]\nrequired = ["id"]\n[meta.allowed]\nstatus = ["TESTING"]\n'
        '[performance]\nmax_strings = 5\n[lint]\ndisabled = ["P409"]\n[lint.severity]\nP401 = "error"\n'
        '[release]\nship = ["RELEASED"]\nbudget_ms = 40\n')
    p = Policy.load(tmp_path)
    assert p.required_meta == ("id",) and p.statuses == ("TESTING",)
    assert p.performance.max_strings == 5 and p.disabled_checks == ("P409",)
    assert p.severity_overrides == {"P401": "error"}
    assert p.section("release") == {"ship": ["RELEASED"], "budget_ms": 40}
    assert p.raw["release"]["budget_ms"] == 40


@pytest.mark.parametrize("text, words", [
    ("[meta\n", "not valid TOML"),
    ('[meta]\nrequired = "id"\n', "meta.required"),
    ('[meta.types]\nid = "guid"\n', "meta.types.id"),
    ('[naming]\npattern = "(["\n', "naming.pattern"),
    ('[lint.severity]\nW1 = "fatal"\n', "lint.severity.W1"),
    ('[lint]\ndisabled = ["W204"]\n', "no lint check has the id 'W204'"),
    ('[lint.severity]\nP4O1 = "error"\n', "no lint check has the id 'P4O1'"),
])
def test_bad_policy_files_say_what_is_wrong(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "workbench.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=words.replace(".", r"\.").replace("[", r"\[")):
        Policy.load(path)


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        Policy.load(tmp_path / "nope.toml")
