"""Retro-hunt: quarantined messages and their extracted artifacts, hits mapped back to messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.corpus.retrohunt import retrohunt
from workbench.quarantine.service import Quarantine


def test_hits_are_mapped_back_to_messages(hunted) -> None:
    workspace, rules, spam, carrier, plain = hunted
    report = retrohunt(workspace, [rules])
    hits = {m.sha256: m for m in report.messages}
    assert set(hits) == {spam, carrier, plain}
    assert [(x.rule, x.artifact_sha256) for x in hits[spam].matches] == [("MAL_Gtube_Body", "")]
    via = {(x.rule, x.artifact_name) for x in hits[carrier].matches}
    assert ("MAL_Dropper_Artifact", "invoice.exe") in via
    assert hits[spam].subject == "cheap pills" and hits[spam].tower == "t1"
    summary = {r.rule: (r.messages, r.artifacts) for r in report.rules}
    assert summary["MAL_Gtube_Body"] == (1, 0)
    assert summary["MAL_Dropper_Artifact"][1] == 1
    assert report.messages_scanned == 3 and report.artifacts_scanned == 1
    assert report.tagged == []


def test_tagging_the_hit_messages(hunted) -> None:
    workspace, rules, spam, carrier, plain = hunted
    report = retrohunt(workspace, [rules], tag="retro-gtube")
    assert report.tagged == sorted([spam, carrier, plain])
    with Quarantine.open(workspace) as q:
        assert "retro-gtube" in q.index.get(spam).tags
        assert any(a.action == "tags" for a in q.index.audit(spam))
    with pytest.raises(ValueError):
        retrohunt(workspace, [rules], tag="bad,tag")


def test_a_second_hunt_comes_from_the_cache(hunted) -> None:
    workspace, rules, *_ = hunted
    first = retrohunt(workspace, [rules])
    second = retrohunt(workspace, [rules])
    assert second.bytes_scanned == 0 and first.bytes_scanned > 0
    assert [m.sha256 for m in first.messages] == [m.sha256 for m in second.messages]


def test_a_hunt_with_a_new_rule_reads_only_what_it_could_match(hunted, tmp_path: Path) -> None:
    workspace, rules, _spam, carrier, plain = hunted
    first = retrohunt(workspace, [rules])             # indexes the messages and the artifact
    assert first.files_skipped > 0
    new = tmp_path / "new.yar"
    new.write_text('rule MAL_New { strings: $u = "evil.example/payload" condition: $u }\n')
    hunt = retrohunt(workspace, [new])
    full = retrohunt(workspace, [new], use_cache=False, use_index=False)
    assert [m.sha256 for m in hunt.messages] == [m.sha256 for m in full.messages]
    assert {m.sha256 for m in hunt.messages} == {carrier, plain}     # through the dropper artifact
    assert hunt.files_skipped == 3 and hunt.bytes_scanned < full.bytes_scanned


def test_a_hunt_compiles_the_policy_externals(hunted) -> None:
    """``retrohunt`` honours ``[externals]`` as validate and release do (issue 19, defect 1)."""
    workspace, _, spam, _, _ = hunted
    rules = workspace.home / "ext.yar"
    rules.write_text('rule MAL_Gtube_Env { strings: $g = "GTUBE-STANDARD" condition: $g and hunt_on }\n')
    workspace.signatures.mkdir(parents=True, exist_ok=True)
    (workspace.signatures / "workbench.toml").write_text("[externals]\nhunt_on = true\n")
    report = retrohunt(workspace, [rules])
    assert [m.sha256 for m in report.messages] == [spam]
