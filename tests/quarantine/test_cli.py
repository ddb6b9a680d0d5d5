"""The quarantine command line: names, JSON documents and exit codes users rely on."""

from __future__ import annotations

import json

import pytest
import pyzipper

from tests.support.quarantine_mail import make_mail
from workbench.cli import main
from workbench.exitcodes import E_FINDINGS, E_NOT_FOUND, E_OK, E_USAGE


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.eml").write_bytes(make_mail(n, attachment="doc.pdf" if n == 1 else None))
    (folder / "junk.bin").write_bytes(b"\x00\x01\x02")
    return tmp_path


def run(home, capsys, *args):
    code = main(["--home", str(home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ingest_list_show_status_tag_export(home, capsys):
    code, out, _ = run(home, capsys, "quarantine", "ingest", str(home / "in"), "--tower", "t12",
                       "--reason", "unknown-virus", "--json")
    doc = json.loads(out)
    assert code == E_OK and doc["accepted"] == 3 and doc["failed"] == 1
    assert doc["failures"][0]["stored_as"].startswith("failed/")

    code, out, _ = run(home, capsys, "quarantine", "list", "--query", "has:attachment", "--json")
    listing = json.loads(out)
    assert listing["total"] == 1
    (msg,) = listing["messages"]
    assert msg["attachment_names"] == ["doc.pdf"] and msg["tower"] == "t12"
    assert set(msg) >= {"sha256", "message_id", "from_addr", "subject", "first_seen", "status", "tags"}

    prefix = msg["sha256"][:10]
    assert run(home, capsys, "quarantine", "set-status", prefix, "triaged", "--note", "seen")[0] == E_OK
    assert run(home, capsys, "quarantine", "tag", prefix, "+phish", "wave2")[0] == E_OK
    code, out, _ = run(home, capsys, "quarantine", "show", prefix, "--json")
    shown = json.loads(out)
    assert shown["message"]["status"] == "triaged"
    assert shown["message"]["tags"] == ["phish", "wave2"]
    assert [a["action"] for a in shown["audit"]] == ["sighting", "status", "tags"]
    assert shown["audit"][1]["note"] == "seen" and shown["audit"][1]["actor"] == "tester"

    code, out, _ = run(home, capsys, "quarantine", "export", prefix, "--zip", str(home / "x.zip"))
    assert code == E_OK
    with pyzipper.AESZipFile(home / "x.zip") as zf:
        zf.setpassword(b"infected")
        assert zf.read(f"{msg['sha256']}.eml") == make_mail(1, attachment="doc.pdf")


def test_text_listing_and_errors(home, capsys):
    run(home, capsys, "quarantine", "ingest", str(home / "in"))
    code, out, _ = run(home, capsys, "quarantine", "list")
    assert code == E_OK and "Message number 2" in out and "3 of 3 messages" in out
    code, _, err = run(home, capsys, "quarantine", "show", "ffff")
    assert code == E_NOT_FOUND and "no quarantined message" in err
    code, _, err = run(home, capsys, "quarantine", "list", "--query", "has:wings")
    assert code == E_USAGE and "has:" in err
    code, _, err = run(home, capsys, "quarantine", "ingest", str(home / "missing"))
    assert code == E_NOT_FOUND


def test_fsck_exit_code_and_reindex(home, capsys):
    run(home, capsys, "quarantine", "ingest", str(home / "in"))
    code, out, _ = run(home, capsys, "quarantine", "fsck", "--json")
    assert code == E_OK and json.loads(out)["ok"] is True
    objects = home / "quarantine" / "objects"
    victim = next(p for p in objects.rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(b"bitrot")
    code, out, _ = run(home, capsys, "quarantine", "fsck")
    assert code == E_FINDINGS and "CORRUPT" in out
    code, out, _ = run(home, capsys, "quarantine", "reindex", "--json")
    assert json.loads(out)["messages"] == 3


@pytest.mark.sqlite_only
def test_home_from_environment(home, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    assert main(["quarantine", "ingest", str(home / "in")]) == E_OK
    capsys.readouterr()
    assert (home / "quarantine" / "index.sqlite").exists()


def test_hostile_subjects_cannot_drive_the_terminal(tmp_path, capsys):
    raw = (b"From: x@evil.example\nTo: a@b.c\nSubject: =?utf-8?q?hi=1B]0;pwned=07_gpj=E2=80=AE.exe?=\n"
           b"Date: Thu, 26 Nov 2026 10:00:00 +0000\n\nbody\n")
    (tmp_path / "m.eml").write_bytes(raw)
    assert run(tmp_path, capsys, "quarantine", "ingest", str(tmp_path / "m.eml"))[0] == E_OK
    code, out, _ = run(tmp_path, capsys, "quarantine", "list")
    assert code == E_OK
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "␛]0;pwned␇" in out and "⟨U+202E⟩" in out
    code, out, _ = run(tmp_path, capsys, "quarantine", "show", "--json",
                       json.loads(run(tmp_path, capsys, "quarantine", "list", "--json")[1])
                       ["messages"][0]["sha256"])
    assert "\\u001b" in out, "JSON keeps the exact value, escaped"


def test_list_takes_a_negated_term_and_counts_only_when_asked(home, capsys):
    run(home, capsys, "quarantine", "ingest", str(home / "in"), "--tower", "t12")
    code, out, _ = run(home, capsys, "quarantine", "list", "--json")
    first = json.loads(out)["messages"][0]["sha256"]
    assert run(home, capsys, "quarantine", "set-status", first, "dismissed")[0] == E_OK

    # the documented negation, as the value of -q (argparse took it for an option: exit 2)
    code, out, _ = run(home, capsys, "quarantine", "list", "-q", "-status:dismissed", "--json")
    doc = json.loads(out)
    assert code == E_OK and doc["total"] == 2 and first not in [m["sha256"] for m in doc["messages"]]
    code, out, _ = run(home, capsys, "quarantine", "list", "--query", "-status:new", "--json")
    assert [m["sha256"] for m in json.loads(out)["messages"]] == [first]

    # a full page leaves the total unknown unless --count asks for it
    code, out, _ = run(home, capsys, "quarantine", "list", "--limit", "2", "--json")
    assert code == E_OK and json.loads(out)["total"] is None
    code, out, _ = run(home, capsys, "quarantine", "list", "--limit", "2")
    assert "more follow" in out
    code, out, _ = run(home, capsys, "quarantine", "list", "--limit", "2", "--count", "--json")
    assert json.loads(out)["total"] == 3
    code, out, _ = run(home, capsys, "quarantine", "list", "--limit", "2", "--offset", "2", "--json")
    assert json.loads(out)["total"] == 3
