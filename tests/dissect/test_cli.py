"""``workbench dissect`` and ``workbench strings`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.exitcodes import E_NOT_FOUND, E_OK, E_USAGE
from workbench.samples.archives import build_zip
from workbench.samples.mail import EICAR, Attachment, Mail, build_message

EICAR_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    raw = build_message(Mail("a@evil.example", "b@corp.example", "Invoice", text="password: infected",
                             attachments=[Attachment("invoice.zip", build_zip([("invoice.com", EICAR)]))]))
    (tmp_path / "m.eml").write_bytes(raw)
    assert main(["init", str(tmp_path / "h")]) == E_OK
    assert main(["--home", str(tmp_path / "h"), "quarantine", "ingest", str(tmp_path / "m.eml")]) == E_OK
    return tmp_path / "h"


def _message(home: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    main(["--home", str(home), "quarantine", "list", "--json"])
    return json.loads(capsys.readouterr().out)["messages"][0]["sha256"]


def test_dissect_by_prefix_text_and_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = _message(home, capsys)
    assert main(["--home", str(home), "dissect", sha[:8]]) == E_OK
    out = capsys.readouterr().out
    assert "part 2/invoice.zip" in out and "└── invoice.com" in out and "status ok" in out
    assert main(["--home", str(home), "dissect", sha, "--json"]) == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["root"]["children"][1]["children"][0]["sha256"] == EICAR_SHA


def test_dissect_depth_stored_sha_and_file(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = _message(home, capsys)
    assert main(["--home", str(home), "dissect", sha, "--depth", "1", "--json"]) == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["root"]["children"][1]["status"] == "limit-hit"
    assert main(["--home", str(home), "dissect", EICAR_SHA]) == E_NOT_FOUND   # not extracted yet
    assert main(["--home", str(home), "dissect", sha]) == E_OK
    capsys.readouterr()
    assert main(["--home", str(home), "dissect", EICAR_SHA, "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["root"]["filename"] == "invoice.com"
    (tmp_path / "x.zip").write_bytes(build_zip([("a.txt", b"hi")]))
    assert main(["--home", str(home), "dissect", str(tmp_path / "x.zip")]) == E_OK
    assert "x.zip" in capsys.readouterr().out


def test_dissect_errors(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "dissect", "nothing-like-this"]) == E_NOT_FOUND
    assert main(["--home", str(home), "dissect", "abc", "--depth", "99"]) == E_USAGE
    assert "between 0 and 15" in capsys.readouterr().err


def test_dissect_all_fills_the_catalog(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "dissect", "--all", "--json"]) == E_OK
    first = json.loads(capsys.readouterr().out)
    assert first["dissected"] == 1 and first["start seconds"] >= 0 and first["seconds"] > 0
    assert main(["--home", str(home), "dissect", "--all", "--json"]) == E_OK
    again = json.loads(capsys.readouterr().out)
    assert again["dissected"] == 0 and again["start seconds"] == 0     # no work: no workers started


def test_dissect_all_side_by_side_by_query_and_limit(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Several jobs fill the same catalog as one; --query/--limit choose the messages."""
    import sqlite3

    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(8):
        attachments = [Attachment(f"doc{n}.zip", build_zip([(f"a{n}.txt", b"x" * (n + 1))]))] \
            if n % 2 else []
        (folder / f"{n}.eml").write_bytes(build_message(Mail(
            f"s{n}@evil.example", "b@corp.example", f"Invoice {n}" if n < 6 else f"Note {n}",
            text=f"body {n}", attachments=attachments)))
    homes = [tmp_path / "one", tmp_path / "two"]
    for home in homes:
        assert main(["init", str(home)]) == E_OK
        assert main(["--home", str(home), "quarantine", "ingest", str(folder)]) == E_OK
    capsys.readouterr()

    home = homes[1]
    assert main(["--home", str(home), "dissect", "--all", "-q", "-subject:note", "--limit", "2",
                 "--jobs", "2", "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["dissected"] == 2
    assert main(["--home", str(home), "dissect", "--all", "-q", "-subject:note", "--jobs", "2",
                 "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["dissected"] == 4     # the other Invoices
    assert main(["--home", str(home), "dissect", "--all", "--since", "1d", "-j", "2", "--progress"]) == E_OK
    captured = capsys.readouterr()
    assert "dissected 2 message(s)" in captured.out
    assert captured.err.splitlines()[-1].startswith("dissect --all: 2/2 messages")
    assert main(["--home", str(homes[0]), "dissect", "--all", "--jobs", "1", "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["dissected"] == 8

    def catalog(h: Path) -> list[tuple[object, ...]]:
        with sqlite3.connect(h / "state" / "dissect.sqlite") as db:
            return sorted(db.execute("SELECT message_sha256, path, sha256, size FROM extracted"))
    assert catalog(homes[0]) == catalog(homes[1]) and catalog(homes[0])
    assert main(["--home", str(home), "dissect", "--all", "--jobs", "0"]) == E_USAGE
    assert main(["--home", str(home), "dissect", "--limit", "3"]) == E_USAGE


def _aged_folder(tmp_path: Path, days: list[int]) -> Path:
    """One message per entry, first seen that many days ago (the file's time, as ingest reads it)."""
    import os
    import time

    folder = tmp_path / "aged"
    folder.mkdir()
    for n, ago in enumerate(days):
        path = folder / f"{n}.eml"
        path.write_bytes(build_message(Mail(f"s{n}@evil.example", "b@corp.example", f"Aged {n}",
                                            text=f"body {n}")))
        when = time.time() - ago * 86400
        os.utime(path, (when, when))
    return folder


def _catalogued_subjects(home: Path, capsys: pytest.CaptureFixture[str]) -> set[str]:
    import sqlite3

    with sqlite3.connect(home / "state" / "dissect.sqlite") as db:
        done = {r[0] for r in db.execute("SELECT message_sha256 FROM dissected")}
    capsys.readouterr()
    main(["--home", str(home), "quarantine", "list", "--json"])
    return {m["subject"] for m in json.loads(capsys.readouterr().out)["messages"] if m["sha256"] in done}


def test_dissect_all_since_and_limit_choose_the_messages(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--since leaves older messages alone; --limit takes the newest first; neither redoes any."""
    folder = _aged_folder(tmp_path, [30, 10, 3, 1, 0])
    home = tmp_path / "h"
    assert main(["init", str(home)]) == E_OK
    assert main(["--home", str(home), "quarantine", "ingest", str(folder)]) == E_OK
    capsys.readouterr()
    assert main(["--home", str(home), "dissect", "--all", "--since", "7d", "--limit", "2", "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["dissected"] == 2
    assert _catalogued_subjects(home, capsys) == {"Aged 3", "Aged 4"}       # the two newest
    assert main(["--home", str(home), "dissect", "--all", "--since", "7d", "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["dissected"] == 1
    assert _catalogued_subjects(home, capsys) == {"Aged 2", "Aged 3", "Aged 4"}   # not 10 or 30 days old
    assert main(["--home", str(home), "dissect", "--all", "--since", "2w", "--jobs", "2", "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["dissected"] == 1
    assert "Aged 0" not in _catalogued_subjects(home, capsys)


def test_dissect_all_progress_only_when_asked_or_on_a_terminal(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Not a terminal (a log, a pipe): no progress unless --progress; --json stdout stays one document."""
    folder = _aged_folder(tmp_path, [0, 0, 0])
    home = tmp_path / "h"
    assert main(["init", str(home)]) == E_OK
    assert main(["--home", str(home), "quarantine", "ingest", str(folder)]) == E_OK
    capsys.readouterr()
    assert main(["--home", str(home), "dissect", "--all", "--limit", "1"]) == E_OK
    assert "dissect --all:" not in capsys.readouterr().err
    assert main(["--home", str(home), "dissect", "--all", "--limit", "1", "--json", "--progress"]) == E_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dissected"] == 1
    lines = [line for line in captured.err.splitlines() if line.startswith("dissect --all:")]
    assert lines and lines[-1].startswith("dissect --all: 1/1 messages") and "msg/s  done" in lines[-1]
    assert main(["--home", str(home), "dissect", "--all", "--no-progress"]) == E_OK
    assert "dissect --all:" not in capsys.readouterr().err
    assert main(["--home", str(home), "dissect", "x", "--progress"]) == E_USAGE


def test_strings(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = _message(home, capsys)
    main(["--home", str(home), "dissect", sha])
    capsys.readouterr()
    assert main(["--home", str(home), "strings", EICAR_SHA, "--json", "--min-len", "10"]) == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["strings"][0]["text"] == EICAR.decode() and doc["strings"][0]["offset"] == 0
    assert main(["--home", str(home), "strings", EICAR_SHA, "--no-wide"]) == E_OK
    assert capsys.readouterr().out.startswith("         0  A  X5O!P%@AP")
    assert main(["--home", str(home), "strings", "f" * 64]) == E_NOT_FOUND


def test_strings_suggest_calls_the_rules_engine(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = _message(home, capsys)
    main(["--home", str(home), "dissect", sha])
    capsys.readouterr()
    code = main(["--home", str(home), "strings", EICAR_SHA, "--suggest", "--json"])
    out = capsys.readouterr()
    if code == E_USAGE:      # the rules engineer's module is not there yet: a clear message
        assert "workbench.rules.suggest" in out.err
    else:
        assert code == E_OK and "candidates" in json.loads(out.out)


def test_short_artifact_ids_from_the_tree_work_in_strings_and_dissect(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sha = _message(home, capsys)
    assert main(["--home", str(home), "dissect", sha]) == E_OK
    assert EICAR_SHA[:12] in capsys.readouterr().out        # the tree prints short ids
    assert main(["--home", str(home), "strings", EICAR_SHA[:12], "--json"]) == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["sha256"] == EICAR_SHA and "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" in doc["strings"][0]["text"]
    assert main(["--home", str(home), "dissect", EICAR_SHA[:12], "--json"]) == E_OK
    assert json.loads(capsys.readouterr().out)["root"]["sha256"] == EICAR_SHA


def test_eight_bit_headers_dissect_and_cache_without_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = (b"From: \xff\xfe sender@bad-charset.example\nTo: a@b.example\n"
           b"Subject: caf\xe9 \xe0 la carte\nDate: Thu, 26 Nov 2026 10:00:00 +0000\n\nbody\n")
    (tmp_path / "m.eml").write_bytes(raw)
    home = tmp_path / "h"
    assert main(["init", str(home)]) == E_OK
    assert main(["--home", str(home), "quarantine", "ingest", str(tmp_path / "m.eml")]) == E_OK
    sha = _message(home, capsys)
    assert main(["--home", str(home), "dissect", sha]) == E_OK
    assert "café à la carte" in capsys.readouterr().out
    assert main(["--home", str(home), "dissect", sha, "--json"]) == E_OK      # from the cache
    assert json.loads(capsys.readouterr().out)["root"]["report"]["subject"] == "café à la carte"
