"""The whole loop in a real terminal: tmux runs ``workbench demo --open``, keys go in, the screen is read.

Not Pilot: the real command (the demo's own workspace, its lab of ``workbench serve``
and four tower agent processes), a real terminal (tmux, 160x50), keystrokes only.
From an unknown sample found by a string inside its attachment to a rule on every lab
tower; then the UI quits, the lab stops, and the "checkout" whose signatures seeded
the demo has the same history, tags and working tree as before.

The steps are functions over one :class:`Terminal`. After the first release, ``EDIT_LEG``
edits the released rule the same day (save refreshes its metadata), tests, commits,
releases and publishes it, and sees the lab fleet on serial 3, before the UI quits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from tests.support.signatures import HOUSE, init_repo
from workbench.distribute.fleet import FleetStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.rules.parse import parse_file
from workbench.workspace import Workspace

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
WIDTH, HEIGHT = 160, 50
STRONG = "http://exfil.stealer.example/upload.php"
SUPPORT = "WbUpdater"
RULE = "rules/mal/wbstealer.yar"


@dataclass
class Terminal:
    """One tmux server of its own (``-L``), one window running the command."""

    socket: str
    home: Path

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "loop")

    def keys(self, *keys: str, pause: float = 0.15) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "loop", key)
            time.sleep(pause)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "loop", "-l", text)
        time.sleep(0.3)

    def wait(self, condition: Callable[[], bool] | str, *, timeout: float = 60.0, what: str = "",
             diagnose: bool = True) -> str:
        """Until ``condition`` holds (a string: until the screen shows it); the screen then.
        Ran out: the screen, and (``diagnose``) what the UI said and what its threads do."""
        check = (lambda: condition in self.screen()) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                more = (f"\n--- the UI's notices ---\n{self.notices()}\n--- the UI's threads ---\n"
                        f"{self.stacks()}") if diagnose else ""
                raise AssertionError(f"not reached in {timeout} s: {what or condition}\n"
                                     f"--- screen ---\n{self.screen()}{more}")
            time.sleep(0.2)
        return self.screen()

    def notices(self) -> str:
        """The end of the session log of what the UI said (toasts go when they time out)."""
        log = self.workspace.state / "tui.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else "(none)"

    def stacks(self) -> str:
        """Every thread's stack in the UI process now (SIGUSR1: faulthandler, see cli/tui.py):
        what it was doing when a wait ran out, stuck or not."""
        shell = self.tmux("list-panes", "-t", "loop", "-F", "#{pane_pid}").split()
        found = subprocess.run(["pgrep", "-f", "-P", ",".join(shell), "workbench"],
                               capture_output=True, text=True).stdout.split()
        dump = self.workspace.state / "tui-stacks.txt"
        before = dump.stat().st_size if dump.exists() else 0
        for pid in found:
            os.kill(int(pid), signal.SIGUSR1)
        time.sleep(2)
        if not dump.exists():
            return f"(no dump: UI process {found or 'not found'})"
        with open(dump, encoding="utf-8", errors="replace") as fh:
            fh.seek(before)
            return fh.read()[-12000:] or "(the UI wrote no stacks)"

    def press_until(self, key: str, text: str, *, timeout: float = 120.0, what: str = "") -> None:
        """Press ``key`` until the screen shows ``text`` (a busy screen ignores a key)."""
        deadline = time.monotonic() + timeout
        while True:
            self.keys(key)
            try:
                self.wait(text, timeout=3, what=what, diagnose=False)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", "loop"],
                              capture_output=True).returncode == 0

    @property
    def workspace(self) -> Workspace:
        return Workspace.resolve(self.home)


def row_of(screen: str, header: str, text: str) -> int:
    """Which row (0 = the first under ``header``) of a table on screen holds ``text``."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if header in line) + 1
    for n, line in enumerate(lines[start:]):
        if line.rstrip().endswith(text) or f" {text} " in line:
            return n
    raise AssertionError(f"{text!r} is not in the table under {header!r}:\n{screen}")


def done_line(screen: str) -> str:
    """The test screen's "done HH:MM:SS UTC in ..." line ("" while none shows)."""
    return next((line.strip() for line in screen.splitlines() if "UTC in " in line), "")


# --- the steps ------------------------------------------------------------------------------


def find_the_sample_by_a_string_inside_its_attachment(t: Terminal) -> None:
    t.wait("/ Filter", timeout=120, what="the quarantine list")
    t.wait(lambda: "messages" in t.screen() and "QuickBooks" in t.screen(), what="the list read")
    time.sleep(3)                          # the lab's first fleet reads settle
    t.keys("/", pause=1.0)
    t.type("WbStealer")                    # only in the PE inside QB_update.zip, never a header
    t.wait("1 message", what="one message for WbStealer")
    assert "QuickBooks update required" in t.screen()
    t.keys("Enter", "Down", "Enter")       # the filter keeps the keys after Enter; down goes to the list


