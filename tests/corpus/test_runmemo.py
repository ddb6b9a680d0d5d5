"""Whole runs remembered by the rule files' stat: the same report as a cold run, never a stale one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.support.corpus_lab import Lab, edit_rules
from workbench.corpus.cache import CACHE_NAME, ScanCache
from workbench.corpus.testing import TestReport, test_rules
from workbench.document import to_data


def results(report: TestReport) -> object:
    data = to_data(report)
    data.pop("stats")
    return data


def age(folder: Path, seconds: float) -> None:
    """Files last written ``seconds`` ago: older than the racy window, as between two commands."""
    then = time.time() - seconds
    for path in folder.rglob("*.yar"):
        os.utime(path, (then, then))


def remembered_runs(lab: Lab) -> int:
    with ScanCache(lab.workspace.state / CACHE_NAME) as cache:
        return int(cache.db.execute("SELECT COUNT(*) FROM test_runs").fetchone()[0])


def test_nothing_changed_gives_the_cold_report_from_memory(lab: Lab) -> None:
    age(lab.rules, 60)
    cold = test_rules(lab.workspace, [lab.rules])
    assert remembered_runs(lab) == 1
    again = test_rules(lab.workspace, [lab.rules])
    assert results(again) == results(cold)
    assert again.stats.rules_reused == again.stats.rules == len(cold.rules)
    assert (again.stats.rules_compiled, again.stats.files_scanned) == (0, 0)
    reference = test_rules(lab.workspace, [lab.rules], use_cache=False, use_index=False)
    assert results(again) == results(reference)


def test_an_edit_is_never_answered_from_memory(lab: Lab) -> None:
    age(lab.rules, 60)
    test_rules(lab.workspace, [lab.rules])
    path = lab.rules / "main.yar"
    before = path.stat()
    # the same size, and the old mtime put back: only the ctime (and the content) differ
    edit_rules(lab, "filesize < 1MB", "filesize < 2MB")
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited = test_rules(lab.workspace, [lab.rules])
    reference = test_rules(lab.workspace, [lab.rules], use_cache=False, use_index=False)
    assert results(edited) == results(reference)
    assert edited.stats.rules_compiled > 0


def test_files_written_just_now_are_not_remembered(lab: Lab) -> None:
    (lab.rules / "main.yar").write_text((lab.rules / "main.yar").read_text())
    test_rules(lab.workspace, [lab.rules])
    assert remembered_runs(lab) == 0            # within the racy window: a later write could hide
    age(lab.rules, 60)
    test_rules(lab.workspace, [lab.rules])
    assert remembered_runs(lab) == 1


def test_a_new_rule_file_is_seen(lab: Lab) -> None:
    age(lab.rules, 60)
    first = test_rules(lab.workspace, [lab.rules])
    (lab.rules / "more.yar").write_text('rule MAL_More { strings: $a = "EICAR" condition: $a }\n')
    age(lab.rules, 30)
    second = test_rules(lab.workspace, [lab.rules])
    assert len(second.rules) == len(first.rules) + 1
    assert results(second) == results(test_rules(lab.workspace, [lab.rules], use_cache=False,
                                                 use_index=False))


def test_another_engine_version_is_never_answered_from_memory(lab: Lab, monkeypatch) -> None:
    import yara

    age(lab.rules, 60)
    test_rules(lab.workspace, [lab.rules])
    monkeypatch.setattr(yara, "YARA_VERSION", "99.0.0")
    again = test_rules(lab.workspace, [lab.rules])
    assert again.stats.rules_compiled == len(again.rules)      # every rule compiled again
