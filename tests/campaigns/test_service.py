"""Campaigns over a real quarantine: spool ingest, real dissection, catch-up, triage, the draft."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yara

from tests.support.campaign_lab import START, WaveLab, build_wave_lab, spool
from workbench.campaigns.draft import draft_for_campaign
from workbench.campaigns.service import (
    catch_up,
    list_campaigns,
    open_store,
    parse_since,
    rebuild,
    set_campaign_status,
    show_campaign,
    tag_campaign,
)
from workbench.cli import main
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.errors import WorkbenchError
from workbench.quarantine.service import Quarantine
from workbench.samples.campaign import CORE_STRINGS, courier_variant
from workbench.samples.pe import build_pe
from workbench.samples.threats import benign_pe


def _partition(lab: WaveLab) -> dict[str, str]:
    with open_store(lab.workspace, readonly=True) as store:
        return {m: store.campaign_of(m) or "" for m in lab.wave + lab.others}


@pytest.mark.slow
def test_the_wave_is_one_campaign_and_nothing_else_is_in_it(wave_lab: WaveLab) -> None:
    report = catch_up(wave_lab.workspace)
    assert report.messages == len(wave_lab.wave) + len(wave_lab.others)
    assert report.dissections == report.messages
    where = _partition(wave_lab)
    wave_campaigns = {where[m] for m in wave_lab.wave}
    assert len(wave_campaigns) == 1
    (cid,) = wave_campaigns
    assert not [m for m in wave_lab.others if where[m] == cid]
    listed = list_campaigns(wave_lab.workspace)
    top = next(c for c in listed if c.id == cid)
    assert top.size == len(wave_lab.wave)
    assert top.towers == len({w.tower for w in wave_lab.messages})
    assert {"ssdeep", "payload"} & set(top.reasons)
    assert sum(top.growth) == top.size and len(top.growth) >= 3      # spread over hours


def test_catch_up_is_idempotent_and_survives_a_reindex(wave_lab: WaveLab) -> None:
    catch_up(wave_lab.workspace)
    before = _partition(wave_lab)
    assert catch_up(wave_lab.workspace).messages == 0
    with Quarantine.open(wave_lab.workspace) as q:
        q.reindex()
    again = catch_up(wave_lab.workspace)
    assert again.messages == 0 and again.dissections == 0
    assert _partition(wave_lab) == before


def test_a_new_copy_joins_its_campaign_when_it_arrives(tmp_path: Path) -> None:
    lab = build_wave_lab(tmp_path / "home", wave_size=6)
    catch_up(lab.workspace)
    cid = _partition(lab)[lab.wave[0]]
    # A later copy of variant a, sent through a relay the wave used, with a wave subject:
    # it joins at ingest (headers), before anyone dissects it.
    late = next(w for w in lab.messages if w.variant == "a")
    data = late.mail.build().replace(b"Dear customer", b"Dear client")
    with Quarantine.open(lab.workspace) as q:
        spool(q, data, tower="gru-t30", when=START, n=99)
        from workbench.quarantine.ingest import ingest_spool

        ingest_spool(q)
    report = catch_up(lab.workspace)
    assert report.messages == 1
    with open_store(lab.workspace, readonly=True) as store:
        import hashlib

        assert store.campaign_of(hashlib.sha256(data).hexdigest()) == cid


def test_builds_with_nothing_else_in_common_link_once_dissected(tmp_path: Path) -> None:
    """Four builds of the family, zipped, in mail that shares no sender, subject, relay,
    body or link: nothing links them on arrival; dissection finds the near-identical members."""
    import datetime as dt

    from workbench.dissect.walker import dissect_message
    from workbench.quarantine.ingest import ingest_spool
    from workbench.samples.archives import build_zip
    from workbench.samples.mail import Attachment, Mail, received
    from workbench.workspace import Workspace

    workspace = Workspace.resolve(tmp_path / "home").ensure()
    lures = ["Minutes of the board meeting, see attached.", "The scan you asked for is attached.",
             "Attached is the updated price list for 2027.", "Here are the photos from Saturday's event."]
    with Quarantine.open(workspace) as q:
        for i, key in enumerate("abcd"):
            when = START + dt.timedelta(hours=i)
            mail = Mail(f"person{i}@org{i}.example", "li.wei@contoso.example", f"Topic number {i} of {key}",
                        text=lures[i], date=when,
                        attachments=[Attachment(f"file{i}.zip", build_zip([(f"doc{i}.exe", courier_variant(key))]))],
                        headers=[received("mx.quarantine.example", f"smtp.org{i}.example", f"198.51.100.{60 + i}", when)])
            spool(q, mail.build(), tower="fra-t07", when=when, n=i)
        ingest_spool(q)
        shas = sorted(q.index.all_shas())
    catch_up(workspace)
    with open_store(workspace, readonly=True) as store:
        assert len({store.campaign_of(s) for s in shas}) == 4
    with Quarantine.open(workspace) as q:
        for sha in shas:
            dissect_message(q, sha)
    catch_up(workspace)
    with open_store(workspace, readonly=True) as store:
        (cid,) = {store.campaign_of(s) for s in shas}
        kinds = {r["kind"] for r in store.link_counts(cid)}
    assert kinds & {"ssdeep", "tlsh"} and "url" not in kinds


def test_show_explains_reach_growth_and_why(wave_lab: WaveLab) -> None:
    cid = _partition(wave_lab)[wave_lab.wave[0]]
    report = show_campaign(wave_lab.workspace, cid)
    assert report.summary.size == len(wave_lab.wave) == report.members_shown
    assert {m.sha256 for m in report.members} == set(wave_lab.wave)
    joined = [m for m in report.members if m.why]
    # Each member that joined a campaign says by what; those that started one (before a
    # later message bridged their campaign into this one) have nothing to say.
    assert len(wave_lab.wave) - 4 <= len(joined) < len(wave_lab.wave)
    assert all(w.other in wave_lab.wave for m in joined for w in m.why)
    assert any(v.kind == "url" and v.value == "courier-track.example/parcel" for v in report.shared)
    assert sum(r.messages for r in report.reach) == len(wave_lab.wave)
    # a member's sha256 finds its campaign too
    assert show_campaign(wave_lab.workspace, wave_lab.wave[3]).summary.id == cid


def test_status_and_tags_reach_every_member(tmp_path: Path) -> None:
    lab = build_wave_lab(tmp_path / "home", wave_size=4, dissect=True)
    catch_up(lab.workspace)
    cid = _partition(lab)[lab.wave[0]]
    result = set_campaign_status(lab.workspace, cid, "triaged", note="courier wave")
    assert sorted(result.changed) == sorted(lab.wave)
    tag_campaign(lab.workspace, cid, ["wbcourier"])
    with Quarantine.open(lab.workspace) as q:
        for sha in lab.wave:
            row = q.index.get(sha)
            assert row.status == "triaged" and "wbcourier" in row.tags
        for sha in lab.others:
            assert q.index.get(sha).status == "new"
        assert any(a.action == "status" for a in q.index.audit(lab.wave[0]))


def test_rebuild_gives_the_same_campaigns(wave_lab: WaveLab) -> None:
    catch_up(wave_lab.workspace)
    before = {frozenset(m for m, c in _partition(wave_lab).items() if c == cid)
              for cid in set(_partition(wave_lab).values())}
    rebuild(wave_lab.workspace)
    after = {frozenset(m for m, c in _partition(wave_lab).items() if c == cid)
             for cid in set(_partition(wave_lab).values())}
    assert before == after


def test_since_takes_durations_and_times() -> None:
    import datetime as dt

    now = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
    assert parse_since("1h", now=now) == "2026-12-07T11:00:00+00:00"
    assert parse_since("2026-12-01T08:00:00", now=now) == "2026-12-01T08:00:00+00:00"
    assert parse_since("", now=now) == ""
    with pytest.raises(WorkbenchError, match="duration"):
        parse_since("yesterday", now=now)


@pytest.fixture(scope="module")
def clean_corpus(wave_lab: WaveLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real, benign executables: pip's launchers, the interpreter, and shared libraries."""
    import sys

    folder = tmp_path_factory.mktemp("clean")
    name, pe = benign_pe()
    (folder / name).write_bytes(pe)
    (folder / "synthetic.exe").write_bytes(build_pe())
    shutil.copy(sys.executable, folder / "python")
    for lib in sorted(Path(sys.base_prefix, "lib").glob("libpython*.so*"))[:1]:
        shutil.copy(lib, folder / lib.name)
    with CorpusRegistry(wave_lab.workspace) as registry:
        registry.add("clean-bins", folder, "clean")
    return folder


