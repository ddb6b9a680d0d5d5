"""The CLI's dissection tree and the UI's report tab show the same key facts for every report type."""

from __future__ import annotations

import datetime as dt

import pytest
from rich.console import Console

from workbench.dissect.dissectors import registry
from workbench.dissect.model import Artifact, Dissection, Limits
from workbench.dissect.render import render_tree, report_facts
from workbench.dissect.walker import dissect_bytes
from workbench.samples.archives import build_zip
from workbench.samples.documents import build_html_page, build_pdf
from workbench.samples.mail import EICAR, Attachment, Mail, received
from workbench.samples.office import AUTOOPEN_SHELL_MACRO, build_tnef, build_vba_document
from workbench.samples.pe import build_pe
from workbench.tui.render import report_renderable

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

WHEN = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def _plain(renderable: object) -> str:
    console = Console(width=400, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.fixture(scope="module")
def dissection() -> Dissection:
    """One message whose tree holds a report of every type the dissectors produce."""
    phish = build_html_page("Sign in", '<form action="http://evil.example/p" method="post">'
                            '<input type="password" name="pw"></form>')
    mail = Mail(
        "billing@evil.example", "victim@corp.example", "Invoice 42", text="see http://evil.example/a",
        headers=[received("mx.corp.example", "evil.example", "192.0.2.7", WHEN)],
        attachments=[
            Attachment("bundle.zip", build_zip([("eicar.com", EICAR), ("notes.txt", b"hello")])),
            Attachment("invoice.docm", build_vba_document(AUTOOPEN_SHELL_MACRO, kind="docm")),
            Attachment("statement.pdf", build_pdf(javascript="app.alert(1)", uri="http://evil.example/u")),
            Attachment("login.html", phish.encode(), content_type="text/html"),
            Attachment("setup.exe", build_pe(overlay=b"\x00" * 4096, signer="Evil Corp", tls_callbacks=1)),
            Attachment("winmail.dat", build_tnef([("readme.txt", b"hello")]),
                       content_type="application/ms-tnef"),
        ])
    return dissect_bytes(mail.build(), as_message=True, limits=Limits(isolate=False))


def _by_type(root: Artifact) -> dict[str, list[Artifact]]:
    found: dict[str, list[Artifact]] = {}
    for node in root.walk():
        if node.report is not None:
            found.setdefault(type(node.report).__name__, []).append(node)
    return found


def test_every_report_type_declares_its_facts() -> None:
    """A new dissector's report must say what its key facts are, or the CLI shows none."""
    for dissector in registry():
        report_type = getattr(dissector, "report_type", None)
        if report_type is not None:
            assert callable(getattr(report_type, "facts", None)), report_type.__name__


def test_cli_and_ui_show_the_same_facts(dissection: Dissection) -> None:
    nodes = _by_type(dissection.root)
    declared = {getattr(d, "report_type", None) for d in registry()} - {None}
    assert {t.__name__ for t in declared} <= set(nodes), "the sample misses a report type"
    cli = render_tree(dissection)
    for kind, group in sorted(nodes.items()):
        assert any(report_facts(node.report) for node in group), f"{kind}: no facts in the sample"
        for node in group:
            ui = _plain(report_renderable(node.report, title=f"{node.dissector} report"))
            for fact in report_facts(node.report):
                assert fact in cli, f"{node.path}: CLI misses {fact!r}"
                assert fact in ui, f"{node.path}: UI misses {fact!r}"


def test_facts_say_what_the_analyst_looks_for(dissection: Dissection) -> None:
    """Spot checks that the facts carry the telling details, not just a type name."""
    nodes = _by_type(dissection.root)
    text = {kind: "\n".join(fact for node in group for fact in report_facts(node.report))
            for kind, group in nodes.items()}
    assert "Invoice 42" in text["MessageReport"] and "received: 1 hops" in text["MessageReport"]
    assert "zip: 2 members" in text["ArchiveReport"]
    assert "autoexec: AutoOpen" in text["OfficeReport"]
    assert "javascript" in text["PdfReport"] and "uri: http://evil.example/u" in text["PdfReport"]
    assert "with a password field" in text["HtmlReport"]
    assert "overlay: 4.0 KiB" in text["PeReport"] and "TLS callbacks: 1" in text["PeReport"]
    assert "readme.txt" in text["TnefReport"]
