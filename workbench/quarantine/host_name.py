"""Which ingest host this process writes the quarantine journal as.

Every host that writes to a shared quarantine appends to journal files of its own
(``journal/<YYYY-MM>.<host>.jsonl``), so its name must differ from every other writer's
and stay the same across restarts. Asked in order: ``explicit`` (``serve --host-name``),
``$WORKBENCH_HOST_NAME``, ``host_name`` in the workspace's ``settings.toml`` (in the home
folder), else the machine's name (``socket.gethostname()``). Never read from
``quarantine/settings.toml``: that file is shared by every host, and one name for all of
them is what this avoids.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from workbench.errors import Kind, WorkbenchError
from workbench.settings_file import SETTINGS_NAME, read_setting

HOST_ENV = "WORKBENCH_HOST_NAME"
MAX_LENGTH = 64
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


class HostNameError(WorkbenchError, ValueError):
    """The host name given (``--host-name``, the environment or the settings) is unusable."""

    kind = Kind.USAGE


def safe_host_name(name: str) -> str:
    """``name`` as a file-name part: lower case (host names are case-blind, and two spellings
    must not make two journals), letters, digits, ``.``, ``_`` and ``-`` only, no leading
    dot or dash, at most 64 characters; ``""`` when nothing usable is left."""
    text = _UNSAFE.sub("-", name.strip().lower())
    return text.strip(".-")[:MAX_LENGTH].rstrip(".-")


def host_name(home: Path | None = None, explicit: str | None = None) -> str:
    """This process's journal host name (see the module's docstring for the order)."""
    name, origin = explicit or "", "--host-name"
    if not name and os.environ.get(HOST_ENV, "").strip():
        name, origin = os.environ[HOST_ENV], f"${HOST_ENV}"
    if not name and home is not None:
        settings = Path(home) / SETTINGS_NAME
        name, origin = read_setting(settings, "host_name", HostNameError), f"host_name in {settings}"
    if not name.strip():
        name, origin = socket.gethostname(), "the machine's name"
    safe = safe_host_name(name)
    if not safe:
        raise HostNameError(f"host name {name!r} ({origin}) has no letter or digit to name a "
                            f"journal file by: give one with --host-name or ${HOST_ENV}")
    return safe
