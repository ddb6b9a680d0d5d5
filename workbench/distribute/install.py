"""A tower server's install folder: verified bundles, the ``current`` link, the agent's state and lock.

::

    install_dir/current -> bundles/<serial>   what the scanner loads (renamed over atomically)
    install_dir/bundles/<serial>/            unpacked, verified bundles (the last few are kept)
    install_dir/staging/                     unpacking and checking happen here
    install_dir/metadata/                    the TUF client's trusted metadata
    install_dir/downloads/                   downloaded bundle files
    install_dir/state.json                   what the agent remembers between attempts
    install_dir/agent.lock                   one agent per install folder
    install_dir/pinned-root.json             the trust anchor ``tower init`` was given (a copy)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.distribute import crashpoints
from workbench.durable import atomic_write, fsync_path
from workbench.errors import Kind, WorkbenchError
from workbench.release.bundle import BundleError, Manifest, read_manifest, verify_extracted

PINNED_ROOT = "pinned-root.json"


class AgentBusy(WorkbenchError):
    """Another agent holds the install folder's lock."""

    kind = Kind.CONFLICT


class DamagedInstall(WorkbenchError):
    """``current`` is missing its target, or its files no longer match the manifest."""

    kind = Kind.LOCAL


@dataclass
class AgentState:
    """``state.json``: what survives between attempts and restarts."""

    installed_serial: int | None = None
    highest_serial: int | None = None       # never install below this (rollback floor)
    timestamp_etag: str = ""                # of the last fully checked timestamp.json
    last_full_refresh: float = 0.0
    rejected_serial: int | None = None      # a signed bundle that failed its checks ...
    rejected_sha256: str = ""               # ... is not downloaded again
    rejected_reason: str = ""
    consecutive_failures: int = 0
    last_attempt: str = ""
    last_state: str = ""
    last_error: str = ""
    pending_reports: list[dict[str, Any]] = field(default_factory=list)
    reload_pending: int | None = None       # current was (being) switched to this serial and
    reload_previous: int | None = None      # ... the reload command has not confirmed it yet

    @classmethod
    def load(cls, path: Path) -> AgentState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()             # a lost or damaged state file only costs a full refresh
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=2))


@dataclass(frozen=True)
class CurrentInstall:
    serial: int
    folder: Path
    manifest: Manifest


class InstallDir:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.metadata_dir = self.root / "metadata"
        self.downloads_dir = self.root / "downloads"
        self.bundles_dir = self.root / "bundles"
        self.staging_dir = self.root / "staging"
        self.current = self.root / "current"
        self.state_path = self.root / "state.json"
        self.lock_path = self.root / "agent.lock"

    def ensure(self) -> InstallDir:
        for folder in (self.metadata_dir, self.downloads_dir, self.bundles_dir, self.staging_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                raise AgentBusy(f"another agent (pid {holder}) is running on {self.root}") from None
            try:
                # the pid is for people (`tower status`); the flock is the lock. A full disk
                # must not crash the agent here, before it can report why it is stuck.
                os.ftruncate(fd, 0)
                crashpoints.step("pull:lock-written")
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def lock_holder(self) -> int | None:
        """The pid of a running agent, if one holds the lock."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def load_state(self) -> AgentState:
        return AgentState.load(self.state_path)

    def save_state(self, state: AgentState) -> None:
        state.save(self.state_path)

    # -- the current bundle -------------------------------------------------------------

    def current_target(self) -> Path | None:
        if not self.current.is_symlink():
            return None
        return (self.root / os.readlink(self.current)).resolve()

    def check_current(self) -> CurrentInstall | None:
        """The bundle in use, fully verified; None if nothing was ever installed."""
        if not self.current.is_symlink():
            if self.current.exists():
                raise DamagedInstall(f"{self.current} is not a symbolic link")
            return None
        target = self.current_target()
        assert target is not None
        if not target.is_relative_to(self.bundles_dir.resolve()):
            raise DamagedInstall(f"current points outside {self.bundles_dir}: {target}")
        if not target.is_dir():
            raise DamagedInstall(f"current points at {target}, which is missing")
        try:
            manifest = read_manifest(target)
            verify_extracted(target, manifest)
        except BundleError as exc:
            raise DamagedInstall(f"serial {target.name}: {exc.reason}") from None
        return CurrentInstall(serial=manifest.serial, folder=target, manifest=manifest)

    def switch(self, folder: Path | None) -> None:
        """Point ``current`` at ``folder`` (or remove it) with one atomic rename."""
        if folder is None:
            self.current.unlink(missing_ok=True)
            return
        relative = os.path.relpath(folder, self.root)
        tmp = self.root / f".current.{secrets.token_hex(4)}"
        os.symlink(relative, tmp)
        os.replace(tmp, self.current)
        fsync_path(self.root)

    # -- bundles ---------------------------------------------------------------------------

    def new_staging(self, serial: int) -> Path:
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        return self.staging_dir / f"{serial}-{secrets.token_hex(4)}"

    def commit(self, staging: Path, serial: int) -> Path:
        """Move a checked staging folder to ``bundles/<serial>`` (replacing a damaged copy)."""
        final = self.bundles_dir / str(serial)
        if final.exists():
            aside = self.new_staging(serial).with_name(f"old-{serial}-{secrets.token_hex(4)}")
            os.replace(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(staging, final)
        fsync_path(self.bundles_dir)
        return final

    def bundle_serials(self) -> list[int]:
        if not self.bundles_dir.is_dir():
            return []
        return sorted((int(p.name) for p in self.bundles_dir.iterdir()
                       if p.is_dir() and p.name.isdigit()), reverse=True)

    def intact_bundles(self, *, exclude: int | None = None) -> list[CurrentInstall]:
        """Kept bundles whose files still verify, newest first."""
        found = []
        for serial in self.bundle_serials():
            if serial == exclude:
                continue
            folder = self.bundles_dir / str(serial)
            try:
                manifest = read_manifest(folder)
                verify_extracted(folder, manifest)
            except BundleError:
                continue
            if manifest.serial == serial:
                found.append(CurrentInstall(serial=serial, folder=folder, manifest=manifest))
        return found

    def prune(self, keep: int) -> list[int]:
        """Keep the newest ``keep`` bundles (always the current one); remove staging leftovers."""
        serials = self.bundle_serials()
        current = self.current_target()
        keep_set = {int(current.name)} if current is not None and current.name.isdigit() else set()
        for serial in serials:
            if len(keep_set) >= keep:
                break
            keep_set.add(serial)
        removed = [s for s in serials if s not in keep_set]
        for serial in removed:
            shutil.rmtree(self.bundles_dir / str(serial), ignore_errors=True)
        if self.staging_dir.is_dir():
            for leftover in self.staging_dir.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
        kept_names = {f"signatures-{s}.tar.gz" for s in keep_set}
        if self.downloads_dir.is_dir():
            for path in self.downloads_dir.iterdir():
                if path.name not in kept_names:
                    path.unlink(missing_ok=True)
        return removed

