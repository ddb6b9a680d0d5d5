"""HTML pages and scripts (JS, VBS, HTA, PowerShell): links, forms, scripts, iframes, hidden payloads."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.formats.text import find_urls
from workbench.dissect.model import Child, DissectResult

MAX_ITEMS = 500
MAX_SCRIPT_CHILDREN = 20
_B64 = re.compile(rb"(?:data:[\w/.+-]{1,80};base64,)?([A-Za-z0-9+/]{80,}={0,2})")
# Decoded blobs worth a node: executables, archives, documents (by their leading bytes).
KNOWN_PREFIXES = {b"MZ": "pe", b"PK\x03\x04": "zip", b"%PDF": "pdf", b"\xd0\xcf\x11\xe0": "ole",
                  b"{\\rt": "rtf", b"7z\xbc\xaf": "7z", b"Rar!": "rar", b"\x1f\x8b": "gzip",
                  b"\x89PNG": "png", b"GIF8": "gif", b"\xff\xd8\xff": "jpeg"}
SCRIPT_KEYWORDS = ("ActiveXObject", "WScript.Shell", "Shell.Application", "MSXML2.XMLHTTP", "ADODB.Stream",
                   "eval(", "unescape(", "fromCharCode", "atob(", "document.write", "CreateObject",
                   "powershell", "-EncodedCommand", "FromBase64String", "Invoke-Expression", "IEX",
                   "DownloadString", "DownloadFile", "cmd.exe", "mshta", "regsvr32", "rundll32",
                   "window.location", "XMLHttpRequest", "fetch(")
SCRIPT_EXTENSIONS = ("js", "jse", "vbs", "vbe", "hta", "wsf", "ps1", "bat", "cmd", "svg")


@dataclass
class HtmlForm:
    action: str
    method: str
    inputs: list[str]
    password_field: bool


@dataclass
class DecodedBlob:
    offset: int
    size: int
    kind: str


@dataclass
class HtmlReport:
    kind: str                     # html or script
    language: str = ""
    title: str = ""
    links: list[str] = field(default_factory=list)
    forms: list[HtmlForm] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)      # src URLs, or "inline, N characters"
    iframes: list[str] = field(default_factory=list)
    meta_refresh: str = ""
    urls: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    blobs: list[DecodedBlob] = field(default_factory=list)

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath HTML or a script, in the CLI and the UI alike."""
        out: list[str] = []
        if self.title:
            out.append(f"title: {self.title}")
        for form in self.forms[:3]:
            out.append(f"form {form.method.upper()} {form.action or '(self)'}"
                       + (" with a password field" if form.password_field else ""))
        if self.keywords:
            out.append("keywords: " + ", ".join(self.keywords[:10]))
        if self.iframes:
            out.append("iframes: " + ", ".join(self.iframes[:3]))
        return out


class _Collector(HTMLParser):
    def __init__(self, report: HtmlReport):
        super().__init__(convert_charrefs=True)
        self.report = report
        self.inline: list[str] = []
        self._in_script = False
        self._in_title = False
        self._form: HtmlForm | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        r = self.report
        if tag in ("a", "area") and a.get("href") and len(r.links) < MAX_ITEMS:
            r.links.append(a["href"][:2000])
        elif tag == "form":
            self._form = HtmlForm(a.get("action", "")[:2000], a.get("method", "get").lower(), [], False)
            if len(r.forms) < MAX_ITEMS:
                r.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            self._form.inputs.append(f"{a.get('type', 'text')}:{a.get('name', '')}"[:200])
            if a.get("type", "").lower() == "password":
                self._form.password_field = True
        elif tag == "script":
            self._in_script = True
            self.inline.append("")
            if a.get("src") and len(r.scripts) < MAX_ITEMS:
                r.scripts.append(a["src"][:2000])
        elif tag in ("iframe", "frame", "embed", "object") and len(r.iframes) < MAX_ITEMS:
            src = a.get("src") or a.get("data") or ""
            if src:
                r.iframes.append(src[:2000])
        elif tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            r.meta_refresh = a.get("content", "")[:2000]
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        elif tag == "form":
            self._form = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_script and self.inline:
            self.inline[-1] += data
        elif self._in_title and len(self.report.title) < 500:
            self.report.title += data.strip()


def _blobs(data: bytes, report: HtmlReport, result: DissectResult, ctx: DissectContext) -> None:
    for m in _B64.finditer(data):
        if len(report.blobs) >= 50:
            break
        raw = m.group(1)
        try:
            decoded = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        kind = next((k for p, k in KNOWN_PREFIXES.items() if decoded.startswith(p)), "")
        if not kind or len(decoded) > ctx.limits.max_child:
            continue
        report.blobs.append(DecodedBlob(m.start(1), len(decoded), kind))
        result.children.append(Child(f"base64-{m.start(1)}.{kind}", decoded,
                                     note=f"base64 at offset {m.start(1)} decodes to {kind}"))


class HtmlDissector(Dissector):
    name = "html"
    version = 1
    mimes = ("text/html", "application/xhtml+xml", "image/svg+xml")
    magic_words = ("HTML document",)
    extensions = ("html", "htm", "xhtml", "shtml", "svg")
    report_type = HtmlReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = HtmlReport("html")
        result.report = report
        text = data.decode("utf-8", "replace")
        collector = _Collector(report)
        try:
            collector.feed(text)
            collector.close()
        except Exception as exc:      # html.parser is lenient, but hostile input finds its corners
            result.problem("partial", f"HTML parser stopped: {type(exc).__name__}: {exc}")
        for i, script in enumerate(s for s in collector.inline if s.strip()):
            report.scripts.append(f"inline, {len(script)} characters")
            if i < MAX_SCRIPT_CHILDREN and len(script) >= 64:
                result.children.append(Child(f"script-{i + 1}.js", script.encode("utf-8"),
                                             declared_type="application/javascript",
                                             note="inline script"))
        report.urls = find_urls(text)
        report.keywords = [k for k in SCRIPT_KEYWORDS if k.lower() in text.lower()]
        _blobs(data, report, result, ctx)
        return result


class ScriptDissector(Dissector):
    name = "script"
    version = 1
    mimes = ("application/javascript", "text/javascript", "application/x-javascript", "text/vbscript",
             "application/hta", "text/x-vba")
    extensions = SCRIPT_EXTENSIONS
    report_type = HtmlReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        ext = ctx.filename.rsplit(".", 1)[-1].lower() if "." in ctx.filename else ""
        language = {"js": "javascript", "jse": "jscript-encoded", "vbs": "vbscript", "vbe": "vbscript-encoded",
                    "hta": "hta", "ps1": "powershell", "bat": "batch", "cmd": "batch", "wsf": "wsf"}.get(
                        ext, ctx.declared_type or ctx.mime)
        report = HtmlReport("script", language=language)
        result.report = report
        text = data.decode("utf-8", "replace")
        report.urls = find_urls(text)
        report.keywords = [k for k in SCRIPT_KEYWORDS if k.lower() in text.lower()]
        _blobs(data, report, result, ctx)
        return result


DISSECTORS = [HtmlDissector, ScriptDissector]
