"""Whole runs remembered by the rule files' stat: the same report as a cold run, never a stale one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.corpus_lab import Lab, edit_rules
from workbench.corpus.cache import CACHE_NAME, ScanCache
from workbench.corpus.rule_testing import RuleTestReport, run_rule_tests
from workbench.document import to_data


def results(report: RuleTestReport) -> object:
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
    cold = run_rule_tests(lab.workspace, [lab.rules])
    assert remembered_runs(lab) == 1
    again = run_rule_tests(lab.workspace, [lab.rules])
    assert results(again) == results(cold)
    assert again.stats.rules_reused == again.stats.rules == len(cold.rules)
    assert (again.stats.rules_compiled, again.stats.files_scanned) == (0, 0)
    reference = run_rule_tests(lab.workspace, [lab.rules], use_cache=False, use_index=False)
    assert results(again) == results(reference)


def test_an_edit_is_never_answered_from_memory(lab: Lab) -> None:
    age(lab.rules, 60)
    run_rule_tests(lab.workspace, [lab.rules])
    path = lab.rules / "main.yar"
    before = path.stat()
    # the same size, and the old mtime put back: only the ctime (and the content) differ
    edit_rules(lab, "filesize < 1MB", "filesize < 2MB")
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited = run_rule_tests(lab.workspace, [lab.rules])
    reference = run_rule_tests(lab.workspace, [lab.rules], use_cache=False, use_index=False)
    assert results(edited) == results(reference)
    assert edited.stats.rules_compiled > 0


def test_files_written_just_now_are_not_remembered(lab: Lab) -> None:
    (lab.rules / "main.yar").write_text((lab.rules / "main.yar").read_text())
    run_rule_tests(lab.workspace, [lab.rules])
    assert remembered_runs(lab) == 0            # within the racy window: a later write could hide
    age(lab.rules, 60)
    run_rule_tests(lab.workspace, [lab.rules])
    assert remembered_runs(lab) == 1


def test_a_new_rule_file_is_seen(lab: Lab) -> None:
    age(lab.rules, 60)
    first = run_rule_tests(lab.workspace, [lab.rules])
    (lab.rules / "more.yar").write_text('rule MAL_More { strings: $a = "EICAR" condition: $a }\n')
    age(lab.rules, 30)
    second = run_rule_tests(lab.workspace, [lab.rules])
    assert len(second.rules) == len(first.rules) + 1
    assert results(second) == results(run_rule_tests(lab.workspace, [lab.rules], use_cache=False,
                                                 use_index=False))


def test_another_engine_version_is_never_answered_from_memory(lab: Lab, monkeypatch) -> None:
    import yara

    age(lab.rules, 60)
    run_rule_tests(lab.workspace, [lab.rules])
    monkeypatch.setattr(yara, "YARA_VERSION", "99.0.0")
    again = run_rule_tests(lab.workspace, [lab.rules])
    assert again.stats.rules_compiled == len(again.rules)      # every rule compiled again


def _loaded_by_a_test_run(lab: Lab) -> dict[str, bool]:
    """What a fresh process has imported after ``run_rule_tests`` over the lab's rules."""
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from workbench.corpus.rule_testing import run_rule_tests
        from workbench.workspace import Workspace
        report = run_rule_tests(Workspace(Path({str(lab.workspace.home)!r})), [Path({str(lab.rules)!r})])
        print(json.dumps({{"compiled": report.stats.rules_compiled,
                          **{{m: m in sys.modules for m in {_SLOW_PATH!r}}}}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_SLOW_PATH = ("numpy", "workbench.corpus.prefilter", "workbench.rules.vendor", "workbench.quarantine.object_store")


def test_a_remembered_run_imports_no_scan_machinery(lab: Lab) -> None:
    """Nothing changed: the report is read, and the index (numpy), the vendor sources and the
    object store are not even imported (importing was most of such a run's time)."""
    age(lab.rules, 60)
    run_rule_tests(lab.workspace, [lab.rules])
    loaded = _loaded_by_a_test_run(lab)
    assert loaded.pop("compiled") == 0
    assert not any(loaded.values()), loaded


def test_a_one_rule_retest_queries_the_index_without_numpy(lab: Lab) -> None:
    """An edited rule is prefiltered by the gram index, read as Python integers: numpy is
    only for building filters, and importing it cost a re-test more than its scan."""
    age(lab.rules, 60)
    run_rule_tests(lab.workspace, [lab.rules])
    edit_rules(lab, "filesize < 1MB", "filesize < 2MB")
    age(lab.rules, 60)
    loaded = _loaded_by_a_test_run(lab)
    assert loaded["compiled"] > 0 and loaded["workbench.corpus.prefilter"]
    assert not loaded["numpy"]
