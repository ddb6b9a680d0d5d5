"""One vocabulary for sizes, durations, ages and UTC timestamps (workbench/humanize.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from workbench.humanize import (
    age,
    clock,
    format_duration,
    iso_seconds,
    parse_duration,
    parse_utc,
    shown,
    size,
    stamp,
    utc_day,
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



@pytest.mark.parametrize("seconds", [1, 59, 90, 3600, 129600, 604800, 1209600])
def test_format_duration_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024 ** 2, "5.0 MiB"),
    (3 * 1024 ** 3, "3.0 GiB"), (5000 * 1024 ** 3, "5000.0 GiB"),
])
def test_size(n: int, text: str) -> None:
    assert size(n) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (119, "119s"), (300, "5m"), (7199, "120m"), (3 * 3600, "3h"),
    (4 * 86400, "4d"), (-5, "0s"),
])
def test_age_is_one_compact_spelling(seconds: float, text: str) -> None:
    assert age(seconds) == text


WHEN = dt.datetime(2026, 11, 2, 9, 30, 5, 123456, tzinfo=dt.UTC)


def test_stored_timestamps_are_utc_with_z() -> None:
    assert stamp(WHEN) == "2026-11-02T09:30:05.123456Z"
    assert iso_seconds(WHEN) == "2026-11-02T09:30:05Z"
    assert iso_seconds(WHEN, zone=False) == "2026-11-02T09:30:05"
    assert utc_day(WHEN) == "2026-11-02"
    assert clock(WHEN) == "09:30:05"
    # another zone is converted, a naive time is taken as UTC
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert stamp(WHEN.astimezone(plus2)) == stamp(WHEN)
    assert stamp(WHEN.replace(tzinfo=None)) == stamp(WHEN)
    assert stamp().endswith("Z") and len(stamp()) == len(stamp(WHEN))


def test_stored_times_sort_as_text() -> None:
    later = WHEN + dt.timedelta(microseconds=1)
    assert stamp(WHEN) < stamp(later)


@pytest.mark.parametrize(("value", "text"), [
    ("2026-11-02T09:30:05.123456Z", "2026-11-02 09:30:05"),
    ("2026-11-02T09:30:05Z", "2026-11-02 09:30:05"),
    ("2026-11-02T11:30:05+02:00", "2026-11-02 09:30:05"),
    ("2026-11-02T09:30:05", "2026-11-02 09:30:05"),
    (WHEN, "2026-11-02 09:30:05"),
    ("not a time", "not a time"),
    ("", ""),
    (None, ""),
])
def test_shown(value: str | dt.datetime | None, text: str) -> None:
    assert shown(value) == text


def test_shown_to_the_minute() -> None:
    assert shown("2026-11-02T09:30:05Z", seconds=False) == "2026-11-02 09:30"


def test_parse_utc_round_trips_stamp() -> None:
    assert parse_utc(stamp(WHEN)) == WHEN
    with pytest.raises(ValueError):
        parse_utc("yesterday")
