"""What a file is: hashes, libmagic's verdict, entropy, and the name checks (mismatch, RTLO)."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from pathlib import PurePosixPath, PureWindowsPath

from workbench.dissect.model import Identity

ENTROPY_WINDOW = 256
MAX_ENTROPY_POINTS = 4096       # past 1 MiB the window grows so the strip chart stays small

_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f", "\u061c"}
EXECUTABLE_EXTENSIONS = {
    "exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "ps1",
    "msi", "dll", "cpl", "jar", "lnk", "iso", "img", "reg", "sct", "chm",
}
DOCUMENT_EXTENSIONS = {
    "pdf", "doc", "docx", "docm", "xls", "xlsx", "xlsm", "ppt", "pptx", "rtf", "txt", "jpg", "jpeg",
    "png", "gif", "zip", "rar", "html", "htm", "csv", "odt",
}
# Extension -> detected MIME types (or prefixes ending in "/") that are consistent with it.
_EXPECTED: dict[str, tuple[str, ...]] = {
    "pdf": ("application/pdf",),
    "zip": ("application/zip", "application/x-zip"),
    "7z": ("application/x-7z-compressed",),
    "gz": ("application/gzip", "application/x-gzip"),
    "rar": ("application/x-rar", "application/vnd.rar"),
    "exe": ("application/x-dosexec", "application/vnd.microsoft.portable-executable"),
    "dll": ("application/x-dosexec", "application/vnd.microsoft.portable-executable"),
    "doc": ("application/msword", "application/x-ole-storage", "application/CDFV2", "text/rtf",
            "application/vnd.ms-office"),
    "xls": ("application/vnd.ms-excel", "application/x-ole-storage", "application/CDFV2",
            "application/vnd.ms-office"),
    "docx": ("application/vnd.openxmlformats-officedocument", "application/zip",
             "application/vnd.ms-word"),
    "docm": ("application/vnd.openxmlformats-officedocument", "application/zip",
             "application/vnd.ms-word"),
    "xlsx": ("application/vnd.openxmlformats-officedocument", "application/zip"),
    "xlsm": ("application/vnd.openxmlformats-officedocument", "application/zip",
             "application/vnd.ms-excel"),
    "rtf": ("text/rtf", "application/rtf"),
    "jpg": ("image/jpeg",), "jpeg": ("image/jpeg",), "png": ("image/png",), "gif": ("image/gif",),
    "txt": ("text/",), "html": ("text/html", "text/xml", "text/plain"), "htm": ("text/html", "text/plain"),
    "js": ("text/", "application/javascript"), "vbs": ("text/",), "ps1": ("text/",),
}
_GENERIC_DECLARED = {"", "application/octet-stream", "application/x-download", "application/force-download",
                     "binary/octet-stream", "application/unknown"}


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (0..8)."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def entropy_profile(data: bytes) -> tuple[int, list[float]]:
    """Entropy of each 256-byte window, for a strip chart: ``(stride, points)``.

    Up to 1 MiB every window is measured (stride 256). Past that the stride doubles
    until there are at most MAX_ENTROPY_POINTS points, and each point is the 256-byte
    window at the start of its stride: a sample, so big files cost the same as 1 MiB.
    """
    stride = ENTROPY_WINDOW
    while len(data) / stride > MAX_ENTROPY_POINTS:
        stride *= 2
    return stride, [round(entropy(data[i:i + ENTROPY_WINDOW]), 3) for i in range(0, len(data), stride)]


def _magic(data: bytes) -> tuple[str, str]:
    import magic

    head = data[: 4 * (1 << 20)]     # libmagic reads the start; a bounded buffer keeps it quick
    try:
        return magic.from_buffer(head), magic.from_buffer(head, mime=True)
    except Exception as exc:          # libmagic reports its own errors for odd input
        return f"libmagic error: {exc}", "application/octet-stream"


def identify(data: bytes, *, fuzzy_max: int) -> Identity:
    import ppdeep
    import tlsh

    notes: list[str] = []
    description, mime = _magic(data)
    if len(data) <= fuzzy_max:
        ssdeep = ppdeep.hash(data)
    else:
        ssdeep = ""
        notes.append(f"ssdeep skipped: {len(data)} bytes is over {fuzzy_max}")
    lsh = tlsh.hash(data) if len(data) >= 50 else "TNULL"
    window, points = entropy_profile(data)
    return Identity(
        size=len(data), md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(), ssdeep=ssdeep, tlsh=lsh, magic=description,
        mime=mime, entropy=round(entropy(data), 4), entropy_window=window, entropy_windows=points,
        notes=notes)


# -- names -------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]')


def sanitize_filename(name: str, *, fallback: str = "unnamed", max_len: int = 120) -> str:
    """A name safe to show and to save: no folders, no control or bidi characters, no ``..``."""
    base = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name if name else ""
    base = "".join(ch for ch in base if ch not in _BIDI and unicodedata.category(ch) != "Cf")
    base = _UNSAFE.sub("_", base).strip(" .")
    base = re.sub(r"\s{2,}", " ", base)
    if not base or set(base) <= {"."}:
        return fallback
    if len(base) > max_len:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: max_len - len(ext) - 2] + "…" + dot + ext) if dot and len(ext) < 10 else base[:max_len]
    return base


def extension(name: str) -> str:
    clean = "".join(ch for ch in name if ch not in _BIDI).strip().rstrip(".")
    _, dot, ext = clean.rpartition(".")
    return ext.lower().strip() if dot and ext and len(ext) <= 10 and " " not in ext.strip() else ""


def _matches(mime: str, accepted: tuple[str, ...]) -> bool:
    return any(mime.startswith(a) if a.endswith("/") else mime == a or mime.startswith(a + ".")
               or mime.startswith(a) for a in accepted)


def _family(mime: str) -> str:
    mime = mime.split(";")[0].strip().lower()
    if mime in ("application/x-dosexec", "application/vnd.microsoft.portable-executable",
                "application/x-msdownload", "application/x-msdos-program", "application/x-executable"):
        return "executable"
    if mime.startswith("text/") or any(k in mime for k in ("javascript", "vbscript", "json", "/xml")):
        return "text"
    if mime.startswith("image/"):
        return "image"
    if any(k in mime for k in ("zip", "rar", "7z", "gzip", "x-tar", "bzip", "x-xz")):
        return "archive"
    if any(k in mime for k in ("msword", "ms-excel", "ms-powerpoint", "officedocument", "ms-office",
                               "cdfv2", "ole-storage", "rtf", "opendocument", "ms-word")):
        return "office"
    if mime == "application/pdf":
        return "pdf"
    if mime.startswith("message/"):
        return "message"
    return mime


def name_flags(filename: str, declared_type: str, mime: str) -> list[str]:
    """Flags an analyst wants to see at once: disguised types, double extensions, RTLO."""
    flags: list[str] = []
    if any(ch in _BIDI for ch in filename):
        flags.append("rtlo" if "\u202e" in filename else "bidi-control")
    if filename and ("/" in filename or "\\" in filename):
        flags.append("path-in-name")
    if ".." in filename.replace("\\", "/").split("/"):
        flags.append("path-traversal")
    ext = extension(filename)
    if (ext and ext in _EXPECTED and not _matches(mime, _EXPECTED[ext])) or (ext in EXECUTABLE_EXTENSIONS and _family(mime) not in ("executable", "text", "archive",
                                                                "application/octet-stream")):
        flags.append("extension-mismatch")
    parts = [p.strip().lower() for p in sanitize_filename(filename, fallback="").split(".")]
    if len(parts) >= 3 and parts[-1] in EXECUTABLE_EXTENSIONS and parts[-2] in DOCUMENT_EXTENSIONS:
        flags.append("double-extension")
    if re.search(r"\s{5,}\.\w+$", filename):
        flags.append("padded-extension")
    declared = declared_type.split(";")[0].strip().lower()
    if (declared not in _GENERIC_DECLARED and mime not in ("", "application/octet-stream")
            and _family(declared) != _family(mime)):
        flags.append("declared-mismatch")
    if (_family(mime) == "executable" and ext and ext not in EXECUTABLE_EXTENSIONS
            and "extension-mismatch" not in flags):
        flags.append("extension-mismatch")
    return flags
