"""Names and types: sanitised filenames, mismatch flags, entropy, identity."""

from __future__ import annotations

import os

from workbench.dissect.identify import (
    entropy,
    entropy_profile,
    identify,
    name_flags,
    sanitize_filename,
)
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
    assert ident.size == 68 and ident.mime == "text/plain" and ident.ssdeep.startswith("3:")
    big = identify(b"\x00" * 2048, fuzzy_max=1024)
    assert big.ssdeep == "" and "ssdeep skipped" in big.notes[0]