def dissect_and_open_the_exe(t: Terminal) -> None:
    screen = t.wait("QuickBooks_Update.exe", timeout=90, what="the dissected tree")
    lines = [line for line in screen.splitlines() if "── " in line or "▼ message" in line]
    down = next(i for i, line in enumerate(lines) if "QuickBooks_Update.exe" in line)
    t.keys(*["Down"] * down, "Enter")
    t.wait("Strings", what="the artifact screen")
    t.keys("3")
    t.wait(STRONG, what="the strings tab")


def mark_two_strings_and_draft(t: Terminal) -> None:
    screen = t.screen()
    strong = row_of(screen, "Offset", STRONG)
    support = row_of(screen, "Offset", SUPPORT)
    t.keys(*["Down"] * strong, "m")
    t.keys(*["Down"] * (support - strong), "m")
    t.keys("d")
    t.wait("Draft a rule from 2 marked", what="the draft prompt")
    # Once in about ten runs under load, the text typed right after the prompt painted never
    # reached it (the UI idle, its threads dumped: nothing stuck): type again, a few times.
    for _attempt in range(3):
        t.keys("C-u")
        t.type("MAL WbStealer")
        try:
            t.wait("MAL WbStealer", timeout=5, what="the family typed into the prompt", diagnose=False)
            break
        except AssertionError:
            continue
    t.wait("MAL WbStealer", timeout=1, what="the family typed into the prompt")
    t.keys("Enter")
    t.wait("rule MAL_WbStealer_Exe", timeout=120, what="the drafted rule")
    t.wait("✓ clean", timeout=60, what="lint clean")


def promote_and_save(t: Terminal) -> None:
    t.keys("C-r")
    t.wait("Status of the rule under the cursor")
    t.keys("2")
    t.wait('status      = "RELEASED"')
    t.keys("C-s")
    t.wait(RULE, what="the save prompt")
    t.keys("Enter")
    rule = t.workspace.signatures / RULE
    t.wait(lambda: rule.exists() and "RELEASED" in rule.read_text(), what="the rule saved")


def run_the_rule_test(t: Terminal) -> None:
    t.keys("f4")
    t.wait("r runs the test", what="the test screen on the rule")   # not RULE: the editor shows it too
    assert RULE in t.screen()
    t.keys("r")
    t.wait("PASS", timeout=120, what="the test passing")


def commit_release_publish(t: Terminal) -> None:
    signatures = git.Repo(t.workspace.signatures)
    t.keys("f5")
    t.wait("untracked", timeout=60, what="the new rule among the changes")
    t.keys("c")
    t.wait("Add MAL_WbStealer_Exe", what="the commit prompt")
    t.keys("Enter")
    t.wait(lambda: signatures.head.commit.message.strip() == "Add MAL_WbStealer_Exe", what="the commit")
    t.wait(lambda: "1 uncommitted" not in t.screen(), what="the view re-read")
    t.keys("R")
    t.wait("Cut a release", what="the release prompt")
    t.type("WbStealer")
    t.keys("Enter")
    t.wait(lambda: "signatures-2" in [tag.name for tag in signatures.tags], timeout=120,
           what="release 2 tagged")
    t.wait("p publishes", timeout=30, what="the release screen read again")
    t.keys("p")
    repository = UpdateRepository.for_workspace(t.workspace)
    t.wait(lambda: repository.newest_serial() == 2, timeout=60, what="serial 2 published")


def see_the_lab_fleet_go_green(t: Terminal, serial: int = 2) -> None:
    t.keys("f6")
    workspace = t.workspace

    def all_on_serial() -> bool:
        with FleetStore.for_workspace(workspace) as store:
            servers = store.state(serial).servers
        return len(servers) == 4 and all(s.serial == serial for s in servers)

    t.wait(all_on_serial, timeout=120, what=f"the four lab towers on serial {serial}")
    t.wait("on 4 of 4 servers (100%)", timeout=30, what="the board green")
    assert f"Newest serial {serial}" in t.screen()


LOOP = [find_the_sample_by_a_string_inside_its_attachment, dissect_and_open_the_exe,
        mark_two_strings_and_draft, promote_and_save, run_the_rule_test, commit_release_publish,
        see_the_lab_fleet_go_green]
