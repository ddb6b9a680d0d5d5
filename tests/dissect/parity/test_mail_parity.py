"""Mail parity: whatever the stdlib parser (policy.default) finds, the message dissector shows.

Every message is built in code; the reference runs in the same test: each attached
message (at any depth), its From, Subject, Received hops, authentication results and
attachments must appear on a message node of the tree.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from pathlib import Path

import pytest

from workbench.dissect.model import LIMIT_HIT, OK, PARSER_ERROR, PARTIAL, Artifact, Limits
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples.mail import (
    EICAR,
    Attachment,
    Mail,
    attached_message,
    build_message,
    received,
)

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

ATTACHED = ("message/rfc822", "message/global", "message/news")
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


# -- the reference: the stdlib parser with policy.default ------------------------------------------


@dataclass
class RefMessage:
    subject: str
    senders: list[str]
    received: int
    auth: list[str]
    attachments: list[str]
    attached: list[RefMessage] = field(default_factory=list)
    parts: int = 0                 # MIME entities down to (and including) attached messages


def _walk(part: Message):
    yield part
    if part.get_content_type() in ATTACHED:
        return
    if part.is_multipart():
        for sub in part.get_payload():
            yield from _walk(sub)


def reference(msg: Message) -> RefMessage:
    def header(name: str) -> str:
        try:
            return str(msg.get(name, "") or "")
        except Exception:                       # policy.default raises on some odd headers
            return ""

    try:
        senders = [a.addr_spec for a in msg["from"].addresses] if msg["from"] is not None else []
    except Exception:
        senders = []
    ref = RefMessage(" ".join(header("subject").split()), senders, len(msg.get_all("received") or []),
                     [str(v) for v in msg.get_all("authentication-results") or []], [])
    for part in _walk(msg):
        ref.parts += 1
        try:
            name = part.get_filename()
        except Exception:
            name = None
        if name:
            ref.attachments.append(name)
        if part.get_content_type() in ATTACHED and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                ref.attached.append(reference(inner))
    return ref


def reference_of(data: bytes) -> RefMessage:
    return reference(email.message_from_bytes(data, policy=policy.default))


# -- the comparison ------------------------------------------------------------------------------


def attached_nodes(node: Artifact) -> list[Artifact]:
    """The attached messages directly inside a message node (through its MIME parts)."""
    return [c for c in node.children if c.dissector == "message" and c.note.startswith("attached message")]


def assert_covers(node: Artifact, ref: RefMessage) -> None:
    """The message node shows at least what the reference found, at every depth."""
    report = node.report
    assert node.dissector == "message", node.path
    assert " ".join(report.subject.split()) == ref.subject, node.path
    for sender in ref.senders:
        assert sender and sender in report.from_addr, (node.path, sender, report.from_addr)
    assert len(report.received) >= ref.received, node.path
    assert len(report.parts) >= ref.parts, (node.path, "MIME parts lost")
    assert node.status != PARSER_ERROR, (node.path, node.reason)
    for value in ref.auth:
        for method in ("spf", "dkim", "dmarc"):
            if f"{method}=" in value:
                assert any(a.method == method for a in report.auth), (node.path, method)
    shown = {p.filename for p in report.parts} | {p.name for p in report.parts}
    assert set(ref.attachments) <= shown, (node.path, ref.attachments, shown)
    inner = attached_nodes(node)
    assert len(inner) == len(ref.attached), (node.path, [c.path for c in node.children])
    for child, child_ref in zip(inner, ref.attached, strict=True):
        assert_covers(child, child_ref)


def dissect(data: bytes, pool: WorkerPool, **limits: int) -> Artifact:
    return dissect_bytes(data, as_message=True, pool=pool, limits=Limits(**limits)).root


# -- building forwarded mail -----------------------------------------------------------------------


def inner_message(subject: str = "Your invoice", *, attachment: tuple[str, bytes] = ("invoice.com", EICAR),
                  sender: str = "Mallory <billing@evil.example>") -> bytes:
    return Mail(sender, "victim@corp.example", subject, text="See the invoice attached.",
                attachments=[Attachment(*attachment)],
                headers=[received("mx.evil.example", "pc.evil.example", "198.51.100.7", T0),
                         ("Authentication-Results", "mx.evil.example; spf=fail smtp.mailfrom=evil.example;"
                                                    " dkim=none; dmarc=fail header.from=evil.example")]).build()


def forward(inner: bytes, *, filename: str = "", inline: bool = False, subject: str = "Fwd: suspicious") -> bytes:
    return Mail("analyst@corp.example", "soc@corp.example", subject, text="Please look at the attached mail.",
                attachments=[attached_message(inner, filename, inline=inline)]).build()


def nested_forwards() -> bytes:
    one = forward(inner_message(), filename="one.eml", subject="Fwd: suspicious")
    two = forward(one, filename="two.eml", subject="Fwd: Fwd: suspicious")
    return forward(two, filename="three.eml", subject="Fwd: Fwd: Fwd: suspicious")


EICAR_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


@pytest.mark.parametrize("filename, inline", [("phish.eml", False), ("", False), ("", True), ("fw.eml", True)])
def test_attached_message_is_a_dissected_child(pool: WorkerPool, filename: str, inline: bool) -> None:
    inner = inner_message()
    data = forward(inner, filename=filename, inline=inline)
    ref = reference_of(data)
    assert len(ref.attached) == 1 and ref.attached[0].attachments == ["invoice.com"]
    root = dissect(data, pool)
    assert_covers(root, ref)
    child = attached_nodes(root)[0]
    assert child.filename == filename
    assert child.path == "message/part 2" + (f"/{filename}" if filename else "")
    assert child.sha256 == hashlib.sha256(inner).hexdigest()          # the bytes as sent, not regenerated
    assert [h.from_host for h in child.report.received] == ["pc.evil.example"]
    assert [(a.method, a.result) for a in child.report.auth] == [("spf", "fail"), ("dkim", "none"),
                                                                 ("dmarc", "fail")]
    assert any(n.sha256 == EICAR_SHA for n in child.walk())
    # The outer message no longer claims the inner one's parts as its own.
    assert [p.position for p in root.report.parts] == ["0", "1", "2"]
    assert root.status == OK


def test_forward_of_a_forward_is_dissected_at_every_depth(pool: WorkerPool) -> None:
    data = nested_forwards()
    ref = reference_of(data)
    root = dissect(data, pool)
    assert_covers(root, ref)
    deepest = root.find("message/part 2/three.eml/part 2/two.eml/part 2/one.eml")
    assert deepest is not None and deepest.report.subject == "Your invoice"


def test_depth_limit_stops_the_walk_with_a_flag(pool: WorkerPool) -> None:
    root = dissect(nested_forwards(), pool, max_depth=3)
    statuses = {n.path: n.status for n in root.walk()}
    assert LIMIT_HIT in statuses.values()            # flagged, not silently cut
    assert root.find("message/part 2/three.eml/part 2/two.eml") is not None


def _raw_forward(inner: bytes, ctype: str = "message/rfc822") -> bytes:
    return (b"From: analyst@corp.example\nTo: soc@corp.example\nSubject: Fwd\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="OUT"\n\n--OUT\nContent-Type: text/plain\n\nsee below\n'
            b"--OUT\nContent-Type: " + ctype.encode() + b"\n\n" + inner + b"\n--OUT--\n")


def test_broken_boundary_inside_attached_message_is_flagged(pool: WorkerPool) -> None:
    inner = (b"From: m@evil.example\nSubject: Inner\nMIME-Version: 1.0\n"
             b'Content-Type: multipart/mixed; boundary="IN"\n\n--IN\nContent-Type: text/plain\n\nhi\n'
             b'--IN\nContent-Type: application/octet-stream; name="x.com"\nContent-Transfer-Encoding: base64\n\n'
             b"QUJD\n")                               # no closing --IN--
    root = dissect(_raw_forward(inner), pool)
    assert_covers(root, reference_of(_raw_forward(inner)))
    child = attached_nodes(root)[0]
    assert child.status == PARTIAL and "boundary" in child.reason
    assert any(n.filename == "x.com" for n in child.walk())

    # The start boundary never appears: the part is kept whole and the node says why.
    lost = inner.replace(b"--IN\n", b"--XX\n")
    root = dissect(_raw_forward(lost), pool)
    child = attached_nodes(root)[0]
    assert child.status == PARTIAL and "StartBoundaryNotFound" in child.reason
    kept = [p for p in child.report.parts if p.content_type == "multipart/mixed"]
    assert kept and kept[0].child and kept[0].size > len(b"QUJD")


def test_broken_boundary_of_the_message_itself_keeps_the_body(pool: WorkerPool) -> None:
    data = (b"From: m@evil.example\nSubject: typo\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="DECLARED"\n\n--USED\nContent-Type: text/plain\n\nhi\n'
            b"--USED\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nQUJD\n--USED--\n")
    root = dissect(data, pool)
    assert root.status == PARTIAL and "StartBoundaryNotFound" in root.reason
    assert root.children and root.children[0].size >= len(b"--USED") * 3     # kept whole, not dropped


def test_message_global_and_base64_attached_message(pool: WorkerPool) -> None:
    import base64

    root = dissect(_raw_forward(inner_message("Global"), "message/global"), pool)
    assert attached_nodes(root)[0].report.subject == "Global"
    inner = inner_message()
    encoded = (b"From: a@corp.example\nSubject: Fwd\nMIME-Version: 1.0\n"
               b'Content-Type: multipart/mixed; boundary="OUT"\n\n--OUT\n'
               b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
               + base64.encodebytes(inner) + b"--OUT--\n")
    child = attached_nodes(dissect(encoded, pool))[0]
    assert child.report.subject == "Your invoice"


# -- benign twins ----------------------------------------------------------------------------------


def test_benign_twins_have_no_attached_message(pool: WorkerPool) -> None:
    text = Mail("a@corp.example", "b@corp.example", "Notes",
                text="Content-Type: message/rfc822\n\nFrom: x@y.example\nSubject: not a part\n",
                attachments=[Attachment("notes.eml.txt", b"From: x@y.example\nSubject: text\n\nhi\n",
                                        "text/plain", "7bit")]).build()
    ref = reference_of(text)
    root = dissect(text, pool)
    assert ref.attached == [] and attached_nodes(root) == []
    assert_covers(root, ref)
    assert root.status == OK


# -- header decoding: one decoder for the index, the tree and the CLI --------------------------------


def _odd_headers() -> bytes:
    return ("From: a@x.example b@x.example\nTo: \"Doe, John\" <jd@corp.example>, j@corp.example (John)\n"
            "Subject: names\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n"
            "--B\nContent-Type: text/plain\n\nbody\n"
            "--B\nContent-Type: text/plain; name=ciële.txt\nContent-Disposition: attachment; filename=ciële.txt\n\n"
            "x\n"
            "--B\nContent-Type: application/pdf; name=\"invoice.pdf\"\n"
            "Content-Disposition: attachment; filename=\"invoice.exe\"\nContent-Transfer-Encoding: base64\n\n"
            "TVqQ\n--B--\n").encode()


def test_header_decoding_agrees_in_index_tree_and_reference(pool: WorkerPool, quarantine) -> None:
    from workbench.quarantine.headers import summarize_headers
    from workbench.quarantine.ingest import ingest_bytes

    data = _odd_headers()
    root = dissect(data, pool)
    r = root.report
    names = [p.filename for p in r.parts if p.filename]
    assert names == ["ciële.txt", "invoice.exe"]
    assert any(c.filename == "ciële.txt" and c.path.endswith("/ciële.txt") for c in root.children)
    ref = email.message_from_bytes(data, policy=policy.default)
    assert [p.get_filename() for p in ref.iter_attachments()] == ["ciële.txt", "invoice.exe"]

    # Two addresses without a comma: both kept, the defect said, and the same in the index.
    assert r.from_addr == "a@x.example, b@x.example"
    assert any("not separated by commas" in d for d in r.defects)
    summary = summarize_headers(data)
    assert summary.from_addr == r.from_addr and any("not separated by commas" in d for d in summary.defects)
    assert "ciële.txt" in summary.attachment_names
    # Quoted parts and comments stay as written.
    assert r.to == '"Doe, John" <jd@corp.example>, j@corp.example (John)'
    assert summary.to_addrs == r.to

    # name and filename disagree: both kept, the mismatch flagged.
    part = next(p for p in r.parts if p.filename == "invoice.exe")
    assert part.name == "invoice.pdf" and any("name-mismatch" in d for d in part.defects)
    assert any("invoice.pdf" in m and "invoice.exe" in m for m in r.mismatches)
    assert {"invoice.pdf", "invoice.exe"} <= set(summary.attachment_names)

    ingest_bytes(quarantine, data, tower="t1", server="mx", reason="test", source="test")
    for query in ("from:a@", "from:b@x.example"):
        assert [m.subject for m in quarantine.index.list(query)] == ["names"], query
    assert [m.subject for m in quarantine.index.list("ciële")] == ["names"]


def test_benign_addresses_are_unchanged(pool: WorkerPool) -> None:
    data = build_message(Mail('"Jane Roe" <jane@corp.example>', "Bob <bob@corp.example>", "hi", text="x"))
    r = dissect(data, pool).report
    assert (r.from_addr, r.to) == ("Jane Roe <jane@corp.example>", "Bob <bob@corp.example>")
    assert not [d for d in r.defects if "From" in d or "To" in d] and r.mismatches == []


# -- CPython's own test messages ------------------------------------------------------------------------


def _cpython_messages() -> list[Path]:
    import sysconfig

    folder = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    return sorted(folder.glob("msg_*.txt"))


@pytest.mark.skipif(not _cpython_messages(), reason="CPython's test/test_email/data is not installed")
def test_cpython_test_messages_lose_nothing(pool: WorkerPool) -> None:
    checked = 0
    for path in _cpython_messages():
        data = path.read_bytes()
        ref = reference_of(data)
        root = dissect(data, pool)
        assert root.dissector == "message" and root.report is not None, path.name
        try:
            assert_covers(root, ref)
        except AssertionError as exc:
            raise AssertionError(f"{path.name}: {exc}") from exc
        checked += 1
    assert checked >= 40
