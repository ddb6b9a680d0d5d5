"""The goodware database and string suggestions."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from workbench.dissect.strings import extract_strings
from workbench.quarantine.service import Quarantine
from workbench.rules.goodware import GoodwareDB, goodware_path
from workbench.rules.suggest import rank_strings, score_text, suggest_for_artifact
from workbench.samples.threats import threat
from workbench.workspace import Workspace


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CLEAN_A = b"\x00\x01Common Library String\x00shared-helper-routine\x00only-in-a-file\x00"
CLEAN_B = b"Common Library String\x00\x02" + "shared-helper-routine".encode("utf-16le") + b"\x00\x00"


def test_counts_files_not_occurrences_and_is_idempotent(tmp_path: Path) -> None:
    with GoodwareDB(tmp_path / "gw.sqlite") as gw:
        assert gw.add_file(sha(CLEAN_A), CLEAN_A)
        assert not gw.add_file(sha(CLEAN_A), CLEAN_A + CLEAN_A)        # same sha256: no-op
        assert gw.add_files([(sha(CLEAN_B), CLEAN_B), (sha(CLEAN_B), CLEAN_B)]) == 1
        freq = gw.frequency(["Common Library String", "shared-helper-routine", "only-in-a-file", "absent"])
        assert freq == {"Common Library String": 2, "shared-helper-routine": 2, "only-in-a-file": 1,
                        "absent": 0}
        assert gw.stats().files == 2 and gw.contains(sha(CLEAN_A).upper())


def test_parallel_writers_do_not_double_count(tmp_path: Path) -> None:
    path = tmp_path / "gw.sqlite"
    files = [(f"file {i}\x00marker-string-{i % 3}".encode(), i) for i in range(30)]

    def work() -> None:
        with GoodwareDB(path) as gw:
            gw.add_files((sha(data), data) for data, _ in files)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with GoodwareDB(path, readonly=True) as gw:
        assert gw.stats().files == 30
        assert gw.frequency(["marker-string-0"])["marker-string-0"] == 10


def test_scoring_rewards_indicators_and_punishes_noise() -> None:
    url, why = score_text("http://exfil.stealer.example/upload.php", "ascii", 0)
    pdb, _ = score_text("C:\\build\\wbstealer\\Release\\wbstealer.pdb", "ascii", 0)
    runtime, runtime_why = score_text("This program cannot be run in DOS mode", "ascii", 0)
    repeat, repeat_why = score_text("AAAAAAAAAAAAAAAA", "ascii", 0)
    short, _ = score_text("abcd", "ascii", 0)
    in_goodware, gw_why = score_text("http://exfil.stealer.example/upload.php", "ascii", 5)
    assert "+5 URL" in why and pdb > short and url > runtime and url > repeat
    assert any("common runtime" in r for r in runtime_why) and any("repetitive" in r for r in repeat_why)
    assert in_goodware < url - 10 and any("goodware" in r for r in gw_why)


def test_ranking_uses_the_goodware_database(tmp_path: Path) -> None:
    data = threat("stealer").build()
    strings = extract_strings(data)
    top, seen = rank_strings(strings, None, limit=10)
    assert seen > 10 and top[0].score >= top[-1].score
    assert "http://exfil.stealer.example/upload.php" in [c.text for c in top]
    with GoodwareDB(tmp_path / "gw.sqlite") as gw:
        gw.add_file("0" * 64, b"http://exfil.stealer.example/upload.php\x00")
        ranked, _ = rank_strings(strings, gw, limit=200)
    hit = next(c for c in ranked if c.text == "http://exfil.stealer.example/upload.php")
    assert hit.goodware_count == 1 and hit.score < 0


def test_suggest_for_artifact_reads_the_store(workspace: Workspace) -> None:
    data = threat("stealer").build()
    q = Quarantine.open(workspace)
    digest = q.store.put_bytes(data).sha256
    q.close()
    report = suggest_for_artifact(workspace, digest, limit=5)
    assert report.sha256 == digest and len(report.candidates) == 5
    assert report.goodware_files == 0 and report.notes          # says there is no database yet
    assert not goodware_path(workspace).exists()               # reading never creates it
    wide = [c for c in suggest_for_artifact(workspace, digest, limit=500).candidates if c.encoding == "utf-16le"]
    assert wide                                                # version info strings are UTF-16


def test_short_strings_only_fill_in_when_long_ones_are_few() -> None:
    few = extract_strings(b"abcd\x00\x01efgh\x00\x01a-longer-string")
    assert {c.text for c in rank_strings(few, None, limit=10)[0]} == {"abcd", "efgh", "a-longer-string"}
    many = extract_strings(b"\x00".join(b"long-string-%03d" % i for i in range(20)) + b"\x00\x01abcd")
    assert "abcd" not in {c.text for c in rank_strings(many, None, limit=10)[0]}
