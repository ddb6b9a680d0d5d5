"""``workbench doctor`` as an operator runs it: components, the sandbox, the hostile probe, the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.dissect.probe import ATTEMPTS
from workbench.dissect.sandbox import bwrap_binary
from workbench.exitcodes import E_FINDINGS, E_OK


@pytest.mark.slow
@pytest.mark.skipif(bwrap_binary() is None, reason="bubblewrap is not installed (./dev installs it)")
def test_doctor_passes_with_the_sandbox_and_every_attempt_denied(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "state" / "keys"
    keys.mkdir(parents=True)
    (keys / "root.key").write_bytes(b"private\n")
    assert main(["--home", str(tmp_path), "doctor", "--json"]) == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["isolation"].startswith("sandbox")
    names = {c["name"]: c for c in doc["checks"]}
    assert {"libmagic", "libarchive", "YARA (libyara)", "YARA-X", "bubblewrap", "seccomp"} <= set(names)
    assert all(c["ok"] and (c["version"] or c["name"] == "dissect sandbox") for c in doc["checks"])
    assert [a["name"] for a in doc["probe"]["attempts"]] == list(ATTEMPTS)
    assert all(a["denied"] for a in doc["probe"]["attempts"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert [p.name for p in keys.iterdir()] == ["root.key"]


@pytest.mark.slow
def test_doctor_without_the_sandbox_shows_each_escape_and_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "doctor", "--sandbox", "off"]) == E_FINDINGS
    out = capsys.readouterr().out
    assert "dissect workers run in: limits only" in out
    assert "ESCAPED  execve a shell" in out and "ESCAPED  connect to loopback" in out
    assert "PROBLEMS" in out


def test_doctor_with_a_required_sandbox_the_machine_lacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_BWRAP", str(tmp_path / "none"))
    assert main(["--home", str(tmp_path), "doctor", "--sandbox", "require", "--json"]) == E_FINDINGS
    doc = json.loads(capsys.readouterr().out)
    assert not doc["ok"] and doc["isolation"].startswith("refused") and doc["probe"] is None
    assert {c["name"]: c["ok"] for c in doc["checks"]}["bubblewrap"] is False
