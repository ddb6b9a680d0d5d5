"""What ``stat`` says of a file that changes when it is written: the keys remembered runs trust.

Kept apart, with nothing but ``os`` imported, for ``cli/replay.py``: a re-test with nothing
changed checks these keys before anything else of the workbench is imported.
"""

from __future__ import annotations

import os

# A file modified within this long of a run could change again within the clock's
# granularity without its stat changing (git's "racily clean" entries): not trusted.
RACY_SECONDS = 2.0


def stat_key(path: str) -> tuple[int, ...] | None:
    """(size, mtime, ctime, inode, device); None when the file is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def folders_under(path: str) -> list[str]:
    """``path`` and every folder beneath it (symlinked ones not entered): a file added to or
    removed from one changes that folder's stat."""
    if not os.path.isdir(path):
        return [path]
    return [path, *(os.path.join(d, n) for d, dirs, _ in os.walk(path) for n in dirs)]
