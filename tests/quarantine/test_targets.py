"""One resolver for "an id or a file": quarantine id, then stored object, then a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.quarantine.targets import (
    FILE,
    MESSAGE,
    OBJECT,
    TargetNotFound,
    plain_file,
    resolve_target,
)
from workbench.samples.mail import Mail


def test_message_then_object_then_file(quarantine: Quarantine, tmp_path: Path) -> None:
    msg = ingest_bytes(quarantine, Mail("a@example.org", "b@example.org", "hi", text="hello").build(),
                       tower="t", server="s", reason="", source="test").messages[0].sha256
    obj = quarantine.store.put_bytes(b"an extracted artifact").sha256
    loose = tmp_path / "sample.bin"
    loose.write_bytes(b"on disk")

    for ident in (msg, msg[:10], msg.upper()[:12]):
        t = resolve_target(quarantine, ident)
        assert (t.kind, t.sha256, t.path) == (MESSAGE, msg, quarantine.store.path_for(msg))
    for ident in (obj, obj[:8]):
        t = resolve_target(quarantine, ident)
        assert (t.kind, t.sha256) == (OBJECT, obj) and t.path.read_bytes() == b"an extracted artifact"
    t = resolve_target(quarantine, str(loose), files=True)
    assert (t.kind, t.sha256, t.path) == (FILE, "", loose)
    assert plain_file(str(loose)) == loose
    assert plain_file(msg) is None                 # an id is never taken for a file first

    with pytest.raises(TargetNotFound, match="no such object"):
        resolve_target(quarantine, "f" * 64)
    with pytest.raises(TargetNotFound, match="not a sha256"):
        resolve_target(quarantine, "zzzz")
    with pytest.raises(TargetNotFound, match="not a sha256"):
        resolve_target(quarantine, str(loose))      # files only where the caller allows them
    with pytest.raises(TargetNotFound, match="not a quarantine ID, a stored sha256 or a file"):
        resolve_target(quarantine, str(tmp_path / "missing"), files=True)


def test_an_ambiguous_prefix_says_so(quarantine: Quarantine) -> None:
    seen: dict[str, str] = {}
    n = 0
    while True:                                     # two objects whose ids share 4 characters
        sha = quarantine.store.put_bytes(f"object {n}".encode(), durable=False).sha256
        n += 1
        if sha[:4] in seen:
            break
        seen[sha[:4]] = sha
    with pytest.raises(TargetNotFound, match="matches 2 stored objects"):
        resolve_target(quarantine, sha[:4])
    assert resolve_target(quarantine, sha[:12]).sha256 == sha
