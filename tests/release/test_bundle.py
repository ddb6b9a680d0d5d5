"""Release bundles: reproducible builds, strict opening, safe extraction and tower-style loading."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yara

from tests.support.bundle_sources import (
    COMMIT,
    COMMON,
    CREATED,
    EICAR_RULE,
    GTUBE_RULE,
    prepare_sample,
)
from workbench.release.bundle import (
    COMPILED_NAME,
    MANIFEST_NAME,
    BundleError,
    Limits,
    ManifestRule,
    load_extracted,
    open_bundle,
)
from workbench.samples.mail import EICAR, GTUBE


@pytest.fixture(scope="module")
def prepared():
    return prepare_sample()


@pytest.fixture
def bundle(prepared, tmp_path: Path):
    return prepared.write(tmp_path / "signatures-7.tar.gz", serial=7, created=CREATED, commit=COMMIT)


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path, "r:gz") as tf:
        return [(m, tf.extractfile(m).read() if m.isreg() else b"") for m in tf]


def _repack(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _reg(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_same_input_builds_byte_identical_bundles(tmp_path: Path) -> None:
    a = prepare_sample().write(tmp_path / "a" / "b.tar.gz", serial=3, created=CREATED, commit=COMMIT)
    b = prepare_sample().write(tmp_path / "b" / "b.tar.gz", serial=3, created=CREATED, commit=COMMIT)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.sha256 == b.sha256


def test_archive_is_normalised(bundle) -> None:
    members = _members(bundle.path)
    names = [m.name for m, _ in members]
    assert names[0] == MANIFEST_NAME
    assert names[1:] == sorted(names[1:])
    mtime = int(CREATED.timestamp())
    for info, _ in members:
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime, info.mode) == (0, 0, "", "", mtime, 0o644)
    raw = bundle.path.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"          # gzip header mtime
    assert raw[3] & 0x08 == 0                # no file name in the gzip header


def test_manifest_describes_the_bundle(bundle) -> None:
    m = bundle.manifest
    assert (m.serial, m.commit, m.created, m.libyara_version) == (7, COMMIT, "2026-11-02T09:30:00Z", yara.YARA_VERSION)
    assert m.rule_count == 3
    assert {r.name: r.status for r in m.rules} == {
        "MAL_Eicar_TestFile": "RELEASED", "SPAM_Gtube_TestMail": "NOISY", "is_small": "RELEASED"}
    files = {f.path: f for f in m.files}
    assert set(files) == {COMPILED_NAME, "rules/malware/eicar.yar", "rules/spam/gtube.yar",
                          "rules/spam/common.yar", f"selftest/{hashlib.sha256(EICAR).hexdigest()}",
                          f"selftest/{hashlib.sha256(GTUBE).hexdigest()}"}
    content = dict((i.name, d) for i, d in _members(bundle.path))
    for path, f in files.items():
        assert f.sha256 == hashlib.sha256(content[path]).hexdigest()
        assert f.size == len(content[path])
    # the clean input matched nothing, so it asserts nothing and is left out
    vectors = {v.file.split("/")[1]: v.rules for v in m.selftest}
    assert vectors == {hashlib.sha256(EICAR).hexdigest(): ("MAL_Eicar_TestFile",),
                       hashlib.sha256(GTUBE).hexdigest(): ("SPAM_Gtube_TestMail",)}
    assert json.loads(content[MANIFEST_NAME]) == json.loads(m.to_bytes())


def test_extract_and_load_uses_compiled_rules(bundle, tmp_path: Path) -> None:
    folder = bundle.extract_to(tmp_path / "x")
    loaded = load_extracted(folder)
    assert loaded.loaded_from == "compiled" and loaded.fallback_reason == ""
    assert [m.rule for m in loaded.rules.match(data=EICAR)] == ["MAL_Eicar_TestFile"]
    assert [r.file for r in loaded.selftest] == [v.file for v in bundle.manifest.selftest]


def test_other_libyara_version_compiles_the_sources(bundle, tmp_path: Path) -> None:
    folder = bundle.extract_to(tmp_path / "x")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["libyara_version"] = "4.2.3"
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    loaded = load_extracted(folder)
    assert loaded.loaded_from == "sources"
    assert "4.2.3" in loaded.fallback_reason
    assert [m.rule for m in loaded.rules.match(data=GTUBE)] == ["SPAM_Gtube_TestMail"]


def test_unloadable_compiled_file_falls_back_to_sources(bundle, tmp_path: Path) -> None:
    folder = bundle.extract_to(tmp_path / "x")
    loaded = load_extracted(folder, prefer_compiled=False)
    assert loaded.loaded_from == "sources"


def test_extract_refuses_a_non_empty_folder(bundle, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        bundle.extract_to(tmp_path / "x")
    assert (tmp_path / "x" / "keep").read_text() == "mine"


def test_bundle_changed_after_opening_is_caught_and_leaves_nothing(bundle, tmp_path: Path) -> None:
    members = _members(bundle.path)
    members = [(i, d.replace(b"EICAR-STANDARD", b"EICAR-STANDARX")) for i, d in members]
    _repack(bundle.path, members)
    with pytest.raises(BundleError, match="sha256 does not match"):
        bundle.extract_to(tmp_path / "x")
    assert list((tmp_path / "x").rglob("*")) == []


@pytest.mark.parametrize("damage, message", [
    ("tamper", "sha256 does not match"),
    ("truncate", "truncated or corrupt"),
    ("symlink", "is a link"),
    ("hardlink", "is a link"),
    ("device", "device"),
    ("directory", "is a directory"),
    ("traversal", "unsafe"),
    ("absolute", "unsafe"),
    ("unlisted", "not listed"),
    ("missing", "missing"),
    ("duplicate", "appears twice"),
    ("manifest_not_first", "first member"),
    ("size", "bytes, the manifest says"),
    ("bad_manifest", "not valid JSON"),
    ("manifest_shape", "rule_count"),
    ("not_gzip", "truncated or corrupt"),
])
def test_open_refuses_damaged_bundles(bundle, damage: str, message: str) -> None:
    path = bundle.path
    members = _members(path)
    if damage == "tamper":
        members = [(i, d.replace(b"GTUBE-STANDARD", b"GTUBE-STANDARX")) for i, d in members]
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        members = []
    elif damage in ("symlink", "hardlink", "device", "directory"):
        info = tarfile.TarInfo("rules/evil")
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                     "device": tarfile.CHRTYPE, "directory": tarfile.DIRTYPE}[damage]
        info.linkname = "/etc/passwd"
        members.insert(1, (info, b""))
    elif damage == "traversal":
        members.insert(1, _reg("rules/../../evil.yar", b"x"))
    elif damage == "absolute":
        members.insert(1, _reg("/tmp/evil.yar", b"x"))
    elif damage == "unlisted":
        members.append(_reg("rules/extra.yar", b"rule X { condition: true }"))
    elif damage == "missing":
        members = [m for m in members if m[0].name != "rules/spam/common.yar"]
    elif damage == "duplicate":
        members.append(members[2])
    elif damage == "manifest_not_first":
        members = [*members[1:], members[0]]
    elif damage == "size":
        members = [_reg(i.name, d + b"\n") if i.name == "rules/spam/gtube.yar" else (i, d) for i, d in members]
    elif damage == "bad_manifest":
        members[0] = _reg(MANIFEST_NAME, b"{not json")
    elif damage == "manifest_shape":
        data = json.loads(members[0][1])
        data["rule_count"] = 99
        members[0] = _reg(MANIFEST_NAME, json.dumps(data).encode())
    elif damage == "not_gzip":
        path.write_bytes(b"PK\3\4 not a tarball at all")
        members = []
    if members:
        _repack(path, members)
    with pytest.raises(BundleError, match=message):
        open_bundle(path)


def test_size_caps_are_enforced(bundle) -> None:
    with pytest.raises(BundleError, match="cap"):
        open_bundle(bundle.path, limits=Limits(max_total_size=100))
    with pytest.raises(BundleError, match="more than 2 members"):
        open_bundle(bundle.path, limits=Limits(max_files=2))


def test_load_refuses_corrupted_install(bundle, tmp_path: Path) -> None:
    folder = bundle.extract_to(tmp_path / "x")
    target = folder / "rules" / "malware" / "eicar.yar"
    target.write_bytes(target.read_bytes().replace(b"        $e\n}", b"      true\n}"))
    with pytest.raises(BundleError, match=r"eicar\.yar: sha256 does not match"):
        load_extracted(folder)
    target.write_bytes(target.read_bytes() + b"rule Extra { condition: true }")
    with pytest.raises(BundleError, match=r"eicar\.yar: more than 182 bytes"):
        load_extracted(folder)
    target.unlink()
    with pytest.raises(BundleError, match=r"eicar\.yar is missing"):
        load_extracted(folder)


def test_load_refuses_wrong_fingerprint_or_count(bundle, tmp_path: Path) -> None:
    folder = bundle.extract_to(tmp_path / "x")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["rules"][0]["fingerprint"] = "other"
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="fingerprint f1 differs"):
        load_extracted(folder)
    manifest["rules"].pop(0)
    manifest["rule_count"] = 2
    manifest["selftest"] = []
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="3 rules loaded, the manifest says 2"):
        load_extracted(folder)


def test_load_runs_the_self_test(bundle, tmp_path: Path) -> None:
    folder = bundle.extract_to(tmp_path / "x")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    eicar_vector = next(v for v in manifest["selftest"] if "MAL_Eicar_TestFile" in v["rules"])
    eicar_vector["rules"].append("SPAM_Gtube_TestMail")
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"self-test failed: .* not matched by SPAM_Gtube_TestMail"):
        load_extracted(folder)


def test_prepare_refuses_what_a_tower_would_refuse() -> None:
    with pytest.raises(BundleError, match="fingerprint f1 differs"):
        prepare_sample(rules=[ManifestRule("MAL_Eicar_TestFile", "malware", "zz", "RELEASED", "rules/malware/eicar.yar"),
                        ManifestRule("SPAM_Gtube_TestMail", "spam", "f2", "NOISY", "rules/spam/gtube.yar"),
                        ManifestRule("is_small", "spam", "f3", "RELEASED", "rules/spam/common.yar")])
    with pytest.raises(BundleError, match="not matched by MAL_Eicar_TestFile"):
        prepare_sample(expected={"clean": ["MAL_Eicar_TestFile"]})
    with pytest.raises(BundleError, match="do not compile"):
        prepare_sample(sources={"rules/malware/eicar.yar": b"rule {", "rules/spam/gtube.yar": GTUBE_RULE,
                          "rules/spam/common.yar": COMMON})
    with pytest.raises(BundleError, match="unsafe"):
        prepare_sample(sources={"rules/../x.yar": EICAR_RULE})
