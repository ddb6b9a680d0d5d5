"""Reading a message's headers defensively: every field decoded on its own, defects recorded."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from urllib.parse import unquote

from workbench.document import clean_text

HEADER_SCAN_LIMIT = 256 * 1024       # headers beyond this are not read for the index
_FIELD = re.compile(rb"^[!-9;-~]+:", re.M)
_KNOWN = re.compile(
    rb"^(from|to|subject|date|received|message-id|mime-version|return-path|content-type|"
    rb"delivered-to|x-quarantine-reason|reply-to|cc|sender):",
    re.I | re.M,
)
# Content-Type / Content-Disposition lines (with folded continuations) anywhere in the body.
_PART_HEADER = re.compile(rb"^content-(?:disposition|type):[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*", re.I | re.M)
_NAME_PARAM = re.compile(
    rb"""(?:^|;)\s*(file)?name(\*\d*\*?)?\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]+)""", re.I)


@dataclass
class HeaderSummary:
    """What the index keeps from a message's headers."""

    message_id: str = ""
    from_addr: str = ""
    to_addrs: str = ""
    subject: str = ""
    date: dt.datetime | None = None
    reason: str = ""                   # X-Quarantine-Reason, when a tower set it
    attachment_names: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def looks_like_mail(data: bytes) -> str | None:
    """Return why ``data`` is not a mail message, or None when it is one."""
    if not data.strip():
        return "empty input"
    head = data[:HEADER_SCAN_LIMIT]
    end = _header_end(head)
    block = head[:end]
    if b"\x00" in block:
        return "binary data: NUL bytes in the header block"
    if not _FIELD.match(block.lstrip(b"\r\n")) and not block.startswith(b"From "):
        return "no RFC 5322 header field at the start of the input"
    if not _KNOWN.search(block):
        return "no mail header (From, To, Subject, Date, Received, Message-ID ...) found"
    return None


def _header_end(head: bytes) -> int:
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(head)


def decode_text(raw: str, defects: list[str], name: str) -> str:
    """Decode RFC 2047 words; on failure keep the raw text and record a defect."""
    if raw is None:
        return ""
    raw = clean_text(raw)        # 8-bit bytes the parser kept as surrogate escapes
    try:
        return str(make_header(decode_header(raw))).strip()
    except Exception as exc:  # the stdlib raises many kinds here
        defects.append(f"{name}: undecodable ({type(exc).__name__})")
        return str(raw).strip()


def _addresses(values: list[str], defects: list[str], name: str) -> str:
    values = [clean_text(v) for v in values]
    try:
        pairs = getaddresses(values)
    except Exception as exc:
        defects.append(f"{name}: unparseable address ({type(exc).__name__})")
        return ", ".join(v.strip() for v in values)
    out = []
    for display, addr in pairs:
        display = decode_text(display, defects, name) if display else ""
        if addr and display:
            out.append(f"{display} <{addr}>")
        elif addr or display:
            out.append(addr or display)
    if values and not out:
        defects.append(f"{name}: no address found in {values[0][:80]!r}")
        return ", ".join(v.strip() for v in values)
    return ", ".join(out)


def parse_date(raw: str | None, defects: list[str]) -> dt.datetime | None:
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(raw)
    except Exception:
        defects.append(f"Date: unparseable {raw[:60]!r}")
        return None
    if value is None:
        defects.append(f"Date: unparseable {raw[:60]!r}")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def summarize_headers(data: bytes) -> HeaderSummary:
    """Read the header block (compat32, fast) and the attachment names (a byte scan)."""
    summary = HeaderSummary()
    defects = summary.defects
    head = data[:HEADER_SCAN_LIMIT]
    head = head[:_header_end(head) + 1]     # the parser would read every body line otherwise
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    except Exception as exc:
        defects.append(f"headers: parser failed ({type(exc).__name__}: {exc})")
        summary.attachment_names = attachment_names(data)
        return summary
    for defect in getattr(msg, "defects", []):
        defects.append(f"headers: {type(defect).__name__}")

    # Raw values, not msg.get(): compat32 turns a header holding 8-bit bytes into a Header
    # object whose str() is U+FFFD for every such byte; the raw value keeps the bytes (as
    # surrogate escapes) so clean_text can read them as UTF-8 or Windows-1252.
    raw: dict[str, list[str]] = {}
    for key, value in msg.raw_items():
        raw.setdefault(key.lower(), []).append(value if isinstance(value, str) else str(value))

    def get_all(name: str) -> list[str]:
        return [clean_text(v) for v in raw.get(name.lower(), [])]

    def get(name: str) -> str:
        values = get_all(name)
        return values[0] if values else ""

    summary.message_id = get("Message-ID").strip()
    from_values = get_all("From")
    summary.from_addr = _addresses(from_values, defects, "From") if from_values else ""
    recipients = get_all("To") + get_all("Cc")
    summary.to_addrs = _addresses(recipients, defects, "To") if recipients else ""
    summary.subject = decode_text(get("Subject"), defects, "Subject")
    summary.date = parse_date(get("Date"), defects)
    summary.reason = get("X-Quarantine-Reason").strip()
    summary.attachment_names = attachment_names(data)
    defects.extend(_structure_defects(get("Content-Type"), data))
    return summary