def edit_the_released_rule_the_same_day(t: Terminal) -> None:
    """Back in the editor on rules/mal/wbstealer.yar (released as serial 2 today): tighten
    the condition and save; the save bumps the version and keeps today's ``modified``."""
    rule = t.workspace.signatures / RULE
    released = parse_file(rule).rules[0]
    assert released.meta_value("version") == 1
    t.keys("f3")
    t.wait("rule MAL_WbStealer_Exe", what="the editor on the released rule")
    t.keys("PageUp", "PageUp", "PageUp", "Home")
    lines = rule.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.strip() == "}") - 1   # the condition's end
    t.keys(*["Down"] * last, "End")
    t.type(" and filesize > 16")
    t.wait(lambda: f"{lines[last].strip()} and filesize > 16 " in t.screen(), timeout=10,
           what="the condition's last line extended in the editor")
    t.keys("C-s")

    def version() -> object:
        rules = parse_file(rule).rules
        return rules[0].meta_value("version") if rules else None
    t.wait(lambda: version() == 2, what="saved as version 2")
    saved = parse_file(rule).rules[0]
    assert "filesize > 16" in saved.condition
    assert saved.meta_value("fingerprint") == saved.fingerprint != released.fingerprint
    # today already (unless the loop ran over midnight UTC: then the save's new today)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert saved.meta_value("modified") in (released.meta_value("modified"), today)
    t.wait("refreshed MAL_WbStealer_Exe", what="what the save changed, said")


def commit_release_publish_the_edit(t: Terminal) -> None:
    t.keys("f4")
    t.wait("r Run test", what="the test screen on the rule")
    before = done_line(t.screen())         # the first test's result (it says when it ran)
    t.keys("r")
    t.wait(lambda: done_line(t.screen()) not in ("", before), timeout=120, what="the edited rule tested")
    assert "PASS" in t.screen()
    signatures = git.Repo(t.workspace.signatures)
    t.keys("f5")
    t.keys("c")                            # while the screen still reads, the key waits for it
    t.wait("Update MAL_WbStealer_Exe", what="the commit prompt for the edit")
    t.keys("Enter")
    t.wait(lambda: signatures.head.commit.message.strip() == "Update MAL_WbStealer_Exe",
           timeout=120, what="the edit committed (the pre-commit check passed)")
    t.keys("R")
    t.wait("Cut a release", what="the release prompt")
    t.type("WbStealer, same-day fix")
    t.keys("Enter")
    t.wait(lambda: "signatures-3" in [tag.name for tag in signatures.tags], timeout=120,
           what="release 3 tagged")
    t.wait("signatures-3 not published (p)", timeout=30, what="the release screen read again")
    repository = UpdateRepository.for_workspace(t.workspace)
    t.keys("p")
    t.wait(lambda: repository.newest_serial() == 3, timeout=60, what="serial 3 published")


# The same-day edit of the released rule (issue 15, blockers 1-3): edit, save (metadata
# refreshed), test, commit, release, publish, and the lab fleet on serial 3.
EDIT_LEG: list[Callable[[Terminal], None]] = [
    edit_the_released_rule_the_same_day, commit_release_publish_the_edit,
    lambda t: see_the_lab_fleet_go_green(t, serial=3)]


def _checkout(base: Path) -> git.Repo:
    """A stand-in for the project's checkout: signatures/ inside a git repository, tagged."""
    shutil.copytree(HOUSE, base / "signatures", ignore=shutil.ignore_patterns("CHANGELOG.md"))
    repo = init_repo(base, "the project")
    (base / ".gitignore").write_text("/demo-workspace/\n")
    repo.git.add(".gitignore")
    repo.index.commit("ignore the demo")
    repo.create_tag("v1")
    return repo


def test_the_whole_loop_in_a_real_terminal_leaves_the_checkout_alone(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout")
    before = (checkout.head.commit.hexsha, sorted(t.name for t in checkout.tags))
    home = tmp_path / "checkout" / "demo-workspace"
    t = Terminal(f"wb-{uuid.uuid4().hex[:8]}", home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    command = (f"{WORKBENCH} --home {home} demo --messages 0 "
               f"--signatures-from {tmp_path / 'checkout' / 'signatures'} --open")
    subprocess.run(["tmux", "-L", t.socket, "-f", "/dev/null", "new-session", "-d", "-s", "loop",
                    "-x", str(WIDTH), "-y", str(HEIGHT),
                    "env", "-u", "COLUMNS", "-u", "LINES", "TERM=xterm-256color", f"HOME={tmp_path}", f"PATH={env.get('PATH', '')}",
                    "sh", "-c", f"{command}; echo demo-exited-$?; sleep 30"],
                   check=True, timeout=30)
    try:
        for step in [*LOOP, *EDIT_LEG]:
            step(t)
        t.keys("C-q")
        t.wait("demo-exited-0", timeout=60, what="the UI quit and the lab stopped")
        assert not (home / "state" / "lab" / "lab.json").exists()
        for log in (home / "state" / "lab" / "logs").glob("agent-*.log"):
            assert "signal 15: stopping" in log.read_text(), log
    finally:
        if t.alive():
            subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True)
        from workbench.demo.lab import stop_leftovers

        stop_leftovers(Workspace.resolve(home))
    assert (checkout.head.commit.hexsha, sorted(t.name for t in checkout.tags)) == before
    assert not checkout.is_dirty(untracked_files=True), checkout.git.status()
    assert {"signatures-2", "signatures-3"} <= {tag.name for tag in git.Repo(home / "signatures").tags}
