"""The TUF update repository: a folder of signed static files any web server can serve.

Layout under ``state/repository/`` (consistent snapshots)::

    metadata/root.json               the newest root (what towers pin)
    metadata/<N>.root.json           every root version (towers walk the chain)
    metadata/timestamp.json          re-signed by every publish and ``publish --refresh``
    metadata/<N>.snapshot.json       retained versions
    metadata/<N>.targets.json        retained versions; lists the release bundles
    targets/<sha256>.signatures-<serial>.tar.gz
    settings.json                    lifetimes and retention (not served)

Writes go in the order a client reads backwards (target file, targets, snapshot,
then timestamp), each file atomically, so a server never exposes metadata that
points at something not yet written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from securesystemslib.signer import Key, Signer
from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.api.exceptions import RepositoryError as TufRepositoryError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient.fetcher import FetcherInterface

from workbench.distribute import crashpoints
from workbench.distribute.keys import ROLES, KeyRing, KeyringError
from workbench.distribute.settings import RepositorySettings
from workbench.durable import LockBusy, atomic_write, file_lock, fsync_path
from workbench.errors import Kind, WorkbenchError
from workbench.humanize import shown, utc_day
from workbench.release.bundle import BundleError, open_bundle
from workbench.workspace import Workspace

BUNDLE_PATTERN = re.compile(r"signatures-(\d+)\.tar\.gz")
SERIALIZER = JSONSerializer(compact=True)
# Re-sign snapshot/targets on refresh once less than this share of their lifetime is left.
REFRESH_FRACTION = 0.5
ROOT_WARNING = dt.timedelta(days=30)
ROTATION_COMMIT = "COMMIT"       # in .rotation/: the rotation is decided; apply it (again)


class UpdateRepositoryError(WorkbenchError):
    """The repository cannot do what was asked; the message says why and what to do."""

    kind = Kind.CONFLICT


class NoRepository(UpdateRepositoryError):
    """``workbench keys init`` has not been run (or the metadata is gone)."""

    kind = Kind.NOT_FOUND


class InvalidBundle(UpdateRepositoryError):
    """The file to publish is not a valid release bundle."""

    kind = Kind.INPUT


ROLLOUT_STAGES = ("canary", "all", "halted")


@dataclass(frozen=True)
class Rollout:
    """A release's rollout, kept in the target's signed ``custom`` object: ``canary`` (only
    the canary towers may install it), ``all`` (promoted), ``halted`` (stays with the
    canaries that have it; nobody else gets it). Changing it re-signs the targets, so
    nobody without the targets key can choose who gets what."""

    stage: str
    canaries: tuple[str, ...]
    since: str = ""                   # when this stage began (ISO 8601 UTC)
    reason: str = ""                  # why it was promoted or halted

    def to_custom(self) -> dict[str, Any]:
        return {"stage": self.stage, "canaries": list(self.canaries), "since": self.since,
                "reason": self.reason}

    @classmethod
    def from_custom(cls, raw: Any) -> Rollout | None:
        if not isinstance(raw, dict) or raw.get("stage") not in ROLLOUT_STAGES:
            return None
        canaries = raw.get("canaries")
        return cls(stage=str(raw["stage"]),
                   canaries=tuple(str(c) for c in canaries) if isinstance(canaries, list) else (),
                   since=str(raw.get("since", "")), reason=str(raw.get("reason", "")))


@dataclass(frozen=True)
class PublishedTarget:
    """One release bundle listed in the targets metadata."""

    path: str                 # the target name, ``signatures-<serial>.tar.gz``
    serial: int
    length: int
    sha256: str
    created: str = ""
    commit: str = ""
    rule_count: int = 0
    rollout: Rollout | None = None    # canary state, signed with the targets (None: everyone)

    def offered_to(self, tower: str) -> bool:
        """Whether a tower may install this target (the signed rollout decides, not the server)."""
        if self.rollout is None or self.rollout.stage == "all":
            return True
        return tower in self.rollout.canaries

    @property
    def file_name(self) -> str:
        """The file under ``targets/`` (consistent snapshots prefix the hash)."""
        return f"{self.sha256}.{self.path}"


@dataclass(frozen=True)
class RoleStatus:
    role: str
    version: int
    expires: dt.datetime
    keyids: list[str]
    key_online: bool                      # the key file is here
    key_trusted: bool | None = None       # ... and it is a key the root trusts (None: no file)


@dataclass(frozen=True)
class RepositoryStatus:
    """``workbench keys status --json``."""

    path: Path
    trusted_root: Path
    roles: list[RoleStatus]
    targets: list[PublishedTarget]
    newest_serial: int | None
    warnings: list[str] = field(default_factory=list)
    verified: bool = True                 # a tower pinning 1.root.json accepts the repository
    verify_error: str = ""                # ... else why not, as the tower says it
    pending_rotation: str = ""            # an interrupted `keys rotate` the next write finishes


@dataclass(frozen=True)
class InitResult:
    path: Path
    trusted_root: Path
    keyids: dict[str, str]


@dataclass(frozen=True)
class PublishResult:
    """``workbench publish --json``."""

    target: PublishedTarget
    already_published: bool
    versions: dict[str, int]
    expires: dict[str, dt.datetime]
    pruned: list[str]


@dataclass(frozen=True)
class RefreshResult:
    """``workbench publish --refresh --json``: which roles were re-signed and until when."""

    resigned: list[str]
    versions: dict[str, int]
    expires: dict[str, dt.datetime]
    warnings: list[str]


@dataclass(frozen=True)
class RotateResult:
    role: str
    old_keyids: list[str]
    new_keyid: str
    root_version: int
    resigned: list[str]


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).replace(microsecond=0)


def bundle_serial(target_path: str) -> int | None:
    m = BUNDLE_PATTERN.fullmatch(target_path)
    return int(m.group(1)) if m else None


def target_from_info(path: str, info: TargetFile) -> PublishedTarget:
    custom = info.custom if isinstance(info.custom, dict) else {}
    serial = custom.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool):
        serial = bundle_serial(path) or 0
    return PublishedTarget(
        path=path, serial=serial, length=info.length, sha256=info.hashes.get("sha256", ""),
        created=str(custom.get("created", "")), commit=str(custom.get("commit", "")),
        rule_count=int(custom.get("rule_count", 0) or 0),
        rollout=Rollout.from_custom(custom.get("rollout")))


class UpdateRepository:
    """Create, publish into, refresh and re-key the repository folder."""

    def __init__(self, root: Path, keys: KeyRing):
        self.root = Path(root)
        self.keys = keys
        self._staging: Path | None = None      # set while a rotation stages its metadata
        self._staged: list[str] = []
        self.metadata_dir = self.root / "metadata"
        self.targets_dir = self.root / "targets"
        self.settings_path = self.root / "settings.json"

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> UpdateRepository:
        return cls(workspace.state / "repository", KeyRing(workspace.state / "keys"))

    @property
    def trusted_root(self) -> Path:
        """The root metadata towers pin (``trusted_root`` in their config)."""
        return self.metadata_dir / "root.json"

    def exists(self) -> bool:
        return self.trusted_root.is_file()

    @property
    def settings(self) -> RepositorySettings:
        return RepositorySettings.load(self.settings_path)

    # -- reading ---------------------------------------------------------------------

    def _read(self, name: str) -> Metadata[Any]:
        path = self.metadata_dir / name
        try:
            return Metadata.from_bytes(path.read_bytes())
        except FileNotFoundError:
            raise NoRepository(f"{path} is missing; run `workbench keys init` first") from None
        except (OSError, TufRepositoryError, ValueError) as exc:
            raise UpdateRepositoryError(f"{path} is unreadable: {exc}") from None

    def root_md(self) -> Metadata[Root]:
        return cast("Metadata[Root]", self._read("root.json"))

    def timestamp_md(self) -> Metadata[Timestamp]:
        return cast("Metadata[Timestamp]", self._read("timestamp.json"))

    def snapshot_md(self) -> Metadata[Snapshot]:
        version = self.timestamp_md().signed.snapshot_meta.version
        return cast("Metadata[Snapshot]", self._read(f"{version}.snapshot.json"))

    def targets_md(self) -> Metadata[Targets]:
        version = self.snapshot_md().signed.meta["targets.json"].version
        return cast("Metadata[Targets]", self._read(f"{version}.targets.json"))

    def targets(self) -> list[PublishedTarget]:
        """The published bundles, oldest serial first."""
        infos = self.targets_md().signed.targets
        return sorted((target_from_info(p, i) for p, i in infos.items()), key=lambda t: t.serial)

    def newest(self) -> PublishedTarget | None:
        listed = self.targets()
        return listed[-1] if listed else None

    def newest_serial(self) -> int | None:
        newest = self.newest()
        return newest.serial if newest else None

    def newest_for_all(self) -> PublishedTarget | None:
        """The newest target every tower may install (canary and halted releases left out)."""
        listed = [target_from_info(p, i) for p, i in self.targets_md().signed.targets.items()]
        offered = [t for t in listed if t.serial > 0
                   and (t.rollout is None or t.rollout.stage == "all")]
        return max(offered, key=lambda t: t.serial, default=None)

    def status(self, now: dt.datetime | None = None, *, verify: bool = True) -> RepositoryStatus:
        """Versions, expiries, key files, and (``verify``) the repository checked as a tower
        checks it: the root chain from version 1 and the top-level metadata, with the TUF
        client's own code, so "online" never hides keys a tower would refuse."""
        now = _now(now)
        root = self.root_md().signed
        signed: dict[str, Root | Targets | Snapshot | Timestamp] = {
            "root": root, "targets": self.targets_md().signed,
            "snapshot": self.snapshot_md().signed, "timestamp": self.timestamp_md().signed}
        roles, warnings = [], []
        for role in ROLES:
            s = signed[role]
            online = self.keys.has(role)
            trusted = None
            if online:
                try:
                    self.keys.signer(role, _role_keys(root, role))
                    trusted = True
                except KeyringError:
                    trusted = False
                    warnings.append(f"the {role} key file {self.keys.path(role)} is not a key the "
                                    "root trusts: towers refuse what it signs")
            roles.append(RoleStatus(role=role, version=s.version, expires=s.expires,
                                    keyids=list(root.roles[role].keyids),
                                    key_online=online, key_trusted=trusted))
            if s.expires <= now:
                warnings.append(f"{role} metadata expired at {shown(s.expires, seconds=False)}Z: "
                                + ("run `workbench keys renew-root`" if role == "root"
                                   else "run `workbench publish --refresh`"))
        if now < root.expires <= now + ROOT_WARNING:
            warnings.append(f"root metadata expires {utc_day(root.expires)}; bring the root key "
                            "online and run `workbench keys renew-root`")
        targets = self.targets()
        pending = self.pending_rotation()
        if pending:
            warnings.append(f"{pending}: the next `workbench publish --refresh` (or any publish "
                            "or rotate) finishes it")
        verify_error = verify_as_tower(self.root, now) if verify else ""
        return RepositoryStatus(path=self.root, trusted_root=self.trusted_root, roles=roles,
                                targets=targets,
                                newest_serial=targets[-1].serial if targets else None,
                                warnings=warnings, verified=not verify_error,
                                verify_error=verify_error, pending_rotation=pending)

    # -- writing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with file_lock(self.root / ".lock", wait=False):
                self._recover_rotation()
                yield
        except LockBusy:
            raise UpdateRepositoryError("another publish is running on this repository") from None

    def _write(self, name: str, md: Metadata[Any]) -> bytes:
        data = md.to_bytes(SERIALIZER)
        if self._staging is not None:
            atomic_write(self._staging / name, data)
            self._staged.append(name)
        else:
            atomic_write(self.metadata_dir / name, data)
        return data

    # -- key rotation: staged, then one commit marker, then applied (redone after a crash) --

    @property
    def _rotation_dir(self) -> Path:
        return self.root / ".rotation"

    @property
    def _rotating_keys(self) -> KeyRing:
        return KeyRing(self.keys.folder / ".rotating")

    def pending_rotation(self) -> str:
        """'' or what an interrupted ``keys rotate`` left (the next locked write resolves it)."""
        marker = self._rotation_dir / ROTATION_COMMIT
        if marker.is_file():
            with contextlib.suppress(OSError, ValueError):
                role = json.loads(marker.read_text(encoding="utf-8")).get("role", "?")
                return f"the rotation of the {role} key was committed but not finished"
            return "a rotation was committed but not finished"
        if self._rotation_dir.exists() or self._rotating_keys.folder.exists():
            return "a rotation was interrupted before its commit and will be rolled back"
        return ""

    def _recover_rotation(self) -> None:
        """Finish a committed rotation, or roll back one killed before its commit."""
        if (self._rotation_dir / ROTATION_COMMIT).is_file():
            self._apply_rotation()
        elif self._rotation_dir.exists() or self._rotating_keys.folder.exists():
            shutil.rmtree(self._rotation_dir, ignore_errors=True)
            shutil.rmtree(self._rotating_keys.folder, ignore_errors=True)

    def _apply_rotation(self) -> None:
        """Install the staged key, then the staged metadata in the order written (root first,
        timestamp last); idempotent, so a crash anywhere here is redone by the next run."""
        staging = self._rotation_dir
        plan = json.loads((staging / ROTATION_COMMIT).read_text(encoding="utf-8"))
        staged_key = self._rotating_keys.path(plan["role"])
        if staged_key.exists():
            os.replace(staged_key, self.keys.path(plan["role"]))
            fsync_path(self.keys.folder)
        crashpoints.step("rotate:key-installed")
        for name in plan["files"]:
            atomic_write(self.metadata_dir / name, (staging / name).read_bytes())
            if name == "root.json":
                crashpoints.step("rotate:root-written")
        fsync_path(self.metadata_dir)
        crashpoints.step("rotate:metadata-written")
        (staging / ROTATION_COMMIT).unlink()
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(self._rotating_keys.folder, ignore_errors=True)

    def _sign(self, md: Metadata[Any], signers: list[Signer]) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)

    def _online_signer(self, role: str, root: Root) -> Signer:
        try:
            return self.keys.signer(role, _role_keys(root, role))
        except KeyringError as exc:
            raise UpdateRepositoryError(str(exc)) from None

    def init(self, settings: RepositorySettings | None = None, *, now: dt.datetime | None = None,
             force: bool = False) -> InitResult:
        """Generate the four keys and the first version of every role."""
        now = _now(now)
        settings = settings or RepositorySettings()
        if self.exists() and not force:
            raise UpdateRepositoryError(f"a repository already exists at {self.root}; "
                                  "use `workbench keys rotate` to change keys")
        if force and self.root.exists():
            shutil.rmtree(self.root)
        with self._locked():
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            self.targets_dir.mkdir(parents=True, exist_ok=True)
            settings.save(self.settings_path)
            signers = {role: self.keys.generate(role, overwrite=force) for role in ROLES}
            root = Root(version=1, expires=now + settings.expiry.period("root"),
                        consistent_snapshot=True)
            for role, signer in signers.items():
                root.add_key(signer.public_key, role)
            root_md = Metadata(root)
            self._sign(root_md, [signers["root"]])
            self._write("1.root.json", root_md)
            self._write("root.json", root_md)
            targets_md = Metadata(Targets(version=1, expires=now + settings.expiry.period("targets")))
            self._sign(targets_md, [signers["targets"]])
            self._write("1.targets.json", targets_md)
            self._snapshot_and_timestamp(root, targets_md, settings, now, signers=signers)
            fsync_path(self.metadata_dir)
        return InitResult(path=self.root, trusted_root=self.trusted_root,
                          keyids={role: s.public_key.keyid for role, s in signers.items()})

    def _snapshot_and_timestamp(self, root: Root, targets_md: Metadata[Targets] | None,
                                settings: RepositorySettings, now: dt.datetime, *,
                                signers: Mapping[str, Signer] | None = None,
                                resign_snapshot: bool = True) -> dict[str, int]:
        """New snapshot (when asked) and a new timestamp pointing at it."""
        signers = signers or {}

        def signer(role: str) -> Signer:
            return signers.get(role) or self._online_signer(role, root)

        if resign_snapshot:
            previous = None
            with contextlib.suppress(UpdateRepositoryError):
                previous = self.snapshot_md()
            snapshot = Snapshot(version=(previous.signed.version + 1) if previous else 1,
                                expires=now + settings.expiry.period("snapshot"))
            targets_signed = targets_md.signed if targets_md else self.targets_md().signed
            snapshot.meta["targets.json"] = MetaFile(version=targets_signed.version)
            snapshot_md = Metadata(snapshot)
            self._sign(snapshot_md, [signer("snapshot")])
            snapshot_bytes = self._write(f"{snapshot.version}.snapshot.json", snapshot_md)
            crashpoints.step("publish:snapshot-written")      # also on refresh and rotate
        else:
            snapshot_md = self.snapshot_md()
            snapshot_bytes = snapshot_md.to_bytes(SERIALIZER)
            snapshot = snapshot_md.signed
        previous_ts = None
        with contextlib.suppress(UpdateRepositoryError):
            previous_ts = self.timestamp_md()
        timestamp = Timestamp(
            version=(previous_ts.signed.version + 1) if previous_ts else 1,
            expires=now + settings.expiry.period("timestamp"),
            snapshot_meta=MetaFile(version=snapshot.version, length=len(snapshot_bytes),
                                   hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()}))
        timestamp_md = Metadata(timestamp)
        self._sign(timestamp_md, [signer("timestamp")])
        self._write("timestamp.json", timestamp_md)
        return {"snapshot": snapshot.version, "timestamp": timestamp.version}

    def publish(self, bundle_path: Path, *, serial: int, created: str = "", commit: str = "",
                rule_count: int = 0, sha256: str | None = None,
                now: dt.datetime | None = None, canaries: tuple[str, ...] = ()) -> PublishResult:
        """Add a bundle as target ``signatures-<serial>.tar.gz`` and re-sign targets, snapshot, timestamp.

        The caller has checked the bundle (``open_bundle``) and passes what its manifest
        says. Serials only go up: an older serial would be refused by every tower, so it
        is refused here (a rollback is a new release with older content).
        """
        now = _now(now)
        settings = self.settings
        bundle_path = Path(bundle_path)
        actual = _sha256_file(bundle_path)
        if sha256 is not None and actual != sha256:
            raise UpdateRepositoryError(f"{bundle_path} changed after it was checked")
        sha256 = actual
        name = f"signatures-{serial}.tar.gz"
        with self._locked():
            root = self.root_md().signed
            targets_md = self.targets_md()
            listed = {t.serial: t for t in (target_from_info(p, i)
                                            for p, i in targets_md.signed.targets.items())}
            if serial in listed:
                if listed[serial].sha256 == sha256:
                    return PublishResult(target=listed[serial], already_published=True,
                                         versions=self._versions(), expires=self._expiries(),
                                         pruned=[])
                raise UpdateRepositoryError(f"serial {serial} is already published with different "
                                      "content; serials are never reused")
            newest = max(listed, default=0)
            if serial < newest:
                raise UpdateRepositoryError(
                    f"serial {serial} is older than the published {newest}; towers refuse "
                    "rollbacks. Make a new serial with the old content "
                    f"(`workbench release revert {serial}`) and publish that")
            self.targets_dir.mkdir(parents=True, exist_ok=True)
            stored = self.targets_dir / f"{sha256}.{name}"
            if not stored.exists():
                tmp = stored.with_name(f".{stored.name}.tmp")
                shutil.copyfile(bundle_path, tmp)
                fsync_path(tmp)
                if _sha256_file(tmp) != sha256:
                    tmp.unlink(missing_ok=True)
                    raise UpdateRepositoryError(f"{bundle_path} changed while it was copied")
                os.replace(tmp, stored)
                fsync_path(self.targets_dir)
            crashpoints.step("publish:target-stored")
            info = TargetFile.from_file(name, str(stored), ["sha256"])
            info.unrecognized_fields["custom"] = {
                "serial": serial, "created": created, "commit": commit, "rule_count": rule_count}
            if canaries:
                info.unrecognized_fields["custom"]["rollout"] = Rollout(
                    "canary", tuple(canaries), since=_iso(now)).to_custom()
            targets = targets_md.signed
            targets.targets[name] = info
            pruned = []
            keep = sorted(listed, reverse=True)[: max(settings.keep_releases - 1, 0)]
            for old_serial, old in listed.items():
                if old_serial not in keep:
                    del targets.targets[old.path]
                    pruned.append(old.path)
            targets.version += 1
            targets.expires = now + settings.expiry.period("targets")
            self._sign(targets_md, [self._online_signer("targets", root)])
            self._write(f"{targets.version}.targets.json", targets_md)
            crashpoints.step("publish:targets-written")
            self._snapshot_and_timestamp(root, targets_md, settings, now)
            fsync_path(self.metadata_dir)
            crashpoints.step("publish:timestamp-written")
            self._prune(settings)
            target = target_from_info(name, info)
        return PublishResult(target=target, already_published=False, versions=self._versions(),
                             expires=self._expiries(), pruned=pruned)

    def set_rollout(self, serial: int, stage: str, *, reason: str = "",
                    now: dt.datetime | None = None) -> PublishedTarget:
        """Promote (``all``) or halt (``halted``) a canary release: its signed rollout changes,
        and targets, snapshot and timestamp are re-signed (towers see it on their next look)."""
        if stage not in ("all", "halted"):
            raise UpdateRepositoryError(f"a rollout can be promoted (all) or halted, not {stage!r}",
                                        kind=Kind.USAGE)
        now = _now(now)
        settings = self.settings
        with self._locked():
            root = self.root_md().signed
            targets_md = self.targets_md()
            path = f"signatures-{serial}.tar.gz"
            info = targets_md.signed.targets.get(path)
            current = target_from_info(path, info).rollout if info is not None else None
            if info is None or current is None:
                raise UpdateRepositoryError(f"serial {serial} is not a canary release")
            if current.stage != "canary":
                raise UpdateRepositoryError(f"serial {serial} was already {current.stage}"
                                            + (f": {current.reason}" if current.reason else ""))
            custom = dict(info.unrecognized_fields.get("custom") or {})
            custom["rollout"] = Rollout(stage, current.canaries, since=_iso(now),
                                        reason=reason[:500]).to_custom()
            info.unrecognized_fields["custom"] = custom
            targets = targets_md.signed
            targets.version += 1
            targets.expires = now + settings.expiry.period("targets")
            self._sign(targets_md, [self._online_signer("targets", root)])
            self._write(f"{targets.version}.targets.json", targets_md)
            self._snapshot_and_timestamp(root, targets_md, settings, now)
            fsync_path(self.metadata_dir)
            self._prune(settings)
            return target_from_info(path, info)

    def refresh(self, *, now: dt.datetime | None = None, force_all: bool = False) -> RefreshResult:
        """Re-sign the timestamp, and snapshot/targets when half their lifetime is gone.

        Run it from cron (hourly is plenty): a quiet week must not look like a freeze
        attack to the towers.
        """
        now = _now(now)
        settings = self.settings
        with self._locked():
            root = self.root_md().signed
            resigned = []
            targets_md = self.targets_md()
            if force_all or _due(targets_md.signed.expires, settings.expiry.period("targets"), now):
                targets_md.signed.version += 1
                targets_md.signed.expires = now + settings.expiry.period("targets")
                self._sign(targets_md, [self._online_signer("targets", root)])
                self._write(f"{targets_md.signed.version}.targets.json", targets_md)
                resigned.append("targets")
            snapshot_due = (bool(resigned) or force_all
                            or _due(self.snapshot_md().signed.expires,
                                    settings.expiry.period("snapshot"), now))
            if snapshot_due:
                resigned.append("snapshot")
            self._snapshot_and_timestamp(root, targets_md, settings, now,
                                         resign_snapshot=snapshot_due)
            resigned.append("timestamp")
            fsync_path(self.metadata_dir)
            self._prune(settings)
        warnings = [w for w in self.status(now, verify=False).warnings if w.startswith("root")]
        return RefreshResult(resigned=resigned, versions=self._versions(),
                             expires=self._expiries(), warnings=warnings)

    def rotate(self, role: str, *, root_key: Path | None = None,
               now: dt.datetime | None = None) -> RotateResult:
        """Replace ``role``'s key: a new root version, signed by the root key(s), then re-sign.

        Rotating the root signs the new root with the old and the new root key, so a
        tower that trusts the old one accepts the new one and then trusts only it.
        """
        if role not in ROLES:
            raise UpdateRepositoryError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        now = _now(now)
        settings = self.settings
        with self._locked():
            root_md = self.root_md()
            root = root_md.signed
            old_root_signer = self._root_signer(root, root_key)
            old_keyids = list(root.roles[role].keyids)
            # 1. stage: the new key and every re-signed file, beside the live ones
            new_signer = self._generate_replacement(role)
            for keyid in old_keyids:
                root.revoke_key(keyid, role)
            root.add_key(new_signer.public_key, role)
            signers: list[Signer] = [old_root_signer]
            if role == "root":
                signers.append(new_signer)
            staging = self._rotation_dir
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            self._staging, self._staged = staging, []
            try:
                self._next_root(root_md, signers, settings, now)
                resigned = self._resign_after_rotation(role, root, settings, now, new_signer)
            finally:
                self._staging = None
            fsync_path(staging)
            crashpoints.step("rotate:staged")
            # 2. the switch: from this marker on, the rotation is finished, never undone
            atomic_write(staging / ROTATION_COMMIT,
                         json.dumps({"role": role, "files": self._staged}))
            crashpoints.step("rotate:committed")
            # 3. apply (a crash from here is redone by the next run's _recover_rotation)
            self._apply_rotation()
        return RotateResult(role=role, old_keyids=old_keyids, new_keyid=new_signer.public_key.keyid,
                            root_version=root.version, resigned=resigned)

    def renew_root(self, *, root_key: Path | None = None,
                   now: dt.datetime | None = None) -> RoleStatus:
        """Sign a new root version with a fresh expiry (same keys)."""
        now = _now(now)
        settings = self.settings
        with self._locked():
            root_md = self.root_md()
            root = root_md.signed
            self._next_root(root_md, [self._root_signer(root, root_key)], settings, now)
            # A fresh timestamp makes towers notice the new root on their next poll.
            self._snapshot_and_timestamp(root, None, settings, now, resign_snapshot=False)
            fsync_path(self.metadata_dir)
        return RoleStatus(role="root", version=root.version, expires=root.expires,
                          keyids=list(root.roles["root"].keyids), key_online=self.keys.has("root"))

    def _root_signer(self, root: Root, root_key: Path | None) -> Signer:
        try:
            return self.keys.signer("root", _role_keys(root, "root"), path=root_key)
        except KeyringError as exc:
            raise UpdateRepositoryError(str(exc)) from None

    def _next_root(self, root_md: Metadata[Root], signers: list[Signer],
                   settings: RepositorySettings, now: dt.datetime) -> None:
        """Version + 1, a fresh expiry, signed; kept as ``<N>.root.json`` and ``root.json``."""
        root = root_md.signed
        root.version += 1
        root.expires = now + settings.expiry.period("root")
        self._sign(root_md, signers)
        self._write(f"{root.version}.root.json", root_md)
        self._write("root.json", root_md)

    def _generate_replacement(self, role: str) -> Signer:
        staged = self._rotating_keys
        staged.retire(role)
        return staged.generate(role)

    def _resign_after_rotation(self, role: str, root: Root, settings: RepositorySettings,
                               now: dt.datetime, new_signer: Signer) -> list[str]:
        resigned = []
        targets_md = None
        if role == "targets":
            targets_md = self.targets_md()
            targets_md.signed.version += 1
            targets_md.signed.expires = now + settings.expiry.period("targets")
            self._sign(targets_md, [new_signer])
            self._write(f"{targets_md.signed.version}.targets.json", targets_md)
            resigned.append("targets")
        resign_snapshot = role in ("targets", "snapshot")
        self._snapshot_and_timestamp(root, targets_md, settings, now,
                                     signers={role: new_signer} if role != "root" else None,
                                     resign_snapshot=resign_snapshot)
        return [*resigned, *(["snapshot"] if resign_snapshot else []), "timestamp"]

    def _versions(self) -> dict[str, int]:
        return {"root": self.root_md().signed.version, "targets": self.targets_md().signed.version,
                "snapshot": self.snapshot_md().signed.version,
                "timestamp": self.timestamp_md().signed.version}

    def _expiries(self) -> dict[str, dt.datetime]:
        return {"root": self.root_md().signed.expires, "targets": self.targets_md().signed.expires,
                "snapshot": self.snapshot_md().signed.expires,
                "timestamp": self.timestamp_md().signed.expires}

    def _prune(self, settings: RepositorySettings) -> None:
        """Drop snapshot/targets versions and bundle files no retained metadata refers to."""
        keep = max(settings.keep_metadata_versions, 1)
        current = {"snapshot": self.snapshot_md().signed.version,
                   "targets": self.targets_md().signed.version}
        referenced: set[str] = set()
        for path in self.metadata_dir.glob("*.json"):
            parts = path.name.split(".")
            if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in current:
                continue
            if int(parts[0]) <= current[parts[1]] - keep:
                path.unlink(missing_ok=True)
            elif parts[1] == "targets":
                with contextlib.suppress(Exception):
                    md = Metadata.from_bytes(path.read_bytes())
                    for name, info in cast("Targets", md.signed).targets.items():
                        referenced.add(f"{info.hashes.get('sha256', '')}.{name}")
        if self.targets_dir.is_dir():
            for path in self.targets_dir.iterdir():
                if path.is_file() and not path.name.startswith(".") and path.name not in referenced:
                    path.unlink(missing_ok=True)


