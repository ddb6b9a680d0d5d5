"""``workbench demo``: a realistic, deterministic demo quarantine through the real ingest."""

from __future__ import annotations

import pytest

from workbench.demo.seed import seed_demo
from workbench.quarantine.service import Quarantine
from workbench.samples.threats import THREATS, benign_pe
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    ws = Workspace.resolve(tmp_path_factory.mktemp("demo")).ensure()
    report = seed_demo(ws)
    q = Quarantine.open(ws)
    yield ws, report, q
    q.close()


def test_demo_has_at_least_200_messages_from_several_towers(demo):
    _, report, q = demo
    assert q.index.count() >= 200
    towers = {r.tower for r in q.index.list("", limit=1000)}
    assert len(towers) >= 5
    facets = q.index.facets("")
    assert facets["reason"]["stuck"] > 50 and facets["reason"]["unknown-virus"] > 30
    assert report.ingest.duplicates > 0, "some messages were seen by more than one tower"


def test_every_threat_family_and_the_ordinary_mail_is_there(demo):
    _, _, q = demo
    names = {n for r in q.index.list("has:attachment", limit=1000) for n in r.attachment_names}
    for t in THREATS:
        if t.filename and t.key != "stealer":
            assert t.filename in names, t.key
    assert "QB_update.zip" in names and "Invoice_9921.rar" in names
    assert benign_pe()[0] in names
    assert q.index.count("GTUBE") == 0 and q.index.count("from:cheap-meds.example") > 0
    assert q.index.count("has:defects") >= 3, "malformed mail is kept and flagged"
    assert len(q.index.failed()) == 2, "tower junk is kept in failed/"


def test_demo_is_deterministic_and_idempotent(demo, tmp_path):
    ws, _, q = demo
    other = Workspace.resolve(tmp_path / "again").ensure()
    seed_demo(other)
    with Quarantine.open(other) as q2:
        assert q2.index.all_shas() == q.index.all_shas()
    again = seed_demo(ws)
    assert again.skipped and q.index.count() == len(q.index.all_shas())


def test_demo_lays_out_corpora(demo):
    ws, report, _ = demo
    assert report.corpora["demo-malicious"] >= 10 and report.corpora["demo-clean"] >= 5
    assert (ws.corpora / "demo-malicious" / "eicar.com").is_file()


def test_the_signature_repositorys_corpora_are_registered_too(tmp_path):
    import shutil
    from pathlib import Path

    from workbench.corpus.testing import test_rules

    repo_signatures = Path(__file__).resolve().parents[1] / "signatures"
    ws = Workspace.resolve(tmp_path / "home").ensure()
    shutil.copytree(repo_signatures, ws.signatures)
    report = seed_demo(ws, messages=0)
    assert report.corpora["house-malicious"] >= 10 and report.corpora["house-clean"] >= 5
    result = test_rules(ws, [ws.signatures / "rules"], ["demo-malicious", "demo-clean",
                                                         "house-malicious", "house-clean"])
    assert result.passed, "every house rule finds its samples and spares the clean files"
    assert result.false_negatives == 0 and result.false_positives == 0


def test_the_rar_invoice_dissects_to_eicar(demo):
    from workbench.dissect.engine import dissect_message

    _, _, q = demo
    (row,) = q.index.list("Invoice_9921.rar", limit=5)
    result = dissect_message(q, row.sha256, use_cache=False)
    rar = next(n for n in result.root.walk() if n.dissector == "rar")
    assert rar.status == "ok" and "RAR 5 archive" in rar.report.notes
    assert [c.sha256 for c in rar.children] == [
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"]


def test_the_demo_wave_is_one_campaign_with_nothing_else_in_it(demo):
    import datetime as dt
    import hashlib

    from workbench.campaigns.service import list_campaigns, show_campaign
    from workbench.demo.seed import START, WAVE_SIZE
    from workbench.samples.campaign import courier_wave

    ws, _, q = demo
    wave = {hashlib.sha256(w.mail.build()).hexdigest()
            for w in courier_wave(START + dt.timedelta(days=5, hours=7), messages=WAVE_SIZE)}
    assert len(q.index.known(wave)) == WAVE_SIZE
    list_campaigns(ws)
    report = show_campaign(ws, sorted(wave)[0], members=1000)
    assert {m.sha256 for m in report.members} == wave
    assert report.summary.towers >= 4 and len(report.summary.growth) >= 5
    assert {"url", "payload"} <= set(report.links)
