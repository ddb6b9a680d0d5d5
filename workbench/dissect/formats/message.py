"""Mail messages: headers, the Received chain, authentication results, MIME parts, bodies, URLs."""

from __future__ import annotations

import binascii
import datetime as dt
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.formats.text import defang, find_emails, find_urls, html_to_text
from workbench.dissect.identify import sanitize_filename
from workbench.dissect.model import LIMIT_HIT, PARSER_ERROR, PARTIAL, Child, DissectResult
from workbench.document import clean_text
from workbench.quarantine.headers import (
    decode_text,
    format_addresses,
    parse_addresses,
    parse_date,
    part_names,
)

MAX_HEADER_VALUE = 8192           # characters of one header kept in the report
MAX_BODY_TEXT = 64 * 1024         # characters of each body kept in the report
MAX_FOUND = 500                   # URLs, addresses


@dataclass
class Header:
    name: str
    value: str                    # decoded (RFC 2047), truncated to MAX_HEADER_VALUE
    raw: str
    length: int                   # characters in the raw value


@dataclass
class Hop:
    """One Received header, oldest first."""

    index: int
    from_host: str
    from_ip: str
    by_host: str
    protocol: str
    id: str
    date: dt.datetime | None
    delay_seconds: float | None   # since the previous hop; negative means the clocks disagree
    raw: str


@dataclass
class AuthResult:
    method: str                   # spf, dkim, dmarc, arc, iprev, compauth ...
    result: str                   # pass, fail, softfail, none ...
    detail: str
    source: str                   # the header it came from (as reported, not verified)


@dataclass
class MimePart:
    position: str                 # "1.2.1" like IMAP's BODY[] numbering
    depth: int
    content_type: str
    charset: str
    disposition: str
    filename: str
    encoding: str
    size: int                     # decoded bytes (leaf parts)
    defects: list[str] = field(default_factory=list)
    child: str = ""               # path segment of the artifact it became
    name: str = ""                # Content-Type ``name`` (``filename`` is Content-Disposition's, else this)


@dataclass
class FoundUrl:
    url: str
    defanged: str
    source: str                   # "text", "html href", "html"


