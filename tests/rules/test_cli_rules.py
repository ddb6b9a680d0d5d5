"""`workbench rule draft|lint|fmt|checks|goodware`: output formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.lint_rules import house_rule
from workbench.cli import main
from workbench.exitcodes import E_FINDINGS, E_INPUT, E_NOT_FOUND, E_OK
from workbench.quarantine.service import Quarantine
from workbench.rules.fmt import format_text
from workbench.rules.lint import lint_text
from workbench.rules.parse import parse_file
from workbench.rules.policy import Policy
from workbench.samples.pe import build_pe
from workbench.workspace import Workspace


def run(workspace: Workspace, *args: str) -> int:
    return main(["--home", str(workspace.home), *args])


@pytest.fixture
def rules_dir(workspace: Workspace) -> Path:
    folder = workspace.signatures / "rules"
    folder.mkdir(parents=True)
    (folder / "good.yar").write_text(house_rule())
    return folder


def test_lint_clean_repository_exits_zero(workspace: Workspace, rules_dir: Path, capsys) -> None:
    assert run(workspace, "rule", "lint") == E_OK
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_lint_errors_exit_one_with_positions(workspace: Workspace, rules_dir: Path, capsys) -> None:
    bad = rules_dir / "bad.yar"
    bad.write_text(house_rule("MAL_Demo_Bad_Exe", condition="uint16(0) == 0x5A4D and $x1 and nope"))
    assert run(workspace, "rule", "lint", str(bad)) == E_FINDINGS
    out = capsys.readouterr().out
    assert "bad.yar:19: error C101" in out and "bad.yar:19:37: error C103" in out and "hint:" in out
    assert run(workspace, "rule", "lint", str(bad), "--json") == E_FINDINGS
    doc = json.loads(capsys.readouterr().out)
    assert doc["rules"] == 1 and {f["id"] for f in doc["findings"]} >= {"C101", "C103"}
    assert run(workspace, "rule", "lint", str(bad), "--format", "sarif") == E_FINDINGS
    assert json.loads(capsys.readouterr().out)["version"] == "2.1.0"


def test_strict_and_baseline(workspace: Workspace, rules_dir: Path, capsys) -> None:
    (rules_dir / "noisy.yar").write_text(house_rule("MAL_Demo_Noisy_Exe", strings='$x1 = "Invoice" nocase'))
    assert run(workspace, "rule", "lint") == E_OK
    assert run(workspace, "rule", "lint", "--strict") == E_FINDINGS
    baseline = workspace.signatures / "lint-baseline.json"
    assert run(workspace, "rule", "lint", "--update-baseline", str(baseline)) == E_OK   # alias
    assert run(workspace, "rule", "lint", "--write-baseline", str(baseline)) == E_OK
    capsys.readouterr()
    assert run(workspace, "rule", "lint", "--strict") == E_OK          # picked up by default
    assert "1 accepted by the baseline" in capsys.readouterr().out
    assert run(workspace, "rule", "lint", "--strict", "--no-baseline") == E_FINDINGS
    baseline.write_text("not json")
    assert run(workspace, "rule", "lint") == E_INPUT


def test_lint_bad_inputs(workspace: Workspace, rules_dir: Path, tmp_path: Path) -> None:
    assert run(workspace, "rule", "lint", str(tmp_path / "missing.yar")) == E_NOT_FOUND
    (tmp_path / "empty").mkdir()
    assert run(workspace, "rule", "lint", str(tmp_path / "empty")) == E_NOT_FOUND
    (workspace.signatures / "workbench.toml").write_text("[meta\n")
    assert run(workspace, "rule", "lint") == E_INPUT


def test_fmt_check_lists_files_and_writes_nothing(workspace: Workspace, rules_dir: Path, capsys) -> None:
    messy = rules_dir / "messy.yar"
    messy.write_text('rule MAL_Demo_Messy_Exe{strings:$a="abcd" condition:$a}')
    (rules_dir / "good.yar").write_text(format_text(house_rule()))
    before = messy.read_text()
    assert run(workspace, "rule", "fmt", "--check") == E_FINDINGS
    out = capsys.readouterr().out
    assert "would reformat" in out and "messy.yar" in out and "good.yar" not in out
    assert messy.read_text() == before
    assert run(workspace, "rule", "fmt") == E_OK
    assert run(workspace, "rule", "fmt", "--check") == E_OK
    (rules_dir / "broken.yar").write_text("rule A {")
    assert run(workspace, "rule", "fmt") == E_INPUT
    assert (rules_dir / "broken.yar").read_text() == "rule A {"


def test_draft_from_the_store_to_a_file(workspace: Workspace, capsys) -> None:
    data = build_pe(data=b"WBDEMO-CLI-MARKER-0001\x00")
    q = Quarantine.open(workspace)
    digest = q.store.put_bytes(data).sha256
    q.close()
    out_file = workspace.signatures / "rules" / "demo.yar"
    assert run(workspace, "rule", "draft", "--from", digest, "--strong", "WBDEMO-CLI-MARKER-0001",
               "--family", "CliDemo", "--out", str(out_file)) == E_OK
    rules = parse_file(out_file).rules
    assert [r.name for r in rules] == ["MAL_CliDemo_Exe"]
    assert lint_text(out_file.read_text(), out_file, Policy()).findings == []
    # a second draft appends; the same name again is refused
    assert run(workspace, "rule", "draft", "--from", digest, "--strong", "WBDEMO-CLI-MARKER-0001",
               "--family", "CliDemo", "--detail", "Second", "--out", str(out_file)) == E_OK
    assert [r.name for r in parse_file(out_file).rules] == ["MAL_CliDemo_Exe", "MAL_CliDemo_Second"]
    assert run(workspace, "rule", "draft", "--from", digest, "--strong", "WBDEMO-CLI-MARKER-0001",
               "--family", "CliDemo", "--out", str(out_file)) == E_INPUT
    capsys.readouterr()
    assert run(workspace, "rule", "draft", "--from", digest, "--strong", "WBDEMO-CLI-MARKER-0001",
               "--json") == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["matched"] == [digest] and doc["text"].startswith("rule MAL_Unknown_Exe {")
    assert run(workspace, "rule", "draft", "--from", "f" * 64) == E_NOT_FOUND
    assert run(workspace, "rule", "draft", "--from", digest, "--string", "absent text") == E_INPUT


def test_checks_and_goodware(workspace: Workspace, tmp_path: Path, capsys) -> None:
    assert run(workspace, "rule", "checks", "--json") == E_OK
    assert "P401" in {c["id"] for c in json.loads(capsys.readouterr().out)}
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.bin").write_bytes(b"clean-string-one\x00")
    (clean / "b.bin").write_bytes(b"clean-string-one\x00clean-string-two")
    assert run(workspace, "rule", "goodware", str(clean), "--json") == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["added"] == 2 and doc["files"] == 2 and doc["strings"] == 2
    assert run(workspace, "rule", "goodware", str(clean), "--json") == E_OK
    assert json.loads(capsys.readouterr().out)["added"] == 0
