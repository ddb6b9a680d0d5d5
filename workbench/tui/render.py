"""Dissection documents drawn as Rich text for the screens (no Textual here, so unit-testable).

Nothing here interprets content: message text is shown as plain text (never as
markup), HTML is shown as its text or its source, and URLs are defanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeGuard, TypeVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workbench.humanize import shown
from workbench.humanize import size as human_size
from workbench.terminal_text import visible

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from workbench.dissect.formats.message import MessageReport
    from workbench.dissect.model import Artifact

_R = TypeVar("_R")


class HeaderLike(Protocol):
    """A header as the dissector reports it, or as read straight from the store (``QuickHeader``)."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def raw(self) -> str: ...

STATUS_BADGES = {
    "partial": ("partial", "yellow"),
    "limit-hit": ("limit hit", "bold yellow"),
    "timed-out": ("timed out", "bold red"),
    "parser-error": ("parser error", "bold red"),
}
FLAG_STYLE = "bold red"
SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}   # lint and validation findings
AUTH_STYLES = {"pass": "green", "fail": "bold red", "softfail": "yellow", "neutral": "yellow",
               "temperror": "yellow", "permerror": "red", "none": "dim", "present": "cyan"}
MAX_TABLE_ROWS = 500
HASH_FIELDS = frozenset({"md5", "sha1", "sha256", "ssdeep", "tlsh", "imphash"})
# VBA words that make a macro worth reading closely (olevba's AutoExec and Suspicious lists)
VBA_KEYWORDS = (
    "AutoOpen", "Auto_Open", "Document_Open", "Workbook_Open", "AutoExec", "AutoClose",
    "Document_Close", "Shell", "WScript", "CreateObject", "GetObject", "Environ", "Kill",
    "URLDownloadToFile", "XMLHTTP", "ADODB", "SaveToFile", "CallByName", "StrReverse",
    "Chr", "ChrW", "Base64", "powershell", "cmd", "Run", "Exec", "ShellExecute", "VirtualAlloc",
    "RtlMoveMemory", "CreateThread", "Lib", "Declare", "MacScript", "Open", "Write", "Put",
)
_VBA_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, VBA_KEYWORDS), key=len, reverse=True)) + r")\b",
                     re.I)
_URL_RE = re.compile(r"""\b(?:https?|ftp)://[^\s"'<>()\[\]{}\\^`|]{2,2048}""", re.I)


def utc_text(value: dt.datetime | str | None) -> str:
    """A date as ``2026-11-26 05:18:23`` UTC; cached reports carry dates as ISO text."""
    return shown(value) or "?"


def safely(render: Callable[[], _R], what: str) -> _R | Text:
    """Draw with ``render``; a report this code does not understand shows as an error in place."""
    try:
        return render()
    except Exception as exc:          # a drawing bug must not take the analyst's session down
        return Text(f"cannot show the {what}: {type(exc).__name__}: {exc}", style="bold red")


def defang_text(text: str) -> str:
    """Every URL in ``text`` defanged, the way the dissector defangs the URLs it lists."""
    # (imported here: the list, which draws with this module, waits for no parser)
    from workbench.dissect.formats.text import defang

    return _URL_RE.sub(lambda m: defang(m.group(0)), text)


def html_as_text(markup: str) -> str:
    from workbench.dissect.formats.text import html_to_text

    text = html_to_text(markup)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def received_text(stamp: str) -> str:
    """``2026-11-02T09:30:00.000000Z`` -> ``2026-11-02 09:30`` (the index stores UTC)."""
    return shown(stamp, seconds=False)


# -- artifacts -------------------------------------------------------------------------------


def artifact_label(art: Artifact) -> Text:
    """One tree line: name, then badges for flags and problems (first, so a narrow pane
    still shows them), then the detected type and size."""
    name = visible(art.safe_name or art.path.rsplit("/", 1)[-1] or "(unnamed)")
    label = Text(name, style="bold" if art.depth == 0 else "")
    for flag in art.flags:
        label.append(f" ⚠ {flag}", style=FLAG_STYLE)
    badge = STATUS_BADGES.get(art.status)
    if badge:
        label.append(f" [{badge[0]}]", style=badge[1])
    label.append(f"  {art.mime or art.declared_type or '?'}", style="dim")
    label.append(f"  {human_size(art.size)}", style="dim")
    return label


