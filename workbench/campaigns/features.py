"""What links messages into a campaign: one message's features, each of a kind with a weight.

Header features (subject template, sending relay, HELO) are known at ingest; payload and
content features (attachment hashes, fuzzy hashes, imphash, URLs, body template) once the
message is dissected. Both are computed here so ingest, dissection and a rebuild agree.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from typing import Any
from urllib.parse import urlsplit

from workbench.quarantine.headers import decode_text


@dataclass(frozen=True)
class Kind:
    name: str
    weight: float
    label: str          # how the UI and the CLI say why two messages are together
    weak: bool          # too common to link on its own: ignored when most of the quarantine shares it


# Two messages (or a message and a campaign) are linked when the weights of the kinds they share
# add up to LINK_THRESHOLD: an identical or near-identical payload is enough alone; a shared
# URL or import table with one more thing; templates and infrastructure only together, since
# big providers relay for many unrelated senders and lures reuse stock phrases.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("payload", 1.0, "identical payload (sha256)", weak=False),
    Kind("ssdeep", 0.9, "near-identical payload (ssdeep)", weak=False),
    Kind("tlsh", 0.9, "near-identical payload (TLSH)", weak=False),
    Kind("url", 0.7, "same URL", weak=False),
    Kind("imphash", 0.5, "same PE import table (imphash)", weak=False),
    Kind("body", 0.5, "same body template", weak=True),
    Kind("subject", 0.4, "same subject template", weak=True),
    Kind("domain", 0.3, "same linked domain", weak=True),
    Kind("relay", 0.25, "same sending relay (first external hop)", weak=True),
    Kind("helo", 0.1, "same HELO name", weak=True),
)}
LINK_THRESHOLD = 0.8
SSDEEP_MIN_SCORE = 60          # ssdeep similarity (0-100) that counts as near-identical
TLSH_MAX_DISTANCE = 40         # TLSH distance that counts as near-identical
FUZZY_MIN_SIZE = 4096          # fuzzy hashes of smaller files say little
PAYLOAD_MIN_SIZE = 64
ARRIVAL_MAX = 16 * 2**20       # larger messages wait for dissection
BODY_MAX = 256 * 1024


@dataclass(frozen=True)
class Feature:
    kind: str
    value: str


# -- normalising templates -----------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|tr|rif)\s*(\[\d+\])?\s*:\s*)+", re.I)
_URL = re.compile(r"\b(?:https?|hxxps?|ftp)://\S+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_HEXRUN = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_SPACE = re.compile(r"\s+")


def template(text: str) -> str:
    """Text with what varies between copies of one lure (numbers, ids, addresses, URLs) replaced."""
    text = _URL.sub("<url>", text)
    text = _EMAIL.sub("<email>", text)
    text = _HEXRUN.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip().lower()


def subject_template(subject: str) -> str:
    return template(_PREFIX.sub("", subject))


def body_template(text: str) -> str:
    """A short digest of the body's template; "" for a body too short to say anything."""
    shape = template(text)[:4000]
    return hashlib.sha1(shape.encode()).hexdigest()[:20] if len(shape) >= 40 else ""


# -- URLs and domains ----------------------------------------------------------------------------

# Second-level labels under which registrations sit one level deeper (co.uk, com.au ...).
_SECOND_LEVEL = {"co", "com", "net", "org", "gov", "ac", "edu", "or", "ne", "go"}


def registrable_domain(host: str) -> str:
    host = host.strip(".").lower()
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        pass
    labels = [x for x in host.split(".") if x]
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def url_features(urls: Iterable[str]) -> list[Feature]:
    out: list[Feature] = []
    for raw in urls:
        url = raw.strip().rstrip(").,;'\">")
        url = re.sub(r"^hxxp", "http", url, flags=re.I).replace("[.]", ".")
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        host = (parts.hostname or "").lower()
        if not host:
            continue
        # The query usually carries a per-recipient id: the campaign is the host and path.
        if parts.path.strip("/"):
            out.append(Feature("url", f"{host}{parts.path}"))
        out.append(Feature("domain", registrable_domain(host)))
    return out


# -- headers -------------------------------------------------------------------------------------

_HOP_FROM = re.compile(r"\bfrom\s+(\S+)", re.I)
_HOP_IP = re.compile(r"\[(?:IPv6:)?([0-9a-fA-F:.]+)\]")


_INTERNAL = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "0.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10"))


def _external(ip: str) -> bool:
    """Not a private, loopback or link-local address: a hop from outside the organisation.
    (Documentation ranges count as external: the demo and the tests send from them.)"""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not any(addr in net for net in _INTERNAL if net.version == addr.version)


def first_external_hop(received: Iterable[str]) -> tuple[str, str]:
    """(IP, HELO) of the newest Received hop that came from an external address: the machine
    that handed the message to us. ("", "") when no hop names one."""
    for raw in received:                 # newest first, as they stand in the header
        head = " ".join(raw.split()).rpartition(";")[0] or raw
        ip = _HOP_IP.search(head)
        if ip and _external(ip.group(1)):
            helo = _HOP_FROM.search(head)
            return ip.group(1), (helo.group(1).strip("()[]").lower() if helo else "")
    return "", ""


