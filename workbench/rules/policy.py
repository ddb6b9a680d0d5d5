"""The house rule policy: ``signatures/workbench.toml`` read into one typed object."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import Kind, WorkbenchError

POLICY_FILE = "workbench.toml"

# The rule status lifecycle. TESTING and DISABLED never ship; NOISY ships and is reported.
STATUSES = ("TESTING", "RELEASED", "NOISY", "DISABLED", "DEPRECATED")
DEFAULT_SHIPPED_STATUSES = ("RELEASED", "NOISY")

DEFAULT_CATEGORIES = ("MAL", "SUSP", "HKTL", "PUA", "EXPL", "WEBSHELL", "PHISH", "SPAM", "TEST")

# Types a metadata value can be required to have (``[meta.types]``).
META_TYPES = ("string", "int", "bool", "uuid", "date", "hash", "sha256", "url", "text")

DEFAULT_REQUIRED = ("id", "fingerprint", "version", "date", "modified", "status", "author",
                    "description", "category", "family", "hash", "source")
DEFAULT_TYPES = {
    "id": "uuid", "fingerprint": "sha256", "version": "int", "date": "date", "modified": "date",
    "status": "string", "author": "string", "description": "text", "category": "string",
    "family": "string", "hash": "hash", "source": "sha256", "reference": "url",
}
DEFAULT_NAME_PATTERN = r"^(?P<category>[A-Z]+)_(?P<family>[A-Z0-9][A-Za-z0-9]*)(?:_[A-Za-z0-9]+)+$"


def name_part(text: str) -> str:
    """``text`` as one CamelCase ASCII part of a rule name: "émotet loader" -> "EmotetLoader"."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", folded) if p]
    return "".join(p[:1].upper() + p[1:] for p in parts)


class PolicyError(WorkbenchError, ValueError):
    """The policy file cannot be read or holds a value of the wrong shape."""

    kind = Kind.INPUT
    topic = "policy"


@dataclass
class PerformancePolicy:
    min_atom_length: int = 4          # shorter atoms make libyara scan every byte
    max_strings: int = 20
    min_regex_literal: int = 4        # a regex needs a literal run this long to have a good atom
    hex_as_text_min: int = 6          # hex strings of this many printable bytes could be text


