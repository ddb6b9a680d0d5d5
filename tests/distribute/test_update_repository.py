"""The TUF repository: layout, publish, refresh, retention, key rotation, checked by a real TUF client."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from workbench.distribute.settings import ExpiryPolicy, RepositorySettings
from workbench.distribute.update_repository import (
    InvalidBundle,
    NoRepository,
    UpdateRepository,
    UpdateRepositoryError,
    publish_bundle,
)
from workbench.workspace import Workspace


class FileFetcher(FetcherInterface):
    """A TUF fetcher over the repository folder, so tests check what a tower would."""

    def __init__(self, root: Path):
        self.root = root

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.root / url.removeprefix("repo://")
        if not path.is_file():
            raise tuf_errors.DownloadHTTPError(f"{url}: not found", 404)
        return iter([path.read_bytes()])


def client(repo: UpdateRepository, tmp: Path, root: bytes | None = None) -> Updater:
    tmp.mkdir(parents=True, exist_ok=True)
    return Updater(str(tmp), "repo://metadata/", target_dir=str(tmp),
                   target_base_url="repo://targets/", fetcher=FileFetcher(repo.root),
                   bootstrap=root if root is not None else repo.trusted_root.read_bytes())


def test_init_writes_signed_consistent_snapshot_layout(workspace: Workspace) -> None:
    repo = UpdateRepository.for_workspace(workspace)
    result = repo.init(RepositorySettings())
    names = sorted(p.name for p in repo.metadata_dir.iterdir())
    assert names == ["1.root.json", "1.snapshot.json", "1.targets.json", "root.json", "timestamp.json"]
    root = Metadata.from_bytes(repo.trusted_root.read_bytes()).signed
    assert root.consistent_snapshot is True
    assert set(result.keyids) == {"root", "targets", "snapshot", "timestamp"}
    assert all(repo.keys.has(role) for role in result.keyids)
    with pytest.raises(UpdateRepositoryError, match="already exists"):
        repo.init()
    assert repo.newest_serial() is None


def test_expiry_periods_come_from_the_settings(workspace: Workspace) -> None:
    repo = UpdateRepository.for_workspace(workspace)
    now = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
    repo.init(RepositorySettings(expiry=ExpiryPolicy(timestamp=3600, snapshot=2 * 86400,
                                                     targets=3 * 86400, root=30 * 86400)), now=now)
    expires = {r.role: r.expires for r in repo.status(now).roles}
    assert expires == {"root": now + dt.timedelta(days=30), "targets": now + dt.timedelta(days=3),
                       "snapshot": now + dt.timedelta(days=2), "timestamp": now + dt.timedelta(hours=1)}


def test_publish_adds_a_target_a_tuf_client_accepts(repo: UpdateRepository, bundles: dict,
                                                    tmp_path: Path) -> None:
    result = publish_bundle(repo, bundles[1])
    assert result.target.serial == 1 and result.target.rule_count == 1
    assert result.versions == {"root": 1, "targets": 2, "snapshot": 2, "timestamp": 2}
    stored = repo.targets_dir / result.target.file_name
    assert stored.read_bytes() == bundles[1].read_bytes()
    updater = client(repo, tmp_path / "client")
    updater.refresh()
    info = updater.get_targetinfo("signatures-1.tar.gz")
    assert info is not None and info.custom["serial"] == 1
    downloaded = updater.download_target(info)
    assert Path(downloaded).read_bytes() == bundles[1].read_bytes()


def test_publishing_the_same_bundle_again_is_a_no_op(repo: UpdateRepository, bundles: dict) -> None:
    publish_bundle(repo, bundles[1])
    before = repo.timestamp_md().signed.version
    again = publish_bundle(repo, bundles[1])
    assert again.already_published
    assert repo.timestamp_md().signed.version == before


def test_serials_only_go_up(repo: UpdateRepository, bundles: dict) -> None:
    publish_bundle(repo, bundles[2])
    with pytest.raises(UpdateRepositoryError, match=r"older than the published 2.*release revert"):
        publish_bundle(repo, bundles[1])
    with pytest.raises(UpdateRepositoryError, match="never reused"):
        repo.publish(bundles[3], serial=2)        # other content under a published serial
    assert [t.serial for t in repo.targets()] == [2]


def test_an_invalid_bundle_is_not_published(repo: UpdateRepository, tmp_path: Path) -> None:
    fake = tmp_path / "signatures-9.tar.gz"
    fake.write_bytes(b"not a tar")
    with pytest.raises(InvalidBundle):
        publish_bundle(repo, fake)
    assert repo.targets() == [] and list(repo.targets_dir.iterdir()) == []


def test_missing_repository_says_run_keys_init(workspace: Workspace) -> None:
    with pytest.raises(NoRepository, match="keys init"):
        UpdateRepository.for_workspace(workspace).targets()


def test_retention_drops_old_targets_and_metadata(workspace: Workspace, bundles: dict) -> None:
    repo = UpdateRepository.for_workspace(workspace)
    repo.init(RepositorySettings(keep_releases=2, keep_metadata_versions=2))
    for serial in (1, 2, 3):
        publish_bundle(repo, bundles[serial])
    assert [t.serial for t in repo.targets()] == [2, 3]
    files = sorted(p.name.split(".", 1)[1] for p in repo.targets_dir.iterdir())
    # serial 1 is still referenced by the previous (retained) targets version
    assert files == ["signatures-1.tar.gz", "signatures-2.tar.gz", "signatures-3.tar.gz"]
    repo.refresh(force_all=True)
    files = sorted(p.name.split(".", 1)[1] for p in repo.targets_dir.iterdir())
    assert files == ["signatures-2.tar.gz", "signatures-3.tar.gz"]
    versions = sorted(p.name for p in repo.metadata_dir.glob("*.targets.json"))
    assert versions == ["4.targets.json", "5.targets.json"]


def test_refresh_resigns_timestamp_and_what_is_due(repo: UpdateRepository, bundles: dict) -> None:
    publish_bundle(repo, bundles[1])
    now = dt.datetime.now(dt.UTC)
    first = repo.refresh(now=now)
    assert first.resigned == ["timestamp"]
    # five days later snapshot and targets (7 days) have under half their lifetime left
    later = repo.refresh(now=now + dt.timedelta(days=5))
    assert later.resigned == ["targets", "snapshot", "timestamp"]
    assert later.expires["targets"] > now + dt.timedelta(days=11)
    assert later.expires["timestamp"] > now + dt.timedelta(days=5, hours=23)
    assert [t.serial for t in repo.targets()] == [1]


def test_status_warns_about_expired_metadata(repo: UpdateRepository) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    warnings = repo.status(later).warnings
    assert any(w.startswith("timestamp metadata expired") and "publish --refresh" in w
               for w in warnings)
    soon_root = dt.datetime.now(dt.UTC) + dt.timedelta(days=350)
    assert any("renew-root" in w for w in repo.status(soon_root).warnings)


def test_rotating_the_timestamp_key_is_followed_by_clients(repo: UpdateRepository, bundles: dict,
                                                           tmp_path: Path) -> None:
    publish_bundle(repo, bundles[1])
    pinned = repo.trusted_root.read_bytes()
    client(repo, tmp_path / "c").refresh()
    old_key = repo.keys.path("timestamp").read_bytes()
    result = repo.rotate("timestamp")
    assert result.root_version == 2 and result.resigned == ["timestamp"]
    assert repo.keys.path("timestamp").read_bytes() != old_key
    # a client that pinned root v1 walks to v2 and accepts the timestamp signed by the new key
    updater = client(repo, tmp_path / "c", root=pinned)
    updater.refresh()
    assert updater.get_targetinfo("signatures-1.tar.gz") is not None


def test_rotating_the_root_key_signs_with_old_and_new(repo: UpdateRepository, tmp_path: Path) -> None:
    pinned = repo.trusted_root.read_bytes()
    repo.rotate("root")
    new_root = Metadata.from_bytes(repo.trusted_root.read_bytes())
    assert new_root.signed.version == 2 and len(new_root.signatures) == 2
    client(repo, tmp_path / "c", root=pinned).refresh()      # the chain verifies


def test_the_root_key_can_live_offline(repo: UpdateRepository, bundles: dict, tmp_path: Path) -> None:
    offline = tmp_path / "usb" / "root.pem"
    offline.parent.mkdir()
    repo.keys.path("root").rename(offline)
    publish_bundle(repo, bundles[1])                 # publishing needs no root key
    repo.refresh()
    with pytest.raises(UpdateRepositoryError, match="--root-key"):
        repo.renew_root()
    renewed = repo.renew_root(root_key=offline)
    assert renewed.version == 2 and not renewed.key_online
    client(repo, tmp_path / "c").refresh()


def test_metadata_files_are_compact_json(repo: UpdateRepository) -> None:
    data = (repo.metadata_dir / "timestamp.json").read_bytes()
    assert b"\n" not in data and json.loads(data)["signed"]["_type"] == "timestamp"
    assert len(data) < 600          # a full (non-304) poll stays small
