"""What a file is: hashes, libmagic's verdict, entropy, and the name checks (mismatch, RTLO)."""

from __future__ import annotations

import functools
import hashlib
import io
import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from workbench.dissect.model import Fingerprint, Identity

if TYPE_CHECKING:                    # numpy loads on first use: only workers compute entropy
    import numpy as np

ENTROPY_WINDOW = 256
MAX_ENTROPY_POINTS = 4096       # past 1 MiB the window grows so the strip chart stays small
_COUNT_CHUNK = 1 << 17           # 16-bit pairs per bincount call
_PROFILE_BLOCK = 128             # entropy windows per bincount call
PURE_PYTHON_FUZZY_MAX = 1 << 20  # ppdeep (the fallback) hashes ~1.5 MB/s

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
    # An encrypted .docx/.xlsx is a compound file holding the encrypted package (libmagic:
    # application/encrypted): that is how Office saves it, not a disguise.
    "docx": ("application/vnd.openxmlformats-officedocument", "application/zip",
             "application/vnd.ms-word", "application/encrypted"),
    "docm": ("application/vnd.openxmlformats-officedocument", "application/zip",
             "application/vnd.ms-word", "application/encrypted"),
    "xlsx": ("application/vnd.openxmlformats-officedocument", "application/zip", "application/encrypted"),
    "xlsm": ("application/vnd.openxmlformats-officedocument", "application/zip",
             "application/vnd.ms-excel", "application/encrypted"),
    "rtf": ("text/rtf", "application/rtf"),
    "jpg": ("image/jpeg",), "jpeg": ("image/jpeg",), "png": ("image/png",), "gif": ("image/gif",),
    "txt": ("text/",), "html": ("text/html", "text/xml", "text/plain"), "htm": ("text/html", "text/plain"),
    "js": ("text/", "application/javascript"), "vbs": ("text/",), "ps1": ("text/",),
}
_GENERIC_DECLARED = {"", "application/octet-stream", "application/x-download", "application/force-download",
                     "binary/octet-stream", "application/unknown"}


@functools.cache
def _c_log_c() -> np.ndarray:
    """``c * log2(c)`` for c = 0..256 (0 log 0 = 0): the per-window entropy is a table lookup."""
    import numpy as np

    c = np.arange(ENTROPY_WINDOW + 1, dtype=np.float64)
    return c * np.log2(np.maximum(c, 1.0))


