"""Durations and repository settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from workbench.distribute.settings import (
    ExpiryPolicy,
    RepositorySettings,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
    ("1d12h", 129600), ("1.5h", 5400), (" 1D ", 86400), (30, 30), (0.5, 0.5),
])
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "-1d", "0", "1d-", 0, -3])
def test_parse_duration_refuses(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (86400, "1d"), (604800, "1w"), (129600, "36h"), (90, "90s"), (300, "5m"), (31535999, "365.0d"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert RepositorySettings.load(path) == RepositorySettings()      # absent: defaults
    custom = RepositorySettings(expiry=ExpiryPolicy(timestamp=3600, snapshot=86400),
                                keep_releases=3, keep_metadata_versions=4)
    custom.save(path)
    assert RepositorySettings.load(path) == custom
    assert custom.expiry.period("timestamp") == dt.timedelta(hours=1)
    assert custom.expiry.period("root") == dt.timedelta(days=365)
