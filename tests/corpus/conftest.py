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
from workbench.corpus.registry import CorpusRegistry
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

