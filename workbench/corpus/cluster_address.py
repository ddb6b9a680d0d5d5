"""Which Dask cluster corpus scans run on: ``--cluster``, ``$WORKBENCH_CLUSTER``, or the
workspace's ``settings.toml`` (``cluster = "tcp://scheduler:8786"`` in the home folder), in
that order.

Light on purpose (no yara, no dask). ``""`` (or ``local``) means here: the local thread
pool. The scans themselves read the address from ``$WORKBENCH_CLUSTER``
(``corpus/scanner.py``); ``scans_on`` sets it for the scans of one command or one run of
the UI's test screen (one scan at a time in a process).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from workbench.errors import Kind, WorkbenchError
from workbench.settings_file import SETTINGS_NAME, read_setting
from workbench.workspace import Workspace

CLUSTER_ENV = "WORKBENCH_CLUSTER"
LOCAL = ("", "local")


class ClusterSettingError(WorkbenchError, ValueError):
    """The cluster address in the workspace's ``settings.toml`` or ``--cluster`` is not one Dask takes."""

    kind = Kind.USAGE


def cluster_address(workspace: Workspace, explicit: str | None = None) -> str:
    """The scheduler's address corpus scans of ``workspace`` run on, ``""`` for here."""
    if explicit is not None:
        address = explicit
    elif CLUSTER_ENV in os.environ:
        address = os.environ[CLUSTER_ENV]
    else:
        address = read_setting(workspace.home / SETTINGS_NAME, "cluster", ClusterSettingError)
    address = address.strip()
    if address.lower() in LOCAL:
        return ""
    if "://" not in address:
        raise ClusterSettingError(f"cluster {address!r}: give a scheduler address like "
                                  f"tcp://scheduler:8786, or local")
    return address


@contextlib.contextmanager
def scans_on(workspace: Workspace, explicit: str | None = None) -> Iterator[str]:
    """For the scans run inside: the cluster ``cluster_address`` names (its address), or
    here. Raises ``ClusterSettingError`` before anything runs when the setting is wrong."""
    address = cluster_address(workspace, explicit)
    before = os.environ.get(CLUSTER_ENV)
    os.environ[CLUSTER_ENV] = address
    try:
        yield address
    finally:
        if before is None:
            os.environ.pop(CLUSTER_ENV, None)
        else:
            os.environ[CLUSTER_ENV] = before