@dataclass
class MessageReport:
    subject: str = ""
    from_addr: str = ""
    to: str = ""
    cc: str = ""
    reply_to: str = ""
    return_path: str = ""
    sender: str = ""
    date: dt.datetime | None = None
    message_id: str = ""
    headers: list[Header] = field(default_factory=list)
    received: list[Hop] = field(default_factory=list)
    auth: list[AuthResult] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    parts: list[MimePart] = field(default_factory=list)
    preamble: str = ""
    epilogue: str = ""
    text: str = ""
    html: str = ""
    urls: list[FoundUrl] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)          # defanged
    password_candidates: list[str] = field(default_factory=list)

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath a message, in the CLI and the UI alike."""
        out = [f"from {self.from_addr or '-'} to {self.to or '-'}: {self.subject or '(no subject)'}"]
        if self.auth:
            out.append("auth: " + ", ".join(f"{a.method}={a.result}" for a in self.auth[:8]))
        out += [f"mismatch: {m}" for m in self.mismatches]
        if self.received:
            out.append(f"received: {len(self.received)} hops")
        if self.urls:
            out.append("urls: " + ", ".join(u.defanged for u in self.urls[:5])
                       + (f" (+{len(self.urls) - 5})" if len(self.urls) > 5 else ""))
        out += [f"defect: {d}" for d in self.defects[:5]]
        return out


# -- headers -----------------------------------------------------------------------------------

_RECEIVED = {
    "from": re.compile(r"\bfrom\s+(\S+)", re.I),
    "by": re.compile(r"\bby\s+(\S+)", re.I),
    "with": re.compile(r"\bwith\s+(\S+)", re.I),
    "id": re.compile(r"\bid\s+([^\s;]+)", re.I),
    "ip": re.compile(r"\[(?:IPv6:)?([0-9a-fA-F:.]+)\]"),
}
_AUTH = re.compile(r"\b(spf|dkim|dmarc|arc|iprev|auth|compauth|bimi|dkim-atps)\s*=\s*([\w-]+)([^;]*)", re.I)


def _hops(values: list[str], defects: list[str]) -> list[Hop]:
    hops: list[Hop] = []
    previous: dt.datetime | None = None
    for index, raw in enumerate(reversed(values), start=1):
        flat = " ".join(raw.split())
        head, _, when = flat.rpartition(";")
        found = {k: (m.group(1) if (m := rx.search(head or flat)) else "") for k, rx in _RECEIVED.items()}
        date = parse_date(when.strip(), defects) if when else None
        delay = (date - previous).total_seconds() if date and previous else None
        hops.append(Hop(index, found["from"], found["ip"], found["by"], found["with"], found["id"],
                        date, delay, flat[:MAX_HEADER_VALUE]))
        previous = date or previous
    return hops


def _auth(msg: Message) -> list[AuthResult]:
    found: list[AuthResult] = []
    for source in ("Authentication-Results", "ARC-Authentication-Results"):
        for value in _values(msg, source):
            for m in _AUTH.finditer(" ".join(str(value).split())):
                found.append(AuthResult(m.group(1).lower(), m.group(2).lower(), m.group(3).strip()[:300], source))
    for value in _values(msg, "Received-SPF"):
        text = " ".join(str(value).split())
        found.append(AuthResult("spf", text.split(" ", 1)[0].lower(), text[:300], "Received-SPF"))
    for value in _values(msg, "DKIM-Signature"):
        tags = dict(re.findall(r"\b([ds])=([^;\s]+)", " ".join(str(value).split())))
        found.append(AuthResult("dkim-signature", "present", f"d={tags.get('d', '')} s={tags.get('s', '')}",
                                "DKIM-Signature"))
    return found


def _domain(address: str) -> str:
    found = parse_addresses([address], [], "") if address else []
    return found[0].addr.rpartition("@")[2].lower().strip(">") if found else ""


def _mismatches(report: MessageReport, raw_from: str) -> list[str]:
    out: list[str] = []
    sender = _domain(report.from_addr)
    for label, value in (("Reply-To", report.reply_to), ("Return-Path", report.return_path),
                         ("Sender", report.sender)):
        other = _domain(value) if value else ""
        if sender and other and other != sender:
            out.append(f"From domain {sender} differs from {label} domain {other}")
    first = parse_addresses([raw_from], [], "From")[:1] if raw_from else []
    display, addr = (first[0].display, first[0].addr) if first else ("", "")
    embedded = re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", display)
    if embedded and addr and embedded[0].lower() != addr.lower():
        out.append(f"From display name shows {embedded[0]} but the address is {addr}")
    return out


# -- passwords ---------------------------------------------------------------------------------

_PW_HINT = re.compile(
    r"(?:password|passwort|kennwort|passcode|pass|pwd|pw|code|contrase(?:ñ|n)a|mot de passe|пароль|senha)"
    r"\s*(?:is|ist|est|:|=|-|\u2013)?\s*[\"'«“]?([^\s\"'»”<>]{3,32})", re.I)
_TOKEN = re.compile(r"[^\s\"'<>()\[\]{},;]{3,24}")


def password_candidates(text: str, limit: int = 40) -> list[str]:
    """Words a sender would give as an archive password: hinted ones first, then other tokens."""
    out: list[str] = []
    for m in _PW_HINT.finditer(text):
        # Sentence punctuation may or may not belong to the password: try both.
        for word in (m.group(1), m.group(1).rstrip(".,;:!")):
            if word and word not in out:
                out.append(word)
    for m in _TOKEN.finditer(text):
        word = m.group(0).rstrip(".,;:!")
        if len(word) >= 3 and word not in out and not word.startswith(("http", "www.")):
            out.append(word)
        if len(out) >= limit:
            break
    return out[:limit]


# -- the dissector -----------------------------------------------------------------------------


def _values(msg: Message, name: str) -> list[str]:
    """A header's raw values with 8-bit bytes read as text (``msg.get`` would give U+FFFD)."""
    wanted = name.lower()
    return [clean_text(v if isinstance(v, str) else str(v)) for k, v in msg.raw_items() if k.lower() == wanted]


