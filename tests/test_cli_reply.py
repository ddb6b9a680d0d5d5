"""``--json`` is decided once, in ``workbench.cli.main``, from the Reply a handler returns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.exitcodes import E_OK

CLI = Path(__file__).resolve().parents[1] / "workbench" / "cli"

# Handlers that still look at --json themselves, and why.
STILL_DECIDE = {
    "quarantine.py": 1,    # watch streams one JSON line per drain, not one document
    "release.py": 2,       # a refused release prints its validation report before failing
}


def run(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_one_handler_gives_both_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(tmp_path, capsys, "tokens", "add", "t17", "--label", "lab", "--json")
    added = json.loads(out)
    assert code == E_OK and added["tower"] == "t17" and added["token"]

    code, out, _ = run(tmp_path, capsys, "tokens", "list", "--json")
    assert code == E_OK and [r["tower"] for r in json.loads(out)] == ["t17"]

    code, out, _ = run(tmp_path, capsys, "tokens", "list")
    assert code == E_OK and out.splitlines()[0].split() == ["ID", "TOWER", "CREATED", "LABEL"]
    assert "t17" in out and added["token"] not in out

    code, out, _ = run(tmp_path, capsys, "tokens", "revoke", "t17")
    assert code == E_OK and out.startswith(f"revoked {added['id']}")


def test_exit_code_is_the_same_in_both_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an empty quarantine's fsck: ok either way
    text_code, text, _ = run(tmp_path, capsys, "quarantine", "fsck", "--quick")
    json_code, doc, _ = run(tmp_path, capsys, "quarantine", "fsck", "--quick", "--json")
    assert text_code == json_code == E_OK
    assert text.rstrip().endswith("ok") and json.loads(doc)["ok"] is True


def test_handlers_leave_json_to_main() -> None:
    counts = {p.name: len(re.findall(r"\bif (?:args\.json|as_json)\b", p.read_text(encoding="utf-8")))
              for p in CLI.glob("*.py") if p.name != "__init__.py"}
    deciding = {name: n for name, n in counts.items() if n}
    assert deciding == STILL_DECIDE, (
        "return Reply(document, text, code) and let workbench.cli.main print the one the user "
        f"asked for; handlers that decide themselves: {deciding}")