def _byte_counts(data: bytes) -> np.ndarray:
    """How often each byte value occurs.

    Counted as 16-bit pairs (65,536 bins, then summed both ways), which halves the
    elements ``bincount`` visits, and in slices, because it widens its input to intp (8x).
    """
    import numpy as np

    even = len(data) & ~1
    pairs = np.frombuffer(data, dtype=np.uint16, count=even // 2)
    wide = np.zeros(1 << 16, dtype=np.int64)
    for start in range(0, len(pairs), _COUNT_CHUNK):
        wide += np.bincount(pairs[start:start + _COUNT_CHUNK], minlength=1 << 16)
    square = wide.reshape(256, 256)
    counts: np.ndarray = square.sum(axis=0) + square.sum(axis=1)
    if len(data) & 1:
        counts[data[-1]] += 1
    return counts


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (0..8)."""
    import numpy as np

    if not data:
        return 0.0
    counts = _byte_counts(data)
    p = counts[counts > 0] / len(data)
    return float(max(0.0, -(p * np.log2(p)).sum()))


def entropy_profile(data: bytes) -> tuple[int, list[float]]:
    """Entropy of each 256-byte window, for a strip chart: ``(stride, points)``.

    Up to 1 MiB every window is measured (stride 256). Past that the stride doubles
    until there are at most MAX_ENTROPY_POINTS points, and each point is the 256-byte
    window at the start of its stride: a sample, so big files cost the same as 1 MiB.
    The last point covers what is left when fewer than 256 bytes remain.
    """
    stride = ENTROPY_WINDOW
    while len(data) / stride > MAX_ENTROPY_POINTS:
        stride *= 2
    n = len(data)
    full = (n - ENTROPY_WINDOW) // stride + 1 if n >= ENTROPY_WINDOW else 0
    points: list[float] = []
    if full:
        import numpy as np

        arr = np.frombuffer(data, dtype=np.uint8)
        windows = np.lib.stride_tricks.as_strided(arr, shape=(full, ENTROPY_WINDOW), strides=(stride, 1),
                                                  writeable=False)
        table = _c_log_c()
        offsets = (np.arange(_PROFILE_BLOCK, dtype=np.intp) * 256)[:, None]
        values = np.empty(full)
        # Windows in blocks, one bincount per block: window i of a block counts into bins
        # i*256 .. i*256+255, and the block's bins stay small enough for the CPU cache.
        for start in range(0, full, _PROFILE_BLOCK):
            block = windows[start:start + _PROFILE_BLOCK]
            rows = len(block)
            counts = np.bincount((block + offsets[:rows]).ravel(), minlength=rows * 256).reshape(rows, 256)
            # H = log2(w) - sum(c log2 c) / w for a window of w bytes; c log2 c comes from a table.
            values[start:start + rows] = np.log2(ENTROPY_WINDOW) - table[counts].sum(axis=1) / ENTROPY_WINDOW
        points = np.maximum(np.round(values, 3), 0.0).tolist()
    if full * stride < n:
        points.append(round(entropy(data[full * stride:full * stride + ENTROPY_WINDOW]), 3))
    return stride, points


def classify(data: bytes) -> tuple[str, str]:
    """libmagic's verdict: ``(description, MIME type)``. libmagic parses: run it in a worker."""
    import magic

    head = data[: 4 * (1 << 20)]     # libmagic reads the start; a bounded buffer keeps it quick
    try:
        description, mime = magic.from_buffer(head), magic.from_buffer(head, mime=True)
    except Exception as exc:          # libmagic reports its own errors for odd input
        return f"libmagic error: {exc}", "application/octet-stream"
    if description.startswith("Microsoft OOXML"):
        mime = ooxml_mime(data) or mime
    return description, mime


_OOXML_MAIN = re.compile(rb'ContentType="(application/vnd\.[\w.-]+?)\.main(?:\+xml)?"')


def ooxml_mime(data: bytes) -> str:
    """The MIME type of an Office Open XML package from its main part's content type.

    libmagic names the application only when a ``word/``, ``xl/`` or ``ppt/`` member comes
    early; a genuine document whose package starts with ``customXml/`` or ``docProps/``
    is "Microsoft OOXML", application/octet-stream, and its .docx name looked disguised.
    """
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package, package.open("[Content_Types].xml") as fh:
            types = fh.read(1 << 20)
    except Exception:                 # not a readable package: libmagic's answer stands
        return ""
    match = _OOXML_MAIN.search(types)
    if match is None:
        return ""
    main = match.group(1).decode("ascii")
    return main + ".12" if main.startswith("application/vnd.ms-") else main


def _libfuzzy() -> Any:
    """The compiled ssdeep binding, or None where no wheel exists for the platform."""
    try:
        import ssdeep
    except ImportError:
        return None
    return ssdeep


def fuzzy_hash(data: bytes, *, fuzzy_max: int) -> tuple[str, str]:
    """ssdeep of ``data`` and a note when it was skipped: ``(hash, note)``.

    libfuzzy (the ``ssdeep`` module of the ssdeep-wheel package, ~100 MB/s) when it is
    installed; otherwise ppdeep, the same algorithm in pure Python at ~1.5 MB/s, which is
    why the fallback also stops at PURE_PYTHON_FUZZY_MAX.
    """
    libfuzzy = _libfuzzy()
    cap = fuzzy_max if libfuzzy is not None else min(fuzzy_max, PURE_PYTHON_FUZZY_MAX)
    if len(data) > cap:
        why = "" if cap == fuzzy_max else " (pure-Python ppdeep: libfuzzy is not installed)"
        return "", f"ssdeep skipped: {len(data)} bytes is over {cap}{why}"
    if libfuzzy is not None:
        return str(libfuzzy.hash(data)), ""
    import ppdeep

    return str(ppdeep.hash(data)), ""


def fingerprint(data: bytes, *, fuzzy_max: int) -> Fingerprint:
    """md5, sha1, ssdeep, TLSH and entropy (the caller has the sha256: it keys everything)."""
    import tlsh

    ssdeep, note = fuzzy_hash(data, fuzzy_max=fuzzy_max)
    window, points = entropy_profile(data)
    return Fingerprint(
        md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(), ssdeep=ssdeep,
        tlsh=tlsh.hash(data) if len(data) >= 50 else "TNULL", entropy=round(entropy(data), 4),
        entropy_window=window, entropy_windows=points, notes=[note] if note else [])


def identify(data: bytes, *, fuzzy_max: int) -> Identity:
    """Everything at once: the fingerprint and libmagic's verdict."""
    description, mime = classify(data)
    return Identity.of(size=len(data), sha256=hashlib.sha256(data).hexdigest(), magic=description,
                       mime=mime, fingerprint=fingerprint(data, fuzzy_max=fuzzy_max))


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
