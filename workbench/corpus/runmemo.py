"""Whole test runs remembered by the rule files' stat: a re-test with nothing changed reads one row.

A run's report depends on the rule files' contents, the corpora and their states, and
the code (``CorpusFiles.state`` covers the last two). Reading and hashing every rule
file to learn that nothing changed costs a real ruleset more than the rest of the
run, so a finished report is kept under a *stamp* of the files' paths and ``stat``
(size, mtime, ctime, inode), as git's index does: a file written in place changes
its mtime and ctime. A file modified within ``RACY_SECONDS`` of the run could change
again within the clock's granularity without its stat changing, so such runs are not
remembered (git's "racily clean" entries).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import pickle
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from workbench.corpus.stamps import RACY_SECONDS, stat_key

RUNS_KEPT = 8
_FORMAT = "wb-run-1"
_EXTRA = "\0extra"                        # between the listed files and the included others

SCHEMA = """
CREATE TABLE IF NOT EXISTS test_runs (          -- whole reports of finished runs (runmemo.py)
    corpora TEXT NOT NULL,                         -- CorpusFiles.state() of the run
    stamp TEXT NOT NULL,                           -- digest of the rule files' paths and stat
    extra BLOB NOT NULL,                           -- included files outside those paths: marshal
    report BLOB NOT NULL,                          -- the RuleTestReport, pickled
    used INTEGER NOT NULL,
    PRIMARY KEY (corpora, stamp)
) WITHOUT ROWID;
"""


def stamp(files: Sequence[str], extra: Iterable[str] = (), *, started: float | None = None
          ) -> str | None:
    """A digest of the files' paths and stat keys, in order; None when one is missing or
    was changed within RACY_SECONDS of ``started`` (default: now)."""
    digest = _stamped(files, started)
    return None if digest is None else _extended(digest, extra, started)


def _stamped(files: Sequence[str], started: float | None) -> Any | None:
    """The digest of ``files`` and the extra marker (what :func:`stamp` starts with)."""
    now = time.time() if started is None else started
    digest = hashlib.sha256(_FORMAT.encode())
    for path in files:
        key = stat_key(path)
        if key is None or key[1] / 1e9 > now - RACY_SECONDS:
            return None
        digest.update(marshal.dumps((path, key)))
    digest.update(marshal.dumps((_EXTRA, ())))      # a tuple made here, as the file's are: marshal
    # marks a shared object (a constant) differently, and the stamps must not change
    return digest


def _extended(digest: Any, extra: Iterable[str], started: float | None) -> str | None:
    now = time.time() if started is None else started
    for path in extra:
        key = stat_key(path)
        if key is None or key[1] / 1e9 > now - RACY_SECONDS:
            return None
        digest.update(marshal.dumps((path, key)))
    return str(digest.hexdigest())


def lookup(db: Any, corpora: str, files: Sequence[str], inputs: list[str] | None = None
           ) -> Any | None:
    """The report a run with these rule files (unchanged since) saved over ``corpora``;
    ``inputs`` gets the files it was stamped with (the listed and the included ones)."""
    digest = _stamped(files, None)
    if digest is None:
        return None
    quick = digest.hexdigest()
    row = db.execute("SELECT extra, report FROM test_runs WHERE corpora=? AND stamp=?",
                     (corpora, quick)).fetchone()
    if row is None:
        return None
    try:
        extra, expected = marshal.loads(row[0])
        # the files' part is stamped once: an included file outside the paths may have changed
        if _extended(digest, extra, None) != expected:
            return None
        report = pickle.loads(row[1])
        if inputs is not None:
            inputs.extend(files)
            inputs.extend(extra)
        return report
    except (ValueError, EOFError, TypeError, pickle.UnpicklingError, AttributeError, ImportError):
        return None


def save(db: Any, corpora: str, files: Sequence[str], loaded: Sequence[Path], report: Any, *,
         started: float) -> None:
    """Remember ``report`` for these rule files as they were when the run ``started``."""
    digest = _stamped(files, started)       # the files' part once: both stamps start with it
    if digest is None:
        return
    quick = str(digest.hexdigest())
    listed = set(files)
    # the loader gives resolved paths: absolute ones are these files (a symlinked one is
    # stamped twice, which costs a stat, not a wrong answer)
    listed.update(os.path.abspath(f) for f in files)
    extra = [str(p) for p in loaded if str(p) not in listed]
    full = _extended(digest.copy(), extra, started)
    if full is None:
        return
    blob = pickle.dumps(report, pickle.HIGHEST_PROTOCOL)
    db.execute("BEGIN IMMEDIATE")
    try:
        used = db.execute("SELECT COALESCE(MAX(used), 0) + 1 FROM test_runs").fetchone()[0]
        db.execute("INSERT OR REPLACE INTO test_runs(corpora, stamp, extra, report, used) "
                   "VALUES (?,?,?,?,?)", (corpora, quick, marshal.dumps((extra, full)), blob, used))
        db.execute("DELETE FROM test_runs WHERE used <= ?", (used - RUNS_KEPT,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
