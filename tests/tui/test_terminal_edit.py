"""The real ``workbench ui`` in a real terminal (tmux): a same-day edit of a released rule, to a release.

No Pilot: the command line starts the app in a tmux pane and the test types keys into
it, as an analyst would. The workspace and its signature repository (a git repository of
its own) live in a temporary folder; the checkout's history and tags stay as they were.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import git
import pytest

from tests.support.signatures import HOUSE, init_repo
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.release.service import make_release
from workbench.rules.parse import parse_file, parse_text
from workbench.workspace import Workspace

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (./dev test installs it)")]

RULE = "SPAM_GTUBE_TestString"
CHECKOUT = Path(__file__).resolve().parents[2]


class Pane:
    """A tmux server of the test's own (its own socket), one window running a command."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], check=True, capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "wb", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "wb", "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "wb")

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or ("EXITED" in self.screen() and "EXITED" not in what):
                raise AssertionError(f"waited {timeout:.0f} s for {what}; the screen shows:\n{self.screen()}")
            time.sleep(0.2)

    def press_until(self, key: str, text: str, timeout: float = 120.0) -> None:
        """Press ``key`` until ``text`` shows (a screen still busy loading ignores it)."""
        deadline = time.monotonic() + timeout
        while True:
            self.keys(key)
            try:
                self.wait_for_text(text, timeout=3)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def wait_for_text(self, text: str, timeout: float = 120.0) -> None:
        self.wait(lambda: text in self.screen(), repr(text), timeout)


@contextmanager
def running_ui(tmp_path: Path, args: list[str], env: dict[str, str]) -> Iterator[Pane]:
    pane = Pane(tmp_path / "tmux.sock")
    command = " ".join(f"'{a}'" for a in args)
    environment = [f"{k}={v}" for k, v in env.items()]
    pane.tmux("-f", "/dev/null", "new-session", "-d", "-s", "wb", "-x", "120", "-y", "40",
              "env", "-i", *environment, "sh", "-c", f"sleep 0.5; {command}; echo EXITED $?; sleep 600")
    # without a client tmux may keep its 80x24 default: the app starts after this resize
    pane.tmux("resize-window", "-t", "wb", "-x", "120", "-y", "40")
    try:
        yield pane
    finally:
        subprocess.run(["tmux", "-S", str(pane.socket), "kill-server"], capture_output=True)


def _meta(path: Path, key: str) -> object:
    rule = next((r for r in parse_file(path).rules if r.name == RULE), None)
    return rule.meta_value(key) if rule is not None else None


def _checkout_state() -> tuple[str, list[str]]:
    repo = git.Repo(CHECKOUT, search_parent_directories=True)
    return repo.head.commit.hexsha, sorted(t.name for t in repo.tags)


def test_a_released_rule_edited_the_same_day_goes_out_again_from_the_terminal(tmp_path: Path) -> None:
    before_checkout = _checkout_state()
    today = dt.date.today().isoformat()
    signatures = tmp_path / "signatures"
    shutil.copytree(HOUSE, signatures, ignore=shutil.ignore_patterns("CHANGELOG.md"))
    gtube = signatures / "rules" / "spam" / "gtube.yar"
    gtube.write_text(gtube.read_text().replace('modified = "2026-11-20"', f'modified = "{today}"'))
    repo = init_repo(signatures, "house rules, written today")
    workspace = Workspace.resolve(tmp_path / "home", signatures=signatures).ensure()
    assert make_release(workspace, message="first").tag == "signatures-1"
    with CorpusRegistry(workspace) as registry:          # the house corpora, for the test screen
        registry.add("malicious", signatures / "corpora" / "malicious", "malicious")
        registry.add("clean", signatures / "corpora" / "clean", "clean")
    released = next(r for r in parse_file(gtube).rules if r.name == RULE)
    assert released.meta_value("modified") == today and released.meta_value("version") == 1

    workbench = str(Path(sys.executable).parent / "workbench")
    env = {"TERM": "xterm-256color", "HOME": str(tmp_path), "PATH": os.environ.get("PATH", ""),
           "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "tester@example.invalid",
           "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "tester@example.invalid",
           "TEXTUAL_ANIMATIONS": "none"}
    args = [workbench, "--home", str(workspace.home), "--signatures", str(signatures), "ui",
            "--edit", str(gtube)]
    with running_ui(tmp_path, args, env) as pane:
        pane.wait_for_text("Findings · ✓ clean")           # opened, linted, the editor has the keys
        time.sleep(0.5)
        # -- edit the condition: the line "filesize < 10MB and $gtube" ----------------------------
        lines = gtube.read_text().splitlines()
        row = next(i for i, line in enumerate(lines) if "filesize < 10MB" in line)
        pane.keys(*["Down"] * row, "End")
        pane.type(" and filesize > 16")
        pane.wait_for_text("●")                             # unsaved
        pane.keys("C-s")
        pane.wait(lambda: _meta(gtube, "version") == 2, "the save with version 2", timeout=60)
        saved = next(r for r in parse_file(gtube).rules if r.name == RULE)
        assert saved.meta_value("fingerprint") == saved.fingerprint != released.fingerprint
        assert saved.meta_value("modified") == today                # a same-day edit keeps it
        pane.wait_for_text("refreshed SPAM_GTUBE_TestString")       # the status line says what changed

        # -- test it against the corpora ---------------------------------------------------------------
        pane.keys("F4")
        pane.wait_for_text("rules/spam/gtube.yar")
        pane.keys("r")
        pane.wait_for_text("PASS", timeout=180)

        # -- commit and release from the release screen --------------------------------------------------
        commits = len(list(repo.iter_commits()))
        pane.keys("F5")
        pane.wait_for_text(RULE)
        pane.press_until("c", "enter commits after checking")
        pane.keys("Enter")
        pane.wait(lambda: len(list(repo.iter_commits())) == commits + 1 and not repo.is_dirty(untracked_files=True),
                  "the commit", timeout=180)
        pane.press_until("R", "enter releases")
        pane.type("same-day fix")
        pane.keys("Enter")
        pane.wait(lambda: "signatures-2" in [t.name for t in git.Repo(signatures).tags], "the release tag",
                  timeout=300)
        pane.keys("C-q")
        pane.wait_for_text("EXITED 0", timeout=30)
    tag = git.Repo(signatures).tags["signatures-2"]
    shipped = parse_text((tag.commit.tree / "rules" / "spam" / "gtube.yar").data_stream.read().decode())
    rule = next(r for r in shipped.rules if r.name == RULE)
    assert (rule.meta_value("version"), rule.meta_value("modified")) == (2, today)
    assert _checkout_state() == before_checkout                     # the project's own history untouched
