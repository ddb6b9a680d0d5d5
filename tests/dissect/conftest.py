"""Dissection fixtures: one worker pool per session (workers start once), hostile samples built once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.dissect.worker import WorkerPool


@pytest.fixture(scope="session")
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool(size=2)
    p.warm()               # the fork server's start-up (seconds on a busy machine) is not any test's time
    yield p
    p.close()


@pytest.fixture(scope="session")
def zip_bomb_100mib() -> bytes:
    from workbench.samples.hostile import zip_bomb

    return zip_bomb()
