"""``workbench rule import``: vendor rules beside house rules, byte-for-byte, held back with reasons, released."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import git
import pytest

from tests.support.signatures import SigRepo, init_repo
from workbench.cli import main
from workbench.corpus.rule_testing import default_rule_paths
from workbench.exitcodes import E_INPUT, E_OK
from workbench.release.build import prepare_tree
from workbench.release.bundle import load_extracted
from workbench.release.importing import digest_tree, import_source
from workbench.release.release_store import ReleaseStore
from workbench.release.service import make_release
from workbench.release.validate import validate
from workbench.rules.parse import parse_file
from workbench.rules.vendor import VendorError, VendorSet

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

MIT = """MIT License

Copyright (c) 2024 Example Threat Research

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction.
"""

# upstream style: no house metadata, names the house convention would refuse
LOADERS = """import "pe"

rule Win32_Example_Loader : loader
{
    meta:
        author = "Example"
        description = "a loader"
    strings:
        $cfg = "WBVENDOR-LOADER-CONFIG-1"
    condition:
        uint16(0) == 0x5A4D and $cfg
}

rule Example_Script_Dropper {
    strings:
        $js = "WBVENDOR-SCRIPT-DROPPER" ascii wide
    condition:
        $js or pe.number_of_sections == 99
}
"""
NOISY = """rule Example_Memo_Hunter
{
    strings:
        $a = "IT security awareness"
    condition:
        $a
}
"""
NEEDS_MAGIC = """import "magic"

