"""``workbench test`` with nothing changed prints its kept text; any change runs the command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.corpus_lab import CLEAN_README, Lab, edit_rules
from workbench.cli.replay import FOLDER
from workbench.corpus.corpus_registry import CorpusRegistry

_RUN = ("import sys; from workbench.cli import main; code = main(sys.argv[1:]); "
        "sys.stderr.write('\\nENGINE=%s\\n' % ('workbench.corpus.rule_testing' in sys.modules)); "
        "sys.exit(code)")


def age(*folders: Path, seconds: float = 60) -> None:
    """Every file and folder last written ``seconds`` ago: older than the racy window."""
    then = time.time() - seconds
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            os.utime(path, (then, then))


def workbench_test(lab: Lab, *options: str) -> tuple[str, int, bool]:
    """stdout, exit code, and whether the report's module (the engine) was imported."""
    done = subprocess.run([sys.executable, "-c", _RUN, "--home", str(lab.workspace.home), "test",
                           str(lab.rules), *options], capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    engine = re.findall(r"ENGINE=(\w+)", done.stderr)[-1] == "True"
    return done.stdout, done.returncode, engine


def timeless(text: str) -> str:
    return re.sub(r"; [0-9.]+ s\n", "; (time) s\n", text)


def settled(lab: Lab) -> None:
    age(lab.rules, lab.workspace.home)


def primed(lab: Lab) -> str:
    """Run until the text is kept: the second run, answered by the run memo (a run that
    did work keeps no text, nor one that wrote the registry: its stat is racy); the first
    run's text."""
    settled(lab)
    first, _, _ = workbench_test(lab)
    age(lab.workspace.state)             # not the rules: their ctime is in the run memo's stamp
    workbench_test(lab)
    assert (lab.workspace.state / FOLDER).is_dir()
    return first


def test_nothing_changed_prints_the_remembered_report_without_the_engine(lab: Lab) -> None:
    cold = primed(lab)
    replayed, code, engine = workbench_test(lab)
    assert not engine
    # the text a run answered from the run memo prints (the kept text forgotten)
    shutil.rmtree(lab.workspace.state / FOLDER)
    remembered, remembered_code, engine = workbench_test(lab)
    assert engine and remembered_code == code
    assert timeless(replayed) == timeless(remembered)
    assert "with 0 rules" in replayed and "with 0 rules" not in cold
    # the same rows as the cold run: only the line saying how they were obtained differs
    assert [line for line in cold.splitlines() if not line.startswith("scanned ")] == \
        [line for line in replayed.splitlines() if not line.startswith("scanned ")]


def test_a_rule_edit_runs_the_command(lab: Lab) -> None:
    primed(lab)
    assert not workbench_test(lab)[2]
    path = lab.rules / "main.yar"
    before = path.stat()
    edit_rules(lab, "filesize < 1MB", "filesize < 2MB")          # same size, old mtime put back
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    out, _, engine = workbench_test(lab)
    assert engine and "2 rules" not in out


# what a re-test after an edit does not need: the quarantine's index and query modules (the
# corpus database retries through them only when another writer holds it), the thread pool
# (and logging) that builds the gram index, traceback (for an internal error), the compiler
# message parser (for errors and warnings), numpy
NOT_FOR_A_RETEST = ("workbench.quarantine.index", "workbench.quarantine.query",
                    "concurrent.futures", "logging", "traceback",
                    "workbench.rules.compiler_messages", "numpy")


def test_a_re_test_after_an_edit_imports_only_what_it_uses(lab: Lab) -> None:
    primed(lab)
    edit_rules(lab, "filesize < 1MB", "filesize < 2MB")
    age(lab.rules)
    code = ("import json, sys; from workbench.cli import main; main(sys.argv[1:]); "
            f"sys.stderr.write(json.dumps([m for m in {NOT_FOR_A_RETEST!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, "--home", str(lab.workspace.home), "test",
                           str(lab.rules), "--corpus", "mal", "--corpus", "goodware"],
                          capture_output=True, text=True)
    assert "results from the cache" in done.stdout and " 0 results from" not in done.stdout, done.stdout
    assert done.stderr.splitlines()[-1] == "[]", done.stderr


def test_a_new_rule_file_runs_the_command(lab: Lab) -> None:
    first = primed(lab)
    assert not workbench_test(lab)[2]
    (lab.rules / "more").mkdir()
    (lab.rules / "more" / "more.yar").write_text('rule MAL_More { strings: $a = "EICAR" condition: $a }\n')
    settled(lab)
    out, _, engine = workbench_test(lab)
    assert engine and "MAL_More" in out and "MAL_More" not in first


def test_a_corpus_change_runs_the_command(lab: Lab) -> None:
    primed(lab)
    assert not workbench_test(lab)[2]
    (lab.clean / "more.txt").write_bytes(CLEAN_README + b"more")
    with CorpusRegistry(lab.workspace) as registry:
        registry.add("goodware", lab.clean, "clean")
    settled(lab)
    out, _, engine = workbench_test(lab)
    assert engine and "goodware (clean, 3)" in out


def test_json_and_unusual_command_lines_always_run(lab: Lab) -> None:
    primed(lab)
    assert workbench_test(lab, "--json")[2]
    assert workbench_test(lab, "--no-cache")[2]
    assert workbench_test(lab, "--thread=2")[2]          # an abbreviation: argparse decides
    assert not workbench_test(lab)[2]


def test_a_policy_change_runs_the_command(lab: Lab) -> None:
    primed(lab)
    assert not workbench_test(lab)[2]
    signatures = lab.workspace.signatures
    signatures.mkdir(parents=True, exist_ok=True)
    (signatures / "workbench.toml").write_text("[externals]\nfilename = \"x\"\n")
    settled(lab)
    assert workbench_test(lab)[2]
