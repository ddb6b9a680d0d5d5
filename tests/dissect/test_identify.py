"""Names and types: sanitised filenames, mismatch flags, entropy, identity."""

from __future__ import annotations

import math
import os
import random
from collections import Counter

import pytest

from workbench.dissect.identify import (
    PURE_PYTHON_FUZZY_MAX,
    entropy,
    entropy_profile,
    fuzzy_hash,
    identify,
    name_flags,
    sanitize_filename,
)
from workbench.dissect.model import Limits
from workbench.samples.mail import EICAR


def test_sanitize_strips_folders_traversal_and_controls() -> None:
    assert sanitize_filename("../../etc/cron.d/evil") == "evil"
    assert sanitize_filename("..\\..\\Windows\\win.ini") == "win.ini"
    assert sanitize_filename("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert sanitize_filename("a\x00b\x07c.txt") == "a_b_c.txt"
    assert sanitize_filename("..") == "unnamed"
    assert sanitize_filename("") == "unnamed"
    long = sanitize_filename("x" * 500 + ".pdf")
    assert len(long) <= 120 and long.endswith(".pdf")


def test_flags_for_disguised_files() -> None:
    pe = "application/x-dosexec"
    assert "extension-mismatch" in name_flags("invoice.pdf", "application/pdf", pe)
    assert "declared-mismatch" in name_flags("invoice.pdf", "application/pdf", pe)
    assert "double-extension" in name_flags("scan_0047.pdf.exe", "", pe)
    assert "rtlo" in name_flags("invoice\u202efdp.exe", "", pe)
    assert "path-traversal" in name_flags("../../x.txt", "", "text/plain")
    assert name_flags("report.pdf", "application/pdf", "application/pdf") == []
    assert name_flags("notes.txt", "application/octet-stream", "text/plain") == []


def test_entropy_bounds_and_profile() -> None:
    assert entropy(b"") == 0.0
    assert entropy(b"\x00" * 1000) == 0.0
    assert 7.9 < entropy(os.urandom(1 << 16)) <= 8.0
    window, points = entropy_profile(b"\x00" * 1024 + os.urandom(1024))
    assert window == 256 and len(points) == 8
    assert points[0] == 0.0 and points[-1] > 6.5
    stride, points = entropy_profile(b"\x00" * (4 << 20) + os.urandom(1 << 20))
    assert stride == 2048 and len(points) == 2560
    assert points[0] == 0.0 and points[-1] > 6.5


def test_identity_of_eicar() -> None:
    ident = identify(EICAR, fuzzy_max=1 << 20)
    assert ident.sha256 == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    assert ident.md5 == "44d88612fea8a8f36de82e1278abb02f"
    assert ident.size == 68 and ident.mime == "text/plain" and ident.ssdeep.startswith("3:")
    big = identify(b"\x00" * 2048, fuzzy_max=1024)
    assert big.ssdeep == "" and "ssdeep skipped" in big.notes[0]


def _reference_entropy(data: bytes) -> float:
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values()) if data else 0.0


@pytest.mark.parametrize("size", [0, 1, 2, 3, 255, 256, 257, 511, 4097, 65_537, (1 << 20) + 1, (3 << 20) + 77])
def test_numpy_entropy_matches_the_definition(size: int) -> None:
    rnd = random.Random(size)
    # a low-entropy head and a random tail, so windows differ from each other
    data = bytes(rnd.choice(b"\x00\x01AAB\xff") for _ in range(min(size, 3000))) + rnd.randbytes(max(0, size - 3000))
    assert entropy(data) == pytest.approx(_reference_entropy(data), abs=1e-9)
    stride, points = entropy_profile(data)
    expected_stride = 256
    while size / expected_stride > 4096:
        expected_stride *= 2
    expected = [_reference_entropy(data[i:i + 256]) for i in range(0, size, expected_stride)]
    assert stride == expected_stride and len(points) == len(expected)
    assert all(abs(p - e) <= 0.0006 for p, e in zip(points, expected, strict=True))


def test_libfuzzy_and_ppdeep_agree() -> None:
    import ppdeep

    rnd = random.Random(5)
    for data in (EICAR, rnd.randbytes(5000), b"hello world " * 20_000 + rnd.randbytes(100_000)):
        assert fuzzy_hash(data, fuzzy_max=1 << 30) == (ppdeep.hash(data), "")


def test_libfuzzy_hashes_big_files_by_default() -> None:
    data = random.Random(9).randbytes(3 << 20)
    ident = identify(data, fuzzy_max=Limits().fuzzy_max)
    assert ident.ssdeep and not ident.notes


def test_without_libfuzzy_ppdeep_takes_over_with_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import ppdeep

    import workbench.dissect.identify as identify_module

    monkeypatch.setattr(identify_module, "_libfuzzy", lambda: None)
    assert fuzzy_hash(EICAR, fuzzy_max=1 << 30) == (ppdeep.hash(EICAR), "")
    digest, note = fuzzy_hash(b"\x00" * (PURE_PYTHON_FUZZY_MAX + 1), fuzzy_max=1 << 30)
    assert digest == "" and "libfuzzy is not installed" in note
