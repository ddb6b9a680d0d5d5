"""Release settings of a signature repository: the ``[release]`` and ``[externals]`` policy tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.rules.policy import DEFAULT_SHIPPED_STATUSES, Policy, PolicyError

ExternalValue = str | int | float | bool

DEFAULT_BUDGET_MS_PER_MIB = 10.0
DEFAULT_SELFTEST_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class AllowedMatch:
    """A reviewed clean-corpus match that does not fail validation (still shown)."""

    rule: str
    file: str            # sha256 of the clean file, or its path under the clean corpus
    reason: str


@dataclass
class ReleaseSettings:
    """Where things are in the signatures tree and what a release ships.

    Paths are relative to the signatures root. Statuses in ``ship`` go into bundles;
    statuses in ``exempt`` never ship and skip the corpus checks (they still compile
    and lint). NOISY rules that match clean files are warned about, not refused.
    """

    ship: tuple[str, ...] = DEFAULT_SHIPPED_STATUSES
    exempt: tuple[str, ...] = ("DISABLED", "DEPRECATED")
    noisy: tuple[str, ...] = ("NOISY",)
    rules: str = "rules"
    malicious: str = "corpora/malicious"
    clean: str = "corpora/clean"
    baseline: str = "lint-baseline.json"
    changelog: str = "CHANGELOG.md"
    budget_ms_per_mib: float = DEFAULT_BUDGET_MS_PER_MIB
    budgets: dict[str, float] = field(default_factory=dict)
    externals: dict[str, ExternalValue] = field(default_factory=dict)
    allow: list[AllowedMatch] = field(default_factory=list)
    selftest_max_bytes: int = DEFAULT_SELFTEST_MAX_BYTES

    def budget_for(self, rule: str) -> float:
        return self.budgets.get(rule, self.budget_ms_per_mib)

    def ships(self, status: str) -> bool:
        return status in self.ship

    @classmethod
    def from_policy(cls, policy: Policy) -> ReleaseSettings:
        where = str(policy.path or "policy")
        raw = policy.section("release")
        s = cls()
        for key in ("ship", "exempt", "noisy"):
            if key in raw:
                setattr(s, key, tuple(_strings(raw[key], f"{where}: release.{key}")))
        unknown = [st for st in (*s.ship, *s.exempt, *s.noisy) if st not in policy.statuses]
        if unknown:
            raise PolicyError(f"{where}: release: status {unknown[0]!r} is not one of "
                              f"{', '.join(policy.statuses)}")
        for key in ("rules", "malicious", "clean", "baseline", "changelog"):
            if key in raw:
                value = raw[key]
                if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
                    raise PolicyError(f"{where}: release.{key} must be a relative path inside the repository")
                setattr(s, key, value)
        if "scan_budget_ms_per_mib" in raw:
            s.budget_ms_per_mib = _number(raw["scan_budget_ms_per_mib"], f"{where}: release.scan_budget_ms_per_mib")
        if "selftest_max_bytes" in raw:
            s.selftest_max_bytes = int(_number(raw["selftest_max_bytes"], f"{where}: release.selftest_max_bytes"))
        budgets = raw.get("budgets", {})
        if not isinstance(budgets, dict):
            raise PolicyError(f"{where}: [release.budgets] must be a table of rule = milliseconds per MiB")
        s.budgets = {str(k): _number(v, f"{where}: release.budgets.{k}") for k, v in budgets.items()}
        allow = raw.get("allow", [])
        if not isinstance(allow, list):
            raise PolicyError(f"{where}: [[release.allow]] must be an array of tables")
        for i, item in enumerate(allow):
            if not isinstance(item, dict) or not isinstance(item.get("rule"), str) \
                    or not isinstance(item.get("file"), str):
                raise PolicyError(f"{where}: release.allow[{i}] needs rule = \"...\" and file = \"...\"")
            reason = item.get("reason", "")
            if not isinstance(reason, str) or not reason.strip():
                raise PolicyError(f"{where}: release.allow[{i}] ({item['rule']}) needs a reason")
            s.allow.append(AllowedMatch(item["rule"], item["file"], reason))
        externals = policy.section("externals")
        for key, value in externals.items():
            if not isinstance(value, str | int | float | bool):
                raise PolicyError(f"{where}: externals.{key} must be a string, number or boolean")
        s.externals = dict(externals)
        return s


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where} must be a list of strings")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PolicyError(f"{where} must be a non-negative number")
    return float(value)
