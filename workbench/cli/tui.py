"""``workbench ui`` (and ``workbench`` with no command on a terminal): the terminal UI."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from workbench.cli.context import CommandError, Context
from workbench.exitcodes import E_OK, E_USAGE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="open the terminal UI (also what `workbench` alone does on a terminal)")
    p.add_argument("--query", "-q", default="", metavar="QUERY",
                   help="start with this quarantine filter, e.g. 'status:new has:attachment'")
    p.add_argument("--open", dest="open_message", metavar="ID",
                   help="open this message (sha256 or a unique prefix) at start")
    p.add_argument("--edit", dest="edit", type=Path, metavar="RULE.yar",
                   help="open this rule file in the editor at start")
    p.add_argument("--theme", choices=("dark", "light"), default="dark")
    p.add_argument("--fleet-url", metavar="URL",
                   help="watch the fleet of a `workbench serve` elsewhere (default: this "
                        "workspace's fleet store, which a server on this home writes)")
    p.add_argument("--fleet-refresh", type=_seconds, default=2.0, metavar="SECONDS",
                   help="seconds between fleet board refreshes (default 2)")
    p.add_argument("--list-refresh", type=_seconds, default=3.0, metavar="SECONDS",
                   help="seconds between looks for new mail in the quarantine list (default 3)")
    p.set_defaults(func=run_tui)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("between 0.1 and 3600 seconds")
    return value


def run_tui(args: argparse.Namespace, ctx: Context) -> int:
    """Run the app until the analyst quits; the exit code is the app's return code."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CommandError("the terminal UI needs a terminal (stdin and stdout must be a TTY); "
                           "use the other commands in scripts", E_USAGE)
    from workbench.tui.app import make_app  # textual loads only when the UI runs

    app = make_app(
        ctx.workspace,
        theme=getattr(args, "theme", "dark"),
        query=getattr(args, "query", "") or "",
        open_message=getattr(args, "open_message", None),
        open_rule=getattr(args, "edit", None),
        fleet_url=getattr(args, "fleet_url", None),
        fleet_refresh=getattr(args, "fleet_refresh", 2.0),
        list_refresh=getattr(args, "list_refresh", 3.0),
        freeze_startup=True,           # one app per process: start-up objects stay (see app.py)
    )
    with _stack_dumps(ctx.workspace.state / STACKS_FILE):
        app.run()
    return app.return_code if app.return_code is not None else E_OK


STACKS_FILE = "tui-stacks.txt"


@contextlib.contextmanager
def _stack_dumps(path: Path) -> Iterator[None]:
    """While the UI runs, ``kill -USR1 <pid>`` appends every thread's stack to ``path``
    (faulthandler: works even when the event loop is stuck), for "it froze" reports."""
    import faulthandler
    import signal

    try:
        out = open(path, "a", encoding="utf-8")       # noqa: SIM115 (open as long as the UI runs)
    except OSError:
        yield
        return
    try:
        faulthandler.register(signal.SIGUSR1, file=out, all_threads=True)
        try:
            yield
        finally:
            faulthandler.unregister(signal.SIGUSR1)
    finally:
        out.close()
