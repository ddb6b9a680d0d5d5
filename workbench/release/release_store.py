"""The releases a workspace has built: bundles, records and the serial counter under state/releases.

Layout::

    state/releases/SERIAL                    the last serial handed out (only goes up)
    state/releases/.lock                     serialises writers of the counter and folders
    state/releases/.release.lock             held by a whole release or revert
    state/releases/PENDING.json              the CHANGELOG.md a release wrote and has not committed
    state/releases/signatures-<n>/
        signatures-<n>.tar.gz                the bundle
        release.json                         the record (small: list() reads only these)
        manifest.json                        a copy of the bundle's manifest
        changelog.json                       what changed since the previous release
        ruleset.json                         every rule and its status at this release

A release folder appears by one rename once it is complete, so a half-written release
is never listed.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.document import dumps
from workbench.durable import atomic_write, crash_point, file_lock
from workbench.errors import Kind, WorkbenchError
from workbench.release.bundle import BundleError, Manifest, PreparedBundle, bundle_name
from workbench.release.changelog import Changelog, RuleState
from workbench.workspace import Workspace

COUNTER_NAME = "SERIAL"
PENDING_NAME = "PENDING.json"     # a release between writing CHANGELOG.md and committing it
TAG_PREFIX = "signatures-"
_FOLDER = re.compile(r"signatures-([1-9][0-9]*)")


class ReleaseNotFound(WorkbenchError, LookupError):
    kind = Kind.NOT_FOUND


def tag_name(serial: int) -> str:
    return f"{TAG_PREFIX}{serial}"


@dataclass(frozen=True)
class Release:
    """One built release. ``manifest``, ``changelog`` and ``ruleset`` are read on first use."""

    serial: int
    bundle_path: Path
    commit: str
    tag: str
    created: str               # ISO 8601 UTC: the release commit's time (as in the manifest)
    built: str                 # ISO 8601 UTC: when the bundle was written
    message: str
    reverts: int | None        # a rollback: the serial whose content this release re-ships
    bundle_sha256: str
    bundle_size: int
    rule_count: int
    folder: Path = field(metadata={"internal": True}, repr=False)

    @functools.cached_property
    def manifest(self) -> Manifest:
        return Manifest.from_bytes((self.folder / "manifest.json").read_bytes())

    @functools.cached_property
    def changelog(self) -> Changelog:
        return Changelog.from_data(_read_json(self.folder / "changelog.json"))

    @functools.cached_property
    def ruleset(self) -> list[RuleState]:
        return [RuleState.from_data(r) for r in _read_json(self.folder / "ruleset.json")]


class ReleaseStore:
    """Releases of one workspace, newest serial last in ``list()``."""

    def __init__(self, workspace: Workspace):
        self.root = workspace.state / "releases"

    # --- reading

    def list(self) -> list[Release]:
        if not self.root.is_dir():
            return []
        serials = []
        for child in self.root.iterdir():
            m = _FOLDER.fullmatch(child.name)
            if m and (child / "release.json").is_file():
                serials.append(int(m.group(1)))
        return [self.get(s) for s in sorted(serials)]

    def get(self, serial: int) -> Release:
        folder = self.root / tag_name(serial)
        record = folder / "release.json"
        if not record.is_file():
            raise ReleaseNotFound(f"no release {serial} in {self.root}")
        raw = _read_json(record)
        return Release(serial=int(raw["serial"]), bundle_path=folder / bundle_name(serial),
                       commit=raw["commit"], tag=raw["tag"], created=raw["created"],
                       built=raw["built"], message=raw["message"], reverts=raw.get("reverts"),
                       bundle_sha256=raw["bundle_sha256"], bundle_size=int(raw["bundle_size"]),
                       rule_count=int(raw["rule_count"]), folder=folder)

    def latest(self) -> Release | None:
        releases = self.list()
        return releases[-1] if releases else None

    # --- serials

    def last_serial(self) -> int:
        """The highest serial ever handed out or built (0 when none)."""
        counter = 0
        with contextlib.suppress(FileNotFoundError, ValueError):
            counter = int((self.root / COUNTER_NAME).read_text().strip())
        built = 0
        if self.root.is_dir():
            for child in self.root.iterdir():
                m = _FOLDER.fullmatch(child.name)
                if m:
                    built = max(built, int(m.group(1)))
        return max(counter, built)

    def peek_next_serial(self, floor: int = 0) -> int:
        """The serial ``next_serial`` would hand out now (nothing is reserved)."""
        return max(self.last_serial(), floor) + 1

    def next_serial(self, floor: int = 0) -> int:
        """Reserve and return a new serial: above every serial handed out, built or ``floor``.

        ``floor`` lets the caller add what only it knows (e.g. the highest
        ``signatures-N`` tag in git, if this state folder was lost). A reserved serial is
        never handed out again, even if the release then fails.
        """
        with self.lock():
            serial = max(self.last_serial(), floor) + 1
            atomic_write(self.root / COUNTER_NAME, f"{serial}\n".encode())
            return serial

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with file_lock(self.root / ".lock"):
            yield

    @contextlib.contextmanager
    def releasing(self) -> Iterator[None]:
        """Held for a whole release or revert: one at a time, so whatever a release folder's
        temporary copy or a pending changelog this one finds was left by a dead one."""
        with file_lock(self.root / ".release.lock"):
            yield

    def leftovers(self) -> builtins.list[Path]:
        """Temporary release folders (``.signatures-N.*``) of a release that died while
        storing its bundle. Only meaningful while holding :meth:`releasing`."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and p.name.startswith(f".{TAG_PREFIX}"))

    # --- writing

    def add(self, prepared: PreparedBundle, *, serial: int, commit: str, created: dt.datetime,
            message: str, changelog: Changelog, ruleset: Sequence[RuleState],
            reverts: int | None = None, tag: str | None = None) -> Release:
        """Write the bundle and its record for a reserved ``serial``; returns the release."""
        if serial > self.last_serial():
            raise BundleError(f"serial {serial} was not reserved with next_serial()")
        final = self.root / tag_name(serial)
        if final.exists():
            raise BundleError(f"release {serial} already exists; serials are never reused")
        tmp = Path(tempfile.mkdtemp(prefix=f".{tag_name(serial)}.", dir=self.root))
        try:
            bundle = prepared.write(tmp / bundle_name(serial), serial=serial, created=created,
                                    commit=commit)
            (tmp / "manifest.json").write_bytes(bundle.manifest.to_bytes())
            (tmp / "changelog.json").write_text(dumps(changelog) + "\n", encoding="utf-8")
            (tmp / "ruleset.json").write_text(dumps(builtins.list(ruleset), indent=None) + "\n", encoding="utf-8")
            record = {
                "serial": serial, "tag": tag or tag_name(serial), "commit": commit,
                "created": bundle.manifest.created,
                "built": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
                "message": message, "reverts": reverts, "bundle": bundle_name(serial),
                "bundle_sha256": bundle.sha256, "bundle_size": bundle.size,
                "rule_count": bundle.manifest.rule_count,
            }
            atomic_write(tmp / "release.json", (json.dumps(record, indent=2) + "\n").encode())
            os.chmod(tmp, 0o755)
            crash_point("release.store")
            with self.lock():
                if final.exists():
                    raise BundleError(f"release {serial} already exists; serials are never reused")
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(serial)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))

