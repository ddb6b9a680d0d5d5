"""Every file the workbench keeps is written through ``durable`` (issue 14): no fixed temp names.

The old writers used fixed names beside the target (``.x.yar.fmt-tmp``, ``baseline.json.tmp``,
``.pre-commit.tmp``): two writers at once shared one temp file, and a symlink planted under
that name was written through. Each case plants such a symlink and checks that the
victim is untouched and the target is complete.
"""

from __future__ import annotations

import stat
from pathlib import Path

import git

from workbench.release.hooks import install_hook
from workbench.rules.findings import Baseline
from workbench.rules.fmt import format_paths


def plant(folder: Path, name: str, victim: Path) -> Path:
    victim.write_text("victim\n")
    trap = folder / name
    trap.symlink_to(victim)
    return trap


def test_rule_fmt_does_not_write_through_its_old_temp_name(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule = rules / "x.yar"
    rule.write_text("rule   X {condition:true}\n")
    rule.chmod(0o640)
    victim = tmp_path / "victim"
    plant(rules, ".x.yar.fmt-tmp", victim)
    report = format_paths([rule])
    assert report.changed == [str(rule)] and victim.read_text() == "victim\n"
    assert "rule X" in rule.read_text() and stat.S_IMODE(rule.stat().st_mode) == 0o640


def test_baseline_save_does_not_write_through_its_old_temp_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    plant(tmp_path, "baseline.json.tmp", victim)
    Baseline().save(tmp_path / "baseline.json")
    assert victim.read_text() == "victim\n"
    assert Baseline.load(tmp_path / "baseline.json").entries == []


def test_hook_install_does_not_write_through_its_old_temp_name(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "sig")
    hooks = Path(repo.git_dir) / "hooks"
    hooks.mkdir(exist_ok=True)
    victim = tmp_path / "victim"
    plant(hooks, ".pre-commit.tmp", victim)
    done = install_hook(tmp_path / "sig")
    assert victim.read_text() == "victim\n"
    hook = Path(done.path)
    assert stat.S_IMODE(hook.stat().st_mode) & 0o111 == 0o111 and "workbench" in hook.read_text()
