"""The agent's TOML config: what `tower init` writes is what the agent reads, and mistakes are named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from workbench.distribute.tower_config import ConfigError, TowerConfig

BASE = {"repository_url": "http://updates.example:8470/repository", "trusted_root": "root.json",
        "install_dir": "install", "tower": "t01", "server": "mx-03"}


def test_round_trip_and_private_file(tmp_path: Path) -> None:
    config = TowerConfig.from_data({**BASE, "token": 'wbt_"quoted"\\', "poll_seconds": "2m",
                                    "reload_command": "systemctl reload 'scan ner'"},
                                   base=tmp_path)
    path = config.write(tmp_path / "etc" / "tower.toml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TowerConfig.load(path)
    assert again == TowerConfig.from_data({**BASE, "token": 'wbt_"quoted"\\', "poll_seconds": 120,
                                           "reload_command": ["systemctl", "reload", "scan ner"]},
                                          base=tmp_path)
    assert again.trusted_root == tmp_path / "root.json" and again.poll_seconds == 120
    assert again.report_url == "http://updates.example:8470"
    with pytest.raises(ConfigError, match="exists"):
        config.write(path)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "tower.toml").write_text(
        "\n".join(f'{k} = "{v}"' for k, v in BASE.items()) + "\n")
    config = TowerConfig.load(tmp_path / "tower.toml")
    assert config.install_dir == tmp_path / "install"


@pytest.mark.parametrize(("change", "message"), [
    ({"repository_url": "ftp://x/repository"}, "http"),
    ({"tower": "bad tower"}, "tower"),
    ({"server": ""}, "server is required"),
    ({"poll_seconds": "soon"}, "poll_seconds"),
    ({"jitter": 1.5}, "jitter"),
    ({"keep_bundles": 0}, "keep_bundles"),
    ({"reload_command": 5}, "reload_command"),
    ({"pol_seconds": 60}, "unknown setting 'pol_seconds'"),
])
def test_mistakes_are_named(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TowerConfig.from_data({**BASE, **change})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tower init"):
        TowerConfig.load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("repository_url = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TowerConfig.load(tmp_path / "bad.toml")
