"""``workbench corpus``, ``workbench test`` and ``workbench retrohunt`` from the command line."""

from __future__ import annotations

import json

import pytest

from tests.support.corpus_lab import Lab
from workbench.cli import main
from workbench.exitcodes import E_CONFLICT, E_FINDINGS, E_INPUT, E_NOT_FOUND, E_OK


def run(lab: Lab, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--home", str(lab.workspace.home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_corpus_commands(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(lab, capsys, "corpus", "list", "--json")
    assert code == E_OK
    listed = {c["name"]: c for c in json.loads(out)["corpora"]}
    assert listed["mal"]["files"] == 2 and listed["goodware"]["label"] == "clean"
    assert listed["quarantine"]["builtin"] is True

    code, out, _ = run(lab, capsys, "corpus", "add", "more", str(lab.clean), "--label", "clean")
    assert code == E_OK and "2 added" in out
    code, out, err = run(lab, capsys, "corpus", "add", "more", str(lab.clean), "--label", "malicious")
    assert code == E_CONFLICT and "labelled clean" in err
    code, out, _ = run(lab, capsys, "corpus", "show", "more")
    assert code == E_OK and "readme.txt" in out and "av-notes.txt" in out
    code, out, _ = run(lab, capsys, "corpus", "show", "more", "--json", "--limit", "1")
    doc = json.loads(out)
    assert doc["total"] == 2 and len(doc["files"]) == 1 and doc["corpus"]["label"] == "clean"
    assert run(lab, capsys, "corpus", "remove", "more")[0] == E_OK
    assert run(lab, capsys, "corpus", "show", "more")[0] == E_NOT_FOUND
    assert run(lab, capsys, "corpus", "add", "x", str(lab.root / "nope"), "--label", "clean")[0] \
        == E_NOT_FOUND


def test_test_command_exit_codes_and_json(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(lab, capsys, "test", str(lab.rules))
    assert code == E_FINDINGS
    assert "MAL_Any_Eicar" in out and "FP av-notes.txt" in out and "FAIL" in out
    assert "FN absent" in out

    code, out, _ = run(lab, capsys, "test", str(lab.rules), "--json", "--threads", "1")
    doc = json.loads(out)
    assert doc["passed"] is False and doc["false_positives"] == 1
    fp = next(r for r in doc["rules"] if r["rule"] == "MAL_Any_Eicar")["false_positives"][0]
    assert bytes.fromhex(fp["strings"][0]["data"]).startswith(b"EICAR-STANDARD")

    good = lab.root / "good.yar"
    good.write_text('rule MAL_Ok { strings: $a = "evil.example" condition: $a }\n')
    assert run(lab, capsys, "test", str(good), "--corpus", "mal", "--corpus", "goodware")[0] == E_OK
    assert run(lab, capsys, "test", str(good), "--corpus", "nope")[0] == E_NOT_FOUND
    assert run(lab, capsys, "test", str(lab.root / "missing.yar"))[0] == E_NOT_FOUND
    bad = lab.root / "bad.yar"
    bad.write_text("rule Bad { condition: $x }\n")
    code, _, err = run(lab, capsys, "test", str(bad))
    assert code == E_INPUT and "bad.yar:1" in err


def test_retrohunt_command(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(lab, capsys, "retrohunt", str(lab.rules), "--json")
    assert code == E_OK
    doc = json.loads(out)
    assert doc["messages"] == [] and {r["rule"] for r in doc["rules"]} >= {"MAL_Any_Eicar"}


def test_retrohunt_command_dissects_messages_never_opened(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """The match is only inside a base64 attachment: the CLI finds it as the UI does (issue 14)."""
    from workbench.dissect.catalog import undissected
    from workbench.quarantine.ingest import ingest_bytes
    from workbench.quarantine.service import Quarantine
    from workbench.samples.mail import Attachment, Mail

    marker = b"retro-marker: only inside the attachment " + bytes(range(200, 256))
    with Quarantine.open(lab.workspace) as q:
        msg = ingest_bytes(q, Mail("a@example.org", "b@example.org", "report", text="see attached",
                                   attachments=[Attachment("report.bin", marker)]).build(),
                           tower="t1", server="s1", reason="virus", source="test").messages[0]
        assert marker not in q.store.path_for(msg.sha256).read_bytes()     # encoded in the raw mail
    rule = lab.root / "hunt.yar"
    rule.write_text('rule MAL_Attachment_Marker { strings: $m = "retro-marker: only inside" '
                    "condition: $m }\n")

    code, out, _ = run(lab, capsys, "retrohunt", str(rule), "--json", "--no-dissect")
    assert code == E_OK and json.loads(out)["messages"] == []            # the raw mail alone: no hit
    assert undissected(lab.workspace) == [msg.sha256]

    code, out, _ = run(lab, capsys, "retrohunt", str(rule), "--json")
    doc = json.loads(out)
    assert code == E_OK and [m["sha256"] for m in doc["messages"]] == [msg.sha256]
    assert [(x["rule"], x["artifact_name"]) for x in doc["messages"][0]["matches"]] == \
        [("MAL_Attachment_Marker", "report.bin")]
    assert undissected(lab.workspace) == [] and doc["errors"] == []


def test_corpus_index_command_and_no_index_flag(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(lab, capsys, "corpus", "index", "--json")
    doc = json.loads(out)
    assert code == E_OK and doc["build"]["indexed"] == 0          # corpus add indexed them all
    assert doc["stats"]["files"] == 4 and doc["files"] == 4
    code, out, _ = run(lab, capsys, "corpus", "index", "mal", "--rebuild")
    assert code == E_OK and "indexed 2 of 2 files" in out
    assert run(lab, capsys, "corpus", "index", "nope")[0] == E_NOT_FOUND

    code, out, _ = run(lab, capsys, "test", str(lab.rules), "--json")
    indexed = json.loads(out)
    assert indexed["stats"]["index"] is True and indexed["stats"]["files_indexed"] == 2
    code, out, _ = run(lab, capsys, "test", str(lab.rules), "--json", "--no-index", "--no-cache")
    plain = json.loads(out)
    assert plain["stats"]["index"] is False and plain["stats"]["files_skipped"] == 0
    assert plain["rules"] == indexed["rules"]


def test_corpus_add_reports_the_size_corpus_list_shows(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """One content under two paths is one file of the corpus: add and list agree on files and bytes."""
    folder = lab.root / "dupes"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"x" * 3000)
    (folder / "b.txt").write_bytes(b"x" * 3000)         # the same content again
    (folder / "c.txt").write_bytes(b"y" * 1000)
    code, out, _ = run(lab, capsys, "corpus", "add", "dupes", str(folder), "--label", "clean", "--json")
    assert code == E_OK
    added = json.loads(out)
    _, out, _ = run(lab, capsys, "corpus", "list", "--json")
    listed = {c["name"]: c for c in json.loads(out)["corpora"]}["dupes"]
    assert added["bytes_added"] == listed["bytes"] == 4000
    assert added["files_total"] == listed["files"] == 2 and added["bytes_total"] == 4000
    _, out, _ = run(lab, capsys, "corpus", "add", "dupes", str(folder), "--label", "clean")
    assert "0 B new to the corpus" in out
    assert "now 2 files" in out
