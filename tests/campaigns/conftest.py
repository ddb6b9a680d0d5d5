"""The campaign tests' quarantine: a wave among unrelated mail, built once per module."""

from __future__ import annotations

import pytest

from tests.support.campaign_lab import WaveLab, build_wave_lab


@pytest.fixture(scope="module")
def wave_lab(tmp_path_factory: pytest.TempPathFactory) -> WaveLab:
    return build_wave_lab(tmp_path_factory.mktemp("wave") / "home")
