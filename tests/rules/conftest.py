"""Rule fixtures: a clean house-style rule built in code, and a helper to lint one rule body."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.rulesets import PUBLIC_RULESET
from workbench.rules.policy import Policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return Policy()


@pytest.fixture
def today() -> dt.date:
    return dt.date(2026, 3, 4)


@pytest.fixture(scope="session")
def public_ruleset() -> Path:
    if not (PUBLIC_RULESET / "yara").is_dir():
        pytest.skip(f"no public ruleset at {PUBLIC_RULESET} (set WORKBENCH_PUBLIC_RULESET)")
    return PUBLIC_RULESET
