"""The append-only journal of what only the index knows: sightings, status, tags.

One JSON object a line in ``quarantine/journal/<YYYY-MM>.jsonl``. Every line is
written with one ``write()`` on a file opened with ``O_APPEND``, so concurrent
writers never interleave, and fsynced before the index is told. ``quarantine
reindex`` rebuilds the index from the objects plus this journal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from workbench.document import to_data, utcnow


class Journal:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def append(self, events: Iterable[dict[str, Any]], *, durable: bool = True) -> int:
        lines = [json.dumps(to_data(e), ensure_ascii=False, sort_keys=True) + "\n" for e in events]
        if not lines:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{utcnow():%Y-%m}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # One write per line keeps each line whole even with other writers.
            for line in lines:
                os.write(fd, line.encode("utf-8"))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return len(lines)

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event in order of writing; a torn last line (a crash) is skipped."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.jsonl")):
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(event, dict) and "event" in event:
                        yield event
