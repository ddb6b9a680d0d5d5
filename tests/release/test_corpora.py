"""The house corpora are rebuilt byte for byte from workbench.samples."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.signatures import HOUSE
from workbench.cli import main
from workbench.exitcodes import E_FINDINGS, E_OK
from workbench.release.corpora import house_samples, write_corpora

# Built from whatever launcher the local pip ships, so they may differ on another machine.
PIP_DEPENDENT = {"clean/t64.exe", "malicious/wbloader/scan_0047.pdf.exe", "corpora.json"}


def test_rebuilding_is_deterministic(tmp_path: Path) -> None:
    first = write_corpora(tmp_path / "a")
    second = write_corpora(tmp_path / "b")
    assert first.written == second.written and first.written
    for rel in first.written:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    again = write_corpora(tmp_path / "a")
    assert again.written == [] and sorted(again.unchanged) == sorted(first.written)


def test_committed_corpora_match_the_builders() -> None:
    report = write_corpora(HOUSE / "corpora", check=True)
    assert set(report.differing) <= PIP_DEPENDENT, report.differing
    assert report.extra == []


def test_manifest_lists_every_file_with_its_hash(tmp_path: Path) -> None:
    write_corpora(tmp_path)
    listed = json.loads((tmp_path / "corpora.json").read_text())["files"]
    samples = {s.path: s for s in house_samples()}
    assert {f["path"] for f in listed} == set(samples)
    for f in listed:
        assert f["sha256"] == samples[f["path"]].sha256 and f["what"]
    assert any(p.startswith("clean/") for p in samples) and any(p.startswith("malicious/") for p in samples)


def test_cli_check_reports_drift_and_keeps_foreign_files(tmp_path: Path, capsys) -> None:
    sig = tmp_path / "signatures"
    assert main(["--signatures", str(sig), "release", "corpora"]) == E_OK
    (sig / "corpora" / "clean" / "report.js").write_text("changed\n")
    (sig / "corpora" / "clean" / "mine.txt").write_text("an analyst's own clean file\n")
    capsys.readouterr()
    assert main(["--signatures", str(sig), "release", "corpora", "--check"]) == E_FINDINGS
    out = capsys.readouterr().out
    assert "differs: clean/report.js" in out and "kept (not built here): clean/mine.txt" in out
    assert main(["--signatures", str(sig), "release", "corpora"]) == E_OK
    assert (sig / "corpora" / "clean" / "mine.txt").exists()
    assert main(["--signatures", str(sig), "release", "corpora", "--check"]) == E_OK
