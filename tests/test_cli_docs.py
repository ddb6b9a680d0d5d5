"""docs/cli.md matches the argument parser: every command and option is documented, and
nothing is documented that the parser does not have."""

from __future__ import annotations

from tests.support.cli_reference import HEADING, documented_commands, parser_commands, render_table

FIX = ("regenerate the table with `python -m tests.support.cli_reference` and paste it under "
       f"{HEADING!r} in docs/cli.md")


def test_every_command_is_documented_and_none_that_does_not_exist() -> None:
    parsed, documented = parser_commands(), documented_commands()
    missing = sorted(set(parsed) - set(documented))
    stale = sorted(set(documented) - set(parsed))
    assert not missing, f"commands missing from docs/cli.md: {missing}; {FIX}"
    assert not stale, f"docs/cli.md documents commands the parser does not have: {stale}; {FIX}"


def test_every_option_is_documented_and_none_that_does_not_exist() -> None:
    parsed, documented = parser_commands(), documented_commands()
    problems = []
    for path, (_, options) in parsed.items():
        listed = documented.get(path, [])
        if missing := [o for o in options if o not in listed]:
            problems.append(f"workbench {path}: undocumented {missing}")
        if stale := [o for o in listed if o not in options]:
            problems.append(f"workbench {path}: documented but not in the parser {stale}")
    assert not problems, "\n".join(problems) + f"\n{FIX}"


def test_the_reference_reader_sees_what_the_writer_wrote() -> None:
    table = render_table({"": ("the program", ["--home"]), "rule lint": ("lint | check", ["PATH", "--json"])})
    assert documented_commands(f"{HEADING}\n\n{table}\n\n## Next\n| `workbench x` | y | `--z` |\n") == {
        "": ["--home"], "rule lint": ["PATH", "--json"]}