def _header_list(msg: Message, report: MessageReport, result: DissectResult) -> None:
    for name, value in msg.raw_items():
        raw = clean_text(value if isinstance(value, str) else str(value))
        decoded = decode_text(raw, report.defects, name) if "=?" in raw else " ".join(raw.split())
        if len(raw) > MAX_HEADER_VALUE:
            result.problem(PARTIAL, f"header {name}: {len(raw)} characters, truncated in the report")
        report.headers.append(Header(name, decoded[:MAX_HEADER_VALUE], raw[:MAX_HEADER_VALUE], len(raw)))


def _first(msg: Message, name: str, report: MessageReport) -> str:
    values = _values(msg, name)
    return decode_text(values[0], report.defects, name)[:MAX_HEADER_VALUE] if values else ""


def _addresses(msg: Message, name: str, report: MessageReport) -> str:
    values = _values(msg, name)
    return format_addresses(parse_addresses(values, report.defects, name))[:MAX_HEADER_VALUE] if values else ""


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _text_of(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset or "us-ascii", "replace")
    except LookupError:
        return data.decode("latin-1")


class MessageDissector(Dissector):
    name = "message"
    version = 2                   # 2: attached messages are children, not flattened parts
    mimes = ("message/rfc822", "message/news")
    magic_words = ("RFC 822 mail", "SMTP mail", "news or mail")
    report_type = MessageReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        result = DissectResult()
        report = MessageReport()
        result.report = report
        try:
            msg = BytesParser(policy=compat32).parsebytes(data)
        except RecursionError:
            result.problem(LIMIT_HIT, "MIME nesting deeper than the parser can follow; headers only")
            msg = BytesHeaderParser(policy=compat32).parsebytes(data)
            self._headers(msg, report, result)
            report.defects.append(f"{data.count(b'boundary=')} boundary declarations found by a byte scan")
            return result
        except Exception as exc:
            result.problem(PARSER_ERROR, f"message parser failed: {type(exc).__name__}: {exc}")
            return result
        self._headers(msg, report, result)
        self._parts(msg, report, result, ctx, data)
        body_text = report.text + "\n" + html_to_text(report.html)
        report.password_candidates = password_candidates(body_text + "\n" + report.subject)
        urls = [(u, "text") for u in find_urls(report.text)] + [(u, "html") for u in find_urls(report.html)]
        seen: set[str] = set()
        for url, source in urls:
            if url not in seen and len(seen) < MAX_FOUND:
                seen.add(url)
                report.urls.append(FoundUrl(url, defang(url), source))
        addresses = find_emails(report.text + "\n" + report.html)
        report.emails = [defang(a) for a in addresses[:MAX_FOUND]]
        return result

    def _headers(self, msg: Message, report: MessageReport, result: DissectResult) -> None:
        for defect in msg.defects:
            report.defects.append(f"headers: {type(defect).__name__}")
        _header_list(msg, report, result)
        report.subject = _first(msg, "Subject", report)
        report.from_addr = _addresses(msg, "From", report)
        report.to = _addresses(msg, "To", report)
        report.cc = _addresses(msg, "Cc", report)
        report.reply_to = _addresses(msg, "Reply-To", report)
        report.return_path = _addresses(msg, "Return-Path", report)
        report.sender = _addresses(msg, "Sender", report)
        report.message_id = _first(msg, "Message-ID", report)
        report.date = parse_date(_first(msg, "Date", report), report.defects)
        report.received = _hops(_values(msg, "Received"), report.defects)
        report.auth = _auth(msg)
        report.mismatches = _mismatches(report, next(iter(_values(msg, "From")), ""))

    def _parts(self, msg: Message, report: MessageReport, result: DissectResult, ctx: DissectContext,
               data: bytes) -> None:
        limits = ctx.limits
        if msg.is_multipart() and msg.get_content_maintype() == "multipart":
            report.preamble = (msg.preamble or "")[:MAX_BODY_TEXT]
            report.epilogue = (msg.epilogue or "")[:MAX_BODY_TEXT]
        root_position = "" if msg.get_content_maintype() == "multipart" else "1"
        stack: list[tuple[Message, str, int, tuple[int, ...]]] = [(msg, root_position, 0, ())]
        leaf = 0
        budget = ctx.budget
        locator = _RawLocator(data, msg)
        while stack:
            part, position, depth, path = stack.pop()
            if len(report.parts) >= limits.max_mime_parts:
                result.problem(LIMIT_HIT, f"MIME parts limit {limits.max_mime_parts}: the rest not listed")
                break
            ctype = part.get_content_type()
            entry = MimePart(position or "0", depth, ctype, str(part.get_content_charset("") or ""),
                             str(part.get("Content-Disposition", "")).split(";")[0].strip().lower(),
                             "", str(part.get("Content-Transfer-Encoding", "")).strip().lower(), 0)
            filename, name = part_names(part, entry.defects)
            entry.filename, entry.name = filename or name, name
            if filename and name and filename != name:
                mismatch = (f"part {entry.position}: Content-Type name {name!r} differs from "
                            f"Content-Disposition filename {filename!r}")
                entry.defects.append("name-mismatch: Content-Type name differs from Content-Disposition filename")
                report.mismatches.append(mismatch)
            report.parts.append(entry)
            broken = [type(d).__name__ for d in part.defects if type(d).__name__ in _BOUNDARY_DEFECTS]
            if broken:
                result.problem(PARTIAL, f"part {entry.position}: broken MIME boundary ({', '.join(broken)})")
            # compat32 presents an attached message as a multipart holding one Message: it must
            # be looked at before the walk goes into subparts, or the message is flattened away.
            if ctype in _ATTACHED:
                leaf += 1
                content = self._attached(locator, part, path, entry)
            elif part.is_multipart():
                if depth >= limits.max_mime_depth:
                    result.problem(LIMIT_HIT, f"MIME nesting limit {limits.max_mime_depth} at part {position}")
                    continue
                subparts = part.get_payload()
                if part is not msg:
                    for defect in part.defects:
                        entry.defects.append(type(defect).__name__)
                for i, sub in reversed(list(enumerate(subparts, start=1))):
                    stack.append((sub, f"{position}.{i}" if position else str(i), depth + 1, (*path, i - 1)))
                continue
            else:
                leaf += 1
                content = _payload(part)
            if part is not msg:
                for defect in part.defects:
                    entry.defects.append(type(defect).__name__)
            entry.size = len(content)
            is_body = (not entry.filename and entry.disposition != "attachment"
                       and ctype in ("text/plain", "text/html"))
            if is_body:
                text = _text_of(content, entry.charset)
                if ctype == "text/plain" and len(report.text) < MAX_BODY_TEXT:
                    report.text += text[: MAX_BODY_TEXT - len(report.text)]
                elif ctype == "text/html" and len(report.html) < MAX_BODY_TEXT:
                    report.html += text[: MAX_BODY_TEXT - len(report.html)]
            if not content:
                if ctype in _ATTACHED:
                    result.problem(PARTIAL, f"part {entry.position}: attached message is empty")
                continue
            if len(content) > limits.max_child:
                result.problem(LIMIT_HIT, f"part {entry.position}: {len(content)} bytes over the child limit")
                continue
            if len(content) > budget:
                result.problem(LIMIT_HIT, f"part {entry.position}: total expanded bytes limit reached")
                continue
            budget -= len(content)
            segment = f"part {leaf}"
            if entry.filename:
                segment += "/" + sanitize_filename(entry.filename)
            entry.child = segment
            note = f"{'attached message' if ctype in _ATTACHED else 'MIME part'} {entry.position}"
            if name and filename and name != filename:
                note += f"; Content-Type name {name!r}"
            result.children.append(Child(entry.filename, content, declared_type=ctype, segment=segment, note=note))
            if len(result.children) >= ctx.children_left:
                result.problem(LIMIT_HIT, f"children limit reached at part {entry.position}")
                break
        defects = [f"part {p.position}: {d}" for p in report.parts for d in p.defects]
        report.defects.extend(defects)

    @staticmethod
    def _attached(locator: _RawLocator, part: Message, path: tuple[int, ...], entry: MimePart) -> bytes:
        """The attached message's bytes as sent (its sha256 is the one a hunter searches for);
        regenerated from the parse only when the raw bytes cannot be located."""
        raw = locator.entity(path)
        if raw is not None:
            _head, body = _split_raw(raw)
            if entry.encoding in ("base64", "quoted-printable"):       # not allowed for message/*, but sent
                try:
                    body = binascii.a2b_base64(body) if entry.encoding == "base64" else quopri.decodestring(body)
                except (binascii.Error, ValueError):
                    entry.defects.append(f"{entry.encoding} body undecodable")
            return body
        entry.defects.append("raw bytes not located: the attached message was regenerated from the parse")
        inner = part.get_payload(0) if isinstance(part.get_payload(), list) else None
        if not isinstance(inner, Message):
            return _payload(part)
        try:
            return inner.as_bytes(policy=compat32.clone(max_line_length=0))
        except Exception as exc:                    # the generator trips on what the parser let through
            entry.defects.append(f"attached message not regenerated ({type(exc).__name__})")
            return b""


