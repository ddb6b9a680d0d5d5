"""Loading a ruleset: which files, in which order, and keys that follow what a rule depends on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.corpus.ruleset import condition_names, load_ruleset, rule_files
from workbench.rules.parse import iter_rule_paths, parse_text


def tree(root: Path) -> Path:
    """Rule files where walking order, sorting, case, hidden names and links all matter."""
    files = ["c.yar", "a.yar", "B.YAR", "b/x.yar", "b/a/z.yara", "b-c/y.yar", "notes.txt",
             ".hidden.yar", ".git/h.yar", "d/.e/f.yar", "d/g.Yara", "e.yar.bak"]
    for i, name in enumerate(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"rule R{i} {{ condition: true }}\n")
    (root / "outside").mkdir()
    (root / "outside" / "o.yar").write_text("rule O { condition: true }\n")
    os.symlink(root / "outside", root / "linked-dir")
    os.symlink(root / "a.yar", root / "m-link.yar")
    os.symlink(root / "missing.yar", root / "n-broken.yar")
    (root / "dir.yar").mkdir()
    return root


def test_rule_files_are_the_files_iter_rule_paths_gives_in_its_order(tmp_path: Path) -> None:
    root = tree(tmp_path / "rules")
    for given in ([root], [root / "b", root], [root / "a.yar", root], [root / "b" / "x.yar"]):
        ours = list(rule_files(given))
        theirs = list(iter_rule_paths(given))
        # the same files in the same order once each is taken at its first appearance
        assert list(dict.fromkeys(p.resolve() for p in ours)) == [p.resolve() for p in theirs]
    assert (root / "linked-dir" / "o.yar") not in list(rule_files([root]))


def test_a_missing_rule_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(rule_files([tmp_path / "nope.yar"]))
    with pytest.raises(FileNotFoundError):
        load_ruleset([tmp_path / "nope"])


def test_keywords_are_not_names_but_prefixes_are() -> None:
    [rule] = parse_text('rule R { condition: any of (all*) and filesize < 10 and Other and '
                        'uint16(0) == 1 and for any i in (1..2) : (true) }').rules
    assert condition_names(rule) == (("all", True), ("Other", False), ("i", False))


def test_a_file_reached_twice_is_loaded_once(tmp_path: Path) -> None:
    root = tree(tmp_path / "rules")
    ruleset = load_ruleset([root / "a.yar", root])
    assert [e.name for e in ruleset.entries].count("R1") == 1
    assert ruleset.entries[0].name == "R1"            # where it first appeared