def header_features(raw: bytes) -> list[Feature]:
    """The features a message's headers alone give (cheap: no body parse)."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw[: end if end >= 0 else 65536]
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(head)
        received = [str(v) for v in msg.get_all("Received", [])]
        subject = decode_text(str(msg.get("Subject", "") or ""), [], "Subject")
    except Exception:          # a header the parser cannot take still leaves the others
        return []
    return from_headers(subject, received)


def arrival_features(raw: bytes) -> list[Feature]:
    """What a message gives before anyone dissects it: its headers, the URLs and template of
    its body, and the sha256 of each attachment as sent. One pass of the standard library's
    parser over at most ARRIVAL_MAX bytes; dissection adds archive members, fuzzy hashes
    and import tables later."""
    out = header_features(raw)
    if len(raw) > ARRIVAL_MAX:
        return out
    from workbench.dissect.formats.text import find_urls, html_to_text

    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
        texts: list[str] = []
        for part in msg.walk():
            if part.is_multipart() or part.get_content_maintype() == "message":
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            if part.get_filename() is None and part.get_content_maintype() == "text":
                try:
                    text = payload[:BODY_MAX].decode(part.get_content_charset() or "utf-8", "replace")
                except LookupError:          # a charset Python does not know
                    text = payload[:BODY_MAX].decode("latin-1")
                texts.append(html_to_text(text) if part.get_content_subtype() == "html" else text)
            elif len(payload) >= PAYLOAD_MIN_SIZE:
                out.append(Feature("payload", hashlib.sha256(payload).hexdigest()))
    except Exception:          # hostile structure: the headers still count; dissection says more
        return out
    body = "\n".join(texts)
    out += url_features(find_urls(body))
    shape = body_template(texts[0]) if texts else ""
    if shape:
        out.append(Feature("body", shape))
    return list(dict.fromkeys(out))


def from_headers(subject: str, received: Iterable[str]) -> list[Feature]:
    out: list[Feature] = []
    shape = subject_template(subject)
    if len(shape) >= 8:
        out.append(Feature("subject", shape))
    ip, helo = first_external_hop(received)
    if ip:
        out.append(Feature("relay", ip))
    if helo:
        out.append(Feature("helo", helo))
    return out


# -- a dissection --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DissectedNode:
    """What campaign linking needs of one extracted artifact, as the dissection cache keeps it."""

    sha256: str
    filename: str
    mime: str
    size: int
    ssdeep: str = ""
    tlsh: str = ""
    reports: tuple[dict[str, Any], ...] = ()


def _is_payload(node: DissectedNode) -> bool:
    if node.size < PAYLOAD_MIN_SIZE or node.mime.startswith("multipart/"):
        return False
    # A body part (text or HTML without a name) is the lure, not a payload: the body
    # template and URLs cover it.
    return bool(node.filename) or not node.mime.startswith("text/")


def _urls(report: dict[str, Any]) -> list[str]:
    urls = report.get("urls")
    if not isinstance(urls, list):
        return []
    return [u if isinstance(u, str) else str(u.get("url", "")) for u in urls
            if isinstance(u, (str, dict))]


def dissection_features(message: dict[str, Any] | None, nodes: Iterable[DissectedNode]) -> list[Feature]:
    """The features of a dissected message: ``message`` is the message dissector's report
    (as JSON data), ``nodes`` every artifact extracted from it."""
    out: list[Feature] = []
    if message:
        hops = message.get("received") or []
        received = [str(h.get("raw", "")) for h in hops if isinstance(h, dict)][::-1]  # newest first
        out += from_headers(str(message.get("subject", "") or ""), received)
        out += url_features(_urls(message))
        body = body_template(str(message.get("text", "") or ""))
        if body:
            out.append(Feature("body", body))
    for node in nodes:
        for report in node.reports:
            out += url_features(_urls(report))
            imphash = report.get("imphash")
            if isinstance(imphash, str) and imphash:
                out.append(Feature("imphash", imphash))
        if not _is_payload(node):
            continue
        out.append(Feature("payload", node.sha256))
        if node.size >= FUZZY_MIN_SIZE:
            if node.ssdeep.count(":") == 2:
                out.append(Feature("ssdeep", node.ssdeep))
            if node.tlsh and node.tlsh != "TNULL":
                out.append(Feature("tlsh", node.tlsh))
    return list(dict.fromkeys(out))


# -- near-identical lookups ----------------------------------------------------------------------

def fuzzy_keys(feature: Feature) -> list[str]:
    """Index keys under which two near-identical fuzzy hashes meet: TLSH in sixteen bands of
    four nibbles (files within TLSH_MAX_DISTANCE almost always agree on one whole band),
    ssdeep by its 7-grams at its block size (two hashes score above 0 only when they share
    one)."""
    if feature.kind == "tlsh":
        body = feature.value[-64:]
        return [f"t{i}:{body[i * 4:(i + 1) * 4]}" for i in range(16)]
    if feature.kind == "ssdeep":
        block, first, second = feature.value.split(":", 2)
        keys = {f"s{block}:{first[i:i + 7]}" for i in range(max(0, len(first) - 6))}
        try:
            double = str(int(block) * 2)
        except ValueError:
            return sorted(keys)
        keys |= {f"s{double}:{second[i:i + 7]}" for i in range(max(0, len(second) - 6))}
        return sorted(keys)
    return []


def fuzzy_similar(a: Feature, b: Feature) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "tlsh":
        import tlsh

        try:
            return int(tlsh.diff(a.value, b.value)) <= TLSH_MAX_DISTANCE
        except ValueError:
            return False
    if a.kind == "ssdeep":
        return ssdeep_score(a.value, b.value) >= SSDEEP_MIN_SCORE
    return a.value == b.value


def ssdeep_score(a: str, b: str) -> int:
    try:
        import ssdeep

        return int(ssdeep.compare(a, b))
    except ImportError:
        import ppdeep

        return int(ppdeep.compare(a, b))
