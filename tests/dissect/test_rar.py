"""RAR through libarchive: members, children, names, limits, damage, encryption, and life without the library."""

from __future__ import annotations

import hashlib
import random
import zlib

import pytest

from workbench.dissect.cache import DissectCache
from workbench.dissect.catalog import find_parents
from workbench.dissect.dissectors import DissectContext
from workbench.dissect.formats import archive
from workbench.dissect.model import LIMIT_HIT, OK, PARSER_ERROR, PARTIAL, STATUSES, Limits
from workbench.dissect.walker import dissect_bytes, dissect_message
from workbench.dissect.worker import WorkerPool
from workbench.quarantine.ingest import ingest_bytes
from workbench.samples.mail import EICAR, Attachment, Mail, build_message
from workbench.samples.rar import build_rar4, build_rar5

EICAR_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
README = b"Quarterly figures attached.\r\n"
BUILDERS = {"rar4": build_rar4, "rar5": build_rar5}


def _crc(data: bytes) -> str:
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def test_builders_write_archives_libarchive_reads() -> None:
    import libarchive

    for fmt, build in (("rar", build_rar4), ("rar5", build_rar5)):
        data = build([("docs/", b""), ("docs/readme.txt", README), ("eicar.com", EICAR)])
        with libarchive.memory_reader(data, format_name=fmt) as reader:
            got = [(e.pathname, e.isdir, b"" if e.isdir else b"".join(e.get_blocks())) for e in reader]
        assert got == [("docs", True, b""), ("docs/readme.txt", False, README), ("eicar.com", False, EICAR)]


@pytest.mark.parametrize("fmt", ["rar4", "rar5"])
def test_two_members_become_two_children(pool: WorkerPool, fmt: str) -> None:
    data = BUILDERS[fmt]([("docs/", b""), ("docs/readme.txt", README), ("eicar.com", EICAR)])
    root = dissect_bytes(data, "invoice.rar", pool=pool).root
    assert root.dissector == "rar" and root.status == OK, root.reason
    assert [(c.safe_name, c.sha256) for c in root.children] == [
        ("readme.txt", hashlib.sha256(README).hexdigest()), ("eicar.com", EICAR_SHA)]
    assert [c.path for c in root.children] == ["invoice.rar/readme.txt", "invoice.rar/eicar.com"]
    report = root.report
    assert report.format == "rar" and report.member_count == 3
    assert f"RAR {fmt[-1]} archive" in report.notes and any("libarchive" in n for n in report.notes)
    table = [(m.name, m.kind, m.size, m.compressed_size, m.ratio, m.crc, m.method, m.extracted)
             for m in report.members]
    assert table == [("docs", "dir", 0, 0, 0.0, _crc(b""), "store", False),
                     ("docs/readme.txt", "file", len(README), len(README), 1.0, _crc(README), "store", True),
                     ("eicar.com", "file", 68, 68, 1.0, _crc(EICAR), "store", True)]
    assert not report.encrypted and report.passwords_tried == 0


@pytest.mark.parametrize("fmt", ["rar4", "rar5"])
def test_member_names_are_sanitised_and_never_become_paths(pool: WorkerPool, tmp_path, monkeypatch,  # type: ignore[no-untyped-def]
                                                           fmt: str) -> None:
    monkeypatch.chdir(tmp_path)
    data = BUILDERS[fmt]([("../../evil.txt", b"pwned\n"), ("invoice\u202efdp.exe", EICAR)])
    root = dissect_bytes(data, "names.rar", pool=pool).root
    evil, rtlo = root.children
    assert evil.filename == "../../evil.txt" and evil.safe_name == "evil.txt"
    assert "path-traversal" in evil.flags and "rtlo" in rtlo.flags
    assert rtlo.safe_name == "invoicefdp.exe" and rtlo.sha256 == EICAR_SHA
    assert all("/" not in c.path[len("names.rar/"):] for c in root.children)
    assert root.report.members[0].name == "../../evil.txt"          # the table keeps the raw name
    assert list(tmp_path.iterdir()) == []                           # nothing written anywhere