@dataclass
class Policy:
    """Everything the linter and the drafter need to know about house conventions.

    ``raw`` is the whole TOML document: sections this class does not model (release
    settings, scan budgets ...) stay readable there for the parts that own them.
    """

    required_meta: tuple[str, ...] = DEFAULT_REQUIRED
    meta_types: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPES))
    allowed_values: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "status": STATUSES, "category": DEFAULT_CATEGORIES})
    repeatable_meta: tuple[str, ...] = ("hash", "reference", "tag")
    date_format: str = "%Y-%m-%d"
    hash_lengths: tuple[int, ...] = (32, 40, 64)      # md5, sha1, sha256
    name_pattern: str = DEFAULT_NAME_PATTERN
    name_category_matches_meta: bool = True
    performance: PerformancePolicy = field(default_factory=PerformancePolicy)
    disabled_checks: tuple[str, ...] = ()
    severity_overrides: dict[str, str] = field(default_factory=dict)
    default_author: str = ""
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def statuses(self) -> tuple[str, ...]:
        return self.allowed_values.get("status", STATUSES)

    @property
    def categories(self) -> tuple[str, ...]:
        return self.allowed_values.get("category", DEFAULT_CATEGORIES)

    @property
    def name_regex(self) -> re.Pattern[str]:
        return re.compile(self.name_pattern)

    @property
    def externals(self) -> dict[str, bool | int | float | str]:
        """The ``[externals]`` table: external variables every rule compile defines, with their values."""
        table = self.section("externals")
        for key, value in table.items():
            if not isinstance(value, str | int | float | bool):
                raise PolicyError(f"{self.path or 'policy'}: externals.{key} must be a string, number or boolean")
        return dict(table)

    def section(self, name: str) -> dict[str, Any]:
        """A top-level TOML table by name (``{}`` when absent), for keys this class does not model."""
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}

    # -- loading ---------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str | None = None) -> Policy:
        """Read a policy file, or ``workbench.toml`` in a signatures folder.

        A folder without the file (or no folder yet), or ``None``, gives the built-in defaults.
        """
        if path is None:
            return cls()
        path = Path(path)
        if not path.exists() and path.suffix != ".toml":
            return cls()        # a signatures folder not created yet
        if path.is_dir():
            path = path / POLICY_FILE
            if not path.exists():
                return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PolicyError(f"{path}: policy file not found") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: not valid TOML: {exc}") from exc
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: Path | None = None) -> Policy:
        where = str(path) if path else "policy"
        policy = cls(path=path, raw=data)
        meta = _table(data, "meta", where)
        if "required" in meta:
            policy.required_meta = tuple(_str_list(meta["required"], f"{where}: meta.required"))
        if "repeatable" in meta:
            policy.repeatable_meta = tuple(_str_list(meta["repeatable"], f"{where}: meta.repeatable"))
        if "date_format" in meta:
            policy.date_format = _str(meta["date_format"], f"{where}: meta.date_format")
        if "hash_lengths" in meta:
            policy.hash_lengths = tuple(_int_list(meta["hash_lengths"], f"{where}: meta.hash_lengths"))
        if "default_author" in meta:
            policy.default_author = _str(meta["default_author"], f"{where}: meta.default_author")
        types = _table(meta, "types", f"{where}: meta")
        for key, kind in types.items():
            kind = _str(kind, f"{where}: meta.types.{key}")
            if kind not in META_TYPES:
                raise PolicyError(f"{where}: meta.types.{key} = {kind!r}: one of {', '.join(META_TYPES)}")
            policy.meta_types[key] = kind
        for key, values in _table(meta, "allowed", f"{where}: meta").items():
            policy.allowed_values[key] = tuple(_str_list(values, f"{where}: meta.allowed.{key}"))
        naming = _table(data, "naming", where)
        if "pattern" in naming:
            policy.name_pattern = _str(naming["pattern"], f"{where}: naming.pattern")
            try:
                re.compile(policy.name_pattern)
            except re.error as exc:
                raise PolicyError(f"{where}: naming.pattern is not a regular expression: {exc}") from exc
        if "category_matches_meta" in naming:
            policy.name_category_matches_meta = bool(naming["category_matches_meta"])
        perf = _table(data, "performance", where)
        for f_name in PerformancePolicy.__dataclass_fields__:
            if f_name in perf:
                value = perf[f_name]
                if not isinstance(value, int):
                    raise PolicyError(f"{where}: performance.{f_name} must be a number")
                setattr(policy.performance, f_name, value)
        lint = _table(data, "lint", where)
        if "disabled" in lint:
            policy.disabled_checks = tuple(_str_list(lint["disabled"], f"{where}: lint.disabled"))
            _known_check_ids(policy.disabled_checks, f"{where}: lint.disabled")
        for check, severity in _table(lint, "severity", f"{where}: lint").items():
            if severity not in ("error", "warning", "info"):
                raise PolicyError(f"{where}: lint.severity.{check} must be error, warning or info")
            _known_check_ids([check], f"{where}: lint.severity")
            policy.severity_overrides[check] = severity
        return policy


def known_check_ids() -> tuple[str, ...]:
    """Every lint check id (compile checks included), in catalogue order."""
    from workbench.rules.checks import check_catalog  # checks import this module

    return tuple(c["id"] for c in check_catalog())


def _known_check_ids(ids: list[str] | tuple[str, ...], where: str) -> None:
    """PolicyError for an id no check has: a typo would silently leave the check on."""
    known = known_check_ids()
    unknown = [i for i in ids if i not in known]
    if unknown:
        close = [k for k in known if k[0] == unknown[0][:1]] or list(known)
        raise PolicyError(f"{where}: no lint check has the id {unknown[0]!r} "
                          f"(checks: {', '.join(close)}; `workbench rule checks` lists them all)")


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: [{key}] must be a table")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{where} must be a string")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where} must be a list of strings")
    return value


def _int_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise PolicyError(f"{where} must be a list of numbers")
    return value
