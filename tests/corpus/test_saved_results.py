"""Saved per-rule results: reused only while nothing they depend on changed.

Every test compares a cached run with an uncached, unindexed run of the same rules
and corpora: a saved result reused when it must not be makes them differ.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest
import yara
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.corpus_lab import (
    CLEAN_NOISY,
    DROPPER,
    LOADER,
    FakeArtifact,
    Lab,
    edit_rules,
    sha256,
    write_files,
)
from workbench.corpus.cache import CACHE_NAME, RESULT_SETS_KEPT, ScanCache
from workbench.corpus.corpus_registry import CorpusRegistry
from workbench.corpus.rule_testing import RuleResult, RuleTestReport, run_rule_tests
from workbench.document import to_data
from workbench.quarantine.object_store import ObjectStore
from workbench.samples.mail import EICAR
from workbench.workspace import Workspace


def results(report: RuleTestReport) -> object:
    data = to_data(report)
    data.pop("stats")
    return data


def check(workspace: Workspace, rules: Path, corpora: list[str] | None = None) -> RuleTestReport:
    """A cached run, asserted equal to an uncached, unindexed run; returns the cached report.

    The reference reads each corpus's files afresh, not the member lists kept for its state.
    """
    report = run_rule_tests(workspace, [rules], corpora)
    with CorpusRegistry(workspace) as registry:
        registry.db.execute("DELETE FROM member_lists")
    reference = run_rule_tests(workspace, [rules], corpora, use_cache=False, use_index=False)
    assert results(report) == results(reference)
    return report


def by_rule(report: RuleTestReport) -> dict[str, RuleResult]:
    return {r.rule: r for r in report.rules}


def test_an_unchanged_re_run_reuses_every_result(lab: Lab) -> None:
    first = check(lab.workspace, lab.rules)
    again = check(lab.workspace, lab.rules)
    assert first.stats.rules_reused == 0
    assert again.stats.rules_reused == 4
    assert (again.stats.rules_compiled, again.stats.files_scanned) == (0, 0)
    assert again.stats.pairs_cached == 16


def test_an_edit_rebuilds_the_edited_rule_and_the_rules_naming_it(lab: Lab) -> None:
    check(lab.workspace, lab.rules)
    edit_rules(lab, "uint32(0) == 0x46445025 and $g", "uint32(0) == 0x0 and $g")
    report = check(lab.workspace, lab.rules)
    # MAL_Pdf_Gtube changed, MAL_Pdf_Gtube_Dropper names it; the other two are reused
    assert report.stats.rules_reused == 2
    assert by_rule(report)["MAL_Pdf_Gtube"].tp_count == 0


def test_a_corpus_gaining_a_file_rebuilds_the_results(lab: Lab) -> None:
    before = by_rule(check(lab.workspace, lab.rules))["MAL_Any_Eicar"]
    write_files(lab.malicious, {"new/another.bin": b"prefix " + EICAR})
    with CorpusRegistry(lab.workspace) as registry:
        registry.add("mal", lab.malicious, "malicious")
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 0
    assert by_rule(report)["MAL_Any_Eicar"].tp_count == before.tp_count + 1


def test_a_file_leaving_a_corpus_rebuilds_the_results(lab: Lab) -> None:
    assert by_rule(check(lab.workspace, lab.rules))["MAL_Any_Eicar"].fp_count == 1
    with CorpusRegistry(lab.workspace) as registry:     # any writer: the registry's triggers see it
        registry.db.execute("DELETE FROM files WHERE corpus='goodware' AND sha256=?",
                            (sha256(CLEAN_NOISY),))
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 0
    assert by_rule(report)["MAL_Any_Eicar"].fp_count == 0


def test_a_corpus_removed_and_added_again_with_other_files_rebuilds_the_results(lab: Lab) -> None:
    check(lab.workspace, lab.rules)
    (lab.clean / "av-notes.txt").unlink()
    with CorpusRegistry(lab.workspace) as registry:
        registry.remove("goodware")
        registry.add("goodware", lab.clean, "clean")
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 0
    assert by_rule(report)["MAL_Any_Eicar"].fp_count == 0


def test_results_are_kept_per_corpus_selection_and_order(lab: Lab, tmp_path: Path) -> None:
    # the dropper is in a clean corpus too: which corpus is named first follows the order asked
    shared = write_files(tmp_path / "shared", {"shared.exe": DROPPER})
    with CorpusRegistry(lab.workspace) as registry:
        registry.add("shared", shared, "clean")
    selections = [["mal"], ["goodware"], ["mal", "shared"], ["shared", "mal"], None]
    first = {str(s): check(lab.workspace, lab.rules, s) for s in selections}
    dropper = [by_rule(first[str(s)])["MAL_Dropper_Eicar"] for s in (["mal", "shared"],
                                                                    ["shared", "mal"])]
    assert dropper[0].true_positives[0].corpora == ["mal", "shared"]
    assert dropper[1].true_positives[0].corpora == ["shared", "mal"]
    for selection in selections:
        again = check(lab.workspace, lab.rules, selection)
        assert again.stats.rules_reused == 4
        assert results(again) == results(first[str(selection)])


def test_hash_metadata_edits_rebuild_the_rule_though_its_key_stays(lab: Lab) -> None:
    check(lab.workspace, lab.rules)
    loader_sha1 = hashlib.sha1(LOADER).hexdigest()
    edit_rules(lab, '    hash = "' + "ab" * 32 + '"\n',
               '    hash = "' + "ab" * 32 + f'"\n    hash = "{loader_sha1}"\n')
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 3 and report.stats.rules_compiled == 0
    reasons = [(fn.hash, fn.reason) for fn in by_rule(report)["MAL_Any_Eicar"].false_negatives]
    assert (loader_sha1, "missed") in reasons


WARNED = 'rule MAL_Warned {\n  strings:\n    $a = { 01 ?? 02 }\n  condition:\n    $a\n}\n'


def test_warnings_follow_the_rule_when_its_lines_move(lab: Lab) -> None:
    path = lab.rules / "warned.yar"
    path.write_text(WARNED)
    first = by_rule(check(lab.workspace, lab.rules))["MAL_Warned"]
    assert first.warnings == ['line 3: string "$a" may slow down scanning']
    path.write_text("// a comment above moves every line\n\n" + WARNED)       # same key
    moved = check(lab.workspace, lab.rules)
    assert by_rule(moved)["MAL_Warned"].warnings == ['line 5: string "$a" may slow down scanning']
    assert moved.stats.rules_reused == 5
    # a layout change inside the rule: the same key, but the warning's line is found again
    path.write_text(WARNED.replace("  strings:\n", "  strings:\n\n"))
    inside = check(lab.workspace, lab.rules)
    assert by_rule(inside)["MAL_Warned"].warnings == ['line 4: string "$a" may slow down scanning']
    assert (inside.stats.rules_compiled, inside.stats.files_scanned) == (1, 0)


def test_a_rule_moved_to_another_file_keeps_its_result_with_its_new_place(lab: Lab) -> None:
    check(lab.workspace, lab.rules)
    main = lab.rules / "main.yar"
    text = main.read_text()
    start = text.index("rule MAL_Any_Eicar {")
    end = text.index("rule MAL_Pdf_Gtube {")
    main.write_text(text[:start] + text[end:])
    (lab.rules / "moved.yar").write_text('import "math"\n\n' + text[start:end])   # same imports
    report = check(lab.workspace, lab.rules)
    moved = by_rule(report)["MAL_Any_Eicar"]
    assert (Path(moved.file).name, moved.line) == ("moved.yar", 3)
    assert report.stats.rules_reused == 4


def test_a_libyara_version_change_rebuilds_every_result(lab: Lab,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    check(lab.workspace, lab.rules)
    monkeypatch.setattr(yara, "YARA_VERSION", "99.0.0")
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 0 and report.stats.rules_compiled == 4


MISS = f'rule MAL_Miss {{ meta: hash = "{hashlib.md5(LOADER).hexdigest()}" ' \
    'strings: $a = "not in there" condition: $a }\n'


def test_a_run_with_an_unreadable_file_neither_reuses_nor_saves(lab: Lab) -> None:
    (lab.rules / "miss.yar").write_text(MISS)
    first = by_rule(check(lab.workspace, lab.rules))
    assert first["MAL_Miss"].false_negatives[0].reason == "missed"
    stored = ObjectStore(lab.workspace.quarantine).path_for(sha256(LOADER))
    kept = stored.read_bytes()
    stored.chmod(0o600)
    stored.unlink()
    # an edit makes one rule scan every file again (no index: the loader is read, and fails)
    edit_rules(lab, "  condition:\n    $eicar\n", "  condition:\n    $eicar and filesize > 10\n")
    broken = run_rule_tests(lab.workspace, [lab.rules], use_index=False)
    # the oracle: the scan cache alone (an uncached run would not have the loader's cached hits)
    with ScanCache(lab.workspace.state / CACHE_NAME) as cache:
        cache.db.execute("DELETE FROM rule_results")
    reference = run_rule_tests(lab.workspace, [lab.rules], use_index=False)
    assert results(broken) == results(reference)
    assert [e.sha256 for e in broken.errors] == [sha256(LOADER)]
    assert by_rule(broken)["MAL_Miss"].false_negatives[0].reason == "unreadable"
    assert broken.stats.rules_reused == 0
    stored.write_bytes(kept)                  # readable again: nothing from the broken run is reused
    again = check(lab.workspace, lab.rules)
    assert by_rule(again)["MAL_Miss"].false_negatives[0].reason == "missed"


def test_quarantine_artifacts_changing_rebuild_the_results(lab: Lab,
                                                           fake_catalog: list[FakeArtifact]) -> None:
    store = ObjectStore(lab.workspace.quarantine)

    def quarantined(data: bytes, name: str) -> None:
        put = store.put_bytes(data)
        fake_catalog.append(FakeArtifact(put.sha256, name, "application/octet-stream", len(data),
                                         "ab" * 32, store.path_for(put.sha256)))

    quarantined(b"attachment with " + EICAR, "a.bin")
    first = by_rule(check(lab.workspace, lab.rules))["MAL_Any_Eicar"]
    assert first.other_count == 1
    assert check(lab.workspace, lab.rules).stats.rules_reused == 4
    quarantined(b"another attachment " + EICAR, "b.bin")
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 0
    assert by_rule(report)["MAL_Any_Eicar"].other_count == 2


def test_a_damaged_saved_result_is_rebuilt(lab: Lab) -> None:
    check(lab.workspace, lab.rules)
    with ScanCache(lab.workspace.state / CACHE_NAME) as cache:
        cache.db.execute("UPDATE rule_results SET result = x'00ff' WHERE rule='MAL_Any_Eicar'")
        # Nothing changed, so the run memo (runmemo.py) would answer with the whole report
        # once the rule files are older than its racy window; this test is about the
        # per-rule results under it, whatever the clock says.
        cache.db.execute("DELETE FROM test_runs")
    report = check(lab.workspace, lab.rules)
    assert report.stats.rules_reused == 3


def test_results_of_old_corpus_states_are_dropped(lab: Lab) -> None:
    for n in range(RESULT_SETS_KEPT + 2):
        write_files(lab.clean, {f"more/{n}.txt": b"clean file %d" % n})
        with CorpusRegistry(lab.workspace) as registry:
            registry.add("goodware", lab.clean, "clean")
        run_rule_tests(lab.workspace, [lab.rules])
    with ScanCache(lab.workspace.state / CACHE_NAME) as cache:
        kept = cache.db.execute("SELECT COUNT(DISTINCT corpora) FROM rule_results").fetchone()[0]
        assert kept == RESULT_SETS_KEPT


# -- any sequence of changes ---------------------------------------------------------------

RULE_TEXTS = [
    'rule R{n} {{ meta: hash = "{h}" strings: $a = "EICAR-STANDARD" condition: $a }}',
    'rule R{n} {{ strings: $a = "GTUBE" condition: $a and filesize < {size} }}',
    'rule R{n} {{ strings: $a = {{ 4D 5A }} condition: uint16(0) == 0x5A4D or $a }}',
    'rule R{n} {{ condition: R0 or filesize > {size} }}',
    'private rule R{n} {{ strings: $a = "clean" condition: $a }}',
]
CONTENTS = [DROPPER, LOADER, CLEAN_NOISY, b"clean text", b"MZ small", b"nothing at all" * 3]

step = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 3), st.integers(0, len(RULE_TEXTS) - 1),
              st.integers(1, 5000)),
    st.tuples(st.just("add"), st.sampled_from(["mal", "clean", "other"]),
              st.integers(0, len(CONTENTS) - 1), st.integers(0, 3)),
    st.tuples(st.just("drop"), st.sampled_from(["mal", "clean", "other"]), st.integers(0, 3),
              st.just(0)),
    st.tuples(st.just("test"), st.sampled_from(["all", "mal", "clean+mal", "mal+clean"]),
              st.just(0), st.just(0)),
)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@pytest.mark.slow
@given(steps=st.lists(step, min_size=2, max_size=7))
def test_any_sequence_of_changes_gives_what_an_uncached_run_gives(
        steps: list[tuple[str, object, int, int]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="wb-saved-"))
    try:
        workspace = Workspace.resolve(root / "home").ensure()
        rules = root / "rules"
        rules.mkdir()
        texts = [RULE_TEXTS[0], RULE_TEXTS[1], RULE_TEXTS[2], RULE_TEXTS[3]]
        sizes = [100, 100, 100, 100]

        def write_rules() -> None:
            body = [t.format(n=n, h=sha256(DROPPER), size=sizes[n]) for n, t in enumerate(texts)]
            (rules / "r.yar").write_text("\n".join(body) + "\n")

        labels = {"mal": "malicious", "clean": "clean", "other": "malicious"}
        write_rules()
        with CorpusRegistry(workspace) as registry:
            for name, label in labels.items():
                folder = root / name
                folder.mkdir()
                registry.add(name, folder, label)
        for kind, a, b, c in steps:
            if kind == "edit":
                texts[int(str(a))] = RULE_TEXTS[b] if b != 3 or a != 0 else RULE_TEXTS[1]
                sizes[int(str(a))] = c
                write_rules()
            elif kind == "add":
                write_files(root / str(a), {f"f{c}-{b}.bin": CONTENTS[b]})
                with CorpusRegistry(workspace) as registry:
                    registry.add(str(a), root / str(a), labels[str(a)])
            elif kind == "drop":
                with CorpusRegistry(workspace) as registry:
                    registry.db.execute("DELETE FROM files WHERE corpus=? AND path LIKE ?",
                                        (a, f"f{b}-%"))
            else:
                chosen = {"all": None, "mal": ["mal"], "clean+mal": ["clean", "mal"],
                          "mal+clean": ["mal", "clean"]}[str(a)]
                check(workspace, rules, chosen)
        check(workspace, rules)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_nothing_is_saved_when_a_corpus_changed_during_the_run(lab: Lab,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = by_rule(check(lab.workspace, lab.rules))["MAL_Any_Eicar"]
    edit_rules(lab, "  condition:\n    $eicar\n", "  condition:\n    $eicar and filesize > 10\n")
    real = CorpusRegistry.find_hashes

    def find_while_a_file_arrives(self: CorpusRegistry, *args: object, **kwargs: object) -> object:
        self.db.execute("INSERT INTO files(corpus, sha256, path, size, md5, sha1, added) "
                        "VALUES ('mal', ?, 'late.bin', 1, '', '', '')", ("cd" * 32,))
        return real(self, *args, **kwargs)          # type: ignore[arg-type]

    monkeypatch.setattr(CorpusRegistry, "find_hashes", find_while_a_file_arrives)
    edited = by_rule(run_rule_tests(lab.workspace, [lab.rules]))["MAL_Any_Eicar"]
    assert edited.key != first.key
    with ScanCache(lab.workspace.state / CACHE_NAME) as cache:
        kept = [row[0] for row in cache.db.execute(
            "SELECT key FROM rule_results WHERE rule='MAL_Any_Eicar'")]
    assert kept == [first.key]          # the edited rule's result was not saved for the old files