class _LocalFetcher(FetcherInterface):
    """The repository folder as a tower's fetcher sees a server: a missing file is a 404."""

    def __init__(self, root: Path):
        self.root = root

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = url.removeprefix(_VERIFY_URL)
        folder, _, name = path.partition("/")
        if folder not in ("metadata", "targets") or "/" in name or name.startswith("."):
            raise DownloadHTTPError(f"{url}: not found", 404)
        try:
            return iter([(self.root / folder / name).read_bytes()])
        except FileNotFoundError:
            raise DownloadHTTPError(f"{url}: not found", 404) from None
        except OSError as exc:
            raise DownloadError(f"{url}: {exc}") from None


_VERIFY_URL = "http://repository.invalid/"


def verify_as_tower(root: Path, now: dt.datetime | None = None) -> str:
    """'' if a tower that pinned ``1.root.json`` accepts the repository folder; else its refusal.

    The TUF client (``tuf.ngclient.Updater``) walks the root chain, then loads timestamp,
    snapshot and targets with their signatures, versions, hashes and expiry, and each listed
    bundle file must be there with its signed length.
    """
    import tempfile

    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient import Updater

    root = Path(root)
    try:
        first = (root / "metadata" / "1.root.json").read_bytes()
    except OSError as exc:
        return f"cannot read 1.root.json: {exc.strerror or exc}"
    with tempfile.TemporaryDirectory(prefix="wb-verify-") as tmp:
        try:
            updater = Updater(tmp, _VERIFY_URL + "metadata/", target_dir=tmp,
                              target_base_url=_VERIFY_URL + "targets/",
                              fetcher=_LocalFetcher(root), bootstrap=first)
            updater.refresh()
            md = cast("Metadata[Targets]", Metadata.from_bytes(
                (Path(tmp) / "targets.json").read_bytes()))
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError, OSError) as exc:
            return f"a tower refuses this repository: {exc}"
    for name, info in md.signed.targets.items():
        stored = root / "targets" / f"{info.hashes.get('sha256', '')}.{name}"
        try:
            size = stored.stat().st_size
        except OSError:
            return f"target {name} is listed but {stored.name} is missing"
        if size != info.length:
            return f"target {name}: {stored.name} is {size} bytes, signed as {info.length}"
    return ""


def publish_bundle(repo: UpdateRepository, bundle_path: Path, *,
                   now: dt.datetime | None = None, canaries: tuple[str, ...] = ()) -> PublishResult:
    """Check a release bundle (manifest and every member's hash) and publish it."""
    try:
        bundle = open_bundle(bundle_path)
    except BundleError as exc:
        raise InvalidBundle(f"{bundle_path} is not a valid bundle: {exc.reason}") from None
    m = bundle.manifest
    return repo.publish(bundle.path, serial=m.serial, created=m.created, commit=m.commit,
                        rule_count=m.rule_count, sha256=bundle.sha256, now=now, canaries=canaries)


def _role_keys(root: Root, role: str) -> list[Key]:
    return [root.keys[k] for k in root.roles[role].keyids]


def _due(expires: dt.datetime, period: dt.timedelta, now: dt.datetime) -> bool:
    return expires - now < period * REFRESH_FRACTION


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()



