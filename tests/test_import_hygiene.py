"""The core never imports Textual: only workbench.tui may (harlequin's import-hygiene test).

Each check runs in a fresh interpreter, since this test process has Textual loaded
already. One interpreter imports every core module in turn and names the first
one after which ``textual`` appears in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import workbench

    names = sorted(m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.")
                   if not (m.name == "workbench.tui" or m.name.startswith("workbench.tui."))
                   and not m.name.endswith("__main__"))
    report = {"modules": names, "failed": {}, "textual_after": None}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            report["failed"][name] = f"{type(exc).__name__}: {exc}"
        if report["textual_after"] is None and any(
                m == "textual" or m.startswith("textual.") for m in sys.modules):
            report["textual_after"] = name
    print(json.dumps(report))
""")


def _run(code: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_no_core_module_imports_textual() -> None:
    report = _run(PROBE)
    modules = report["modules"]
    assert isinstance(modules, list)
    # the probe really walked the package, core and shells alike
    assert {"workbench.quarantine.index", "workbench.cli", "workbench.cli.tui"} <= set(modules)
    assert report["failed"] == {}, f"core modules that do not import: {report['failed']}"
    assert report["textual_after"] is None, (
        f"textual was imported by {report['textual_after']} (only workbench.tui may import it)")


def test_the_command_line_loads_textual_only_for_the_ui() -> None:
    code = textwrap.dedent("""
        import json, sys
        from workbench.cli import build_parser
        build_parser().parse_args(["quarantine", "list"])
        print(json.dumps({"textual": any(m.startswith("textual") for m in sys.modules)}))
    """)
    assert _run(code) == {"textual": False}


@pytest.mark.slow
def test_the_probe_would_notice_textual() -> None:
    """Guard against a probe that passes vacuously: importing the UI must be seen."""
    code = PROBE.replace('not (m.name == "workbench.tui" or m.name.startswith("workbench.tui."))',
                         'True')
    report = _run(code)
    assert report["textual_after"] is not None
    assert str(report["textual_after"]).startswith("workbench.tui")


def test_the_uis_plain_helpers_stay_free_of_textual() -> None:
    """What the UI reads and computes lives in modules without Textual, tested on their own."""
    plain = ["workbench.tui.fleetview", "workbench.tui.pages",
             "workbench.tui.marks", "workbench.tui.yara_highlight",
             "workbench.tui.render", "workbench.tui.release_rows", "workbench.tui.testing_rows"]
    code = textwrap.dedent(f"""
        import importlib, json, sys
        loaded = {{}}
        for name in {plain!r}:
            importlib.import_module(name)
            loaded[name] = any(m == "textual" or m.startswith("textual.") for m in sys.modules)
        print(json.dumps(loaded))
    """)
    assert _run(code) == dict.fromkeys(plain, False)
