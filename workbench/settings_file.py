"""One flat setting read from a TOML settings file, the way every setting of the workbench
is read: ``index`` in ``quarantine/settings.toml``, ``cluster`` and ``host_name`` in the
home's ``settings.toml``. Each caller asks its option and environment variable first and
words its own error; this reads the file, and only when there is one.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError

SETTINGS_NAME = "settings.toml"


def read_setting(path: Path, key: str, error: type[WorkbenchError]) -> str:
    """``key`` in the TOML file ``path`` as text; ``""`` when the file or the key is missing.
    A file that is not TOML (or not UTF-8) raises ``error`` naming it."""
    if not path.is_file():
        return ""
    import tomllib  # only when there is a file: a re-test's start-up is measured

    try:
        return str(tomllib.loads(path.read_text("utf-8")).get(key, ""))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {exc}") from None
