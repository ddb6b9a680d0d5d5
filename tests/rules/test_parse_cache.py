"""Whole parses kept by content: the same parse as a fresh one, and never a stale one."""

from __future__ import annotations

from pathlib import Path

from tests.support.lint_rules import house_rule
from workbench.rules.parse import RuleFile, parse_file
from workbench.rules.parse_cache import ParseCache

TEXTS = {
    "house.yar": house_rule(),
    "two.yar": 'import "pe"\nrule A { strings: $a = { 4D 5A ?? [2-4] 90 } condition: pe.is_pe and $a }\n'
               'private rule B { meta: hash = "ab" condition: A and filesize < 1MB }\n',
    "broken.yar": "rule Broken { condition: }\nrule After { condition: true }\n",
}


def write(folder: Path) -> list[Path]:
    paths = []
    for name, text in TEXTS.items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    (folder / "latin.yar").write_bytes(b'rule Latin { meta: author = "J\xe9r\xf4me" condition: true }\n')
    return [*paths, folder / "latin.yar"]


def same(a: RuleFile, b: RuleFile) -> bool:
    """Equal, field by field, down to each rule's text, positions and metadata entries."""
    return a == b and a.text == b.text and a.line_index == b.line_index and \
        [vars(r) for r in a.rules] == [vars(r) for r in b.rules]


def test_a_cached_parse_equals_a_fresh_parse(tmp_path: Path) -> None:
    paths = write(tmp_path)
    first = ParseCache(tmp_path / "cache")
    cold = [first.parse(p) for p in paths]
    assert (first.parsed, first.found) == (len(paths), 0)
    again = ParseCache(tmp_path / "cache")
    warm = [again.parse(p) for p in paths]
    assert (again.parsed, again.found) == (0, len(paths))
    for path, c, w in zip(paths, cold, warm, strict=True):
        fresh = parse_file(path)
        assert same(w, fresh) and same(c, fresh), path
    assert warm[3].errors                                # the Latin-1 note kept


def test_an_edited_or_moved_file_is_parsed_again(tmp_path: Path) -> None:
    paths = write(tmp_path)
    ParseCache(tmp_path / "cache").parse(paths[1])
    paths[1].write_text(TEXTS["two.yar"].replace("filesize < 1MB", "filesize < 2MB"))
    cache = ParseCache(tmp_path / "cache")
    edited = cache.parse(paths[1])
    assert cache.parsed == 1 and "2MB" in edited.rules[1].condition
    assert same(edited, parse_file(paths[1]))
    moved = tmp_path / "moved.yar"
    paths[1].rename(moved)
    cache = ParseCache(tmp_path / "cache")
    assert cache.parse(moved).path == moved and cache.parsed == 1     # findings name the path


def test_a_damaged_entry_is_parsed_again(tmp_path: Path) -> None:
    paths = write(tmp_path)
    ParseCache(tmp_path / "cache").parse(paths[0])
    for entry in (tmp_path / "cache").iterdir():
        entry.write_bytes(b"not a pickle")
    cache = ParseCache(tmp_path / "cache")
    assert same(cache.parse(paths[0]), parse_file(paths[0])) and cache.parsed == 1
