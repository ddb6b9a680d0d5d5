"""The commands and options the argument parser knows, and the reference table docs/cli.md keeps.

``python -m tests.support.cli_reference`` prints the table to paste into docs/cli.md
(section "Reference") after adding or removing a command or an option.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
HEADING = "## Reference"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """Each option by its longest name (``--query`` for ``-q/--query``), then positionals."""
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            out.append(max(action.option_strings, key=len))
        else:
            name = (action.metavar if isinstance(action.metavar, str) else None) or action.dest.upper()
            out.append(name.replace("|", "/"))     # a table cell cannot hold a "|"
    return out


def _help(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser | None, name: str) -> str:
    if parent is None:
        return parser.description or ""
    for action in parent._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help or ""
    return ""


def parser_commands() -> dict[str, tuple[str, list[str]]]:
    """``{"quarantine ingest": (help, ["PATH", "--tower", ...]), ...}`` for every command the
    parser has, leaves and groups alike (``""`` is the program itself)."""
    from workbench.cli import build_parser

    found: dict[str, tuple[str, list[str]]] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str], parent: argparse.ArgumentParser | None) -> None:
        found[" ".join(path)] = (_help(parser, parent, path[-1] if path else ""), _options(parser))
        for name, sub in _subcommands(parser).items():
            walk(sub, [*path, name], parser)

    walk(build_parser(None), [], None)
    return found


def render_table(commands: dict[str, tuple[str, list[str]]]) -> str:
    lines = ["| command | what it does | arguments and options |", "|---|---|---|"]
    for path in sorted(commands):
        help_text, options = commands[path]
        cell = ", ".join(f"`{o}`" for o in options) or "-"
        lines.append(f"| `workbench{' ' + path if path else ''}` | {help_text.replace('|', '/')} | {cell} |")
    return "\n".join(lines)


_ROW = re.compile(r"^\| `workbench(?: (?P<path>[^`]+))?` \|(?P<help>.*)\|(?P<options>[^|]*)\|$")


def documented_commands(text: str | None = None) -> dict[str, list[str]]:
    """The commands and options the Reference section of docs/cli.md lists."""
    text = DOCS.read_text(encoding="utf-8") if text is None else text
    section = text.split(HEADING, 1)[1] if HEADING in text else ""
    found: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line.startswith("## "):
            break
        m = _ROW.match(line.strip())
        if m:
            found[m.group("path") or ""] = re.findall(r"`([^`]+)`", m.group("options"))
    return found


if __name__ == "__main__":
    print(render_table(parser_commands()))
