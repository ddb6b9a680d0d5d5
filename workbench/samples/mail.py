"""Deterministic MIME messages built byte by byte (so malformed ones can be built too)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from email.utils import format_datetime

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@dataclass
class Attachment:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    encoding: str = "base64"          # base64, 7bit or quoted-printable (text only)
    disposition: str = "attachment"


@dataclass
class Mail:
    sender: str
    to: str
    subject: str
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    date: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC))
    message_id: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)   # extra, in order, before From

    def build(self) -> bytes:
        return build_message(self)


def _boundary(seed: bytes, n: int) -> str:
    return "==wb_" + hashlib.sha1(seed + bytes([n])).hexdigest()[:24]


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").rstrip("\n")      # 76-character lines, in linear time


def _qp(text: str) -> str:
    import quopri

    return quopri.encodestring(text.encode("utf-8")).decode("ascii")


def _text_part(subtype: str, text: str) -> str:
    if all(ord(c) < 128 for c in text) and max((len(line) for line in text.splitlines()), default=0) < 900:
        return (f"Content-Type: text/{subtype}; charset=us-ascii\n"
                f"Content-Transfer-Encoding: 7bit\n\n{text}\n")
    return (f"Content-Type: text/{subtype}; charset=utf-8\n"
            f"Content-Transfer-Encoding: quoted-printable\n\n{_qp(text)}\n")


def _attachment_part(a: Attachment) -> str:
    name = a.filename.replace('"', "")
    if not name:
        disp, ctype = a.disposition, a.content_type
    elif any(ord(c) >= 128 for c in name):
        from urllib.parse import quote

        disp = f"{a.disposition}; filename*=utf-8''{quote(name)}"
        ctype = f"{a.content_type}"
    else:
        disp = f'{a.disposition}; filename="{name}"'
        ctype = f'{a.content_type}; name="{name}"'
    if a.encoding == "base64":
        body = _b64(a.data)
    elif a.encoding == "quoted-printable":
        import quopri

        body = quopri.encodestring(a.data).decode("ascii")
    else:
        body = a.data.decode("utf-8", "replace")
    return (f"Content-Type: {ctype}\nContent-Disposition: {disp}\n"
            f"Content-Transfer-Encoding: {a.encoding}\n\n{body}\n")


def build_message(mail: Mail) -> bytes:
    """The message as bytes with CRLF-free LF line ends (as stored by most MTAs' queues)."""
    seed = f"{mail.sender}|{mail.to}|{mail.subject}|{mail.date.isoformat()}".encode()
    msgid = mail.message_id or f"<{hashlib.sha1(seed).hexdigest()[:20]}@{mail.sender.split('@')[-1].strip('>')}>"
    head = [f"{k}: {v}" for k, v in mail.headers]
    head += [f"From: {mail.sender}", f"To: {mail.to}", f"Subject: {mail.subject}",
             f"Date: {format_datetime(mail.date)}", f"Message-ID: {msgid}", "MIME-Version: 1.0"]
    bodies: list[str] = []
    if mail.text is not None and mail.html is not None:
        alt = _boundary(seed, 1)
        bodies.append(f"Content-Type: multipart/alternative; boundary=\"{alt}\"\n\n"
                      f"--{alt}\n{_text_part('plain', mail.text)}--{alt}\n"
                      f"{_text_part('html', mail.html)}--{alt}--\n")
    elif mail.html is not None:
        bodies.append(_text_part("html", mail.html))
    else:
        bodies.append(_text_part("plain", mail.text or ""))
    if not mail.attachments:
        return ("\n".join(head) + "\n" + bodies[0]).encode("utf-8")
    mixed = _boundary(seed, 0)
    parts = bodies + [_attachment_part(a) for a in mail.attachments]
    out = "\n".join(head) + f"\nContent-Type: multipart/mixed; boundary=\"{mixed}\"\n\n"
    out += "This is a multi-part message in MIME format.\n\n"
    for part in parts:
        out += f"--{mixed}\n{part}"
    out += f"--{mixed}--\n"
    return out.encode("utf-8")


def attached_message(data: bytes, filename: str = "", *, inline: bool = False) -> Attachment:
    """A message/rfc822 part: a forwarded message, attached (with a name) or inline."""
    return Attachment(filename, data, "message/rfc822", "7bit", "inline" if inline else "attachment")


def received(by: str, frm: str, ip: str, when: dt.datetime) -> tuple[str, str]:
    return ("Received", f"from {frm} ({frm} [{ip}])\n\tby {by} with ESMTPS id "
            f"{hashlib.md5((by + frm + when.isoformat()).encode()).hexdigest()[:12]};\n\t"
            f"{format_datetime(when)}")