def identity_table(art: Artifact) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("path", visible(art.path)),
        ("file name", visible(art.filename) or "(none)"),
        ("shown as", visible(art.safe_name) or "(none)"),
        ("declared type", visible(art.declared_type) or "(none)"),
        ("detected type", f"{art.mime}  ({art.magic})"),
        ("extension", art.extension or "(none)"),
        ("size", f"{art.size:,} bytes ({human_size(art.size)})"),
        ("md5", art.md5), ("sha1", art.sha1), ("sha256", art.sha256),
        ("ssdeep", art.ssdeep or "(not computed)"), ("tlsh", art.tlsh or "(not computed)"),
        ("entropy", f"{art.entropy:.3f} bits/byte over the file"),
        ("dissector", f"{art.dissector} v{art.dissector_version}" if art.dissector else "(none)"),
    ]
    if art.flags:
        rows.append(("flags", Text(", ".join(art.flags), style=FLAG_STYLE)))
    status = Text(art.status, style=STATUS_BADGES.get(art.status, ("", "green"))[1])
    if art.reason:
        status.append(f"  {art.reason}")
    rows.append(("status", status))
    if art.note:
        rows.append(("found as", art.note))
    for note in art.notes:
        rows.append(("note", note))
    for key, value in rows:
        table.add_row(key, value)
    return table


# -- messages ---------------------------------------------------------------------------------


def headers_text(headers: Sequence[HeaderLike], *, raw: bool = False) -> Text:
    out = Text()
    for header in headers:
        out.append(f"{visible(header.name)}: ", style="bold cyan")
        value = header.raw if raw else header.value
        out.append(visible(" ".join(value.split())) if not raw else visible(value, multiline=True))
        out.append("\n")
    if not headers:
        out.append("(no headers)", style="dim")
    return out


@dataclass
class QuickHeader:
    """A header read straight from the stored message, shown before dissection reports."""

    name: str
    value: str
    raw: str


HEAD_BYTES = 256 * 1024


def quick_headers(head: bytes) -> list[QuickHeader]:
    """The header block of a message's first bytes: names, decoded and raw values."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    from workbench.quarantine.headers import decode_text

    end = min((i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0),
              default=len(head))
    msg = BytesHeaderParser(policy=compat32).parsebytes(head[:end + 2])
    defects: list[str] = []
    return [QuickHeader(str(name), decode_text(str(value), defects, str(name)), str(value))
            for name, value in msg.items()]


def hops_table(report: MessageReport) -> Table:
    table = Table(expand=True, show_edge=False, header_style="bold")
    for title in ("#", "from", "ip", "by", "with", "date (UTC)", "delay"):
        table.add_column(title, overflow="fold")
    for hop in report.received:
        when = utc_text(hop.date)
        if hop.delay_seconds is None:
            delay = Text("")
        elif hop.delay_seconds < 0:
            delay = Text(f"{hop.delay_seconds:+.0f}s clocks disagree", style="bold red")
        else:
            delay = Text(f"{hop.delay_seconds:.0f}s", style="yellow" if hop.delay_seconds > 3600 else "")
        table.add_row(str(hop.index), visible(hop.from_host), visible(hop.from_ip),
                      visible(hop.by_host), visible(hop.protocol), when, delay)
    return table


def auth_text(report: MessageReport) -> Text:
    out = Text()
    if report.mismatches:
        out.append("Sender mismatches\n", style="bold red underline")
        for line in report.mismatches:
            out.append(f"⚠ {visible(line)}\n", style="bold red")
        out.append("\n")
    out.append("Authentication results", style="bold underline")
    out.append("  (as the receiving servers reported them; not re-verified)\n", style="dim")
    if not report.auth:
        out.append("none reported\n", style="dim")
    for result in report.auth:
        out.append(f"{result.method:<16}", style="bold")
        out.append(f"{result.result:<10}", style=AUTH_STYLES.get(result.result, ""))
        out.append(f" {visible(result.detail)}", style="")
        out.append(f"  [{visible(result.source)}]\n", style="dim")
    if report.defects:
        out.append("\nDefects\n", style="bold underline")
        for defect in report.defects:
            out.append(f"• {visible(defect)}\n", style="yellow")
    return out


def body_text(report: MessageReport, *, html_source: bool = False) -> Text:
    """The text body, else the HTML body's text; never rendered, never fetched."""
    out = Text()
    if html_source and report.html:
        out.append("HTML source, shown as text\n\n", style="dim italic")
        out.append(visible(defang_text(report.html), multiline=True))
        return out
    if report.text.strip():
        out.append(visible(defang_text(report.text), multiline=True))
    elif report.html:
        out.append("HTML body shown as text; nothing is loaded or fetched (h: source)\n\n",
                   style="dim italic")
        out.append(visible(defang_text(html_as_text(report.html)), multiline=True))
    else:
        out.append("(no text body)", style="dim")
    return out


