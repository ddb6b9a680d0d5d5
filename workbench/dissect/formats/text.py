"""Finding URLs and e-mail addresses in text and HTML, and defanging them for display."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"""\b(?:https?|ftp|hxxps?)://[^\s"'<>()\[\]{}\\^`|]{2,2048}""", re.I)
_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+\b")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]{0,4096}>", re.I | re.S)


def find_urls(text: str, limit: int = 500) -> list[str]:
    out: list[str] = []
    for m in _URL.finditer(html.unescape(text) if "&" in text else text):
        url = m.group(0).rstrip(".,;:!?")
        if url not in out:
            out.append(url)
            if len(out) >= limit:
                break
    return out


def find_emails(text: str, limit: int = 500) -> list[str]:
    out: list[str] = []
    for m in _EMAIL.finditer(text):
        if m.group(0) not in out:
            out.append(m.group(0))
            if len(out) >= limit:
                break
    return out


def defang(value: str) -> str:
    """``hxxp://example[.]com``: safe to paste into a ticket, still readable."""
    out = re.sub(r"^http", "hxxp", value, flags=re.I)
    out = re.sub(r"^ftp", "fxp", out, flags=re.I)
    scheme, sep, rest = out.partition("://")
    if not sep:
        scheme, rest = "", out
    host, slash, tail = rest.partition("/")
    host = host.replace(".", "[.]").replace("@", "[@]")
    return f"{scheme}{sep}{host}{slash}{tail}"


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body (scripts and styles dropped), for password mining."""
    return html.unescape(_TAGS.sub(" ", markup))
