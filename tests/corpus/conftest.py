"""Corpus fixtures: small labelled folders and rule files written in code (EICAR/GTUBE stand in)."""

from __future__ import annotations

import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.support.corpus_lab import (
    CLEAN_NOISY,
    CLEAN_README,
    DROPPER,
    LOADER,
    FakeArtifact,
    Lab,
    rules_text,
    write_files,
)
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.samples.mail import GTUBE, Attachment, Mail
from workbench.workspace import Workspace

# Hypothesis keeps a cache under .hypothesis/ in the working folder: not in the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "workbench-hypothesis")


@pytest.fixture
def lab(tmp_path: Path, workspace: Workspace) -> Iterator[Lab]:
    malicious = write_files(tmp_path / "mal", {"dropper.exe": DROPPER, "docs/loader.pdf": LOADER,
                                               "copy/dropper-again.exe": DROPPER})
    clean = write_files(tmp_path / "clean", {"readme.txt": CLEAN_README, "av-notes.txt": CLEAN_NOISY})
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.yar").write_text(rules_text())
    with CorpusRegistry(workspace) as registry:
        registry.add("mal", malicious, "malicious")
        registry.add("goodware", clean, "clean")
    yield Lab(workspace, tmp_path, rules, malicious, clean)


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> list[FakeArtifact]:
    """Stands in for ``workbench.dissect.catalog`` (its contract: ``iter_extracted(workspace, unique=)``,
    and ``undissected(workspace)`` for a retro-hunt's ``dissect_missing``: nothing left to open)."""
    artifacts: list[FakeArtifact] = []
    module = types.ModuleType("workbench.dissect.catalog")
    module.iter_extracted = lambda workspace, unique=True: iter(list(artifacts))  # type: ignore[attr-defined]
    module.undissected = lambda workspace: []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workbench.dissect.catalog", module)
    return artifacts


HUNT_RULES = """
rule MAL_Gtube_Body { strings: $g = "GTUBE-STANDARD" condition: $g }
rule MAL_Dropper_Artifact { strings: $u = "http://evil.example/" condition: uint16(0) == 0x5A4D and $u }
"""


@pytest.fixture
def hunted(workspace: Workspace, fake_catalog: list[FakeArtifact], tmp_path: Path):
    with Quarantine.open(workspace) as q:
        spam = ingest_bytes(q, Mail("a@example.org", "b@example.org", "cheap pills",
                                    text=GTUBE.decode()).build(),
                            tower="t1", server="s1", reason="spam", source="test").messages[0]
        dropper_mail = Mail("c@example.org", "d@example.org", "your invoice", text="see attached",
                            attachments=[Attachment("invoice.exe", DROPPER)]).build()
        carrier = ingest_bytes(q, dropper_mail, tower="t2", server="s1", reason="virus",
                               source="test").messages[0]
        plain = ingest_bytes(q, Mail("e@example.org", "f@example.org", "hello", text="hi").build(),
                             tower="t1", server="s2", reason="", source="test").messages[0]
        put = q.store.put_bytes(DROPPER)
        # the dropper reached us twice: in the carrier message and in the plain one's sibling
        for msg in (carrier.sha256, plain.sha256):
            fake_catalog.append(FakeArtifact(put.sha256, "invoice.exe", "application/x-dosexec",
                                             put.size, msg, q.store.path_for(put.sha256)))
    rules = tmp_path / "hunt.yar"
    rules.write_text(HUNT_RULES)
    return workspace, rules, spam.sha256, carrier.sha256, plain.sha256
