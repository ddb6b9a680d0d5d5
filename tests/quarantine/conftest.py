"""Builders of small synthetic mail for the quarantine tests."""

from __future__ import annotations

import pytest

from tests.support.quarantine_mail import make_mail


@pytest.fixture
def mail():
    return make_mail