def test_entry_limit_is_visible(pool: WorkerPool) -> None:
    data = build_rar4([(f"f{i:05d}.txt", b"x") for i in range(1500)])
    root = dissect_bytes(data, "many.rar", pool=pool).root
    assert root.status == LIMIT_HIT and "1500 entries over the limit 1000" in root.reason
    assert root.report.member_count == 1500 and len(root.report.members) == 1000
    small = dissect_bytes(build_rar5([(f"f{i}", bytes([i])) for i in range(12)]), "m.rar", pool=pool,
                          limits=Limits(max_archive_entries=5)).root
    assert small.status == LIMIT_HIT and "12 entries over the limit 5" in small.reason
    assert len(small.report.members) == 5 and len(small.children) == 5


def test_size_children_and_total_limits(pool: WorkerPool) -> None:
    # a header declaring 50 MiB for 68 bytes: flagged by ratio, refused by declared size, never read
    liar = build_rar4([("e.com", EICAR)], declare={"e.com": 50 << 20})
    root = dissect_bytes(liar, "bomb.rar", pool=pool).root
    assert root.status == LIMIT_HIT and "over the child limit" in root.reason and root.children == []
    assert root.report.high_ratio and root.report.members[0].note == "declared size over the child limit"

    big = build_rar5([("big.bin", b"A" * (2 << 20)), ("e.com", EICAR)])
    capped = dissect_bytes(big, "big.rar", pool=pool, limits=Limits(max_child=1 << 20)).root
    assert capped.status == LIMIT_HIT and [c.sha256 for c in capped.children] == [EICAR_SHA]

    many = build_rar4([(f"f{i}.txt", bytes([65 + i]) * 1000) for i in range(30)])
    few = dissect_bytes(many, "f.rar", pool=pool, limits=Limits(max_children=5)).root
    assert few.status == LIMIT_HIT and len(few.children) == 5 and "children limit" in few.reason
    small = dissect_bytes(many, "f.rar", pool=pool, limits=Limits(max_total=4500))
    assert small.expanded_bytes <= 4500 and small.root.status == LIMIT_HIT
    assert "total expanded bytes" in small.root.reason


def test_data_that_is_not_what_the_header_declares(pool: WorkerPool) -> None:
    liar = build_rar4([("big.bin", b"A" * 100_000)], declare={"big.bin": 68})
    root = dissect_bytes(liar, "liar.rar", pool=pool).root
    assert root.status == PARTIAL and "CRC mismatch" in root.reason
    assert root.children[0].note == "rar member, CRC mismatch"


@pytest.mark.parametrize("fmt", ["rar4", "rar5"])
def test_truncated_rar_is_partial_with_the_first_member(pool: WorkerPool, fmt: str) -> None:
    whole = BUILDERS[fmt]([("readme.txt", README), ("eicar.com", EICAR), ("last.txt", b"end")])
    cut = whole[:whole.index(EICAR) + 20]
    root = dissect_bytes(cut, "cut.rar", pool=pool).root
    assert root.dissector == "rar" and root.status == PARTIAL
    assert "Truncated" in root.reason                               # libarchive's own words are kept
    assert [c.sha256 for c in root.children] == [hashlib.sha256(README).hexdigest()]
    assert "eicar.com" in [m.name for m in root.report.members]


@pytest.mark.parametrize("data", [b"Rar!\x1a\x07\x01\x00" + b"\x00" * 64, b"Rar!\x1a\x07\x00" + b"\xff" * 64],
                         ids=["rar5", "rar4"])
def test_corrupt_rar_is_a_parser_error_with_the_message(pool: WorkerPool, data: bytes) -> None:
    root = dissect_bytes(data, "junk.rar", pool=pool).root
    assert root.dissector == "rar" and root.status == PARSER_ERROR
    assert root.reason.startswith("rar: ") and len(root.reason) > len("rar: ")
    assert root.children == []


def test_mutated_archives_never_raise() -> None:
    seeds = [build_rar4([("a.txt", README), ("d/", b""), ("e.com", EICAR)], encrypted=["a.txt"]),
             build_rar5([("a.txt", README), ("d/", b""), ("e.com", EICAR)])]
    ctx = DissectContext("m.rar", "", "", "", Limits(), budget=1 << 20, children_left=100)
    rng = random.Random(7)
    for _ in range(1500):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[at] = rng.randrange(256)
            else:
                del data[at:at + rng.randint(1, 30)]
        result = archive.RarDissector().dissect(bytes(data), ctx)
        assert result.status in STATUSES