_ATTACHED = ("message/rfc822", "message/global", "message/news")
_BOUNDARY_DEFECTS = {"StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect", "NoBoundaryInMultipartDefect",
                     "MultipartInvariantViolationDefect"}
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _split_raw(raw: bytes) -> tuple[bytes, bytes]:
    """The header block and the body of a raw MIME entity (split at the first empty line)."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    match = _HEAD_END.search(raw)
    return (raw[:match.start()], raw[match.end():]) if match else (raw, b"")


def _raw_parts(body: bytes, boundary: str) -> list[bytes]:
    """A multipart body cut at its delimiter lines, the way the stdlib's feed parser cuts it."""
    try:
        raw_boundary = boundary.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:          # not bytes the parser read: the caller falls back
        return []
    delimiter = re.compile(rb"^--" + re.escape(raw_boundary) + rb"(--)?[ \t]*\r?$", re.M)
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            end = match.start()
            end -= 2 if body[end - 2:end] == b"\r\n" else 1 if body[end - 1:end] == b"\n" else 0
            parts.append(body[start:max(start, end)])
        if match.group(1):
            return parts
        start = min(match.end() + 1, len(body))
    if start is not None:
        parts.append(body[start:])
    return parts


class _RawLocator:
    """Finds the raw bytes of a part from its path of subpart indices, cutting each multipart
    once (a message with thousands of attached messages is not re-split for each)."""

    def __init__(self, data: bytes, msg: Message):
        self.data = data
        self.msg = msg
        self.cut: dict[tuple[int, ...], list[bytes] | None] = {}

    def entity(self, path: tuple[int, ...]) -> bytes | None:
        """The part's raw bytes, or None when the raw structure does not line up with the parse."""
        raw, part = self.data, self.msg
        for depth, index in enumerate(path):
            subparts = part.get_payload()
            if not isinstance(subparts, list):
                return None
            prefix = path[:depth]
            if prefix not in self.cut:
                boundary = part.get_boundary()
                pieces = _raw_parts(_split_raw(raw)[1], boundary) if boundary is not None else None
                self.cut[prefix] = pieces if pieces is not None and len(pieces) == len(subparts) else None
            pieces = self.cut[prefix]
            sub = subparts[index] if pieces is not None else None
            if pieces is None or not isinstance(sub, Message):
                return None
            raw, part = pieces[index], sub
        return raw


DISSECTORS = [MessageDissector]
