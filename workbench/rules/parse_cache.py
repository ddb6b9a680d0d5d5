"""Full parses of rule files kept by content: an unchanged file is unpickled, not parsed again.

``rule lint`` and ``validate`` need every file's whole parse (its text, line index and
metadata positions, which the corpus's summaries in ``corpus/ruleset.py`` leave out).
Parsing the ReversingLabs set's 274 files costs 0.65 s of CPU on a quiet machine;
unpickling them 0.13 s. A parse is kept under a digest of the file's text, its path
(findings name it), the namespace and the parser's code, so an edited file, a moved
one or a new parser always parses again. A cache that cannot be read or written is
only slower.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from workbench.durable import atomic_write
from workbench.rules.parse import RuleFile, parse_file, read_rule_text

FULL_PARSES = "rule-full-parses"      # under the workspace's state/
KEPT = 4_000                          # parses kept (a few tens of KB each); the oldest go first
_FORMAT = b"wb-full-parse-1"


def _parser_id() -> bytes:
    from workbench.rules import parse

    return hashlib.sha256(_FORMAT + Path(parse.__file__).read_bytes() + Path(__file__).read_bytes()).digest()


_PARSER_ID = _parser_id()


class ParseCache:
    """A folder of pickled :class:`RuleFile` parses by content key (None: no cache, parse)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.parsed = 0                 # files parsed by this cache (not found in it)
        self.found = 0

    def parse(self, path: Path, namespace: str | None = None, *,
              read: tuple[str, list[str]] | None = None) -> RuleFile:
        """``parse_file(path, namespace)``, from the cache when this text was parsed before.
        OSError if the file cannot be read."""
        if read is None:
            read = read_rule_text(path)
        if self.folder is None:
            self.parsed += 1
            return parse_file(path, namespace, read=read)
        text, errors = read
        key = hashlib.sha256(_PARSER_ID + pickle.dumps((str(Path(path)), namespace or "default",
                                                        errors)) + text.encode("utf-8", "surrogateescape")
                             ).hexdigest()
        target = self.folder / key
        try:
            with open(target, "rb") as fh:
                cached = pickle.load(fh)
            if isinstance(cached, RuleFile) and cached.text == text:
                self.found += 1
                return cached
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
                ValueError):
            pass
        parsed = parse_file(path, namespace, read=read)
        self.parsed += 1
        try:
            if self.parsed == 1:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._prune()
            atomic_write(target, pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL), mode=0o600, durable=False)
        except OSError:
            pass
        return parsed

    def _prune(self) -> None:
        """Past KEPT entries, the least recently written go (once per run that parses)."""
        try:
            entries = [e for e in os.scandir(self.folder) if e.is_file() and not e.name.startswith(".")]
            if len(entries) <= KEPT:
                return
            entries.sort(key=lambda e: e.stat().st_mtime_ns)
            for old in entries[:len(entries) - KEPT // 2]:
                os.unlink(old.path)
        except OSError:
            pass
