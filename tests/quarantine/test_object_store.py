"""The content-addressed store: layout, atomic writes, read-only objects, dedup, verification."""

from __future__ import annotations

import hashlib
import io
import os
import stat

import pytest

from workbench.quarantine.object_store import ObjectNotFound, ObjectStore


@pytest.fixture
def store(tmp_path):
    return ObjectStore(tmp_path / "q").ensure()


def test_put_bytes_lays_out_split_directories_and_keeps_bytes(store):
    data = b"From: a@b.c\r\nSubject: x\r\n\r\n\x00\xffbody"
    result = store.put_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert result.sha256 == sha and result.created and result.size == len(data)
    path = store.path_for(sha)
    assert path.relative_to(store.root).parts == ("objects", sha[:2], sha[2:4], sha)
    assert path.read_bytes() == data
    assert store.read(sha) == data


def test_objects_are_read_only_and_temp_folder_is_empty(store):
    for sha in (store.put_bytes(b"abc").sha256, store.put_stream(io.BytesIO(b"stream")).sha256):
        mode = store.path_for(sha).stat().st_mode
        assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list(store.tmp.iterdir()) == []


def test_a_split_folder_removed_under_a_running_store_is_made_again(store):
    """The store remembers the folders it made; one deleted behind its back still works."""
    first = store.put_bytes(b"one").sha256
    folder = store.path_for(first).parent
    store.remove(first)
    folder.rmdir()
    folder.parent.rmdir()
    assert store.put_bytes(b"one").created and store.read(first) == b"one"


def test_duplicate_put_is_not_stored_twice(store):
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    assert first.created and not second.created
    assert list(store.iter_objects()) == [first.sha256]


def test_damaged_object_is_replaced_by_a_good_copy(store):
    sha = store.put_bytes(b"original content").sha256
    path = store.path_for(sha)
    os.chmod(path, 0o644)
    path.write_bytes(b"short")
    assert not store.verify(sha)
    assert store.put_bytes(b"original content").created
    assert store.verify(sha)


def test_put_stream_hashes_while_copying_and_enforces_a_limit(store):
    data = os.urandom(3 * 1024 * 1024 + 17)
    result = store.put_stream(io.BytesIO(data))
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read(result.sha256) == data
    with pytest.raises(ValueError, match="larger than"):
        store.put_stream(io.BytesIO(data), max_bytes=1024)
    assert list(store.tmp.iterdir()) == []      # the refused write left nothing behind


def test_missing_object_raises_object_not_found(store):
    with pytest.raises(ObjectNotFound):
        store.read("0" * 64)
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")


def test_clean_tmp_only_removes_old_leftovers(store):
    young = store.tmp / "put-young"
    old = store.tmp / "put-old"
    young.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert store.clean_tmp() == 1
    assert young.exists() and not old.exists()


def test_resolve_takes_a_unique_prefix(store):
    sha = store.put_bytes(b"artifact").sha256
    assert store.resolve(sha[:6]) == sha
    assert store.resolve(sha.upper()) == sha
    with pytest.raises(ObjectNotFound, match="4\\+ hex"):
        store.resolve("ab")
    with pytest.raises(ObjectNotFound, match="no stored object"):
        store.resolve("ffff")


@pytest.mark.slow
def test_resolve_refuses_an_ambiguous_prefix(store):
    shas = [store.put_bytes(b"x%d" % n).sha256 for n in range(5000)]
    by_four = {}
    for sha in shas:
        by_four.setdefault(sha[:4], []).append(sha)
    prefix = next(p for p, group in by_four.items() if len(group) > 1)
    with pytest.raises(ObjectNotFound, match="give more characters"):
        store.resolve(prefix)
