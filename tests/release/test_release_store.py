"""The release store: serials only go up, releases appear whole, records read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bundle_sources import COMMIT, CREATED, prepare_sample
from workbench.release.bundle import BundleError, open_bundle
from workbench.release.changelog import Changelog, RuleChange, RuleState
from workbench.release.release_store import ReleaseNotFound, ReleaseStore
from workbench.workspace import Workspace


@pytest.fixture(scope="module")
def prepared():
    return prepare_sample()


RULESET = [RuleState("MAL_Eicar_TestFile", "rules/malware/eicar.yar", "RELEASED", "1", "f1", True)]


def _add(store: ReleaseStore, prepared, serial: int, **kw):
    return store.add(prepared, serial=serial, commit=COMMIT, created=CREATED, message=f"release {serial}",
                     changelog=Changelog(previous_serial=None, added=[RuleChange("MAL_Eicar_TestFile",
                                         "rules/malware/eicar.yar", "RELEASED", "1")]),
                     ruleset=RULESET, **kw)


def test_serials_only_go_up(workspace: Workspace) -> None:
    store = ReleaseStore(workspace)
    assert store.peek_next_serial() == 1
    assert store.next_serial() == 1
    assert store.next_serial() == 2          # 1 was handed out (say, that release failed): never reused
    assert store.peek_next_serial() == 3
    assert store.next_serial(floor=10) == 11   # e.g. git already has tag signatures-10
    assert ReleaseStore(workspace).next_serial() == 12


def test_add_get_list_latest(workspace: Workspace, prepared) -> None:
    store = ReleaseStore(workspace)
    assert store.list() == [] and store.latest() is None
    first = _add(store, prepared, store.next_serial())
    second = _add(store, prepared, store.next_serial(), reverts=1)
    assert [r.serial for r in store.list()] == [1, 2]
    assert store.latest().serial == 2
    got = store.get(2)
    assert got.reverts == 2 - 1 and got.message == "release 2" and got.tag == "signatures-2"
    assert got.bundle_path == workspace.state / "releases" / "signatures-2" / "signatures-2.tar.gz"
    assert open_bundle(got.bundle_path).sha256 == got.bundle_sha256
    assert got.manifest.serial == 2 and got.manifest.commit == COMMIT
    assert got.changelog.added[0].name == "MAL_Eicar_TestFile"
    assert got.ruleset == RULESET
    assert got.created == "2026-11-02T09:30:00Z" and got.rule_count == 3
    assert first.bundle_sha256 != second.bundle_sha256        # the serial is inside the manifest


def test_add_refuses_unreserved_or_existing_serials(workspace: Workspace, prepared) -> None:
    store = ReleaseStore(workspace)
    with pytest.raises(BundleError, match="not reserved"):
        _add(store, prepared, 1)
    serial = store.next_serial()
    _add(store, prepared, serial)
    with pytest.raises(BundleError, match="already exists"):
        _add(store, prepared, serial)
    assert [p.name for p in (workspace.state / "releases").iterdir() if p.name.startswith(".signatures")] == []


def test_a_failed_write_leaves_no_release(workspace: Workspace, prepared, monkeypatch) -> None:
    store = ReleaseStore(workspace)
    serial = store.next_serial()

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(type(prepared), "write", broken)
    with pytest.raises(OSError):
        _add(store, prepared, serial)
    assert store.list() == []
    assert store.next_serial() == serial + 1
    assert not any(Path(workspace.state / "releases").glob(".signatures-*"))


def test_unknown_serial(workspace: Workspace) -> None:
    with pytest.raises(ReleaseNotFound):
        ReleaseStore(workspace).get(5)