def urls_table(report: MessageReport) -> Table:
    table = Table(expand=True, show_edge=False, header_style="bold")
    table.add_column("URL (defanged)", overflow="fold", ratio=4)
    table.add_column("found in", ratio=1)
    for url in report.urls:
        table.add_row(visible(url.defanged), url.source)
    for address in getattr(report, "emails", []):
        table.add_row(visible(address), "address")
    return table


def parts_table(report: MessageReport) -> Table:
    table = Table(expand=True, show_edge=False, header_style="bold")
    for title in ("part", "type", "disposition", "file name", "encoding", "size", "defects"):
        table.add_column(title, overflow="fold")
    for part in report.parts:
        table.add_row("  " * part.depth + part.position, visible(part.content_type),
                      visible(part.disposition), visible(part.filename), visible(part.encoding),
                      f"{part.size:,}" if part.size else "",
                      Text(", ".join(part.defects), style="yellow"))
    return table


# -- format reports --------------------------------------------------------------------------


MAX_SOURCE = 256 * 1024


def source_text(data: bytes, *, vba: bool) -> Text | None:
    """A text artifact's content (VBA, scripts, HTML as text), or None for binary data."""
    head = data[:MAX_SOURCE]
    if b"\x00" in head[:4096]:
        return None
    text = head.decode("utf-8", "replace")
    if text.count("\ufffd") > len(text) // 20:
        return None
    text = defang_text(text.replace("\r\n", "\n"))
    out = vba_source(text) if vba or _looks_vba("", text) else Text(visible(text, multiline=True))
    if len(data) > MAX_SOURCE:
        out.append(f"\n… {len(data) - MAX_SOURCE:,} more bytes in the Hex tab", style="dim")
    return out


def vba_source(code: str) -> Text:
    text = Text(visible(code, multiline=True))
    text.highlight_regex(re.compile(r"'[^\n]*"), "dim")
    text.highlight_regex(re.compile(r'"[^"\n]*"'), "yellow")
    # last, so a keyword stands out inside a string too ("powershell -enc ...")
    text.highlight_regex(_VBA_RE, "bold red")
    return text


