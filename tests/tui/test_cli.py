"""``workbench ui`` and ``workbench`` with no command: when the UI runs, and with what."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import workbench.tui.app as tui_app
from workbench.cli import main
from workbench.exitcodes import E_USAGE


class FakeApp:
    def __init__(self, code: int | None) -> None:
        self.return_code = code
        self.ran = False

    def run(self) -> None:
        self.ran = True


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_make_app(workspace: Any, **kwargs: Any) -> FakeApp:
        seen["workspace"] = workspace
        seen.update(kwargs)
        seen["app"] = FakeApp(seen.pop("code", None))
        return seen["app"]

    monkeypatch.setattr(tui_app, "make_app", fake_make_app)
    return seen


def _tty(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: tty, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty, raising=False)


def test_ui_needs_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             tmp_path: Path, captured: dict[str, Any]) -> None:
    _tty(monkeypatch, False)
    assert main(["--home", str(tmp_path), "ui"]) == E_USAGE
    assert "needs a terminal" in capsys.readouterr().err
    assert "app" not in captured


def test_ui_passes_its_options_to_the_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          captured: dict[str, Any]) -> None:
    _tty(monkeypatch, True)
    rule = tmp_path / "r.yar"
    code = main(["--home", str(tmp_path), "ui", "--query", "status:new", "--open", "abcd1234",
                 "--edit", str(rule), "--theme", "light", "--fleet-url", "http://fleet:8470",
                 "--fleet-refresh", "5"])
    assert code == 0
    assert captured["app"].ran
    assert captured["workspace"].home == tmp_path.resolve()
    assert captured["query"] == "status:new" and captured["open_message"] == "abcd1234"
    assert captured["open_rule"] == rule and captured["theme"] == "light"
    assert captured["fleet_url"] == "http://fleet:8470" and captured["fleet_refresh"] == 5.0
    assert captured["freeze_startup"] is True           # one app per process


@pytest.mark.parametrize("value", ["0", "fast", "7200"])
def test_a_bad_fleet_refresh_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              captured: dict[str, Any], value: str) -> None:
    _tty(monkeypatch, True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--home", str(tmp_path), "ui", "--fleet-refresh", value])
    assert exit_info.value.code == E_USAGE
    assert "--fleet-refresh" in capsys.readouterr().err and "app" not in captured


def test_no_command_on_a_terminal_opens_the_ui(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               captured: dict[str, Any]) -> None:
    _tty(monkeypatch, True)
    monkeypatch.delenv("WORKBENCH_NO_TUI", raising=False)
    assert main(["--home", str(tmp_path)]) == 0
    assert captured["app"].ran and captured["query"] == ""


def test_no_command_without_a_terminal_does_not_start_the_ui(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        captured: dict[str, Any]) -> None:
    _tty(monkeypatch, False)
    main(["--home", str(tmp_path)])
    assert "no terminal" in capsys.readouterr().out
    assert "app" not in captured


def test_sigusr1_dumps_every_thread_of_a_running_ui(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    captured: dict[str, Any]) -> None:
    """``kill -USR1`` on a UI that seems frozen appends its threads' stacks to
    <home>/state/tui-stacks.txt (the tmux loop test reads it when a wait runs out)."""
    import os
    import signal

    _tty(monkeypatch, True)
    before = signal.getsignal(signal.SIGUSR1)

    def run_and_get_poked() -> None:
        os.kill(os.getpid(), signal.SIGUSR1)

    captured["code"] = 0
    main(["--home", str(tmp_path), "init"])
    original = tui_app.make_app

    def app_that_is_poked(workspace: Any, **kwargs: Any) -> FakeApp:
        app = original(workspace, **kwargs)
        app.run = run_and_get_poked       # type: ignore[method-assign]
        return app
    monkeypatch.setattr(tui_app, "make_app", app_that_is_poked)
    assert main(["--home", str(tmp_path), "ui"]) == 0
    dump = (tmp_path / "state" / "tui-stacks.txt").read_text()
    assert "run_and_get_poked" in dump and "most recent call first" in dump
    assert signal.getsignal(signal.SIGUSR1) == before       # the handler goes with the UI