@pytest.mark.slow
def test_the_campaign_draft_catches_every_member_and_nothing_clean(wave_lab: WaveLab, clean_corpus: Path) -> None:
    catch_up(wave_lab.workspace)
    cid = _partition(wave_lab)[wave_lab.wave[0]]
    result = draft_for_campaign(wave_lab.workspace, cid, family="WbCourier")
    assert result.kind == "pe" and len(result.payloads) == 4            # the four builds
    assert result.coverage.missed == [] and sorted(result.coverage.caught) == sorted(wave_lab.wave)
    assert result.clean_corpora == ["clean-bins"] and result.clean_files >= 3
    assert result.false_positives == []
    assert result.passed and result.draft.findings == []
    assert set(result.shared) <= {s.decode() for s in CORE_STRINGS}     # the shared core, no noise
    rules = yara.compile(source=result.draft.text)
    assert all(rules.match(data=courier_variant(k)) for k in "abcd")
    for path in clean_corpus.iterdir():
        assert not rules.match(filepath=str(path)), path.name
    # and none of the unrelated threats
    from workbench.samples.threats import THREATS

    assert not [t.key for t in THREATS if rules.match(data=t.build())]


def test_the_cli_lists_shows_and_drafts(wave_lab: WaveLab, clean_corpus: Path, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    home = ["--home", str(wave_lab.workspace.home)]
    assert main([*home, "campaigns", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["campaigns"]
    cid = next(c["id"] for c in listed if c["size"] == len(wave_lab.wave))
    assert main([*home, "campaigns"]) == 0
    assert cid in capsys.readouterr().out
    assert main([*home, "campaigns", "show", cid[:8]]) == 0
    out = capsys.readouterr().out
    assert f"campaign {cid}: {len(wave_lab.wave)} messages" in out and "same URL" in out
    out_file = tmp_path / "courier.yar"
    assert main([*home, "campaigns", "draft", cid, "--family", "WbCourier", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert f"coverage: {len(wave_lab.wave)} of {len(wave_lab.wave)} members caught" in out
    assert "0 hit(s)" in out
    assert yara.compile(filepath=str(out_file))
    # rule draft --campaign is the same use case, appending to a rule file as rule draft does
    assert main([*home, "rule", "draft", "--campaign", cid, "--family", "WbCourier",
                 "--name", "MAL_WbCourier_Wave_Exe", "--out", str(out_file)]) == 0
    capsys.readouterr()
    assert "rule MAL_WbCourier_Exe" in out_file.read_text() and "rule MAL_WbCourier_Wave_Exe" in out_file.read_text()
    assert main([*home, "rule", "draft", "--campaign", cid, "--from", wave_lab.wave[0]]) == 2
    assert main([*home, "campaigns", "show", "C-nope"]) == 3
    assert "no campaign" in capsys.readouterr().err
    assert main([*home, "campaigns", "--since", "yesterday"]) == 2
