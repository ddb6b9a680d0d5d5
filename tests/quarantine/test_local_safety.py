"""Local safety: one line per field on a terminal, escaped bidi in JSON, no planted links,
private file modes whatever the umask."""

from __future__ import annotations

import base64
import grp
import json
import os
import stat

import pytest
import pyzipper

from tests.support.quarantine_mail import make_mail
from workbench.cli import main
from workbench.exitcodes import E_CONFLICT, E_OK
from workbench.quarantine.access import AccessError
from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import EXPORT_PASSWORD, Quarantine


def run(workspace, capsys, *args):
    code = main(["--home", str(workspace.home), *args])
    return code, capsys.readouterr().out


def encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def test_show_prints_each_field_on_one_line(workspace, quarantine, capsys):
    raw = make_mail(1, subject=encoded("Invoice\nstatus: dismissed\ntags: safe"))
    sha = ingest_bytes(quarantine, raw, tower="t", server="s", reason="r",
                       source="x").messages[0].sha256
    assert "\n" in quarantine.index.get(sha).subject      # the decoded subject carries it
    code, out = run(workspace, capsys, "quarantine", "show", sha[:12])
    assert code == E_OK
    fields = [line.strip().split(":")[0] for line in out.split("\n\n")[0].splitlines()]
    assert fields.count("status") == 1 and fields.count("tags") == 1
    assert "Invoice␊status: dismissed␊tags: safe" in out


def test_json_escapes_bidi_and_c1_controls(workspace, quarantine, capsys):
    subject = "invoice \u202egpj\u0085.exe"
    raw = make_mail(2, subject=encoded(subject))
    sha = ingest_bytes(quarantine, raw, tower="t", server="s", reason="r",
                       source="x").messages[0].sha256
    for args in (("show", sha, "--json"), ("list", "--json")):
        code, out = run(workspace, capsys, "quarantine", *args)
        assert code == E_OK
        assert "\u202e" not in out and "\u0085" not in out
        assert "\\u202e" in out
        document = json.loads(out)
        found = document["message"] if "message" in document else document["messages"][0]
        assert found["subject"] == subject                   # the same data to a parser


def test_export_never_writes_through_a_planted_link(workspace, quarantine, tmp_path, capsys):
    raw = make_mail(3)
    sha = ingest_bytes(quarantine, raw, tower="t", server="s", reason="r",
                       source="x").messages[0].sha256
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "export" / "out.zip"
    out.parent.mkdir()
    for name in ("out.zip.part", ".out.zip.tmp", "out.zip.tmp"):
        (out.parent / name).symlink_to(victim)
    code, _ = run(workspace, capsys, "quarantine", "export", sha, "--zip", str(out))
    assert code == E_OK
    assert victim.read_bytes() == b"precious"
    assert not out.is_symlink()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with pyzipper.AESZipFile(out) as zf:
        zf.setpassword(EXPORT_PASSWORD)
        assert zf.read(f"{sha}.eml") == raw
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        ["out.zip", "out.zip.part", ".out.zip.tmp", "out.zip.tmp"])


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_quarantine_is_private_whatever_the_umask(workspace, open_umask, index_backend):
    with Quarantine.open(workspace) as q:
        sha = ingest_bytes(q, make_mail(4), tower="t", server="s", reason="r",
                           source="x").messages[0].sha256
        obj = q.store.path_for(sha)
        assert mode(obj) == 0o440
        assert mode(obj.parent) == mode(obj.parent.parent) == 0o750
        assert mode(q.root) == mode(q.store.objects) == mode(q.store.tmp) == 0o750
        if index_backend == "sqlite":       # PostgreSQL keeps its own files private
            assert mode(q.root / "index.sqlite") == 0o640
        assert all(mode(p) == 0o640 for p in q.journal.files())
        assert q.fsck().loose_objects == []


def test_access_json_names_the_analysts_group_and_modes(workspace, capsys):
    group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    root = workspace.quarantine
    with Quarantine.open(workspace) as q:
        before = ingest_bytes(q, make_mail(5), tower="t", server="s", reason="r",
                              source="x").messages[0].sha256
    (root / "access.json").write_text(json.dumps({"group": group.gr_name, "object_mode": "0400"}))
    with Quarantine.open(workspace) as q:
        sha = ingest_bytes(q, make_mail(6), tower="t", server="s", reason="r",
                           source="x").messages[0].sha256
        obj = q.store.path_for(sha)
        assert mode(obj) == 0o400 and obj.stat().st_gid == group.gr_gid
        assert root.stat().st_gid == group.gr_gid and root.stat().st_mode & stat.S_ISGID
        assert q.fsck().loose_objects == [before]
    code, out = run(workspace, capsys, "quarantine", "fsck", "--repair")
    assert code == E_OK and "repaired" in out
    with Quarantine.open(workspace) as q:
        assert mode(q.store.path_for(before)) == 0o400
        assert q.fsck().loose_objects == []


def test_a_bad_access_json_is_a_clear_error(workspace, capsys):
    workspace.quarantine.mkdir(parents=True, exist_ok=True)
    (workspace.quarantine / "access.json").write_text('{"object_mode": "0664"}')
    with pytest.raises(AccessError, match="never writable"):
        Quarantine.open(workspace)
    (workspace.quarantine / "access.json").write_text('{"group": "no-such-group-here"}')
    code = main(["--home", str(workspace.home), "quarantine", "fsck"])
    assert code == E_CONFLICT
    assert "no-such-group-here" in capsys.readouterr().err
