"""The house signature corpora, rebuilt from ``workbench.samples`` byte for byte.

``signatures/corpora/malicious`` holds one file per demo threat (inert stand-ins: EICAR,
GTUBE and ``WBDEMO-*`` markers, never live malware); ``signatures/corpora/clean`` holds
ordinary files chosen to trip careless rules (a real sign-in page, a macro-free Word
file, a memo that names EICAR and AutoOpen, a benign Windows PE ...). ``corpora.json``
records what each file is and its sha256, so a drift in a sample builder shows up in
review as a changed hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from workbench.samples.archives import build_zip
from workbench.samples.documents import build_docx, build_html_page, build_pdf, build_rtf
from workbench.samples.mail import EICAR, GTUBE, Mail
from workbench.samples.office import build_ole_word
from workbench.samples.threats import THREATS, benign_pe

MANIFEST_NAME = "corpora.json"
LABELS = ("malicious", "clean")

_LOGIN_PAGE = build_html_page("Contoso - Sign in", """\
<main class="signin">
<h1>Sign in to Contoso Intranet</h1>
<form action="https://login.contoso.example/oauth2/authorize" method="post">
<label>Email <input type="email" name="login" autocomplete="username"></label>
<label>Password <input type="password" name="passwd" autocomplete="current-password"></label>
<input type="submit" value="Sign in">
</form>
<p><a href="https://login.contoso.example/reset">Forgot your password?</a></p>
</main>""")

_SECURITY_MEMO = """\
IT security awareness - November

1. Our mail gateways block the EICAR test file and GTUBE test messages; use them,
   not real malware, when you test the filters.
2. Word documents that ask you to "Enable content" may run an AutoOpen macro that
   starts powershell. Close them and forward them to the security team.
3. Never type your password into a page you reached from a link in a mail.
"""

_REPORT_JS = """\
// Renders the weekly report table (no network access, no ActiveX).
function renderReport(rows) {
  var table = document.getElementById("report");
  rows.forEach(function (row) {
    var tr = table.insertRow(-1);
    tr.insertCell(0).textContent = row.name;
    tr.insertCell(1).textContent = row.total.toFixed(2);
  });
}
"""


@dataclass(frozen=True)
class CorpusSample:
    path: str            # relative to the corpora folder, e.g. malicious/eicar/eicar.com
    data: bytes
    what: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def house_samples() -> list[CorpusSample]:
    """Every corpus file, built in code; the same bytes on every run (see ``benign_pe`` for one caveat)."""
    out = [CorpusSample("malicious/eicar/eicar.com", EICAR, "EICAR anti-virus test file"),
           CorpusSample("malicious/gtube/gtube.txt", GTUBE, "GTUBE spam test string"),
           CorpusSample("malicious/gtube/gtube.eml", Mail(
               "promo@deals.example", "jon.ek@northwind.example", "You have won!",
               text=f"Claim your prize today.\n\n{GTUBE.decode()}\n").build(),
               "a message carrying the GTUBE string")]
    for t in THREATS:
        if t.key in ("eicar", "gtube") or not t.filename:
            continue
        folder = t.family.lower()
        out.append(CorpusSample(f"malicious/{folder}/{t.filename}", t.build(),
                                f"{t.description} (workbench.samples.threats {t.key!r})"))
    pe_name, pe = benign_pe()
    out += [
        CorpusSample(f"clean/{pe_name}", pe, "a benign Windows PE: the launcher pip or setuptools ships"),
        CorpusSample("clean/signin.html", _LOGIN_PAGE.encode(), "a genuine sign-in page with a password form"),
        CorpusSample("clean/newsletter.html", build_html_page(
            "Logistics weekly", "<h1>This week</h1><p>Five trends to watch.</p>").encode(), "a newsletter"),
        CorpusSample("clean/security_memo.txt", _SECURITY_MEMO.encode(),
                     "a memo that names EICAR, GTUBE, AutoOpen and powershell in prose"),
        CorpusSample("clean/report.js", _REPORT_JS.encode(), "ordinary browser JavaScript"),
        CorpusSample("clean/letter.doc", build_ole_word(None, text="Dear customer, thank you for your order."),
                     "a Word 97 document without macros"),
        CorpusSample("clean/agenda.docx", build_docx(["Agenda", "1. Welcome", "2. Plans for 2027"]),
                     "a Word document"),
        CorpusSample("clean/quarterly_figures.pdf", build_pdf("Quarterly figures"), "a PDF without JavaScript"),
        CorpusSample("clean/memo.rtf", build_rtf("Please review the attached figures."),
                     "an RTF without embedded objects"),
        CorpusSample("clean/archive.zip", build_zip([("notes.txt", b"meeting notes\n"),
                                                     ("data.csv", b"a,b\n1,2\n")]), "a zip of text files"),
        CorpusSample("clean/welcome.eml", Mail(
            "hr@contoso.example", "anna.berg@contoso.example", "Welcome aboard",
            text="Hi Anna,\n\nwelcome to the team. Your laptop is ready at the front desk.\n").build(),
            "an ordinary message"),
    ]
    return sorted(out, key=lambda s: s.path)


@dataclass
class CorporaReport:
    folder: str
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)    # with --check: would change
    extra: list[str] = field(default_factory=list)        # files in the folders no builder makes

    @property
    def ok(self) -> bool:
        return not self.differing


def write_corpora(folder: Path, *, check: bool = False) -> CorporaReport:
    """Write (or with ``check``, only compare) the corpora under ``folder``; extra files are kept."""
    folder = Path(folder)
    report = CorporaReport(str(folder))
    samples = house_samples()
    manifest = (json.dumps({"files": [{"path": s.path, "sha256": s.sha256, "size": len(s.data), "what": s.what}
                                      for s in samples]}, indent=2) + "\n").encode()
    for rel, data in [*((s.path, s.data) for s in samples), (MANIFEST_NAME, manifest)]:
        target = folder / rel
        current = target.read_bytes() if target.is_file() else None
        if current == data:
            report.unchanged.append(rel)
        elif check:
            report.differing.append(rel)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            report.written.append(rel)
    made = {s.path for s in samples}
    for label in LABELS:
        base = folder / label
        if base.is_dir():
            report.extra += sorted(p.relative_to(folder).as_posix() for p in base.rglob("*")
                                   if p.is_file() and p.relative_to(folder).as_posix() not in made)
    return report
