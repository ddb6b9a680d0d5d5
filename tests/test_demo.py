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

    from workbench.corpus.rule_testing import run_rule_tests

    repo_signatures = Path(__file__).resolve().parents[1] / "signatures"
    ws = Workspace.resolve(tmp_path / "home").ensure()
    shutil.copytree(repo_signatures, ws.signatures)
    report = seed_demo(ws, messages=0)
    assert report.corpora["house-malicious"] >= 10 and report.corpora["house-clean"] >= 5
    result = run_rule_tests(ws, [ws.signatures / "rules"], ["demo-malicious", "demo-clean",
                                                         "house-malicious", "house-clean"])
    assert result.passed, "every house rule finds its samples and spares the clean files"
    assert result.false_negatives == 0 and result.false_positives == 0


def test_the_rar_invoice_dissects_to_eicar(demo):
    from workbench.dissect.walker import dissect_message

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


# --- the demo's workspace is apart from the checkout; init; --home typos ----------------------


def _checkout(tmp_path):
    """A stand-in for the project's checkout: a git repository with signatures/ inside it."""
    import shutil
    from pathlib import Path

    import git

    from tests.support.signatures import HOUSE, init_repo

    top = Path(tmp_path) / "checkout"
    shutil.copytree(HOUSE, top / "signatures", ignore=shutil.ignore_patterns("CHANGELOG.md"))
    repo = init_repo(top, "the project")
    repo.create_tag("v1")
    return top, git.Repo(top)


def test_the_demo_workspace_has_a_signature_repository_of_its_own(tmp_path):
    """Commits and releases made in the demo never touch the checkout's history or tree."""
    import git

    from workbench.cli import main
    from workbench.exitcodes import E_OK
    from workbench.release.service import make_release

    top, checkout = _checkout(tmp_path)
    head, tags = checkout.head.commit.hexsha, [t.name for t in checkout.tags]
    home = top / "demo-workspace"          # where ./dev demo puts it: inside the checkout, ignored
    (top / ".gitignore").write_text("/demo-workspace/\n")
    checkout.git.add(".gitignore")
    checkout.index.commit("ignore the demo")
    head = checkout.head.commit.hexsha
    assert main(["--home", str(home), "demo", "--messages", "0", "--no-dissect",
                 "--signatures-from", str(top / "signatures")]) == E_OK
    demo = git.Repo(home / "signatures")
    assert demo.working_tree_dir == str(home / "signatures") and len(list(demo.iter_commits())) == 1
    rule = home / "signatures" / "rules" / "test" / "eicar.yar"
    rule.write_text(rule.read_text() + "\n")
    demo.git.add(A=True)
    demo.index.commit("a change in the demo")
    outcome = make_release(Workspace.resolve(home), message="demo release")
    assert outcome.tag in [t.name for t in demo.tags]
    assert checkout.head.commit.hexsha == head and [t.name for t in checkout.tags] == tags
    assert not checkout.is_dirty(untracked_files=True), checkout.git.status()
    # seeding again leaves the demo's repository as it is
    assert main(["--home", str(home), "demo", "--messages", "0", "--no-dissect",
                 "--signatures-from", str(top / "signatures")]) == E_OK
    assert demo.head.commit.hexsha == outcome.commit


def test_a_missing_home_is_refused_and_init_creates_one(tmp_path, capsys):
    from workbench.cli import main
    from workbench.exitcodes import E_CONFLICT, E_NOT_FOUND, E_OK

    typo = tmp_path / "typo"
    assert main(["--home", str(typo), "quarantine", "list"]) == E_NOT_FOUND
    err = capsys.readouterr().err
    assert f"no workspace at {typo}" in err and f"workbench init {typo}" in err
    assert not typo.exists(), "nothing was created"
    assert main(["--home", str(typo), "rule", "lint", "x.yar"]) == E_NOT_FOUND and not typo.exists()
    assert main(["init", str(typo)]) == E_OK
    assert (typo / "quarantine").is_dir() and (typo / "signatures" / ".git").is_dir()
    assert main(["--home", str(typo), "quarantine", "list"]) == E_OK
    # a signatures folder that is not a repository of its own is not taken over
    other = tmp_path / "other"
    (other / "signatures").mkdir(parents=True)
    (other / "signatures" / "x.yar").write_text("rule x { condition: true }")
    assert main(["init", str(other)]) == E_CONFLICT
    assert "not a git repository of its own" in capsys.readouterr().err


def test_the_lab_serves_real_agents_that_follow_a_publish_and_stop_cleanly(tmp_path):
    """Keys, the update repository and a first release are made once; `workbench serve` and
    the agents run as processes; a new release published moves the fleet; stop ends them."""
    import os
    import time

    from tests.support.signatures import HOUSE
    from workbench.demo.lab import LAB_TOWERS, Lab, lab_folder, prepare_lab
    from workbench.distribute.fleet import FleetStore
    from workbench.distribute.update_repository import UpdateRepository, publish_bundle
    from workbench.release.service import make_release
    from workbench.workspace import create_workspace

    ws = Workspace.resolve(tmp_path / "demo")
    create_workspace(ws, signatures_from=HOUSE)
    prepared = prepare_lab(ws)
    assert prepared.repository_created and prepared.published_serial == 1
    again = prepare_lab(ws)
    assert not again.repository_created and again.published_serial is None, "once only"
    repository = UpdateRepository.for_workspace(ws)

    def serials() -> list[int]:
        with FleetStore.for_workspace(ws) as store:
            return sorted(s.serial or 0 for s in store.state(repository.newest_serial()).servers)

    def wait(serial: int) -> None:
        deadline = time.monotonic() + 90
        while serials() != [serial] * len(LAB_TOWERS):
            assert time.monotonic() < deadline, (serial, serials())
            time.sleep(0.2)

    lab = Lab(ws).start()
    pids = [p.pid for p in lab.processes.values()]
    try:
        assert lab.url.startswith("http://127.0.0.1:") and all(lab.running().values())
        wait(1)
        rule = ws.signatures / "rules" / "test" / "eicar.yar"
        import git

        rule.write_text(rule.read_text().replace("RELEASED", "NOISY", 1))
        repo = git.Repo(ws.signatures)
        repo.git.add(A=True)
        repo.index.commit("noisy")
        second = make_release(ws, message="second")
        publish_bundle(repository, __import__("pathlib").Path(second.bundle_path))
        wait(2)
    finally:
        lab.stop()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"process {pid} still runs after stop")
    assert not (lab_folder(ws) / "lab.json").exists()
    assert "signal 15: stopping" in (lab_folder(ws) / "logs" / f"agent-{LAB_TOWERS[0][0]}.log").read_text()
