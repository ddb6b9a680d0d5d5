"""Pilot tests of the release screen: changes and diffs, validation jumps, commit, release, publish, revert."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest
from textual.widgets import Input, Static, TabbedContent

from tests.support.pilot import settle, static_text, until
from tests.support.signatures import set_meta
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.release.bundle import open_bundle
from workbench.release.release_store import ReleaseStore
from workbench.release.service import make_release
from workbench.release.worktree import commit_signatures
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.release_rows import diff_text
from workbench.tui.screens.editor import EditorScreen
from workbench.tui.screens.modals import ConfirmScreen, PromptScreen
from workbench.tui.screens.release import ReleaseScreen
from workbench.tui.widgets.list_table import ListTable
from workbench.tui.widgets.yara_editor import YaraEditor
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

SIZE = (120, 40)


async def open_releaser(pilot, app: WorkbenchApp) -> ReleaseScreen:
    await settle(pilot)
    await pilot.press("f5")
    screen = app.screen
    assert isinstance(screen, ReleaseScreen)
    await until(pilot, lambda: screen.view is not None and not screen.busy and not screen.reading)
    return screen


def log_text(screen: ReleaseScreen) -> str:
    return static_text(screen.query_one("#release-log", Static))


async def test_changes_diff_and_opening_a_rule(sig_workspace: Workspace) -> None:
    make_release(sig_workspace, message="first")
    gtube = sig_workspace.signatures / "rules" / "spam" / "gtube.yar"
    set_meta(gtube, "SPAM_GTUBE_TestString", "status", "NOISY")
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        status = static_text(screen.query_one("#release-status", Static))
        assert "main @" in status and "1 uncommitted" in status and "signatures-1" in status
        assert "no update repository" in status
        changes = screen.query_one("#changes", ListTable)
        [change] = changes.items
        assert (change.kind, change.rule, change.git) == ("status", "SPAM_GTUBE_TestString", "modified")
        row = changes.render_line(1).text
        assert "RELEASED → NOISY" in row and "spam/gtube.yar" in row and "rules/" not in row
        await settle(pilot)
        detail = static_text(screen.query_one("#release-detail", Static), width=400)
        assert '+        status = "NOISY"' in detail and '-        status = "RELEASED"' in detail
        # enter opens the rule in the editor, on the rule's first line
        await pilot.press("enter")
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        await settle(pilot)
        assert editor.path == gtube
        assert editor.query_one(YaraEditor).cursor_location[0] == change.line - 1


async def test_a_validation_finding_opens_the_rule_at_its_line(sig_workspace: Workspace) -> None:
    eicar = sig_workspace.signatures / "rules" / "test" / "eicar.yar"
    lines = eicar.read_text().splitlines()
    bad = next(i for i, line in enumerate(lines) if "$eicar at 0" in line)
    lines[bad] = lines[bad].replace("$eicar at 0", "$eicar at 0 and $missing")
    eicar.write_text("\n".join(lines) + "\n")
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        await pilot.press("v")
        await until(pilot, lambda: screen.validation is not None and not screen.busy, timeout=60)
        assert not screen.validation.ok
        tabs = screen.query_one("#release-tabs", TabbedContent)
        assert tabs.active == "tab-validation" and "✗" in str(tabs.get_tab("tab-validation").label)
        assert "FAILED" in log_text(screen)
        findings = screen.query_one("#findings", ListTable)
        target = next(i for i, f in enumerate(findings.items) if f.severity == "error" and f.line == bad + 1)
        findings.cursor_row = target
        await pilot.pause()
        assert "enter opens the rule" in static_text(screen.query_one("#release-detail", Static))
        await pilot.press("enter")
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        await settle(pilot)
        assert editor.path == eicar.resolve() or editor.path == eicar
        assert editor.query_one(YaraEditor).cursor_location[0] == bad


async def test_commit_is_refused_while_a_changed_rule_has_errors(sig_workspace: Workspace) -> None:
    broken = sig_workspace.signatures / "rules" / "mal" / "broken.yar"
    broken.write_text("rule MAL_Broken_Rule { condition: $nope }\n")
    repo = git.Repo(sig_workspace.signatures)
    head = repo.head.commit.hexsha
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        await pilot.press("c")
        prompt = app.screen
        assert isinstance(prompt, PromptScreen)
        assert prompt.query_one("#prompt", Input).value == "Add MAL_Broken_Rule"
        await pilot.press("enter")
        await until(pilot, lambda: not screen.busy and "not committed" in log_text(screen), timeout=60)
        assert repo.head.commit.hexsha == head and broken.exists()
        assert screen.query_one("#release-tabs", TabbedContent).active == "tab-validation"
        assert any(f.file.endswith("broken.yar") for f in screen.validation.findings)
        # a release is refused before anything runs while files are uncommitted
        shown: list[str] = []
        app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
        await pilot.press("R")
        assert app.screen is screen and any("commit first" in s for s in shown)


async def test_commit_release_and_publish(sig_workspace: Workspace) -> None:
    make_release(sig_workspace, message="first")
    eicar = sig_workspace.signatures / "rules" / "test" / "eicar.yar"
    set_meta(eicar, "TEST_EICAR_TestFile_Plain", "description", "the EICAR test file, alone")
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        # publishing without an update repository explains the key set-up and asks
        await pilot.press("p")
        await until(pilot, lambda: "set-up asked" in log_text(screen))
        question = static_text(app.screen.query_one(".dialog-title", Static))
        assert "workbench keys init" in question and "OFFLINE" in question
        await pilot.press("n")
        await until(pilot, lambda: "set-up cancelled" in log_text(screen))
        assert not UpdateRepository.for_workspace(sig_workspace).exists()
        await pilot.press("c")
        app.screen.query_one("#prompt", Input).value = "Describe the EICAR rule better"
        await pilot.press("enter")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and not screen.view.uncommitted, timeout=60)
        assert git.Repo(sig_workspace.signatures).head.commit.message.strip() == "Describe the EICAR rule better"
        await pilot.press("R")
        app.screen.query_one("#prompt", Input).value = "EICAR described"
        await pilot.press("enter")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and screen.view.latest is not None and screen.view.latest.serial == 2, timeout=60)
        latest = ReleaseStore(sig_workspace).latest()
        assert latest is not None and latest.message == "EICAR described"
        assert [c.name for c in latest.changelog.modified] == []          # metadata only
        tabs = screen.query_one("#release-tabs", TabbedContent)
        assert tabs.active == "tab-releases"
        detail = static_text(screen.query_one("#release-detail", Static))
        assert "signatures-2" in detail and "not published" in detail and "EICAR described" in detail
        # nothing changed since: the core refuses, the screen says why
        await pilot.press("R", "enter")
        await until(pilot, lambda: not screen.busy and "release refused" in log_text(screen), timeout=60)
        assert "nothing to release" in log_text(screen)
        # with an update repository, p publishes the newest release
        UpdateRepository.for_workspace(sig_workspace).init(RepositorySettings())
        await pilot.press("p")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and 2 in screen.view.published, timeout=60)
        assert UpdateRepository.for_workspace(sig_workspace).newest_serial() == 2
        assert "published serial 2" in log_text(screen)
        releases = screen.query_one("#releases", ListTable)
        assert "✓" in releases.render_line(1).text and "EICAR described" in releases.render_line(1).text
        # publishing it again is a no-op that says so
        shown: list[str] = []
        app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
        await pilot.press("p")
        assert any("already published" in s for s in shown)


async def test_publish_sets_up_the_update_repository_when_asked(sig_workspace: Workspace) -> None:
    """A real workspace has no lab: p guides the key set-up, with the offline-root warning."""
    make_release(sig_workspace, message="first")
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        await pilot.press("p")
        await until(pilot, lambda: "set-up asked" in log_text(screen))
        await pilot.press("y")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and 1 in screen.view.published, timeout=60)
        repository = UpdateRepository.for_workspace(sig_workspace)
        assert repository.exists() and repository.newest_serial() == 1
        text = log_text(screen)
        assert "published serial 1" in text and "offline" in text
        assert str(repository.keys.path("root")) in text


def release_twice(workspace: Workspace) -> None:
    """Release 1 ships the house rules; release 2 stops shipping GTUBE (the bad release)."""
    make_release(workspace, message="first")
    gtube = workspace.signatures / "rules" / "spam" / "gtube.yar"
    set_meta(gtube, "SPAM_GTUBE_TestString", "status", "DISABLED")
    commit_signatures(workspace, "Disable the GTUBE rule")
    make_release(workspace, message="second")


async def test_a_new_release_is_highlighted_so_p_publishes_it(sig_workspace: Workspace) -> None:
    release_twice(sig_workspace)
    eicar = sig_workspace.signatures / "rules" / "test" / "eicar.yar"
    set_meta(eicar, "TEST_EICAR_TestFile_Plain", "description", "the EICAR test file, alone")
    commit_signatures(sig_workspace, "Describe the EICAR rule better")
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        # the cursor on an older release: its row would hold release 2 once release 3 is listed
        await pilot.press("3", "down", "R", "enter")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and screen.view.latest is not None and screen.view.latest.serial == 3, timeout=60)
        releases = screen.query_one("#releases", ListTable)
        assert [r.serial for r, _ in releases.items] == [3, 2, 1] and releases.current()[0].serial == 3


async def test_p_pressed_while_the_repository_is_read_publishes_the_new_release(
        sig_workspace: Workspace) -> None:
    """Right after a release the screen reads the repository again; until then its view is
    the old one, whose newest release is already published. A p pressed then waits for the
    new view and publishes the new release (it used to say "already published", or nothing)."""
    first = make_release(sig_workspace, message="first")
    repository = UpdateRepository.for_workspace(sig_workspace)
    repository.init(RepositorySettings())
    publish_bundle(repository, Path(first.bundle_path))
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        assert screen.view is not None and screen.view.published == {1}
        gtube = sig_workspace.signatures / "rules" / "spam" / "gtube.yar"
        set_meta(gtube, "SPAM_GTUBE_TestString", "description", "GTUBE, reworded")
        commit_signatures(sig_workspace, "Reword GTUBE")
        make_release(sig_workspace, message="second")            # (another analyst's, say)
        screen.refresh_view()
        await pilot.press("p")
        await until(pilot, lambda: repository.newest_serial() == 2, timeout=60)
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and screen.view.published >= {1, 2}, timeout=60)
        assert "published serial 2" in log_text(screen)


async def test_r_pressed_while_the_commit_runs_releases_once_it_is_done(
        sig_workspace: Workspace, monkeypatch) -> None:
    """A key pressed while the screen is busy waits for the work and the view after it. The
    commit below is held until R has been pressed; R used to be dropped ("still busy")."""
    import threading

    import workbench.tui.screens.release as release_screen

    make_release(sig_workspace, message="first")
    gtube = sig_workspace.signatures / "rules" / "spam" / "gtube.yar"
    set_meta(gtube, "SPAM_GTUBE_TestString", "description", "GTUBE, reworded")
    pressed = threading.Event()
    real_commit = release_screen.commit_changes

    def held_commit(*args, **kwargs):
        assert pressed.wait(30)
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(release_screen, "commit_changes", held_commit)
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        await pilot.press("c")
        app.screen.query_one("#prompt", Input).value = "Reword GTUBE"
        await pilot.press("enter")
        await until(pilot, lambda: screen.busy != "")
        await pilot.press("R")
        assert app.screen is screen and screen.after_read is not None      # waiting, not dropped
        pressed.set()
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), timeout=60)
        assert "Cut a release" in static_text(app.screen.query_one(".dialog-title", Static))
        assert git.Repo(sig_workspace.signatures).head.commit.message.strip() == "Reword GTUBE"
        await pilot.press("enter")
        await until(pilot, lambda: ReleaseStore(sig_workspace).latest().serial == 2, timeout=60)


async def test_the_commit_dialog_warns_about_unsaved_editor_edits(sig_workspace: Workspace) -> None:
    gtube = sig_workspace.signatures / "rules" / "spam" / "gtube.yar"
    set_meta(gtube, "SPAM_GTUBE_TestString", "description", "GTUBE, reworded")
    app = make_app(sig_workspace, open_rule=gtube)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one(YaraEditor).insert("// more\n", (0, 0))
        screen = await open_releaser(pilot, app)
        await pilot.press("c")
        title = app.screen.query_one(".dialog-title", Static)
        assert "unsaved edits to rules/spam/gtube.yar" in static_text(title)
        await pilot.press("escape")
        assert app.screen is screen and not screen.busy


def test_diff_text_colours_lines_without_markup() -> None:
    text = diff_text("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old [bold]\n+new\n same")
    assert text.plain.splitlines() == ["--- a/x", "+++ b/x", "@@ -1 +1 @@", "-old [bold]", "+new", " same"]
    styles = {text.plain[s.start:s.end].strip(): str(s.style) for s in text.spans}
    assert styles["-old [bold]"] == "red" and styles["+new"] == "green" and styles["@@ -1 +1 @@"] == "cyan"
    assert text.no_wrap


async def ask_to_revert(pilot, screen: ReleaseScreen, serial: int) -> ConfirmScreen:
    """Highlight release ``serial`` under Releases, press b, wait for the confirmation."""
    await pilot.press("3")
    releases = screen.query_one("#releases", ListTable)
    releases.cursor_row = next(i for i, (r, _) in enumerate(releases.items) if r.serial == serial)
    await pilot.press("b")
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), timeout=60)
    assert not screen.busy
    return pilot.app.screen


async def test_revert_to_an_older_release_then_publish_it(sig_workspace: Workspace) -> None:
    release_twice(sig_workspace)
    store = ReleaseStore(sig_workspace)
    first, second = store.get(1), store.get(2)
    assert first.rule_count == second.rule_count + 1
    repo = git.Repo(sig_workspace.signatures)
    head = repo.head.commit.hexsha
    UpdateRepository.for_workspace(sig_workspace).init(RepositorySettings())
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        confirm = await ask_to_revert(pilot, screen, 1)
        question = " ".join(static_text(confirm.query_one(".dialog-title", Static)).split())
        assert f"Re-ship the content of signatures-1 (commit {first.commit[:10]}" in question
        assert "as a new release, signatures-3?" in question
        assert "Compared with signatures-2, the newest release: 0 added, 0 modified, 0 removed, 1 status" in question
        await pilot.press("y")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and screen.view.latest is not None and screen.view.latest.serial == 3, timeout=60)
        # a new serial carrying release 1's content, tagged on release 1's commit; the branch is untouched
        third = ReleaseStore(sig_workspace).get(3)
        assert (third.reverts, third.commit, third.rule_count) == (1, first.commit, first.rule_count)
        assert repo.tags["signatures-3"].commit.hexsha == first.commit and repo.head.commit.hexsha == head
        old, new = open_bundle(first.bundle_path).manifest, open_bundle(third.bundle_path).manifest
        assert (new.serial, new.rules, new.files) == (3, old.rules, old.files)
        assert [(c.name, c.status) for c in third.changelog.status_changed] == [("SPAM_GTUBE_TestString",
                                                                                  "RELEASED")]
        # the history shows it, highlighted, and says what it re-ships
        assert "released signatures-3, the content of signatures-1 again" in log_text(screen)
        assert screen.query_one("#release-tabs", TabbedContent).active == "tab-releases"
        releases = screen.query_one("#releases", ListTable)
        assert [r.serial for r, _ in releases.items] == [3, 2, 1]
        row = releases.render_line(1).text
        assert row.lstrip().startswith("3") and "(reverts to 1) roll back to signatures-1" in row
        assert releases.current()[0].serial == 3
        assert "re-ships the content of signatures-1" in static_text(screen.query_one("#release-detail", Static))
        # p then publishes the new serial, as after any release
        await pilot.press("p")
        await until(pilot, lambda: not screen.busy and screen.view is not None
                    and 3 in screen.view.published, timeout=60)
        assert UpdateRepository.for_workspace(sig_workspace).newest_serial() == 3


async def test_a_cancelled_revert_changes_nothing(sig_workspace: Workspace) -> None:
    release_twice(sig_workspace)
    store = ReleaseStore(sig_workspace)
    tags = sorted(t.name for t in git.Repo(sig_workspace.signatures).tags)
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        revert = next(c for c in screen.palette_commands() if c.name == "Revert to this release")
        # from another tab, b (or the palette) shows the history to choose from first
        revert.run()
        await pilot.pause()
        assert screen.query_one("#release-tabs", TabbedContent).active == "tab-releases"
        assert app.screen is screen
        for cancel in ("escape", "n"):
            await ask_to_revert(pilot, screen, 1)
            await pilot.press(cancel)
            await settle(pilot)
            assert app.screen is screen and not screen.busy
            assert "cancelled" in log_text(screen)
        # the dry run behind the question reserved no serial
        assert [r.serial for r in store.list()] == [1, 2] and store.last_serial() == 2
        assert sorted(t.name for t in git.Repo(sig_workspace.signatures).tags) == tags
        assert [r.serial for r, _ in screen.query_one("#releases", ListTable).items] == [2, 1]


async def test_a_revert_the_core_refuses_is_shown(sig_workspace: Workspace, monkeypatch) -> None:
    release_twice(sig_workspace)
    store = ReleaseStore(sig_workspace)
    app = make_app(sig_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_releaser(pilot, app)
        shown: list[str] = []
        app.notify = lambda message, **kw: shown.append(str(message))  # type: ignore[method-assign]
        # release 1 disappears (state folder and tag) after the screen listed it: an unknown serial
        git.Repo(sig_workspace.signatures).delete_tag("signatures-1")
        shutil.rmtree(store.get(1).folder)
        await pilot.press("3", "down", "b")
        await until(pilot, lambda: not screen.busy and "revert refused" in log_text(screen), timeout=60)
        assert "no release 1" in log_text(screen) and any("no release 1" in s for s in shown)
        assert not isinstance(app.screen, ConfirmScreen) and store.last_serial() == 2
        # an unexpected failure is a notification too, never a crash
        def broken(*args, **kwargs):
            raise RuntimeError("disk on fire")
        monkeypatch.setattr("workbench.release.service.revert_release", broken)
        await pilot.press("b")
        await until(pilot, lambda: not screen.busy and any("disk on fire" in s for s in shown))
        assert app.is_running and app.screen is screen
