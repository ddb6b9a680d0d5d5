"""Repository settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from workbench.distribute.settings import ExpiryPolicy, RepositorySettings


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert RepositorySettings.load(path) == RepositorySettings()      # absent: defaults
    custom = RepositorySettings(expiry=ExpiryPolicy(timestamp=3600, snapshot=86400),
                                keep_releases=3, keep_metadata_versions=4)
    custom.save(path)
    assert RepositorySettings.load(path) == custom
    assert custom.expiry.period("timestamp") == dt.timedelta(hours=1)
    assert custom.expiry.period("root") == dt.timedelta(days=365)
