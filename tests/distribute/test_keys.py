"""Signing keys: private files, trust checks, the offline root key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from workbench.distribute.keys import KeyRing, KeyringError


def test_generated_keys_are_private_and_not_overwritten(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    signer = ring.generate("targets")
    assert stat.S_IMODE(ring.path("targets").stat().st_mode) == 0o600
    assert stat.S_IMODE(ring.folder.stat().st_mode) == 0o700
    with pytest.raises(KeyringError, match="refusing to overwrite"):
        ring.generate("targets")
    loaded = ring.signer("targets", [signer.public_key])
    assert loaded.public_key.keyid == signer.public_key.keyid


def test_a_key_the_root_does_not_trust_is_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.generate("snapshot")
    other = KeyRing(tmp_path / "other").generate("snapshot")
    with pytest.raises(KeyringError, match="not a snapshot key this repository's root trusts"):
        ring.signer("snapshot", [other.public_key])


def test_missing_root_key_points_at_the_offline_option(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    with pytest.raises(KeyringError, match="--root-key"):
        ring.signer("root", [])
    with pytest.raises(KeyringError, match="unknown role"):
        ring.path("mirror")


def test_garbage_key_file_is_a_clear_error(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.folder.mkdir()
    ring.path("timestamp").write_text("not a key")
    with pytest.raises(KeyringError, match="cannot read the timestamp key"):
        ring.signer("timestamp", [])
