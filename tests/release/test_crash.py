"""A release killed (kill -9, a real process) at each durable step: the next release cleans up
and goes through; nothing half-made is left in the store or the signatures tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.signatures import SigRepo, change_gtube
from workbench.release.release_store import PENDING_NAME, ReleaseStore
from workbench.release.service import make_release

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

WORKBENCH = str(Path(sys.executable).with_name("workbench"))


def release_process(sig: SigRepo, *, crash_at: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_CRASH_AT": crash_at}
    return subprocess.run([WORKBENCH, "--home", str(sig.workspace.home), "--signatures",
                           str(sig.root), "release", "-m", "after a crash"],
                          env=env, text=True, capture_output=True, timeout=600)


@pytest.mark.parametrize("step", ["release.serial", "release.changelog", "release.commit",
                                  "release.tag", "release.store"])
def test_the_release_after_a_killed_one_cleans_up_and_succeeds(sig: SigRepo, step: str) -> None:
    make_release(sig.workspace, message="first release")
    change_gtube(sig)
    killed = release_process(sig, crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = ReleaseStore(sig.workspace)
    if step == "release.store":
        assert store.leftovers(), "the kill landed while the bundle was being stored"
    if step == "release.changelog":
        assert "CHANGELOG.md" in sig.repo.git.status("--porcelain")

    done = release_process(sig)
    assert done.returncode == 0, done.stdout + done.stderr
    assert store.leftovers() == []
    assert not (store.root / PENDING_NAME).exists()
    assert sig.repo.git.status("--porcelain") == ""
    latest = store.latest()
    assert latest is not None and latest.serial == 3        # serial 2 was used by the dead one
    assert "## signatures-3" in (sig.root / "CHANGELOG.md").read_text()
    verify = subprocess.run([WORKBENCH, "--home", str(sig.workspace.home), "--signatures",
                             str(sig.root), "release", "verify", "3"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_an_edited_changelog_after_a_crash_is_never_discarded(sig: SigRepo) -> None:
    make_release(sig.workspace, message="first release")
    change_gtube(sig)
    assert release_process(sig, crash_at="release.changelog").returncode == -signal.SIGKILL
    changelog = sig.root / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\nan analyst's note\n")
    refused = release_process(sig)
    assert refused.returncode != 0 and "uncommitted changes" in refused.stderr
    assert "an analyst's note" in changelog.read_text()
