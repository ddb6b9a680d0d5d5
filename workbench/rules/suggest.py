"""Rank an artifact's strings as rule candidates: yarGen-like heuristics plus the goodware database."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from workbench.dissect.strings import ExtractedString, extract_strings
from workbench.quarantine.service import Quarantine
from workbench.rules.goodware import GoodwareDB
from workbench.workspace import Workspace

SHORT_LEN = 6
MAX_TEXT = 200          # candidates longer than this are cut (YARA strings this long are rarely wise)


@dataclass
class Candidate:
    text: str
    encoding: str               # "ascii" or "utf-16le"
    offset: int                 # first occurrence in the artifact
    score: float
    reasons: list[str]          # e.g. ["+5 URL", "-10 in 3 goodware files"]
    goodware_count: int
    occurrences: int = 1


@dataclass
class SuggestionReport:
    sha256: str
    candidates: list[Candidate]
    strings_seen: int = 0               # distinct strings considered
    goodware_files: int = 0             # clean files in the database (0: no database yet)
    notes: list[str] = field(default_factory=list)


# (pattern, points, reason): the first match of each line adds its points.
_UP: tuple[tuple[re.Pattern[str], float, str], ...] = tuple((re.compile(p, f), pts, why) for p, f, pts, why in (
    (r"\.pdb\b", re.I, 6, "PDB path"),
    (r"\b(?:https?|ftp)://[^\s\"']{4,}", re.I, 5, "URL"),
    (r"Mozilla/\d|User-Agent:|\b(?:curl|Wget)/\d", re.I, 5, "user agent"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", 0, 4, "IP address"),
    (r"\b[a-z0-9][a-z0-9-]{1,62}\.(?:com|net|org|ru|cn|info|biz|top|xyz|io|su|tk|onion)\b", re.I, 3,
     "domain name"),
    (r"[A-Za-z]:\\|\\\\[A-Za-z0-9._$-]+\\|%(?:APPDATA|TEMP|USERPROFILE|PROGRAMDATA|WINDIR)%", re.I, 4,
     "Windows path"),
    (r"(?:^|\s)/(?:tmp|etc|bin|usr|var|dev/shm)/", 0, 3, "Unix path"),
    (r"HKEY_|\\CurrentVersion\\Run|Software\\Microsoft\\", re.I, 4, "registry key"),
    (r"\b[\w-]+\.(?:exe|dll|scr|ps1|vbs|vbe|js|jse|hta|bat|cmd|lnk|jar|msi)\b", re.I, 3, "file name"),
    (r"powershell|-enc(?:odedcommand)?\b|cmd(?:\.exe)? /c|WScript\.Shell|Shell\.Application|"
     r"CreateObject|AutoOpen|Document_Open|Workbook_Open|URLDownloadToFile|WinHttpRequest|"
     r"XMLHTTP|FromBase64String|DownloadString|Invoke-Expression|\bIEX\b|regsvr32|rundll32|mshta|"
     r"certutil|bitsadmin", re.I, 4, "script or macro keyword"),
    (r"VirtualAlloc|WriteProcessMemory|CreateRemoteThread|NtUnmapViewOfSection|IsDebuggerPresent",
     0, 2, "injection or evasion API"),
    (r"%[sdxu]|%\d*[sd]", 0, 1, "format string"),
    (r"[Pp]assword|[Ll]ogin|[Bb]itcoin|[Ww]allet|[Rr]ansom|[Dd]ecrypt", 0, 2, "lure or loot keyword"),
))
_BASE64 = re.compile(r"^[A-Za-z0-9+/]{24,}={0,2}$")

# Strings every compiler, runtime or document format leaves behind.
COMMON_RUNTIME = frozenset(s.lower() for s in (
    "This program cannot be run in DOS mode", "!This program cannot be run in DOS mode.",
    "Rich", ".text", ".rdata", ".data", ".rsrc", ".reloc", ".pdata", ".idata", ".tls", ".bss",
    "KERNEL32.dll", "USER32.dll", "ADVAPI32.dll", "msvcrt.dll", "ntdll.dll", "mscoree.dll",
    "GetProcAddress", "LoadLibraryA", "LoadLibraryW", "GetModuleHandleA", "GetModuleHandleW",
    "ExitProcess", "GetLastError", "HeapAlloc", "HeapFree", "VirtualProtect", "GetCommandLineA",
    "Microsoft Visual C++ Runtime Library", "runtime error", "_CorExeMain", "_CorDllMain",
    "Copyright", "Microsoft Corporation", "FileVersion", "ProductVersion", "VS_VERSION_INFO",
    "StringFileInfo", "VarFileInfo", "Translation", "CompanyName", "LegalCopyright",
    "InternalName", "OriginalFilename", "ProductName", "FileDescription",
    "[Content_Types].xml", "_rels/.rels", "docProps/app.xml", "docProps/core.xml", "word/document.xml",
    "xl/workbook.xml", "Root Entry", "SummaryInformation", "DocumentSummaryInformation",
    "endobj", "endstream", "stream", "xref", "trailer", "startxref", "/Type", "/Filter",
    "/FlateDecode", "/Length", "Microsoft Office Word", "Normal.dotm", "Times New Roman", "Calibri",
    "Content-Type", "Content-Transfer-Encoding", "MIME-Version", "text/plain", "text/html",
    "application/octet-stream", "boundary", "charset", "http://schemas.openxmlformats.org",
    "http://www.w3.org", "UTF-8", "en-US",
))


# Compiler and runtime messages that come in families.
_COMMON_PATTERNS = re.compile(
    r"^- (?:not enough space|Attempt to|unexpected|pure virtual|abnormal program)|^R60\d\d|"
    r"^Microsoft Visual|^mscorlib|^System\.|^api-ms-win-|^GCC: \(|^\.(?:text|data|rdata|rsrc)\$", re.I)
# Long common strings also count when a string is one of them plus a few stray bytes.
_COMMON_LONG = re.compile("|".join(re.escape(c) for c in sorted(
    (c for c in COMMON_RUNTIME if len(c) >= 8), key=len, reverse=True)))


def is_common(text: str) -> bool:
    low = text.lower().strip()
    if low in COMMON_RUNTIME or low.startswith("!this program") or _COMMON_PATTERNS.search(text):
        return True
    m = _COMMON_LONG.search(low)
    return m is not None and len(low) <= len(m.group()) + 4


def _sequential(text: str) -> bool:
    """Alphabets and charset tables: mostly consecutive code points."""
    steps = sum(1 for a, b in itertools.pairwise(text) if ord(b) - ord(a) == 1)
    return len(text) >= 8 and steps / (len(text) - 1) > 0.6


def _repetitive(text: str) -> bool:
    if len(text) < 4:
        return True
    most = max(text.count(c) for c in set(text))
    return most / len(text) > 0.5 or len(set(text)) / len(text) < 0.25 or bool(re.search(r"(.{1,4})\1{3,}", text))


def score_text(text: str, encoding: str, goodware_count: int) -> tuple[float, list[str]]:
    """A candidate's score and the reasons, each reason with its points."""
    reasons: list[str] = []
    score = 0.0

    def add(points: float, why: str) -> None:
        nonlocal score
        score += points
        reasons.append(f"{points:+g} {why}")

    length_points = min(len(text), 48) / 8
    add(round(length_points, 1), f"length {len(text)}")
    if len(text) < 6:
        add(-3, "short")
    for pattern, points, why in _UP:
        if pattern.search(text):
            add(points, why)
    if _BASE64.match(text) and re.search(r"[a-z]", text) and re.search(r"[A-Z]", text) \
            and re.search(r"\d", text):
        add(4, "base64 blob")
    if encoding == "utf-16le":
        add(1, "UTF-16 (often hand-written in malware)")
    if is_common(text):
        add(-8, "common runtime string")
    letters = sum(c.isalpha() for c in text)
    if letters < len(text) / 3:
        add(-3, "few letters")
    if _repetitive(text):
        add(-5, "repetitive")
    elif _sequential(text):
        add(-6, "character table")
    if goodware_count:
        add(-round(10 + 3 * math.log2(goodware_count + 1), 1), f"in {goodware_count} goodware file(s)")
    return round(score, 1), reasons


