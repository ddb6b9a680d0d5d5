"""A command imports only its own domain: `workbench quarantine list` does not load numpy,
GitPython, YARA-X or cryptography, and the command table matches what the modules register."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import textwrap

import pytest

from workbench.cli import COMMAND_MODULES, COMMANDS, build_parser, named_command

HEAVY = ("numpy", "git", "yara_x", "cryptography", "tuf", "textual", "fastapi")


def _registered_by(module_name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module_name).register(sub)
    return set(sub.choices)


def test_the_command_table_names_what_each_module_registers() -> None:
    table = {name: _registered_by(name) for name in COMMAND_MODULES}
    expected = {command: module for module, commands in table.items() for command in commands}
    assert expected == COMMANDS


@pytest.mark.parametrize(("argv", "command"), [
    (["quarantine", "list"], "quarantine"),
    (["--home", "rule", "fleet"], "fleet"),          # --home's value is not the command
    (["--signatures", "x", "--home=y", "test"], "test"),
    (["--help"], None), ([], None), (["--", "rule"], None),
])
def test_named_command(argv: list[str], command: str | None) -> None:
    assert named_command(argv) == command


def test_help_and_typos_still_see_every_command() -> None:
    for argv in (["--help"], ["quarantin"], None):
        sub = next(a for a in build_parser(argv)._actions
                   if isinstance(a, argparse._SubParsersAction))
        assert set(sub.choices) == set(COMMANDS)


def _loaded_after(argv: list[str]) -> dict[str, bool]:
    code = textwrap.dedent(f"""
        import json, sys
        from workbench.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_quarantine_command_loads_no_other_domain(tmp_path) -> None:
    loaded = _loaded_after(["--home", str(tmp_path), "quarantine", "list", "--json"])
    assert not any(loaded.values()), loaded


def test_the_probe_sees_a_heavy_import() -> None:
    """Guard against a check that passes vacuously: the release commands do load git."""
    assert _loaded_after(["release", "--help"])["git"] is True
