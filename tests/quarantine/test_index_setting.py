"""Choosing the index: ``--index``, ``$WORKBENCH_INDEX`` or ``quarantine/settings.toml``."""

from __future__ import annotations

import json

import pytest

from tests.support.quarantine_mail import indexed_shas, make_mail
from workbench.cli import main
from workbench.exitcodes import E_OK, E_REMOTE, E_USAGE
from workbench.quarantine.service import IndexSettingError, index_address


def _ingest(tmp_path, capsys, *options: str) -> tuple[int, str]:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)       # a workspace folder: a missing one is refused
    for n in range(3):
        (folder / f"{n}.eml").write_bytes(make_mail(n))
    code = main([*options, "--home", str(tmp_path / "home"), "quarantine", "ingest",
                 str(folder), "--json"])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_settings_file_names_the_index(tmp_path, capsys, monkeypatch, index_backend):
    address = index_address(tmp_path)          # this run's backend ("" is SQLite)
    monkeypatch.delenv("WORKBENCH_INDEX", raising=False)
    root = tmp_path / "home" / "quarantine"
    root.mkdir(parents=True)
    (root / "settings.toml").write_text(f'index = "{address or "sqlite"}"\n')
    code, out = _ingest(tmp_path, capsys)
    assert code == E_OK and json.loads(out)["accepted"] == 3
    assert len(indexed_shas(root)) == 3
    # only the SQLite index is a file in the quarantine
    assert (root / "index.sqlite").exists() == (index_backend == "sqlite")


def test_index_option_wins_over_the_environment(tmp_path, capsys, monkeypatch, index_backend):
    address = index_address(tmp_path)
    monkeypatch.setenv("WORKBENCH_INDEX", "postgresql://nobody@/nowhere?host=/nonexistent")
    code, out = _ingest(tmp_path, capsys, "--index", address or "sqlite")
    assert code == E_OK, out          # the environment's server does not exist
    assert json.loads(out)["accepted"] == 3


def test_an_unknown_index_is_a_usage_error(tmp_path, capsys):
    code, out = _ingest(tmp_path, capsys, "--index", "mysql://db/x")
    assert code == E_USAGE and "postgresql://" in out
    with pytest.raises(IndexSettingError):
        index_address(tmp_path, "oracle:")


def test_an_unreachable_server_is_said_plainly(tmp_path, capsys):
    code, out = _ingest(tmp_path, capsys, "--index",
                        "postgresql://nobody@/nowhere?host=/nonexistent&connect_timeout=2")
    assert code == E_REMOTE and "cannot be reached" in out


def test_a_dropped_connection_fails_one_batch_and_the_next_reconnects(quarantine, index_backend):
    """A PostgreSQL restart under a long-running ``serve``: the batch in flight is refused
    (503, nothing acknowledged), the next one gets a new connection."""
    if index_backend == "sqlite":
        pytest.skip("PostgreSQL's connection")
    import psycopg

    from workbench.quarantine.ingest import ingest_bytes
    from workbench.quarantine.service import QuarantineUnavailable

    ingest_bytes(quarantine, make_mail(1), tower="t", server="s", reason="r", source="x")
    pid = quarantine.index.db.info.backend_pid
    with psycopg.connect(quarantine.index_address, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(QuarantineUnavailable):
        ingest_bytes(quarantine, make_mail(2), tower="t", server="s", reason="r", source="x")
    ingest_bytes(quarantine, make_mail(3), tower="t", server="s", reason="r", source="x")
    assert quarantine.index.count("") == 2
    # message 2 was journaled before the index refused it: fsck finds it, repair indexes it
    report = quarantine.fsck()
    assert len(report.unindexed_sightings) == 1
    quarantine.fsck(repair=True)
    assert quarantine.index.count("") == 3
