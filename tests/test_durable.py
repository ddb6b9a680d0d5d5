"""Atomic writes: old or new content, never half; secrets never readable by others."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from workbench.durable import LockBusy, atomic_write, file_lock, fsync_path


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


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (./dev test installs it)")
def test_fsync_path_takes_files_and_folders(tmp_path):
    """A real process under strace: each path is opened read-only and that descriptor is
    fsynced, then closed (a folder's fsync is what makes a rename in it durable)."""
    target = tmp_path / "x"
    target.write_text("x")
    trace = tmp_path / "trace"
    code = ("import sys; from workbench.durable import fsync_path; "
            "fsync_path(sys.argv[1]); fsync_path(sys.argv[2])")
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,open,fsync,close", "-o", str(trace),
                    sys.executable, "-c", code, str(target), str(tmp_path)], check=True, timeout=120)
    calls = trace.read_text().splitlines()
    for path in (target, tmp_path):
        opened = [line for line in calls if f'"{path}"' in line and "O_RDONLY" in line]
        assert len(opened) == 1, (path, opened)
        fd = opened[0].rsplit("= ", 1)[1].strip()
        after = calls[calls.index(opened[0]) + 1:]
        assert any(re.search(rf"fsync\({fd}\)\s+= 0", line) for line in after), (path, after[:5])
        assert any(re.search(rf"close\({fd}\)\s+= 0", line) for line in after), (path, after[:5])
    assert target.read_text() == "x"


def test_fsync_path_of_a_missing_path_says_so(tmp_path):
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing")


def test_file_lock_excludes_a_second_holder_and_frees_on_exit(tmp_path):
    lock = tmp_path / "state" / "x.lock"
    with file_lock(lock), pytest.raises(LockBusy), file_lock(lock, wait=False):
        pass
    with file_lock(lock, wait=False):    # released: free again
        pass


def test_file_lock_is_released_when_the_holder_dies(tmp_path):
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from workbench.durable import file_lock\n"
         f"with file_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy), file_lock(lock, wait=False):
            pass
    finally:
        holder.kill()
        holder.wait()
    with file_lock(lock, wait=False):
        pass


def test_atomic_output_streams_and_never_opens_a_planted_name(tmp_path):
    from workbench.durable import atomic_output

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    out = tmp_path / "out.zip"
    (tmp_path / "out.zip.part").symlink_to(victim)
    with atomic_output(out, mode=0o600) as fh:
        fh.write(b"zip bytes")
        fh.seek(0)                       # a zip writer seeks back to patch headers
        fh.write(b"ZIP")
    assert out.read_bytes() == b"ZIP bytes" and victim.read_bytes() == b"keep"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with pytest.raises(RuntimeError), atomic_output(out) as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    assert out.read_bytes() == b"ZIP bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "out.zip.part", "victim"]


def test_shared_locks_admit_each_other_and_exclude_an_exclusive_one(tmp_path):
    lock = tmp_path / "index.lock"
    with file_lock(lock, shared=True), file_lock(lock, shared=True), \
            pytest.raises(LockBusy), file_lock(lock, wait=False):
        pass
    with file_lock(lock, wait=False):
        pass


def test_crash_point_kills_the_process_only_at_the_named_pass(tmp_path):
    code = ("from workbench.durable import crash_point\n"
            "for n in range(5):\n"
            "    crash_point('other'); crash_point('step')\n"
            "    print(n, flush=True)\n")
    env = {**os.environ, "WORKBENCH_CRASH_AT": "step@3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == -9 and done.stdout.split() == ["0", "1"]
    env["WORKBENCH_CRASH_AT"] = ""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and len(done.stdout.split()) == 5
