"""Drafting: house layout, header checks per type, both engines compile, samples match, lint clean."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import types

import pytest
import yara
import yara_x

from workbench.quarantine.ingest import ingest_bytes
from workbench.quarantine.service import Quarantine
from workbench.rules.draft import (
    DraftError,
    Sample,
    detect_type,
    draft,
    draft_rule,
    load_samples,
    normalise_hex,
)
from workbench.rules.lint import lint_text
from workbench.rules.parse import parse_text
from workbench.rules.policy import Policy
from workbench.samples.documents import build_docx, build_pdf, build_rtf
from workbench.samples.mail import EICAR, Attachment, Mail
from workbench.samples.office import build_ole_word
from workbench.samples.pe import build_pe
from workbench.workspace import Workspace

MARK = b"WBDEMO-DRAFT-MARKER-7731"


def sample(data: bytes) -> Sample:
    return Sample(hashlib.sha256(data).hexdigest(), data)


TYPED = {
    "pe": (build_pe(data=MARK), "uint16(0) == 0x5A4D"),
    "ole": (build_ole_word() + MARK, "uint32(0) == 0xE011CFD0"),
    # members are deflated, so the marker rides as trailing bytes after the archive
    "ooxml": (build_docx(["Contract"]) + b"PK\x01\x02" + MARK, "uint32(0) == 0x04034B50"),
    "pdf": (build_pdf(MARK.decode()), "uint32(0) == 0x46445025"),
    "rtf": (build_rtf(MARK.decode()), "uint32(0) == 0x74725C7B"),
    "elf": (b"\x7fELF\x02\x01\x01" + b"\x00" * 57 + MARK, "uint32(0) == 0x464C457F"),
    "script": (b"var a = 1;\n// " + MARK + b"\n", None),
}


@pytest.mark.parametrize("kind", sorted(TYPED))
def test_header_check_by_type_and_the_draft_is_sound(kind: str, policy: Policy) -> None:
    data, header = TYPED[kind]
    s = sample(data)
    assert s.kind == kind
    result = draft([s], strong=[MARK.decode()], family="Demo", today=dt.date(2026, 3, 4))
    rule = parse_text(result.text).rules[0]
    if header:
        assert rule.condition.startswith(header + " and filesize < ")
    else:
        assert rule.condition.startswith("filesize < ")
    assert result.matched == [s.sha256]
    assert yara.compile(source=result.text).match(data=data)
    assert yara_x.Scanner(yara_x.compile(result.text)).scan(data).matching_rules
    assert result.findings == [] and lint_text(result.text, None, policy).findings == []


def test_house_metadata_and_condition_shape(policy: Policy) -> None:
    a = sample(build_pe(data=MARK + b"\x00" + "WideMarker-77".encode("utf-16le")))
    b = sample(build_pe(data=b"other\x00" + MARK))
    text = draft_rule([a, b], strong=[MARK.decode()], strings=["WideMarker-77", "other"],
                      hexes=["4d5a9000"], family="Emotet", category="mal", detail="Loader",
                      author="ana", today=dt.date(2026, 3, 4), rule_id="0f8fad5b-d9cb-469f-a165-70867728950e")
    rule = parse_text(text).rules[0]
    assert rule.name == "MAL_Emotet_Loader"
    assert [k for k, _ in rule.meta] == ["id", "fingerprint", "version", "date", "modified", "status",
                                        "author", "description", "category", "family", "hash", "hash",
                                        "source"]
    assert rule.meta_value("fingerprint") == rule.fingerprint
    assert rule.meta_value("status") == "TESTING" and rule.meta_value("date") == "2026-03-04"
    assert rule.meta_values("hash") == [a.sha256, b.sha256]
    by_id = {s.identifier: s for s in rule.strings}
    assert by_id["$s1"].modifiers == ["wide"] and by_id["$s3"].value == "{ 4D 5A 90 00 }"
    assert rule.condition.endswith("(1 of ($x*) or 2 of ($s*))")
    assert lint_text(text, None, policy).findings == []


def test_strings_must_come_from_the_samples() -> None:
    s = sample(build_pe(data=MARK))
    with pytest.raises(DraftError, match="none of the samples"):
        draft([s], strings=["not-in-there"])
    with pytest.raises(DraftError, match="none of the samples"):
        draft([s], hexes=["DE AD BE EF"])
    with pytest.raises(DraftError, match="not valid YARA"):
        draft([s], hexes=["4D 5A [x]"])
    with pytest.raises(DraftError, match="naming convention"):
        draft([s], strong=[MARK.decode()], name="my_rule")
    with pytest.raises(DraftError, match="category"):
        draft([s], strong=[MARK.decode()], category="EVIL")


def test_a_sample_the_rule_misses_is_reported() -> None:
    a, b = sample(build_pe(data=MARK)), sample(build_pe(data=b"nothing in common here"))
    result = draft([a, b], strong=[MARK.decode()])
    assert result.matched == [a.sha256]
    assert any("does not match 1 sample" in n for n in result.notes)


def test_without_strings_the_suggestions_are_used(policy: Policy) -> None:
    data = build_pe(data=b"http://c2.draft.example/gate.php\x00C:\\dev\\drafter\\x.pdb\x00")
    result = draft([sample(data)], family="Demo")
    texts = [s.value for s in result.strings]
    assert '"http://c2.draft.example/gate.php"' in texts
    assert result.matched and result.findings == []


def test_hex_patterns_are_normalised() -> None:
    assert normalise_hex("4d5a9000") == "{ 4D 5A 90 00 }"
    assert normalise_hex("{ 4d 5a ?? [2-4] 00 }") == "{ 4D 5A ?? [2-4] 00 }"
    with pytest.raises(DraftError, match="odd"):
        normalise_hex("4d5")


def test_detect_type_of_text_and_data() -> None:
    assert detect_type(EICAR) == "script"
    assert detect_type(bytes(range(256)) * 4) == "data"


def test_samples_and_their_source_message_from_the_quarantine(workspace: Workspace, monkeypatch) -> None:
    payload = build_pe(data=MARK)
    mail = Mail("a@example.com", "b@example.com", "invoice", text="see attached",
                attachments=[Attachment("inv.exe", payload)]).build()
    q = Quarantine.open(workspace)
    ingest_bytes(q, mail, tower="t1", server="s1", reason="test", source="test")
    message_sha = hashlib.sha256(mail).hexdigest()
    artifact_sha = q.store.put_bytes(payload).sha256
    q.close()

    # an indexed message is its own source; a prefix of it resolves
    [msg] = load_samples(workspace, [message_sha[:10]])
    assert msg.sha256 == message_sha and msg.source == message_sha
    # an artifact with no catalog entry has no known source
    monkeypatch.setitem(sys.modules, "workbench.dissect.catalog", types.ModuleType("catalog"))
    assert load_samples(workspace, [artifact_sha])[0].source == ""
    # with the dissect catalog, the parent message is the source
    fake = types.ModuleType("workbench.dissect.catalog")
    fake.find_parents = lambda ws, sha: [message_sha] if sha == artifact_sha else []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workbench.dissect.catalog", fake)
    [art] = load_samples(workspace, [artifact_sha])
    assert art.source == message_sha
    rule = parse_text(draft([art], strong=[MARK.decode()]).text).rules[0]
    assert rule.meta_value("source") == message_sha

    with pytest.raises(DraftError, match="no such object"):
        load_samples(workspace, ["f" * 64])
    with pytest.raises(DraftError, match="not a sha256"):
        load_samples(workspace, ["zzzz"])


def test_source_is_the_message_the_real_dissect_catalog_names(workspace: Workspace) -> None:
    from workbench.dissect import dissect_message

    payload = build_pe(data=MARK)
    mail = Mail("a@example.com", "b@example.com", "invoice", text="see attached",
                attachments=[Attachment("inv.exe", payload)]).build()
    with Quarantine.open(workspace) as q:
        ingest_bytes(q, mail, tower="t1", server="s1", reason="test", source="test")
        dissect_message(q, hashlib.sha256(mail).hexdigest())
    [art] = load_samples(workspace, [hashlib.sha256(payload).hexdigest()])
    assert art.source == hashlib.sha256(mail).hexdigest()


def test_family_comes_from_a_given_name(policy: Policy) -> None:
    s = sample(build_pe(data=MARK))
    rule = parse_text(draft([s], strong=[MARK.decode()], name="MAL_WbStealer_Strings_Exe",
                            policy=policy).text).rules[0]
    assert rule.meta_value("family") == "WbStealer"
    assert rule.meta_value("description").startswith("WbStealer")


def test_unicode_and_quotes_in_metadata_survive(policy: Policy) -> None:
    s = sample(build_pe(data=MARK))
    text = draft_rule([s], strong=[MARK.decode()], author='José "Pepe" Núñez', family="Émotet",
                      description="línea\tuno \\ dos")
    rule = parse_text(text).rules[0]
    assert rule.name == "MAL_Emotet_Exe"
    assert rule.meta_value("author") == 'José "Pepe" Núñez'
    assert rule.meta_value("description") == "línea\tuno \\ dos"
    assert yara.compile(source=text) and yara_x.compile(text)
    assert lint_text(text, None, policy).findings == []


def test_a_short_artifact_id_is_enough_to_draft(workspace: Workspace) -> None:
    payload = build_pe(data=MARK)
    with Quarantine.open(workspace) as q:
        sha = q.store.put_bytes(payload).sha256
    [s] = load_samples(workspace, [sha[:12]])
    assert s.sha256 == sha and s.data == payload
