"""Atomic writes: old or new content, never half; secrets never readable by others."""

from __future__ import annotations

import os
import stat

import pytest

from workbench.durable import atomic_write, fsync_path


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "state.json"
    atomic_write(target, "one")
    atomic_write(target, b"two", sync_folder=True)
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_secret_mode_is_set_before_writing(tmp_path):
    target = atomic_write(tmp_path / "token", "s3cret", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    target = atomic_write(tmp_path / "f", "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_fsync_path_takes_files_and_folders(tmp_path):
    (tmp_path / "x").write_text("x")
    fsync_path(tmp_path / "x")
    fsync_path(tmp_path)
