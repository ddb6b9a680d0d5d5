"""Rendering dissection documents safely: defanged URLs, HTML as text, robust to odd reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from rich.console import Console

from workbench.dissect.formats.message import AuthResult, FoundUrl, Header, Hop, MessageReport
from workbench.tui.render import (
    artifact_label,
    auth_text,
    body_text,
    defang_text,
    headers_text,
    hops_table,
    report_renderable,
    safely,
    utc_text,
    vba_source,
)


def plain(renderable: object, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_urls_in_bodies_are_defanged() -> None:
    report = MessageReport(text="go to https://evil.example.com/login now\n")
    shown = plain(body_text(report))
    assert "evil.example.com" not in shown
    assert "hxxps://evil[.]example[.]com/login" in shown
    assert defang_text("ftp://a.b/c and http://x.y") == "fxp://a[.]b/c and hxxp://x[.]y"


def test_html_body_is_shown_as_text_without_scripts_and_source_on_demand() -> None:
    html = ('<html><head><script>fetch("http://track.example/p.gif")</script></head>'
            '<body><p>Click <a href="http://phish.example/x">here</a></p></body></html>')
    report = MessageReport(html=html)
    shown = plain(body_text(report))
    assert "Click" in shown and "here" in shown
    assert "<p>" not in shown and "fetch(" not in shown
    source = plain(body_text(report, html_source=True))
    assert "<p>Click" in source and "hxxp://phish[.]example/x" in source


def test_markup_in_mail_is_never_interpreted() -> None:
    report = MessageReport(text="[bold red]not markup[/] [link=http://x.example]y[/link]")
    shown = plain(body_text(report))
    assert "[bold red]not markup[/]" in shown


def test_auth_results_and_mismatches() -> None:
    report = MessageReport(
        auth=[AuthResult("spf", "softfail", "smtp.mailfrom=x", "Authentication-Results"),
              AuthResult("dmarc", "fail", "header.from=x", "Authentication-Results")],
        mismatches=["From domain a.example differs from Reply-To domain b.example"])
    text = auth_text(report)
    shown = text.plain
    assert shown.index("Sender mismatches") < shown.index("Authentication results")
    assert "⚠ From domain a.example differs" in shown
    fail = shown.index("fail ", shown.index("dmarc"))
    assert any(span.style == "bold red" and span.start <= fail < span.end for span in text.spans)


def test_headers_decoded_or_raw() -> None:
    report = MessageReport(headers=[Header("Subject", "Grüße", "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", 26)])
    assert "Subject: Grüße" in headers_text(report.headers).plain
    assert "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" in headers_text(report.headers, raw=True).plain


def test_hops_accept_dates_as_datetimes_or_cached_text() -> None:
    when = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    report = MessageReport(received=[
        Hop(1, "a.example", "192.0.2.1", "b.example", "ESMTP", "x", when, None, "raw"),
        Hop(2, "b.example", "", "c.example", "ESMTPS", "y", "2026-11-02T09:29:00Z", -60.0, "raw"),
    ])
    shown = plain(hops_table(report))
    assert "2026-11-02 09:30:00" in shown and "2026-11-02 09:29:00" in shown
    assert "clocks disagree" in shown
    assert utc_text(None) == "?" and utc_text("garbage") == "garbage"


@dataclass
class Section:
    name: str
    entropy: float
    md5: str


@dataclass
class Macro:
    module: str
    code: str


@dataclass
class FakeReport:
    format: str
    sections: list[Section] = field(default_factory=list)
    macros: list[Macro] = field(default_factory=list)
    empty: str = ""


def test_any_report_renders_fields_tables_and_code() -> None:
    report = FakeReport("PE32", [Section(f".s{i}", 7.5, "ab" * 16) for i in range(3)],
                        [Macro("ThisDocument", "Sub AutoOpen()\n  Shell \"calc\"\nEnd Sub\n")])
    shown = plain(report_renderable(report, title="pe report"))
    assert "pe report" in shown and "PE32" in shown
    assert "sections (3)" in shown and ".s2" in shown and "7.500" in shown
    assert "Sub AutoOpen()" in shown
    assert "empty" not in shown
    code = vba_source("Sub AutoOpen()\n  Shell \"calc\"\nEnd Sub\n")
    flagged = {code.plain[s.start:s.end] for s in code.spans if s.style == "bold red"}
    assert {"AutoOpen", "Shell"} <= flagged


def test_many_rows_are_capped() -> None:
    report = FakeReport("PE32", [Section(f".s{i}", 1.0, "") for i in range(600)])
    shown = plain(report_renderable(report))
    assert "… 100 more not shown" in shown


def test_safely_turns_a_drawing_bug_into_a_message() -> None:
    shown = safely(lambda: 1 / 0, "report")
    assert "cannot show the report: ZeroDivisionError" in str(shown)


@dataclass
class FakeArtifact:
    path: str = "message/part 2/invoice.pdf.exe"
    safe_name: str = "invoice.pdf.exe"
    mime: str = "application/vnd.microsoft.portable-executable"
    declared_type: str = "application/pdf"
    size: int = 2048
    flags: list[str] = field(default_factory=lambda: ["extension-mismatch", "double-extension"])
    status: str = "limit-hit"
    depth: int = 1


def test_tree_labels_carry_flags_and_problem_badges() -> None:
    label = artifact_label(FakeArtifact()).plain
    assert "invoice.pdf.exe" in label and "2.0 KiB" in label
    assert "⚠ extension-mismatch" in label and "⚠ double-extension" in label
    assert "[limit hit]" in label
    assert label.index("[limit hit]") < label.index("application/")   # seen in a narrow pane
    assert "[" not in artifact_label(FakeArtifact(flags=[], status="ok")).plain


def test_found_urls_table_lists_defanged_urls_only() -> None:
    from workbench.tui.render import urls_table

    report = MessageReport(urls=[FoundUrl("http://a.example/x", "hxxp://a[.]example/x", "text")])
    shown = plain(urls_table(report))
    assert "hxxp://a[.]example/x" in shown and "http://a.example" not in shown


def test_entropy_strip_uses_an_absolute_scale() -> None:
    from workbench.tui.render import entropy_strip

    low = entropy_strip([1.0] * 10, 256, height=4).plain.splitlines()
    high = entropy_strip([1.0] * 5 + [8.0] * 5, 256, height=4).plain.splitlines()
    assert low[:3] == [" " * 10] * 3 and low[3] == "▄" * 10   # 1 of 8 bits: half a row of 4
    assert high[0] == " " * 5 + "█" * 5 and high[3] == "▄" * 5 + "█" * 5
    assert any(s.style == "red" for s in entropy_strip([7.9], 256).spans)
    wide = entropy_strip([float(i % 8) for i in range(1000)], 256, width=100)
    assert len(wide.plain.splitlines()[0]) == 100
    assert "2,560 bytes" in wide.plain


def test_text_artifacts_show_their_source_safely() -> None:
    from workbench.tui.render import source_text

    macro = b'Sub AutoOpen()\r\n  cmd = "powershell -enc AAA"\r\n  \' http://drop.example/p.ps1\r\nEnd Sub\r\n'
    text = source_text(macro, vba=True)
    assert text is not None
    assert "hxxp://drop[.]example/p.ps1" in text.plain and "\r" not in text.plain
    red = {text.plain[s.start:s.end] for s in text.spans if s.style == "bold red"}
    assert {"AutoOpen", "powershell"} <= red               # a keyword inside a string too
    assert source_text(b"MZ\x90\x00\x03\x00\x00\x00" * 10, vba=False) is None
    big = source_text(b"a" * (300 * 1024), vba=False)
    assert big is not None and "more bytes in the Hex tab" in big.plain


def test_report_values_are_defanged() -> None:
    @dataclass
    class Script:
        urls: list[str]

    shown = plain(report_renderable(Script(["http://macro-drop.example/p.ps1"])))
    assert "hxxp://macro-drop[.]example/p.ps1" in shown and "http://macro" not in shown
