"""Repository file lookup: only metadata/ and targets/ files, strong ETags that follow changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from workbench.distribute.files import CACHE_IMMUTABLE, CACHE_MUTABLE, RepositoryFiles, etag_matches


@pytest.fixture
def files(tmp_path: Path) -> RepositoryFiles:
    for folder in ("metadata", "targets"):
        (tmp_path / folder).mkdir()
    (tmp_path / "metadata" / "timestamp.json").write_bytes(b'{"v":1}')
    (tmp_path / "metadata" / "3.targets.json").write_bytes(b'{"t":3}')
    (tmp_path / "metadata" / ".timestamp.json.12.tmp").write_bytes(b"partial")
    (tmp_path / "settings.json").write_bytes(b"{}")
    (tmp_path / "targets" / "sub").mkdir()
    os.symlink("/etc/passwd", tmp_path / "targets" / "link.tar.gz")
    return RepositoryFiles(tmp_path)


def test_serves_files_with_content_etag_and_cache_policy(files: RepositoryFiles) -> None:
    ts = files.lookup("metadata/timestamp.json")
    assert ts is not None and ts.data == b'{"v":1}' and ts.content_type == "application/json"
    digest = hashlib.sha256(b'{"v":1}').hexdigest()
    assert ts.etag == f'"{digest}"'
    assert ts.cache_control == CACHE_MUTABLE
    versioned = files.lookup("metadata/3.targets.json")
    assert versioned is not None and versioned.cache_control == CACHE_IMMUTABLE


@pytest.mark.parametrize("path", [
    "settings.json", "metadata/../settings.json", "metadata/.timestamp.json.12.tmp",
    "targets/sub", "targets/link.tar.gz", "metadata", "metadata/", "/etc/passwd",
    "metadata/missing.json", "keys/root.pem", "metadata/a/b.json",
])
def test_refuses_everything_else(files: RepositoryFiles, path: str) -> None:
    assert files.lookup(path) is None


def test_etag_follows_a_rewrite(files: RepositoryFiles, tmp_path: Path) -> None:
    before = files.lookup("metadata/timestamp.json")
    tmp = tmp_path / "metadata" / "new"
    tmp.write_bytes(b'{"v":2}')
    os.replace(tmp, tmp_path / "metadata" / "timestamp.json")
    after = files.lookup("metadata/timestamp.json")
    assert before is not None and after is not None
    assert after.etag != before.etag and after.data == b'{"v":2}'


@pytest.mark.parametrize(("header", "match"), [
    ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True),
    ('"abd"', False), ("", False), ('"ab"', False),
])
def test_if_none_match(header: str, match: bool) -> None:
    assert etag_matches(header, '"abc"') is match
