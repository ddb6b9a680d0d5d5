"""Seeding the demo: about 240 messages from several towers through the real spool ingest.

Everything is derived from a fixed random seed and fixed dates, so two demos built
on two machines hold the same messages (same sha256s), except the benign PE, which
is whatever launcher the local pip ships.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from workbench.quarantine.ingest import IngestSummary, ingest_spool
from workbench.quarantine.service import Quarantine
from workbench.samples.archives import build_zip
from workbench.samples.campaign import courier_wave
from workbench.samples.documents import build_docx, build_html_page, build_pdf
from workbench.samples.mail import EICAR, GTUBE, Attachment, Mail, received
from workbench.samples.rar import build_rar5
from workbench.samples.threats import PHISH_HTML, THREATS, ZIP_PASSWORD, Threat, benign_pe
from workbench.workspace import Workspace

SEED = 2026
START = dt.datetime(2026, 11, 19, 6, 0, tzinfo=dt.UTC)
WAVE_SIZE = 36
TOWERS = {
    "ams-t03": 14, "fra-t07": 18, "iad-t12": 24, "sin-t21": 16, "gru-t30": 14, "syd-t44": 20,
}
ORGS = ["northwind.example", "contoso.example", "fabrikam.example", "adatum.example",
        "tailspin.example", "woodgrove.example", "litware.example", "proseware.example"]
PEOPLE = ["anna.berg", "li.wei", "omar.haddad", "sara.costa", "jon.ek", "maria.rossi",
          "kenji.sato", "ines.silva", "paul.meyer", "zoe.martin", "david.cohen", "noor.ali"]
BUSINESS_SUBJECTS = [
    "Q4 budget review - draft figures", "Minutes: supplier meeting 14 Nov",
    "Re: shipment delay on PO 55120", "Holiday rota for December", "Updated travel policy",
    "Invoice 2026-1187 (paid)", "Re: Re: contract renewal terms", "Team offsite agenda",
    "Your expense report was approved", "Server maintenance window Saturday",
    "Fwd: customer feedback summary", "Lunch & learn: threat modelling",
]
NEWSLETTERS = [
    ("news@weekly-digest.example", "This week in logistics: 5 trends to watch"),
    ("offers@shop.example", "Black Friday: 40% off everything until Monday"),
    ("updates@saas-tool.example", "Product update: new dashboards are live"),
    ("events@conference.example", "Last chance to register for SecCon 2027"),
]


@dataclass
class DemoReport:
    """What ``workbench demo`` built."""

    home: str
    messages_written: int = 0
    failed_written: int = 0
    ingest: IngestSummary = field(default_factory=IngestSummary)
    corpora: dict[str, int] = field(default_factory=dict)
    skipped: bool = False
    dissected: int = 0          # messages dissected now (their bodies, inner names and strings searchable)


class _Writer:
    """Lays out spool files ``incoming/<tower>/<server>/<n>.eml`` with sidecars."""

    def __init__(self, q: Quarantine, rng: random.Random):
        self.q = q
        self.rng = rng
        self.count = 0

    def place(self, data: bytes, when: dt.datetime, *, reason: str, sidecar: bool = True,
              tower: str | None = None) -> None:
        tower = tower or self.rng.choice(sorted(TOWERS))
        server = f"mx{self.rng.randint(1, TOWERS[tower]):02d}"
        folder = self.q.incoming / tower / server
        folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = folder / f"{when:%Y%m%dT%H%M%S}-{self.count:05d}.eml"
        if not sidecar:      # the other way a tower names the reason
            data = f"X-Quarantine-Reason: {reason}\n".encode() + data
        path.write_bytes(data)
        stamp_seconds = when.timestamp()
        os.utime(path, (stamp_seconds, stamp_seconds))
        if sidecar:
            (folder / (path.name + ".json")).write_text(json.dumps(
                {"reason": reason, "received_at": when.isoformat().replace("+00:00", "Z"),
                 "tower": tower, "server": server}), encoding="utf-8")


def _addr(rng: random.Random, org: str | None = None) -> str:
    return f"{rng.choice(PEOPLE)}@{org or rng.choice(ORGS)}"


def _hops(rng: random.Random, when: dt.datetime, sender_host: str) -> list[tuple[str, str]]:
    ip = f"198.51.100.{rng.randint(2, 250)}"
    return [received("mx.quarantine.example", f"relay.{sender_host}", ip, when),
            received(f"relay.{sender_host}", f"client.{sender_host}", f"10.0.{rng.randint(0, 9)}.7",
                     when - dt.timedelta(seconds=rng.randint(1, 90)))]


def _auth(rng: random.Random, domain: str, good: bool) -> tuple[str, str]:
    verdict = "pass" if good else rng.choice(["fail", "softfail", "none"])
    dkim = "pass" if good else "fail"
    return ("Authentication-Results",
            f"mx.quarantine.example; spf={verdict} smtp.mailfrom={domain}; "
            f"dkim={dkim} header.d={domain}; dmarc={'pass' if good else 'fail'} header.from={domain}")


def _business(rng: random.Random, when: dt.datetime) -> Mail:
    org = rng.choice(ORGS)
    attachments = []
    roll = rng.random()
    if roll < 0.25:
        attachments.append(Attachment("figures.pdf", build_pdf("Quarterly figures"), "application/pdf"))
    elif roll < 0.40:
        attachments.append(Attachment("agenda.docx", build_docx(["Agenda", "1. Welcome", "2. Plans"]),
                                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))
    elif roll < 0.50:
        attachments.append(Attachment("rota.csv", b"name,day\nanna,Mon\nli,Tue\n", "text/csv"))
    return Mail(_addr(rng, org), _addr(rng), rng.choice(BUSINESS_SUBJECTS),
                text="Hi,\n\nPlease see below and let me know by Friday.\n\nBest regards\n",
                attachments=attachments, date=when,
                headers=[*_hops(rng, when, org), _auth(rng, org, True)])


def _newsletter(rng: random.Random, when: dt.datetime) -> Mail:
    sender, subject = rng.choice(NEWSLETTERS)
    domain = sender.split("@")[1]
    html = build_html_page(subject, f"<h1>{subject}</h1><p>Read more at "
                           f"<a href=\"https://{domain}/read?id={rng.randint(1000, 9999)}\">our site</a>.</p>"
                           "<p><a href=\"https://" + domain + "/unsubscribe\">Unsubscribe</a></p>")
    return Mail(sender, _addr(rng), subject, text=f"{subject}\nhttps://{domain}/read", html=html,
                date=when, headers=[*_hops(rng, when, domain), _auth(rng, domain, True),
                                    ("List-Unsubscribe", f"<https://{domain}/unsubscribe>")])


def _threat_mail(rng: random.Random, when: dt.datetime, t: Threat) -> Mail:
    domain = rng.choice(["mail-secure.example", "billing-notice.example", "docs-share.example",
                         "fedex-track.example", "hr-portal.example"])
    sender = f"{rng.choice(['billing', 'noreply', 'accounts', 'scanner', 'hr'])}@{domain}"
    data = t.build()
    text = {
        "eicar-password-zip": f"Your invoice is attached as a protected archive.\n"
                              f"The password is {ZIP_PASSWORD}.\n",
        "phish-html": "You have a new voicemail. Open the attachment to listen.\n",
    }.get(t.key, "Please review the attached document at your earliest convenience.\n")
    subjects = {
        "eicar": "Test file", "eicar-zip": "Invoice 8812", "eicar-zip-zip": "Your statement",
        "eicar-password-zip": "Secure invoice (password inside)",
        "phish-html": "Voicemail from +1 555 0147 (0:42)", "js-dropper": "Payment details",
        "macro-doc": "Invoice 4471 overdue", "pdf-js": "Statement November",
        "rtf-object": "Order confirmation #20931", "pe-loader": "Scanned document 0047",
        "template-injection": "Contract renewal 2027", "stealer": "QuickBooks update required",
    }
    content_types = {".html": "text/html", ".js": "application/javascript", ".doc": "application/msword",
                     ".pdf": "application/pdf", ".rtf": "application/rtf", ".zip": "application/zip",
                     ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
    filename, payload = t.filename, data
    if t.key == "stealer":
        filename, payload = "QB_update.zip", build_zip([(t.filename, data)])
    ctype = content_types.get(Path(filename).suffix, "application/octet-stream")
    if t.key == "pe-loader":
        ctype = "application/pdf"        # the declared type lies: dissection flags the mismatch
    return Mail(sender, _addr(rng), subjects.get(t.key, t.description), text=text,
                attachments=[Attachment(filename, payload, ctype)], date=when,
                headers=[*_hops(rng, when, domain), _auth(rng, domain, False),
                         ("Reply-To", f"collect@{rng.choice(['gmail-box.example', 'proton-drop.example'])}"),
                         ("Return-Path", f"<bounce@{domain}>")])


def _rar_invoice(when: dt.datetime) -> Mail:
    """EICAR in a RAR 5 archive (dissected through libarchive). Its own random stream: the
    rest of the demo stays what it was."""
    rng = random.Random(f"{SEED}-rar")
    domain = "billing-notice.example"
    rar = build_rar5([("Invoice_9921/", b""), ("Invoice_9921/invoice_9921.com", EICAR)])
    return Mail(f"accounts@{domain}", _addr(rng), "Invoice 9921 (archive)",
                text="Please find invoice 9921 attached as a RAR archive.\n",
                attachments=[Attachment("Invoice_9921.rar", rar, "application/x-rar")], date=when,
                headers=[*_hops(rng, when, domain), _auth(rng, domain, False),
                         ("Return-Path", f"<bounce@{domain}>")])


def _gtube(rng: random.Random, when: dt.datetime) -> Mail:
    domain = "cheap-meds.example"
    return Mail(f"deals@{domain}", _addr(rng), "You won't believe these prices!!!",
                text=f"Limited offer!\n\n{GTUBE.decode()}\n", date=when,
                headers=[*_hops(rng, when, domain), _auth(rng, domain, False)])


def _phish_body(rng: random.Random, when: dt.datetime) -> Mail:
    domain = "microsoft-support.example"
    return Mail(f"security@{domain}", _addr(rng), "Unusual sign-in activity",
                text="We detected unusual sign-in activity. Verify your account now.",
                html=PHISH_HTML.decode(), date=when,
                headers=[*_hops(rng, when, domain), _auth(rng, domain, False)])


def _benign_pe_mail(rng: random.Random, when: dt.datetime) -> Mail:
    name, data = benign_pe()
    org = rng.choice(ORGS)
    return Mail(_addr(rng, org), _addr(rng), "The installer you asked for",
                text="Here is the launcher from our build server.\n",
                attachments=[Attachment(name, data, "application/x-msdownload")], date=when,
                headers=[*_hops(rng, when, org), _auth(rng, org, True)])


def _malformed(rng: random.Random, when: dt.datetime, kind: int) -> bytes:
    """Broken mail the quarantine must keep and flag, never drop."""
    date = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
    if kind == 0:      # unterminated multipart, invalid base64
        return (f"From: broken@mailer.example\nTo: {_addr(rng)}\nSubject: Unterminated multipart\n"
                f"Date: {date}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
                "--b1\nContent-Type: text/plain\n\nbody text\n--b1\n"
                "Content-Type: application/octet-stream; name=\"data.bin\"\n"
                "Content-Transfer-Encoding: base64\n\n!!!not*base64###\n").encode()
    if kind == 1:      # undecodable encoded words, an unparseable date and address
        return (b"From: =?utf-8?q?broken=ZZ?= <<<@@>\nTo: undisclosed-recipients:;\n"
                b"Subject: =?x-unknown?b?////?=\nDate: Tuesday the 32nd\n"
                b"Message-ID: <<not valid>>\n\nhello\n")
    if kind == 2:      # missing boundary parameter
        return (f"From: {_addr(rng)}\nTo: {_addr(rng)}\nSubject: No boundary\nDate: {date}\n"
                "MIME-Version: 1.0\nContent-Type: multipart/mixed\n\nthis is not really multipart\n").encode()
    # 8-bit garbage in headers
    return (b"From: \xff\xfe sender@bad-charset.example\nTo: " + _addr(rng).encode()
            + b"\nSubject: caf\xe9 \xe0 la carte\nDate: " + date.encode() + b"\n\nbody\n")


def seed_demo(workspace: Workspace, *, messages: int = 240, force: bool = False,
              dissect: bool = False) -> DemoReport:
    """Build the demo quarantine through the real spool ingest, and the demo corpora;
    ``dissect``: then dissect every message not dissected yet, so that search reaches
    bodies, names inside archives and strings of extracted files."""
    workspace.ensure()
    report = _seed(workspace, messages=messages, force=force)
    if dissect:
        from workbench.dissect.catalog import catalog_all

        report.dissected = catalog_all(workspace, jobs=max(1, min(4, os.cpu_count() or 1)))
    return report


def _seed(workspace: Workspace, *, messages: int, force: bool) -> DemoReport:
    report = DemoReport(home=str(workspace.home))
    rng = random.Random(SEED)
    with Quarantine.open(workspace) as q:
        if q.index.count() and not force:
            report.skipped = True
            report.corpora = _corpora(workspace)
            return report
        writer = _Writer(q, rng)
        step = dt.timedelta(days=7) / max(messages, 1)
        families = [t for t in THREATS if t.key != "gtube"]
        for n in range(messages):
            when = START + step * n + dt.timedelta(seconds=rng.randint(0, 59))
            slot = n % 20
            if slot < 8:
                mail = _business(rng, when) if slot % 2 else _newsletter(rng, when)
                writer.place(mail.build(), when, reason="stuck", sidecar=slot != 3)
            elif slot == 8:
                writer.place(_gtube(rng, when).build(), when, reason="stuck")
            elif slot == 9:
                writer.place(_phish_body(rng, when).build(), when, reason="unknown-virus")
            elif slot == 10 and n % 40 == 10:
                writer.place(_malformed(rng, when, (n // 40) % 4), when, reason="stuck")
            elif slot == 10:
                writer.place(_benign_pe_mail(rng, when).build(), when, reason="stuck")
            else:
                t = families[(n // 20 * 9 + slot - 11) % len(families)]
                data = _threat_mail(rng, when, t).build()
                writer.place(data, when, reason=t.reason)
                if rng.random() < 0.3:     # the same message seen by another tower
                    writer.place(data, when + dt.timedelta(minutes=rng.randint(1, 30)),
                                 reason=t.reason)
        # Always include every family at least once, and the walkthrough's unknown sample.
        for t in THREATS:
            when = START + dt.timedelta(days=6, hours=THREATS.index(t))
            mail = _gtube(rng, when) if t.key == "gtube" else _threat_mail(rng, when, t)
            writer.place(mail.build(), when, reason=t.reason, tower="fra-t07")
        if messages:       # not in the walkthrough's --messages 0 quarantine
            when = START + dt.timedelta(days=6, hours=len(THREATS))
            writer.place(_rar_invoice(when).build(), when, reason="unknown-virus", tower="fra-t07")
        # An outbreak: the WbCourier wave, four builds over five hours across five towers,
        # for the campaigns view (its own random stream: the rest stays what it was).
        if messages:
            for w in courier_wave(START + dt.timedelta(days=5, hours=7), messages=WAVE_SIZE):
                writer.place(w.mail.build(), w.when, reason="unknown-virus", tower=w.tower)
        # A tower's spool also gets junk: it must be kept in failed/, not dropped.
        junk_dir = q.incoming / "iad-t12" / "mx07"
        junk_dir.mkdir(parents=True, exist_ok=True)
        (junk_dir / "truncated-0001.eml").write_bytes(b"")
        (junk_dir / "core-dump-0002.eml").write_bytes(bytes(range(256)) * 8)
        report.failed_written = 2
        report.messages_written = writer.count
        report.ingest = ingest_spool(q)
    report.corpora = _corpora(workspace)
    return report


def _corpora(workspace: Workspace) -> dict[str, int]:
    """Lay out the demo's malicious and clean corpus folders and register them when the
    corpus registry is available."""
    base = workspace.corpora
    malicious, clean = base / "demo-malicious", base / "demo-clean"
    for folder in (malicious, clean):
        folder.mkdir(parents=True, exist_ok=True)
    files = {malicious / "eicar.com": EICAR, malicious / "gtube.txt": GTUBE}
    for t in THREATS:
        if t.filename and t.key not in ("eicar",):
            files[malicious / t.filename] = t.build()
    name, pe = benign_pe()
    files.update({
        clean / name: pe,
        clean / "quarterly_figures.pdf": build_pdf("Quarterly figures"),
        clean / "agenda.docx": build_docx(["Agenda", "1. Welcome", "2. Plans"]),
        clean / "rota.csv": b"name,day\nanna,Mon\nli,Tue\n",
        clean / "newsletter.html": build_html_page("News", "<h1>News</h1><p>Nothing to see.</p>").encode(),
        clean / "readme.txt": b"Installation notes for the launcher.\nRun setup and follow the prompts.\n",
        clean / "archive.zip": build_zip([("notes.txt", b"meeting notes"), ("data.csv", b"a,b\n1,2\n")]),
    })
    for path, data in files.items():
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    counts = {"demo-malicious": sum(1 for p in files if p.parent == malicious),
              "demo-clean": sum(1 for p in files if p.parent == clean)}
    try:
        from workbench.corpus.corpus_registry import CorpusRegistry
    except ImportError:
        return counts
    with CorpusRegistry(workspace) as registry:
        registry.add("demo-malicious", malicious, "malicious")
        registry.add("demo-clean", clean, "clean")
        # The signature repository's own test corpora hold the samples its rules' hash
        # metadata names: registered too, `workbench test` finds them in the demo.
        for label in ("malicious", "clean"):
            folder = workspace.signatures / "corpora" / label
            if folder.is_dir():
                registry.add(f"house-{label}", folder, label)
                counts[f"house-{label}"] = len(registry.files(f"house-{label}"))
    return counts
