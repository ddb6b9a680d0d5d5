"""Compiler messages from both engines, taken apart by the one parser the linter, validation and the scanner share."""

from __future__ import annotations

from pathlib import Path

import pytest
import yara
import yara_x

from workbench.rules.compiler_messages import (
    libyara_message,
    undefined_identifier,
    unknown_module,
    yarax_message,
)

BAD = "rule A { condition: true }\nrule B { condition: ext_name == 1 }\n"


def test_libyara_positions_in_all_three_forms(tmp_path: Path) -> None:
    with pytest.raises(yara.SyntaxError) as from_source:
        yara.compile(source=BAD)
    said = libyara_message(str(from_source.value))
    assert (said.file, said.line, undefined_identifier(said.text)) == ("", 2, "ext_name")

    path = tmp_path / "odd (1) name.yar"           # parentheses in the path do not confuse it
    path.write_text(BAD)
    with pytest.raises(yara.SyntaxError) as from_file:
        yara.compile(filepath=str(path))
    said = libyara_message(str(from_file.value))
    assert (said.file, said.line) == (str(path), 2)

    assert libyara_message("3(14): string \"$a\" slows down scanning").file == "3"
    plain = libyara_message("  could not open file  ")
    assert (plain.file, plain.line, plain.text) == ("", 0, "could not open file")


def test_yarax_errors_and_the_identifier_they_name() -> None:
    compiler = yara_x.Compiler()
    with pytest.raises(yara_x.CompileError):
        compiler.add_source(BAD)
    [item] = compiler.errors()
    said = yarax_message(item)
    assert said.line == 2 and said.column > 0 and said.code
    assert said.summary.startswith(f"{said.code}: ")
    assert undefined_identifier(f"{said.title} {said.detail}") == "ext_name"
    assert unknown_module('unknown module "magic"') == "magic"
    assert unknown_module("unknown module `cuckoo`") == "cuckoo"
    assert undefined_identifier("syntax error, unexpected end of file") == ""
