"""Hostile input: every limit holds, and every hit is visible on the node that hit it."""

from __future__ import annotations

import resource

import pytest

from workbench.dissect.model import LIMIT_HIT, OK, PARSER_ERROR, PARTIAL, Limits
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples import hostile
from workbench.samples.mail import EICAR

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


def test_zip_bomb_rejected_fast_without_expanding(pool: WorkerPool, zip_bomb_100mib: bytes) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = dissect_bytes(zip_bomb_100mib, "bomb.zip", pool=pool)
    root = result.root
    assert root.status == LIMIT_HIT and "over the child limit" in root.reason
    assert root.children == [] and result.expanded_bytes == 0
    assert root.report.members[0].ratio > 100 and root.report.high_ratio
    # the parent never held the expanded bytes (ru_maxrss is in KiB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200 * 1024


def test_zip_bomb_that_lies_about_its_size_stops_at_the_cap(pool: WorkerPool) -> None:
    limits = Limits(max_child=2 << 20)
    bomb = hostile.zip_bomb(50 << 20, lie=True)
    result = dissect_bytes(bomb, "liar.zip", pool=pool, limits=limits)
    assert result.root.status != OK
    assert result.expanded_bytes <= limits.max_child


def test_zip_in_zip_twenty_levels_stops_at_depth_limit(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.zip_in_zip(20), "nest.zip", pool=pool)
    deepest = max(result.root.walk(), key=lambda n: n.depth)
    assert deepest.depth == 6
    assert deepest.status == LIMIT_HIT and "depth limit 6" in deepest.reason
    assert "nest.zip/layer2.zip/layer3.zip" in deepest.path
    shallow = dissect_bytes(hostile.zip_in_zip(20), "nest.zip", pool=pool, limits=Limits(max_depth=2))
    assert max(n.depth for n in shallow.root.walk()) == 2


def test_overlapping_entries_are_flagged_not_extracted(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.overlapping_zip(), "overlap.zip", pool=pool)
    assert result.root.status == PARTIAL and "overlapping" in result.root.reason
    assert len(result.root.report.overlapping) == 10
    assert result.root.children == []


def test_member_names_never_become_paths(pool: WorkerPool, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    result = dissect_bytes(hostile.traversal_zip(), "names.zip", pool=pool)
    children = result.root.children
    assert [c.safe_name for c in children] == ["evil", "win.ini", "absolute.txt", "invoicefdp.exe"]
    assert "path-traversal" in children[0].flags and "rtlo" in children[3].flags
    assert all("/" not in c.path[len("names.zip/"):] for c in children)
    assert list(tmp_path.iterdir()) == []        # nothing written anywhere


def test_archive_entry_limit(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.many_entries_zip(1500), "many.zip", pool=pool)
    assert result.root.status == LIMIT_HIT and "1500 entries" in result.root.reason
    assert len(result.root.report.members) == 1000


def test_children_and_total_limits(pool: WorkerPool) -> None:
    from workbench.samples.archives import build_zip

    data = build_zip([(f"f{i}.txt", b"y" * 1000) for i in range(30)])
    few = dissect_bytes(data, "f.zip", pool=pool, limits=Limits(max_children=5))
    assert len(few.root.children) == 5 and few.root.status == LIMIT_HIT
    small = dissect_bytes(data, "f.zip", pool=pool, limits=Limits(max_total=4500))
    assert small.expanded_bytes <= 4500 and small.root.status == LIMIT_HIT


def test_truncated_pe_is_a_parser_error(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.truncated_pe(), "cut.exe", pool=pool)
    assert result.root.dissector == "pe"
    assert result.root.status in (PARSER_ERROR, PARTIAL)
    assert result.root.reason


def test_pe_with_5000_sections(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.many_sections_pe(5000), "many.exe", pool=pool)
    root = result.root
    assert root.status == PARTIAL and "5000 sections" in root.reason
    assert root.report.section_count == 5000 and len(root.report.sections) == 200
    assert any("Too many sections" in w for w in root.report.warnings)


def test_mime_nested_1000_levels(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.nested_mime(1000), as_message=True, pool=pool)
    assert result.root.status == LIMIT_HIT
    assert result.root.report.from_addr == "deep@evil.example"
    moderate = dissect_bytes(hostile.nested_mime(150), as_message=True, pool=pool)
    assert moderate.root.status == LIMIT_HIT and "MIME nesting limit 100" in moderate.root.reason


def test_ten_megabyte_header_line(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.long_header(), as_message=True, pool=pool)
    report = result.root.report
    padding = next(h for h in report.headers if h.name == "X-Padding")
    assert padding.length == 10 << 20 and len(padding.value) == 8192
    assert result.root.status == PARTIAL and "X-Padding" in result.root.reason
    assert report.subject == "long header"


def test_invalid_base64_is_a_defect_not_a_crash(pool: WorkerPool) -> None:
    result = dissect_bytes(hostile.invalid_base64_message(), as_message=True, pool=pool)
    assert any("Base64" in d for d in result.root.report.defects)
    assert [c.filename for c in result.root.children][-1] == "x.bin"


def test_input_over_the_limit_is_hashed_only(pool: WorkerPool) -> None:
    result = dissect_bytes(EICAR * 100, "big.bin", pool=pool, limits=Limits(max_input=1000))
    assert result.root.status == LIMIT_HIT and result.root.sha256 and result.root.dissector == ""


def test_timeout_is_visible(pool: WorkerPool) -> None:
    # 1000-level MIME takes the parser well over 10 ms: a tiny timeout must show as timed-out.
    result = dissect_bytes(hostile.nested_mime(1000), as_message=True, pool=pool,
                           limits=Limits(timeout=0.01))
    assert "timed-out" in {n.status for n in result.root.walk()} or result.root.status == PARSER_ERROR
