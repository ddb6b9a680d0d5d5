"""The threaded scanner: progress while it runs, cancel keeps what finished, timeouts reported.

How often progress comes and how fast a cancel lands are speed claims: bench/tui.py measures them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yara

from tests.support.corpus_lab import Lab, write_files
from workbench.corpus.cache import CACHE_NAME, ScanCache
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.corpus.rule_testing import run_rule_tests
from workbench.corpus.scanner import ScanCancelled, ScanProgress, ScanTarget, scan_files

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

# About 0.3 s per 200 KB file: a loop libyara cannot shortcut.
SLOW_RULE = ("rule SLOW_Loop { condition: for all i in (0..filesize-1) : "
             "(for all j in (0..50) : (uint8(i) != j + 300)) }\n")


@pytest.fixture(scope="module")
def slow_rules() -> yara.Rules:
    return yara.compile(source=SLOW_RULE)


def _targets(folder: Path, count: int, size: int) -> list[ScanTarget]:
    write_files(folder, {f"f{i:02d}": bytes([i]) * size for i in range(count)})
    return [ScanTarget(f"{i:064x}", folder / f"f{i:02d}", size) for i in range(count)]


def test_progress_comes_while_the_scan_runs(tmp_path: Path, slow_rules: yara.Rules) -> None:
    # The scanner reports every 100 ms (the TUI promises an update at least every 200 ms);
    # the cadence is a speed claim, measured by bench/tui.py. This checks the behaviour:
    # progress arrives while files are still being scanned, in order, up to the last file.
    targets = _targets(tmp_path, 6, 200_000)
    stamps: list[ScanProgress] = []
    outcome = scan_files(slow_rules, targets, threads=2, progress=stamps.append)
    assert len(outcome.results) == 6 and all(h[0].rule == "SLOW_Loop" for h in outcome.results.values())
    done = [p.files_done for p in stamps]
    assert any(d < 6 for d in done), "no progress before the scan ended"
    assert done == sorted(done) and done[-1] == 6


def test_cancel_stops_a_long_scan(tmp_path: Path, slow_rules: yara.Rules) -> None:
    """Cancelled at the first progress report, the scan stops with the files it finished.

    How fast it stops (promised within 1 s) is measured by bench/tui.py, not asserted here."""
    targets = _targets(tmp_path, 20, 200_000)                 # several seconds of work
    cancel = threading.Event()
    with pytest.raises(ScanCancelled) as stopped:
        scan_files(slow_rules, targets, threads=2, progress=lambda p: cancel.set(), cancel=cancel)
    partial = stopped.value.outcome
    assert partial is not None and len(partial.results) < len(targets)


def test_timeouts_are_reported_not_fatal(tmp_path: Path, slow_rules: yara.Rules) -> None:
    targets = [*_targets(tmp_path, 1, 2000000), ScanTarget("f" * 64, tmp_path / "missing", 0)]
    outcome = scan_files(slow_rules, targets, threads=2, timeout=1)
    assert outcome.timeouts == [targets[0].sha256]
    assert "could not open" in outcome.errors["f" * 64]
    assert outcome.results == {}


def test_test_rules_reports_progress_and_cancels(lab: Lab, tmp_path: Path) -> None:
    # 8 KB: about 0.04 s a file for libyara, 0.1 s for boreal (slower on loops like this one)
    slow = write_files(tmp_path / "slow", {f"s{i}": bytes([i]) * 8_000 for i in range(12)})
    with CorpusRegistry(lab.workspace) as reg:
        reg.add("slow", slow, "clean")
    rule = tmp_path / "slow.yar"
    rule.write_text(SLOW_RULE)
    seen: list[ScanProgress] = []
    cancel = threading.Event()

    def progress(p: ScanProgress) -> None:
        seen.append(p)
        if p.files_done >= 2:
            cancel.set()

    with pytest.raises(ScanCancelled):
        run_rule_tests(lab.workspace, [rule], ["slow"], threads=2, progress=progress, cancel=cancel)
    assert seen[0].phase == "compiling" and seen[-1].phase == "scanning"
    assert seen[-1].files_total == 12
    # what finished before the cancel is cached: the next run scans only the rest
    with ScanCache(lab.workspace.state / CACHE_NAME) as cache:
        assert cache.stats()["batch_files"] >= 2


def test_timed_out_samples_are_false_negatives_and_not_cached(lab: Lab, tmp_path: Path) -> None:
    big = write_files(tmp_path / "big", {"big.bin": b"\x01" * 2_000_000})
    with CorpusRegistry(lab.workspace) as reg:
        reg.add("big", big, "malicious")
        [target] = reg.files("big")
    rule = tmp_path / "slow.yar"
    rule.write_text(SLOW_RULE.replace("rule SLOW_Loop {",
                                      f'rule SLOW_Loop {{ meta: hash = "{target.sha256}" '))
    for _ in range(2):
        report = run_rule_tests(lab.workspace, [rule], ["big"], timeout=1)
        assert [t.sha256 for t in report.timeouts] == [target.sha256]
        assert report.timeouts[0].rules == ["SLOW_Loop"]
        [fn] = report.rules[0].false_negatives
        assert fn.reason == "timeout"
        assert report.stats.files_scanned == 1          # scanned again: a timeout is no answer