def test_encrypted_member_is_flagged_not_extracted_and_no_password_is_tried(pool: WorkerPool) -> None:
    data = build_rar4([("secret.com", EICAR), ("readme.txt", README)], encrypted=["secret.com"])
    root = dissect_bytes(data, "locked.rar", pool=pool).root
    assert root.status == PARTIAL and "cannot decrypt RAR" in root.reason
    report = root.report
    assert report.encrypted and report.password is None and report.passwords_tried == 0
    secret = report.members[0]
    assert secret.encrypted and not secret.extracted and "not extracted" in secret.note
    # the stored ciphertext is not handed on as if it were the file
    assert [c.safe_name for c in root.children] == ["readme.txt"]


@pytest.mark.parametrize("fmt", ["rar4", "rar5"])
def test_encrypted_headers_are_flagged(pool: WorkerPool, fmt: str) -> None:
    data = BUILDERS[fmt]([("secret.com", EICAR)], header_encrypted=True)
    root = dissect_bytes(data, "hp.rar", pool=pool).root
    assert root.status == PARTIAL and "headers encrypted" in root.reason
    assert root.report.encrypted and root.report.passwords_tried == 0 and root.children == []


def _no_backend() -> tuple[None, str]:
    return None, "OSError: libarchive.so.13: cannot open shared object file"


def test_without_libarchive_the_members_are_listed_and_flagged(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from workbench.quarantine.object_store import ObjectStore

    monkeypatch.setattr(archive, "_load_libarchive", _no_backend)
    data = build_rar4([("readme.txt", README), ("eicar.com", EICAR)])
    store = ObjectStore(tmp_path / "q").ensure()
    limits = Limits(isolate=False)                                 # the patched loader runs in this process
    with DissectCache(tmp_path / "c.sqlite") as cache:
        root = dissect_bytes(data, "r.rar", store=store, cache=cache, limits=limits).root
        assert root.dissector == "rar" and root.status == PARTIAL and root.children == []
        assert "no backend" in root.reason and "libarchive13" in root.reason
        assert [(m.name, m.crc, m.extracted) for m in root.report.members] == [
            ("readme.txt", _crc(README), False), ("eicar.com", _crc(EICAR), False)]
        monkeypatch.undo()                                         # libarchive installed afterwards:
        again = dissect_bytes(data, "r.rar", store=store, cache=cache, limits=limits).root
    assert not again.cached and again.status == OK                 # the flag was not cached
    assert [c.sha256 for c in again.children] == [hashlib.sha256(README).hexdigest(), EICAR_SHA]


def test_rar_attachment_end_to_end(quarantine, workspace, pool: WorkerPool) -> None:  # type: ignore[no-untyped-def]
    rar = build_rar5([("Invoice_4471/", b""), ("Invoice_4471/invoice.com", EICAR)])
    raw = build_message(Mail("billing@evil.example", "b@corp.example", "Invoice 4471", text="see attached",
                             attachments=[Attachment("Invoice_4471.rar", rar, "application/x-rar")]))
    ingest_bytes(quarantine, raw, tower="t1", server="s1", reason="test", source="test")
    sha = quarantine.index.list()[0].sha256
    first = dissect_message(quarantine, sha, pool=pool)
    node = first.root.find("message/part 2/Invoice_4471.rar")
    assert node is not None and node.dissector == "rar" and node.status == OK, first.problems
    eicar = first.root.find("message/part 2/Invoice_4471.rar/invoice.com")
    assert eicar is not None and eicar.sha256 == EICAR_SHA and eicar.note == "rar member"
    assert quarantine.store.read(EICAR_SHA) == EICAR
    assert [p.tree_path for p in find_parents(workspace, EICAR_SHA)] == [
        "message/part 2/Invoice_4471.rar/invoice.com"]
    second = dissect_message(quarantine, sha, pool=pool)
    cached = second.root.find("message/part 2/Invoice_4471.rar")
    assert cached is not None and cached.cached and cached.report.members[1].crc == _crc(EICAR)