def rank_strings(strings: Iterable[ExtractedString], goodware: GoodwareDB | None = None, *,
                 limit: int = 50) -> tuple[list[Candidate], int]:
    """(best candidates first, distinct strings considered)."""
    first: dict[tuple[str, str], ExtractedString] = {}
    counts: dict[tuple[str, str], int] = {}
    for s in strings:
        text = s.text.strip()
        if not text:
            continue
        key = (text[:MAX_TEXT], s.encoding)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, s)
    # Strings under SHORT_LEN characters make poor atoms and never outrank longer ones in
    # practice; in a big binary they are most of the noise, so they are scored only when
    # there are too few longer strings to fill the list.
    keys = [k for k in first if len(k[0]) >= SHORT_LEN]
    if len(keys) < limit:
        keys = list(first)
    freq = goodware.frequency(t for t, _ in keys) if goodware is not None else {}
    out = []
    for text, encoding in keys:
        s = first[(text, encoding)]
        gw = freq.get(text, 0)
        score, reasons = score_text(text, encoding, gw)
        n = counts[(text, encoding)]
        if n > 3:
            score = round(score - 1, 1)
            reasons.append(f"-1 appears {n} times")
        out.append(Candidate(text, encoding, s.offset, score, reasons, gw, n))
    out.sort(key=lambda c: (-c.score, c.offset))
    return out[:limit], len(first)


def suggest_for_artifact(workspace: Workspace, sha256: str, *, min_len: int = 4, wide: bool = True,
                         limit: int = 50) -> SuggestionReport:
    """Rank the strings of a stored artifact. Raises the store's not-found error for unknown hashes."""
    q = Quarantine(workspace.quarantine)
    data = q.store.read(sha256)
    gw = GoodwareDB.open_for(workspace, readonly=True)
    notes = []
    try:
        if gw is None:
            notes.append("no goodware database yet: add a clean corpus so common strings score down")
            gw_files = 0
        else:
            gw_files = gw.stats().files
        candidates, seen = rank_strings(extract_strings(data, min_len=min_len, wide=wide), gw, limit=limit)
    finally:
        if gw is not None:
            gw.close()
    return SuggestionReport(sha256, candidates, seen, gw_files, notes)
