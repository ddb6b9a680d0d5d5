"""The tower agent's TOML configuration (``workbench tower init`` writes it, the agent reads it)."""

from __future__ import annotations

import json
import os
import shlex
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from workbench.distribute.client import server_url_from_repository
from workbench.distribute.tokens import NAME
from workbench.durable import atomic_write
from workbench.errors import Kind, WorkbenchError
from workbench.humanize import parse_duration


class ConfigError(WorkbenchError):
    """A config file that is missing, unreadable or wrong; the message names the field."""

    kind = Kind.USAGE


@dataclass(frozen=True)
class TowerConfig:
    repository_url: str                   # the server's /repository (metadata/ and targets/ beneath)
    trusted_root: Path                    # the pinned root.json
    install_dir: Path                     # current -> bundles/<serial>, TUF metadata, state
    tower: str
    server: str
    token: str = ""                       # for reports; empty: do not report
    poll_seconds: float = 60.0
    jitter: float = 0.1                   # each wait is poll_seconds x (1 +- jitter)
    max_backoff_seconds: float = 900.0    # ceiling of the exponential backoff on server failures
    reload_command: list[str] = field(default_factory=list)
    reload_timeout_seconds: float = 60.0
    keep_bundles: int = 3
    timeout_seconds: float = 30.0         # per HTTP request
    full_refresh_seconds: float = 3600.0  # a full TUF refresh at least this often
    server_url: str = ""                  # for reports; default: repository_url without /repository
    long_poll: bool = False               # hold each no-change poll up to poll_seconds (Prefer: wait)
    report_spread_seconds: float = 30.0   # after an update a held poll brought: report within this,
                                          # spread, so a whole fleet does not report in one second

    @property
    def report_url(self) -> str:
        return self.server_url or server_url_from_repository(self.repository_url)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TowerConfig:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file (write one with `workbench tower init`)",
                              kind=Kind.NOT_FOUND) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_data(raw, base=path.parent, where=str(path))

    @classmethod
    def from_data(cls, raw: dict[str, Any], *, base: Path | None = None,
                  where: str = "config") -> TowerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r}")
        missing = [n for n in ("repository_url", "trusted_root", "install_dir", "tower", "server")
                   if not raw.get(n)]
        if missing:
            raise ConfigError(f"{where}: {missing[0]} is required")
        values: dict[str, Any] = dict(raw)
        for name in ("repository_url", "tower", "server", "token", "server_url"):
            if name in values and not isinstance(values[name], str):
                raise ConfigError(f"{where}: {name} must be a string")
        url = urlparse(values["repository_url"])
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError(f"{where}: repository_url must be an http(s) URL")
        for name in ("tower", "server"):
            if not NAME.fullmatch(values[name]):
                raise ConfigError(f"{where}: {name} {values[name]!r} is not a valid name")
        for name in ("trusted_root", "install_dir"):
            p = Path(str(values[name])).expanduser()
            values[name] = (base / p) if base is not None and not p.is_absolute() else p
        for name in ("poll_seconds", "max_backoff_seconds", "reload_timeout_seconds",
                     "timeout_seconds", "full_refresh_seconds", "report_spread_seconds"):
            if name in values:
                try:
                    values[name] = parse_duration(values[name]).total_seconds()
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"{where}: {name}: {exc}") from None
        if "jitter" in values:
            jitter = values["jitter"]
            if not isinstance(jitter, int | float) or not 0 <= jitter < 1:
                raise ConfigError(f"{where}: jitter must be a number from 0 to below 1")
            values["jitter"] = float(jitter)
        if "long_poll" in values and not isinstance(values["long_poll"], bool):
            raise ConfigError(f"{where}: long_poll must be true or false")
        if "keep_bundles" in values:
            keep = values["keep_bundles"]
            if not isinstance(keep, int) or keep < 1:
                raise ConfigError(f"{where}: keep_bundles must be a positive integer")
        command = values.get("reload_command", [])
        if isinstance(command, str):
            command = shlex.split(command)
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ConfigError(f"{where}: reload_command must be a string or a list of strings")
        values["reload_command"] = command
        return cls(**values)

    def to_toml(self) -> str:
        lines = ["# workbench tower agent (docs/distribution.md)"]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "server_url" and not value:
                continue
            lines.append(f"{f.name} = {_toml(value)}")
        return "\n".join(lines) + "\n"

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the config, readable by its owner only (it holds the token)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} exists (use --force to overwrite)")
        return atomic_write(path, self.to_toml(), mode=0o600)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value)        # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
