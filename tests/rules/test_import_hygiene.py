"""The rules core never imports Textual (only workbench.tui may)."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["workbench.rules.parse", "workbench.rules.policy", "workbench.rules.lint", "workbench.rules.fmt",
           "workbench.rules.sarif", "workbench.rules.draft", "workbench.rules.suggest",
           "workbench.rules.goodware", "workbench.cli.rules"]


def test_rules_modules_do_not_import_textual() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in MODULES)
            + "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'workbench.tui')))\n"
            + "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
