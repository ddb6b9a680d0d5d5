"""The ``workbench`` command: parses arguments, calls the core, renders the result.

Each domain registers its subcommands from its own module here (``cli/quarantine.py``,
``cli/dissect.py`` ...) so the shells stay thin and domains do not collide.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:     # imported in main(): a replayed `workbench test` (cli/replay.py) needs none
    import argparse

    from workbench.cli.context import Context

# Modules that add subcommands; each has ``register(subparsers)``.
COMMAND_MODULES = (
    "workbench.cli.quarantine",
    "workbench.cli.demo",
    "workbench.cli.dissect",
    "workbench.cli.rules",
    "workbench.cli.corpus",
    "workbench.cli.release",
    "workbench.cli.keys",
    "workbench.cli.publish",
    "workbench.cli.serve",
    "workbench.cli.tokens",
    "workbench.cli.tower",
    "workbench.cli.fleet",
    "workbench.cli.tui",
    "workbench.cli.doctor",
    "workbench.cli.campaigns",
    "workbench.cli.telemetry",
)

# Which module registers each command. A command line that names one imports only that
# module: importing every domain (numpy, GitPython, YARA-X, cryptography ...) costs about
# 0.4 s, which every `workbench quarantine list` in a script would otherwise pay.
# tests/test_cli_startup.py checks this table against what the modules register.
COMMANDS = {
    "quarantine": "workbench.cli.quarantine",
    "demo": "workbench.cli.demo", "init": "workbench.cli.demo",
    "dissect": "workbench.cli.dissect", "strings": "workbench.cli.dissect",
    "rule": "workbench.cli.rules",
    "corpus": "workbench.cli.corpus", "test": "workbench.cli.corpus",
    "retrohunt": "workbench.cli.corpus",
    "validate": "workbench.cli.release", "hooks": "workbench.cli.release",
    "release": "workbench.cli.release",
    "keys": "workbench.cli.keys", "publish": "workbench.cli.publish",
    "serve": "workbench.cli.serve", "tokens": "workbench.cli.tokens",
    "tower": "workbench.cli.tower", "fleet": "workbench.cli.fleet",
    "ui": "workbench.cli.tui",
    "doctor": "workbench.cli.doctor",
    "campaigns": "workbench.cli.campaigns",
    "rules": "workbench.cli.telemetry",
    "rollout": "workbench.cli.publish",
}
_GLOBAL_OPTIONS_WITH_VALUE = ("--home", "--signatures", "--index")
# Commands that may run where no workspace is: those that create one, and the tower agent
# (it keeps its state where its config file says).
_NO_WORKSPACE_NEEDED = {"init", "demo", "tower"}


def named_command(argv: Sequence[str]) -> str | None:
    """The command an argument list names (the first word that is not a global option)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
        elif arg == "--":
            return None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv`` that names a known command, only that command's module
    is imported, and with no command none is (``--help`` and a typo get every command)."""
    import argparse
    import importlib

    from workbench import __version__

    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Signature-writing workbench for email-security analysts. "
                    "With no command, opens the terminal UI on the workspace.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("--home", metavar="DIR",
                        help="workspace folder (default: $WORKBENCH_HOME, else the current folder)")
    parser.add_argument("--signatures", metavar="PATH",
                        help="signature repository (default: HOME/signatures, or $WORKBENCH_SIGNATURES)")
    parser.add_argument("--index", metavar="ADDRESS",
                        help="quarantine index: sqlite (the default) or postgresql://... "
                             "(default: $WORKBENCH_INDEX, else quarantine/settings.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = named_command(argv) if argv is not None else None
    if command in COMMANDS:
        modules: Sequence[str] = (COMMANDS[command],)
    elif argv is not None and command is None and not {"-h", "--help"} & set(argv):
        modules = ()          # no command: the UI, which imports what it needs itself
    else:
        modules = COMMAND_MODULES
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:     # a domain not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if named_command(argv) == "test":     # nothing changed since this command ran: its text
        from workbench.cli import replay

        try:
            code = replay.replay(argv)
        except BrokenPipeError:
            return 0
        if code is not None:
            return code
    from workbench.cli.context import CommandError, Context, Reply
    from workbench.errors import WorkbenchError
    from workbench.exitcodes import E_INTERNAL, E_NOT_FOUND, EXIT_CODES
    from workbench.workspace import Workspace

    parser = build_parser(argv)
    args = parser.parse_args(argv)
    workspace = Workspace.resolve(args.home, args.signatures, args.index)
    ctx = Context(workspace=workspace, out=sys.stdout, err=sys.stderr)
    handler = getattr(args, "func", None)
    if handler is None:
        handler = _default_handler(parser)
    as_json = bool(getattr(args, "json", False))
    try:
        if args.command not in _NO_WORKSPACE_NEEDED and (why := workspace.missing()):
            # a typo in --home must not quietly become a new, empty workspace
            raise CommandError(f"{why}: create one with `workbench init {workspace.home}`, "
                               "or name an existing one with --home or $WORKBENCH_HOME", E_NOT_FOUND)
        result = handler(args, ctx)
        if isinstance(result, Reply):
            # --json is decided here, once: a handler returns its document and its text view
            if as_json:
                ctx.json(result.document)
            elif result.text is not None:
                result.text(ctx)
            return result.code
    except WorkbenchError as exc:
        # The one place a failure becomes an exit code (exitcodes.EXIT_CODES)
        code = EXIT_CODES[exc.kind]
        ctx.error(exc.describe())
        if as_json:
            ctx.json({"error": {"kind": exc.kind.value, "message": exc.describe(), "exit_code": code}})
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        import traceback  # only then: a re-test's start-up is measured

        ctx.error("internal error; please report this with the traceback below")
        traceback.print_exc(file=sys.stderr)
        if as_json:
            ctx.json({"error": {"kind": "internal", "message": f"{type(exc).__name__}: {exc}",
                                "exit_code": E_INTERNAL}})
        return E_INTERNAL
    return 0 if result is None else int(result)


def _default_handler(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace, Context], int]:
    """No command: the terminal UI when it is there and we have a terminal."""
    import argparse
    import importlib

    from workbench.cli.context import Reply

    def run(args: argparse.Namespace, ctx: Context) -> int:
        try:
            tui_cli = importlib.import_module("workbench.cli.tui")
        except ModuleNotFoundError:
            tui_cli = None
        if tui_cli is not None and sys.stdout.isatty() and not os.environ.get("WORKBENCH_NO_TUI"):
            return int(tui_cli.run_tui(args, ctx) or 0)
        # No terminal (or no UI): show what the UI would open on.
        from workbench.cli.quarantine import cmd_list

        listing = argparse.Namespace(query="", limit=20, offset=0, json=False, count=False)
        reply = cmd_list(listing, ctx)
        if isinstance(reply, Reply) and reply.text is not None:
            reply.text(ctx)
        ctx.print("\n(no terminal: the UI opens when stdout is a TTY; 'workbench --help' lists commands)")
        return reply.code if isinstance(reply, Reply) else reply
    return run


if __name__ == "__main__":
    sys.exit(main())