def _is_record(value: object) -> TypeGuard[DataclassInstance]:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _cell(value: object, *, hex_number: bool = False) -> str:
    if hex_number and isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value:X}"          # an address or offset (field metadata "hex")
    if hex_number and isinstance(value, list | tuple):
        return ", ".join(_cell(v, hex_number=True) for v in value)
    if isinstance(value, str):
        return visible(defang_text(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, bytes):
        return value[:32].hex() + ("…" if len(value) > 32 else "")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0xFFFF:
        return f"{value:,} (0x{value:X})"
    return str(value)


def _records_table(records: Sequence[DataclassInstance]) -> RenderableType:
    fields = [f.name for f in dataclasses.fields(records[0])
              if not f.metadata.get("internal")]
    hex_fields = {f.name for f in dataclasses.fields(records[0]) if f.metadata.get("hex")}
    scalar = [name for name in fields
              if not any(_is_record(getattr(r, name)) or (isinstance(getattr(r, name), str)
                                                           and "\n" in getattr(r, name))
                         for r in records[:50])]
    shown = records[:MAX_TABLE_ROWS]
    cells = {name: [_cell(getattr(r, name), hex_number=name in hex_fields) for r in shown]
             for name in scalar}
    table = Table(expand=True, show_edge=False, header_style="bold")
    for name in scalar:
        # hashes and long values are cut rather than folded, so a row stays one line; short
        # columns (names, sizes) keep their full width
        longest = max((len(c) for c in cells[name]), default=0)
        table.add_column(name.replace("_", " "), overflow="ellipsis", no_wrap=True,
                         min_width=min(longest, 12 if name in HASH_FIELDS else 16),
                         max_width=12 if name in HASH_FIELDS else 48)
    for i in range(len(shown)):
        table.add_row(*(cells[name][i] for name in scalar))
    parts: list[RenderableType] = [table]
    if len(records) > MAX_TABLE_ROWS:
        parts.append(Text(f"… {len(records) - MAX_TABLE_ROWS:,} more not shown", style="dim"))
    # long text fields (VBA source, scripts) print in full below the table
    for record in records[:MAX_TABLE_ROWS]:
        for name in fields:
            value = getattr(record, name)
            if isinstance(value, str) and "\n" in value:
                title = next((str(getattr(record, n)) for n in ("name", "stream", "module", "filename")
                              if n in fields and getattr(record, n)), "")
                parts.append(Text(f"\n{name.replace('_', ' ')} {title}", style="bold underline"))
                parts.append(vba_source(value) if _looks_vba(name, value)
                             else Text(visible(value, multiline=True)))
    return Group(*parts)


def _looks_vba(name: str, value: str) -> bool:
    return "vba" in name.lower() or "macro" in name.lower() or bool(
        re.search(r"^\s*(Sub|Function|Attribute VB_)", value, re.M | re.I))


def facts_text(report: object) -> list[Text]:
    """The report's key facts (the ones ``workbench dissect`` prints beneath the artifact),
    first, so the CLI and the UI lead with the same lines; the fields follow in full."""
    from workbench.dissect.render import report_facts

    facts = report_facts(report)
    if not facts:
        return []
    out = Text()
    for fact in facts:
        out.append(f"• {visible(fact)}\n")
    return [Text("key facts", style="bold underline"), out]


def report_renderable(report: object, *, title: str = "") -> RenderableType:
    """Any dissector's report dataclass as tables and text, field by field."""
    if report is None:
        return Text("No format report: no dissector applies to this type.", style="dim")
    if not _is_record(report):
        return Text(visible(str(report), multiline=True))
    parts: list[RenderableType] = []
    if title:
        parts.append(Text(title, style="bold"))
    parts.extend(facts_text(report))
    scalars = Table.grid(padding=(0, 2))
    scalars.add_column(style="bold")
    scalars.add_column()
    deferred: list[RenderableType] = []
    for f in dataclasses.fields(report):
        if f.metadata.get("internal"):
            continue
        value = getattr(report, f.name)
        label = f.name.replace("_", " ")
        if isinstance(value, list | tuple) and value and _is_record(value[0]):
            deferred.append(Text(f"\n{label} ({len(value):,})", style="bold underline"))
            deferred.append(_records_table(value))
        elif _is_record(value):
            deferred.append(Text(f"\n{label}", style="bold underline"))
            deferred.append(report_renderable(value))
        elif isinstance(value, str) and "\n" in value:
            deferred.append(Text(f"\n{label}", style="bold underline"))
            deferred.append(vba_source(value) if _looks_vba(f.name, value)
                            else Text(visible(value, multiline=True)))
        elif isinstance(value, dict):
            scalars.add_row(label, ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "—")
        elif value not in ("", None, [], ()):
            scalars.add_row(label, _cell(value, hex_number=bool(f.metadata.get("hex"))))
    parts.append(scalars)
    parts.extend(deferred)
    return Group(*parts)


BLOCKS = " ▁▂▃▄▅▆▇█"


def entropy_strip(windows: Sequence[float], window: int, width: int = 100,
                  height: int = 4) -> Text:
    """Entropy along the file as bars on an absolute 0-8 scale, one column per stretch.

    Each column is the highest entropy in its stretch of the file; above 7.2 bits per
    byte (packed, compressed or encrypted) is red, above 6 yellow, the rest green.
    """
    out = Text()
    if not windows:
        return out.append("no entropy profile", style="dim")
    per_cell = max(1, -(-len(windows) // width))
    cells = [max(windows[i:i + per_cell]) for i in range(0, len(windows), per_cell)]
    eighths = [round(min(8.0, max(0.0, v)) / 8 * height * 8) for v in cells]
    styles = ["red" if v > 7.2 else ("yellow" if v > 6 else "green") for v in cells]
    for row in range(height - 1, -1, -1):            # top row first
        for filled, style in zip(eighths, styles, strict=True):
            level = min(8, max(0, filled - row * 8))
            out.append(BLOCKS[level] if level or row else "▁", style=style)
        out.append("\n")
    out.append(f"one column = {per_cell * window:,} bytes from the start of the file; "
               "full height is 8 bits/byte", style="dim")
    return out


def entropy_summary(windows: Iterable[float]) -> str:
    values = list(windows)
    if not values:
        return "no entropy profile"
    high = sum(1 for v in values if v > 7.2)
    return (f"{len(values):,} windows · max {max(values):.2f} · "
            f"{high:,} over 7.2 bits/byte (packed or encrypted)")
