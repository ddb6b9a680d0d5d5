"""The n-gram index: filters never miss a gram, blocks grow and split safely, torn writes are survived."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from workbench.corpus import gramindex
from workbench.corpus.atoms import ANYTHING, NOTHING, HeadIs, all_of, any_of, contains
from workbench.corpus.gramindex import (
    DENSITY,
    K_MAX,
    K_MIN,
    GramIndex,
    filter_bytes,
    filter_file,
)


def corpus(seed: int, count: int, mean: int = 3000) -> dict[str, bytes]:
    """Half random bytes, half text of a small vocabulary, sizes spread over two orders."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
             for _ in range(400)]
    files = {}
    for i in range(count):
        size = max(1, int(rng.lognormvariate(0, 1.0) * mean))
        if i % 2:
            data = rng.randbytes(size)
        else:
            data = " ".join(rng.choice(vocab) for _ in range(size // 6 + 1)).encode()[:size]
        files[f"{i:064x}"] = data
    return files


def build(folder: Path, files: dict[str, bytes], batches: int = 1) -> GramIndex:
    index = GramIndex(folder).open()
    items = list(files.items())
    step = -(-len(items) // batches)
    for start in range(0, len(items), step):
        with index.writer() as writer:
            for sha, data in items[start:start + step]:
                writer.add_bytes(sha, data)
    return index


def needle_of(rng: random.Random, data: bytes) -> bytes:
    length = rng.randint(4, min(24, len(data)))
    at = rng.randrange(len(data) - length + 1)
    return data[at:at + length]


def assert_no_false_negatives(index: GramIndex, files: dict[str, bytes], seed: int = 7) -> None:
    rng = random.Random(seed)
    reader = index.reader()
    selection = reader.select(files)
    for sha, data in files.items():
        if len(data) < 4:
            continue
        for _ in range(3):
            needle = needle_of(rng, data)
            variant = needle.upper() if rng.random() < 0.3 else needle     # case folded
            assert sha in reader.candidates(contains([[variant]]), selection), (sha, needle)


def test_every_file_is_a_candidate_for_every_substring_it_holds(tmp_path: Path) -> None:
    files = corpus(1, 120)
    index = build(tmp_path / "gi", files)
    assert_no_false_negatives(index, files)
    assert index.stats().files == 120


def test_the_index_rules_out_most_files_for_a_string_they_lack(tmp_path: Path) -> None:
    files = corpus(2, 200)
    index = build(tmp_path / "gi", files)
    reader = index.reader()
    rng = random.Random(3)
    for _ in range(20):
        needle = rng.randbytes(12)
        found = reader.candidates(contains([[needle]]), files)
        assert len(found) <= 10            # a 12-byte needle: 9 grams, each a ~1/3 chance
    # and combinations behave as and/or of their parts
    a, b = next(iter(files.values()))[:8], list(files.values())[1][:8]
    fa, fb = contains([[a]]), contains([[b]])
    ra, rb = reader.candidates(fa, files), reader.candidates(fb, files)
    assert reader.candidates(all_of([fa, fb]), files) == ra & rb
    assert reader.candidates(any_of([fa, fb]), files) == ra | rb
    assert reader.candidates(ANYTHING, files) == set(files)
    assert reader.candidates(NOTHING, files) == set()


def test_filters_are_sized_to_the_file(tmp_path: Path) -> None:
    rng = random.Random(4)
    small = filter_bytes(rng.randbytes(300))
    big = filter_bytes(rng.randbytes(300_000))
    text = filter_bytes(b"the same words again " * 20_000)
    assert small.k == K_MIN and big.k > small.k
    assert text.k < big.k                        # few distinct grams: a small filter
    for f in (big, text):
        assert f.bits is not None
        density = np.unpackbits(f.bits).mean()
        assert density <= DENSITY or f.k == K_MIN
    tiny = filter_bytes(b"abc")
    assert tiny.bits is not None and not tiny.bits.any()


def test_a_file_too_varied_for_the_largest_filter_is_saturated(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(6 << 20)
    filt = filter_bytes(data)
    assert filt.bits is None and filt.k == K_MAX
    index = build(tmp_path / "gi", {"f" * 64: data, "e" * 64: b"plain text here"})
    found = index.reader().candidates(contains([[b"never in there"]]), ["f" * 64, "e" * 64])
    assert found == {"f" * 64}                   # always a candidate, never lost
    assert index.stats().saturated == 1


def test_reading_a_file_in_chunks_gives_the_same_filter(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = random.Random(6).randbytes(50_000) + b"ABCD" + b"x" * 1000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    monkeypatch.setattr(gramindex, "_CHUNK", 4099)        # grams straddle every chunk edge
    a, b = filter_file(path), filter_bytes(data)
    assert a.k == b.k and a.bits is not None and b.bits is not None
    assert np.array_equal(a.bits, b.bits)


def test_blocks_fill_grow_and_split_without_losing_bits(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gramindex, "MAX_SLOTS", 24)       # several blocks per size class
    files = corpus(8, 150, mean=1500)
    index = build(tmp_path / "gi", files, batches=7)     # each batch grows or adds blocks
    stats = index.stats()
    assert stats.files == 150 and stats.blocks > 7
    assert_no_false_negatives(index, files)
    again = build(tmp_path / "gi", files, batches=2)      # known files are not added twice
    assert again.stats().files == 150


def test_a_torn_slot_list_is_ignored_then_cut(tmp_path: Path) -> None:
    rng = random.Random(9)
    small = {f"{i:064x}": rng.randbytes(100) for i in range(30)}      # all in the smallest class
    files = dict(list(small.items())[:20])
    more = dict(list(small.items())[20:])
    index = build(tmp_path / "gi", files)
    [shas_file] = (tmp_path / "gi" / "blocks").glob("*.shas")
    listed = shas_file.read_bytes()
    with open(shas_file, "ab") as fh:
        fh.write(b"0123456789abcdef")                     # a crash in the middle of a line
    reader = index.reader()
    assert set(reader.where) == set(files)
    build(tmp_path / "gi", more)
    assert shas_file.stat().st_size % gramindex._LINE == 0
    assert shas_file.read_bytes().startswith(listed)
    assert_no_false_negatives(index, {**files, **more})


def test_bits_left_by_a_crash_in_unlisted_slots_are_cleared_when_reused(tmp_path: Path) -> None:
    first = {"a" * 64: b"alpha beta gamma delta"}
    index = build(tmp_path / "gi", first)
    bits_file = next((tmp_path / "gi" / "blocks").glob("*.bits"))
    data = bytearray(bits_file.read_bytes())
    k, width = np.frombuffer(bytes(data[8:16]), "<u4")
    rows = np.frombuffer(data, np.uint8, offset=64).reshape(1 << int(k), int(width)).copy()
    rows[:, 0] |= 0x7F                                     # slots 1..7: every gram "present"
    bits_file.write_bytes(bytes(data[:64]) + rows.tobytes())
    build(tmp_path / "gi", {"b" * 64: b"completely different words"})
    reader = index.reader()
    assert reader.candidates(contains([[b"completely"]]), ["a" * 64, "b" * 64]) == {"b" * 64}
    assert reader.candidates(contains([[b"alpha beta"]]), ["a" * 64, "b" * 64]) == {"a" * 64}


def test_an_unreadable_block_leaves_its_files_candidates(tmp_path: Path) -> None:
    files = corpus(11, 30)
    index = build(tmp_path / "gi", files)
    for bits in (tmp_path / "gi" / "blocks").glob("*.bits"):
        bits.write_bytes(b"garbage")
    assert index.reader().candidates(contains([[b"zzzzzzzzzz"]]), files) == set(files)


def test_an_index_of_other_parameters_is_emptied(tmp_path: Path) -> None:
    files = corpus(12, 10)
    build(tmp_path / "gi", files)
    (tmp_path / "gi" / "FORMAT").write_text("v0 something else\n")
    (tmp_path / "gi" / "index.sqlite").write_bytes(b"an older layout")
    index = GramIndex(tmp_path / "gi").open()
    assert index.stats().files == 0
    assert not (tmp_path / "gi" / "index.sqlite").exists()
    assert index.reader().candidates(contains([[b"anything at all"]]), files) == set(files)


def test_writers_in_parallel_add_everything_once(tmp_path: Path) -> None:
    parts = [corpus(20 + i, 25) for i in range(3)]
    shared = {f"{i:064x}"[::-1]: os.urandom(500) for i in range(10)}    # added by every writer
    errors: list[BaseException] = []

    def write(files: dict[str, bytes]) -> None:
        try:
            index = GramIndex(tmp_path / "gi").open()            # its own lock object: flock decides
            with index.writer() as writer:
                for sha, data in {**files, **shared}.items():
                    writer.add_bytes(sha, data)
        except BaseException as exc:                            # pragma: no cover - reported below
            errors.append(exc)

    renamed = [{sha.replace("0", str(i + 1), 1): data for sha, data in p.items()}
               for i, p in enumerate(parts)]
    threads = [threading.Thread(target=write, args=(p,)) for p in renamed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    index = GramIndex(tmp_path / "gi")
    everything = {k: v for p in renamed for k, v in p.items()} | shared
    listed = [sha for block in index._blocks(headers=False) for sha in block.shas]
    listed += gramindex._read_lines(tmp_path / "gi" / "saturated")[0]
    assert sorted(listed) == sorted(everything)                 # each once
    assert_no_false_negatives(index, everything)


def test_build_indexes_files_from_disk_and_reports_unreadable_ones(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"some file content")
    index = GramIndex(tmp_path / "gi").open()
    report = index.build([("a" * 64, tmp_path / "a"), ("b" * 64, tmp_path / "missing")], threads=2)
    assert report.indexed == 1 and list(report.errors) == ["b" * 64]
    assert index.reader().candidates(contains([[b"file content"]]), ["a" * 64, "b" * 64]) == \
        {"a" * 64, "b" * 64}                                    # never indexed: a candidate
    assert index.build([("a" * 64, tmp_path / "a")]).indexed == 0


def test_header_checks_are_answered_exactly_from_the_first_bytes(tmp_path: Path) -> None:
    files = {"a" * 64: b"MZ\x90\x00 a PE with words", "b" * 64: b"%PDF-1.7 a PDF with words",
             "c" * 64: b"M", "d" * 64: b"PK\x03\x04" + bytes(range(40)),
             "e" * 64: b"plain MZ text with words"}
    index = build(tmp_path / "gi", files)
    reader = index.reader()
    assert reader.candidates(HeadIs(0, b"MZ"), files) == {"a" * 64}         # "c" is too short
    assert reader.candidates(HeadIs(6, b"\x02\x03"), files) == {"d" * 64}
    assert reader.candidates(any_of([HeadIs(0, b"%PDF"), HeadIs(0, b"PK\x03\x04")]), files) == \
        {"b" * 64, "d" * 64}
    words = contains([[b"with words"]])
    assert reader.candidates(all_of([HeadIs(0, b"MZ"), words]), files) == {"a" * 64}
    assert reader.candidates(any_of([HeadIs(0, b"MZ"), words]), files) >= {"a" * 64, "b" * 64, "e" * 64}
