"""One exception base: each kind maps to one exit code (CLI) and one title (UI), in one place each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.campaigns.campaign_store import UnknownCampaign
from workbench.cli import main
from workbench.cli.context import CommandError
from workbench.corpus.corpus_registry import CorpusError, UnknownCorpus
from workbench.corpus.ruleset import RulesetError
from workbench.dissect.sandbox import SandboxUnavailable
from workbench.distribute.client import ClientError
from workbench.distribute.install import AgentBusy
from workbench.distribute.tokens import TokenError
from workbench.distribute.update_repository import (
    InvalidBundle,
    NoRepository,
    UpdateRepositoryError,
)
from workbench.durable import LockBusy
from workbench.errors import UI_TITLES, Kind, WorkbenchError
from workbench.exitcodes import (
    E_CONFLICT,
    E_INPUT,
    E_INTERNAL,
    E_LOCAL,
    E_NOT_FOUND,
    E_OK,
    E_REMOTE,
    E_USAGE,
    EXIT_CODES,
)
from workbench.quarantine.index import AmbiguousId, UnknownId
from workbench.quarantine.object_store import ObjectNotFound
from workbench.quarantine.query import QueryError
from workbench.release.bundle import BundleError
from workbench.release.release_store import ReleaseNotFound
from workbench.release.signature_repository import SignatureRepositoryError
from workbench.rules.policy import PolicyError
from workbench.rules.vendor import VendorError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_every_kind_has_its_own_documented_exit_code() -> None:
    assert set(EXIT_CODES) == set(Kind)
    assert len(set(EXIT_CODES.values())) == len(Kind)
    assert set(UI_TITLES) == set(Kind)
    table = DOCS.read_text(encoding="utf-8")
    for kind, code in EXIT_CODES.items():
        assert re.search(rf"^\| {code} \| `E_\w+` \|.*`{kind.value}`", table, re.M), \
            f"docs/cli.md: exit code {code} does not name the kind {kind.value!r}"


@pytest.mark.parametrize(("error", "code"), [
    (QueryError("x"), E_USAGE), (UnknownId("x"), E_NOT_FOUND), (AmbiguousId("x"), E_NOT_FOUND),
    (ObjectNotFound("x"), E_NOT_FOUND), (UnknownCorpus("x"), E_NOT_FOUND),
    (UnknownCampaign("x"), E_NOT_FOUND), (ReleaseNotFound("x"), E_NOT_FOUND),
    (NoRepository("x"), E_NOT_FOUND), (CorpusError("x"), E_USAGE), (TokenError("x"), E_USAGE),
    (PolicyError("x"), E_INPUT), (VendorError("x"), E_INPUT), (RulesetError([]), E_INPUT),
    (BundleError("x"), E_INPUT), (InvalidBundle("x"), E_INPUT),
    (SignatureRepositoryError("x"), E_CONFLICT), (UpdateRepositoryError("x"), E_CONFLICT),
    (LockBusy("x"), E_CONFLICT), (AgentBusy("x"), E_CONFLICT), (SandboxUnavailable("x"), E_CONFLICT),
    (ClientError("x"), E_REMOTE), (CommandError("x", E_LOCAL), E_LOCAL),
])
def test_core_errors_carry_their_kind(error: WorkbenchError, code: int) -> None:
    assert isinstance(error, WorkbenchError)
    assert EXIT_CODES[error.kind] == code


def test_the_two_repository_errors_are_told_apart() -> None:
    # git signatures vs the TUF update repository: distinct names, one base
    assert not issubclass(SignatureRepositoryError, UpdateRepositoryError)
    assert not issubclass(UpdateRepositoryError, SignatureRepositoryError)
    assert SignatureRepositoryError.__name__ != UpdateRepositoryError.__name__


def test_an_instance_may_say_more_than_its_class() -> None:
    assert SignatureRepositoryError("unknown revision 'x'", kind=Kind.NOT_FOUND).kind is Kind.NOT_FOUND
    assert SignatureRepositoryError("dirty").kind is Kind.CONFLICT


def test_describe_adds_the_topic_once() -> None:
    assert QueryError("unknown field 'towr'").describe() == "query: unknown field 'towr'"
    assert PolicyError("policy: bad").describe() == "policy: bad"
    assert UnknownId("no message abc").describe() == "no message abc"
    assert str(ObjectNotFound("no object x")) == "no object x"


def test_ui_words_each_kind_in_one_place() -> None:
    from workbench.tui.app import error_text

    assert error_text(UnknownId("no message abc")) == "Not found: no message abc"
    assert error_text(QueryError("bad")) == "Not understood: query: bad"
    assert error_text(RuntimeError("boom")) == "RuntimeError: boom"   # a bug is named as one


def run(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_maps_a_core_error_to_its_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(tmp_path, capsys, "quarantine", "show", "abcdef")
    assert code == E_NOT_FOUND and out == ""
    assert err.startswith("workbench: error: ") and "abcdef" in err

    code, out, err = run(tmp_path, capsys, "quarantine", "list", "--query", "after:notadate")
    assert code == E_USAGE and err.startswith("workbench: error: query: ")


def test_errors_under_json_are_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(tmp_path, capsys, "quarantine", "show", "abcdef", "--json")
    doc = json.loads(out)
    assert code == E_NOT_FOUND
    assert doc == {"error": {"kind": "not-found", "message": doc["error"]["message"],
                             "exit_code": E_NOT_FOUND}}
    assert "abcdef" in doc["error"]["message"] and "abcdef" in err

    code, out, _ = run(tmp_path, capsys, "quarantine", "list", "--query", "after:notadate", "--json")
    assert code == E_USAGE and json.loads(out)["error"]["kind"] == "usage"

    code, out, _ = run(tmp_path, capsys, "corpus", "show", "nope", "--json")
    doc = json.loads(out)
    assert code == E_NOT_FOUND and doc["error"]["message"].startswith("no corpus named 'nope'")


def test_a_bug_under_json_is_json_too(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.cli.quarantine as qcli

    def broken(*_: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(qcli, "cmd_failed", broken)
    code, out, err = run(tmp_path, capsys, "quarantine", "failed", "--json")
    assert code == E_INTERNAL and "Traceback" in err
    assert json.loads(out) == {"error": {"kind": "internal", "message": "RuntimeError: a bug",
                                         "exit_code": E_INTERNAL}}
    assert run(tmp_path, capsys, "quarantine", "failed", "--json")[0] == E_INTERNAL
    monkeypatch.undo()
    assert run(tmp_path, capsys, "quarantine", "failed", "--json")[0] == E_OK