rule Example_Magic_Type { condition: magic.mime_type() == "text/plain" }
"""
CLASHES = """rule SPAM_GTUBE_TestString { strings: $a = "WBVENDOR-CLASH" condition: $a }
"""
YARAX_ONLY_ERROR = r"""rule Example_Brace_Regex { strings: $a = /WBVENDOR-{BRACE/ condition: $a }
"""


def upstream_repo(folder: Path) -> git.Repo:
    files = {"LICENSE": MIT, "README.md": "# Example rules\n", "yara/loader/Example.Loaders.yara": LOADERS,
             "yara/hunt/Example.Memo.yar": NOISY, "yara/misc/Example.Magic.yara": NEEDS_MAGIC,
             "yara/misc/Example.Clash.yar": CLASHES, "yara/misc/Example.Brace.yar": YARAX_ONLY_ERROR,
             "docs/notes.txt": "not a rule file, not a licence\n"}
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return init_repo(folder, "upstream v1")


def cli(sig: SigRepo, *args: str) -> int:
    return main(["--home", str(sig.workspace.home), "--signatures", str(sig.root), *args])


@pytest.fixture
def imported(sig: SigRepo, tmp_path: Path):
    upstream = tmp_path / "upstream"
    repo = upstream_repo(upstream)
    report = import_source(sig.root, str(upstream), name="example")
    return sig, upstream, repo, report


def test_import_keeps_upstream_bytes_and_holds_what_cannot_ship(imported) -> None:
    sig, upstream, repo, report = imported
    folder = sig.root / "vendor" / "example"
    kept = folder / "upstream"
    for rel in ("LICENSE", "README.md", "yara/loader/Example.Loaders.yara", "yara/misc/Example.Magic.yara"):
        assert (kept / rel).read_bytes() == (upstream / rel).read_bytes()
    assert not (kept / "docs").exists()                      # neither rules nor licence
    assert report.kind == "git" and report.commit == repo.head.commit.hexsha
    assert (report.licence, report.licence_file) == ("MIT", "LICENSE")
    assert report.attribution == "Copyright (c) 2024 Example Threat Research"
    held = {h.file: h.reason for h in report.held_files}
    assert set(held) == {"yara/misc/Example.Magic.yara", "yara/misc/Example.Clash.yar",
                         "yara/misc/Example.Brace.yar"}
    assert "needs a module this build lacks" in held["yara/misc/Example.Magic.yara"]
    assert "SPAM_GTUBE_TestString is already defined in rules/" in held["yara/misc/Example.Clash.yar"]
    assert "yara-x" in held["yara/misc/Example.Brace.yar"]
    [noisy] = report.held_rules
    assert noisy.rule == "Example_Memo_Hunter" and noisy.evidence[0].startswith("security_memo.txt (")
    assert report.rules == 6 and report.shipping == 2
    record = json.loads((folder / "source.json").read_text())
    assert record["rules"]["Win32_Example_Loader"]["fingerprint"] == \
        parse_file(kept / "yara/loader/Example.Loaders.yara").rules[0].fingerprint
    assert record["rules"]["Example_Memo_Hunter"]["evidence"] == noisy.evidence
    with pytest.raises(VendorError, match="already imported"):
        import_source(sig.root, str(upstream), name="example")


def test_validate_and_test_honour_the_vendor_source(imported) -> None:
    sig, _, _, _ = imported
    vendors = VendorSet.load(sig.root)
    shipped = {p.name for p in vendors.rule_paths()}
    assert shipped == {"Example.Loaders.yara", "Example.Memo.yar"}      # held files are never compiled
    report = validate(sig.root)
    assert report.ok, [f"{f.id} {f.rule} {f.message}" for f in report.findings if f.severity == "error"]
    vendor_ids = {f.id for f in report.findings if "/vendor/" in f.file}
    assert not vendor_ids & {"M201", "N301", "V201", "V301", "V501", "V502"}   # the vendor profile
    assert "P410" in vendor_ids      # performance checks stay on (pe used in an or-branch, unguarded)
    checked = {r.name for r in report.rules}
    assert "Win32_Example_Loader" in checked and "Example_Memo_Hunter" not in checked   # held: exempt
    paths = default_rule_paths(sig.workspace)
    assert any(p.name == "Example.Loaders.yara" for p in paths)
    assert not any(p.name == "Example.Magic.yara" for p in paths)


def test_fmt_and_lint_leave_vendor_files_as_upstream(imported, capsys) -> None:
    sig, _, _, _ = imported
    before = digest_tree(sig.root / "vendor")
    assert cli(sig, "rule", "fmt") == E_OK
    out = capsys.readouterr().out
    assert "vendor file(s) left as upstream" in out
    assert digest_tree(sig.root / "vendor") == before
    cli(sig, "rule", "lint", "--json")
    found = json.loads(capsys.readouterr().out)["findings"]
    assert not [f for f in found if "/vendor/" in f["file"] and f["id"] in ("M201", "N301")]
    assert cli(sig, "rule", "sources") == E_OK
    out = capsys.readouterr().out
    assert "example" in out and "MIT" in out and "Copyright (c) 2024 Example Threat Research" in out


def test_update_shows_exactly_what_changed_upstream(imported) -> None:
    sig, upstream, repo, _ = imported
    first = repo.head.commit.hexsha
    loaders = upstream / "yara/loader/Example.Loaders.yara"
    loaders.write_text(LOADERS.replace("WBVENDOR-LOADER-CONFIG-1", "WBVENDOR-LOADER-CONFIG-2")
                       .replace("description = \"a loader\"", "description = \"a loader, v2\""))
    (upstream / "yara/hunt/Example.Memo.yar").unlink()
    (upstream / "yara/hunt/Example.New.yar").write_text(
        'rule Example_New_One { strings: $a = "WBVENDOR-NEW-ONE" condition: $a }\n')
    repo.git.add(A=True)
    repo.index.commit("upstream v2")
    report = import_source(sig.root, None, name="example", update=True)
    assert report.changed == ["Win32_Example_Loader"]
    assert report.added == ["Example_New_One"]
    assert report.removed == ["Example_Memo_Hunter"]
    assert report.unchanged == 4 and report.commit == repo.head.commit.hexsha
    kept = sig.root / "vendor/example/upstream"
    assert (kept / "yara/loader/Example.Loaders.yara").read_bytes() == loaders.read_bytes()
    assert not (kept / "yara/hunt/Example.Memo.yar").exists()
    history = VendorSet.load(sig.root).get("example").rules["Win32_Example_Loader"].history  # type: ignore[union-attr]
    assert [h["change"] for h in history] == ["added", "changed"]
    back = import_source(sig.root, None, name="example", update=True, commit=first)
    assert back.changed == ["Win32_Example_Loader"] and back.removed == ["Example_New_One"]
    with pytest.raises(VendorError, match="git"):
        import_source(sig.root, None, name="example", update=True, commit="no-such-rev")


def test_a_reviewed_clean_match_does_not_hold_a_vendor_rule(imported) -> None:
    sig, _, _, first = imported
    [noisy] = first.held_rules
    sha = noisy.evidence[0].split("(")[1].rstrip(")")
    policy = sig.root / "workbench.toml"
    policy.write_text(policy.read_text().replace(
        "[externals]", f'[[release.allow]]\nrule = "Example_Memo_Hunter"\nfile = "{sha}"\n'
                       f'reason = "the memo quotes the hunted phrase"\n\n[externals]'))
    again = import_source(sig.root, None, name="example", update=True)
    assert again.held_rules == [] and again.shipping == 3
    report = validate(sig.root)
    assert report.ok and any(a.rule == "Example_Memo_Hunter" for a in report.allowed)


def test_release_ships_vendor_rules_that_towers_can_check(imported, tmp_path: Path) -> None:
    sig, _, _, _ = imported
    sig.commit("import example rules")
    outcome = make_release(sig.workspace, message="with vendor rules")
    release = ReleaseStore(sig.workspace).get(outcome.serial)
    folder = tmp_path / "tower"
    from workbench.release.bundle import open_bundle

    open_bundle(release.bundle_path).extract_to(folder)
    loaded = load_extracted(folder)             # counts, names and fingerprints, as a tower checks
    names = {r.name for r in loaded.manifest.rules}
    assert {"Win32_Example_Loader", "Example_Script_Dropper"} <= names
    assert "Example_Memo_Hunter" not in names and "Example_Magic_Type" not in names
    member = folder / "rules/vendor/example/yara/loader/Example.Loaders.yara"
    assert member.read_text().count("\n") == LOADERS.count("\n")        # lines stay where upstream has them
    # the repository's copy is untouched: the fingerprints went into the bundle only
    assert "fingerprint" not in (sig.root / "vendor/example/upstream/yara/loader/Example.Loaders.yara").read_text()


def test_bad_sources_are_refused_and_change_nothing(sig: SigRepo, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no rules here")
    with pytest.raises(VendorError, match=r"no \*\.yar"):
        import_source(sig.root, str(empty), name="empty")
    with pytest.raises(VendorError, match="lower-case"):
        import_source(sig.root, str(empty), name="Bad Name")
    with pytest.raises(VendorError, match="--commit needs git"):
        import_source(sig.root, str(empty), name="plain", commit="HEAD")
    assert not (sig.root / "vendor").exists() or not any((sig.root / "vendor").iterdir())
    assert cli(sig, "rule", "import", str(tmp_path / "missing")) == E_INPUT
    assert "no such folder" in capsys.readouterr().err


def test_a_folder_source_imports_without_git(sig: SigRepo, tmp_path: Path) -> None:
    folder = tmp_path / "plain-rules"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "one.yar").write_text(LOADERS)
    shutil.copyfile(folder / "sub" / "one.yar", folder / "sub" / "copy.txt")
    report = import_source(sig.root, str(folder))
    assert report.name == "plain-rules" and report.kind == "folder" and report.commit == ""
    assert report.notes and "no licence file" in report.notes[0]
    assert prepare_tree(sig.root).shipped > 0


def test_a_public_ruleset_imports_validates_tests_and_releases(sig: SigRepo, public_ruleset: Path) -> None:
    """The real ReversingLabs set (MIT) beside the house rules: read in place, never copied into the repo."""
    from workbench.corpus.corpus_registry import CorpusRegistry
    from workbench.corpus.rule_testing import run_rule_tests

    report = import_source(sig.root, str(public_ruleset), name="reversinglabs")
    assert report.files >= 270 and report.rules >= 1100
    assert report.licence == "MIT" and "ReversingLabs" in report.attribution
    assert report.shipping + sum(1 for r in report.held_rules) + \
        sum(len(parse_file(sig.root / "vendor/reversinglabs/upstream" / h.file).rules) for h in report.held_files) \
        == report.rules
    assert digest_tree(sig.root / "vendor/reversinglabs/upstream/yara") == digest_tree(public_ruleset / "yara")
    # the corpus and budget checks run once, inside the release below
    checked = validate(sig.root, scan_corpus=False)
    assert checked.ok, [f"{f.id} {f.rule} {f.message}" for f in checked.findings if f.severity == "error"]
    assert not {f.id for f in checked.findings if "/vendor/" in f.file} & {"M201", "N301", "V201"}
    # `test` takes the vendor rules with the house's by default
    with CorpusRegistry(sig.workspace) as registry:
        registry.add("house-clean", sig.root / "corpora" / "clean", "clean")
    tested = run_rule_tests(sig.workspace, None, ["house-clean"])
    assert len(tested.rules) >= report.rules and tested.false_positives == 0
    sig.commit("import the ReversingLabs rules")
    outcome = make_release(sig.workspace, message="house and vendor rules")
    assert outcome.rules_shipped >= report.shipping
    release = ReleaseStore(sig.workspace).get(outcome.serial)
    assert release.bundle_path.exists()


@pytest.fixture(scope="session")
def public_ruleset() -> Path:
    from tests.support.rulesets import PUBLIC_RULESET

    if not (PUBLIC_RULESET / "yara").is_dir():
        pytest.skip(f"no public ruleset at {PUBLIC_RULESET} (set WORKBENCH_PUBLIC_RULESET)")
    return PUBLIC_RULESET


def test_the_command_imports_from_a_git_url_and_shows_the_licence(sig: SigRepo, tmp_path: Path, capsys) -> None:
    upstream = tmp_path / "example-rules"
    repo = upstream_repo(upstream)
    assert cli(sig, "rule", "import", f"file://{upstream}") == E_OK
    out = capsys.readouterr().out
    assert f"imported example-rules from file://{upstream} at {repo.head.commit.hexsha[:12]}" in out
    assert "licence: MIT (LICENSE); Copyright (c) 2024 Example Threat Research" in out
    assert "Example.Magic.yara: line" in out and "needs a module this build lacks" in out
    assert "Example_Memo_Hunter (yara/hunt/Example.Memo.yar): security_memo.txt (" in out
    (upstream / "yara/hunt/Example.New.yar").write_text('rule Example_New_Two { condition: false }\n')
    repo.git.add(A=True)
    repo.index.commit("v2")
    assert cli(sig, "rule", "import", "--update", "--name", "example-rules", "--json") == E_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["added"] == ["Example_New_Two"] and doc["changed"] == [] and doc["removed"] == []