def _structure_defects(content_type: str, data: bytes) -> list[str]:
    """Cheap MIME structure checks at ingest; dissection finds the rest."""
    if not content_type.lower().lstrip().startswith("multipart/"):
        return []
    match = re.search(r"""boundary\s*=\s*("([^"]*)"|[^;\s]+)""", content_type, re.I)
    if not match:
        return ["MIME: multipart message without a boundary parameter"]
    boundary = (match.group(2) if match.group(2) is not None else match.group(1)).encode("utf-8", "replace")
    if b"--" + boundary + b"--" not in data:
        return ["MIME: closing boundary missing (truncated or malformed multipart)"]
    return []


def _rfc2231(value: str) -> str:
    """``charset'lang'percent-encoded`` to text; the raw value when it is not that."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return unquote(value, errors="replace")
    charset = parts[0] or "us-ascii"
    try:
        return unquote(parts[2], encoding=charset, errors="replace")
    except LookupError:
        return unquote(parts[2], encoding="latin-1")


def _param_value(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"')
    return text


def part_headers(data: bytes) -> Iterator[re.Match[bytes]]:
    """``_PART_HEADER.finditer(data)``, four times faster on mail with big bodies.

    The regex alone tries every line start of every base64 body line; instead find
    ``content-`` in a lowered copy (one C pass) and try the regex only where it starts
    a line.
    """
    low = data.lower()
    pos = low.find(b"content-")
    while pos != -1:
        if pos == 0 or low[pos - 1] == 0x0A:
            match = _PART_HEADER.match(data, pos)
            if match is not None:
                yield match
                pos = max(pos + 1, match.end())
                pos = low.find(b"content-", pos)
                continue
        pos = low.find(b"content-", pos + 1)


def attachment_names(data: bytes, limit: int = 200) -> list[str]:
    """Attachment file names found in part headers, without a full MIME parse.

    Handles quoted names, RFC 2231 continuations (``filename*0*=``) and RFC 2047
    encoded words. Names are unique and in order of appearance.
    """
    names: list[str] = []
    seen: set[str] = set()
    for match in part_headers(data):
        line = re.sub(rb"\r?\n[ \t]+", b" ", match.group(0))
        params = line.split(b":", 1)[1] if b":" in line else b""
        plain: dict[bytes, str] = {}
        continued: dict[bytes, list[tuple[int, str, bool]]] = {}
        for m in _NAME_PARAM.finditer(params):
            kind = (m.group(1) or b"").lower() + b"name"
            star = m.group(2)
            value = _param_value(m.group(3))
            if star:
                index = int(star.strip(b"*") or 0)
                continued.setdefault(kind, []).append((index, value, star.endswith(b"*")))
            else:
                plain[kind] = value
        for kind, pieces in continued.items():
            pieces.sort()
            if pieces and pieces[0][2]:
                plain[kind] = _rfc2231("".join(p[1] for p in pieces))
            else:
                plain[kind] = "".join(p[1] for p in pieces)
        name = plain.get(b"filename") or plain.get(b"name")
        if not name:
            continue
        if "=?" in name:
            name = decode_text(name, [], "filename")
        name = name.strip()
        if name and name not in seen:
            seen.add(name)
            names.append(name)
            if len(names) >= limit:
                break
    return names
