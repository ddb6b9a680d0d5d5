"""Corpus test material: small labelled folders and rule files written in code (EICAR/GTUBE stand in)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from workbench.samples.mail import EICAR
from workbench.workspace import Workspace

DROPPER = b"MZ" + b"\x00" * 62 + b"This program cannot be run in DOS mode.\r\n" + \
    b"\x90" * 200 + b"http://evil.example/payload.bin\x00" + EICAR + b"\xcc" * 100
LOADER = b"%PDF-1.7\n" + b"A" * 300 + b"GTUBE-STANDARD-ANTI-UBE" + b"B" * 50
CLEAN_README = b"This readme mentions http://docs.example/ and nothing bad at all.\n" * 4
CLEAN_NOISY = b"Our antivirus notes: EICAR-STANDARD-ANTIVIRUS-TEST-FILE is a test string.\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


RULES = """\
import "math"

rule MAL_Dropper_Eicar : dropper {
  meta:
    description = "EICAR inside a PE-looking dropper"
    hash = "%(dropper)s"
  strings:
    $url = "http://evil.example/" ascii
    $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
  condition:
    uint16(0) == 0x5A4D and filesize < 1MB and all of them
}

rule MAL_Any_Eicar {
  meta:
    hash = "%(dropper)s"
    hash = "%(missing)s"
  strings:
    $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
  condition:
    $eicar
}

rule MAL_Pdf_Gtube {
  meta:
    hash = "%(loader_md5)s"
  strings:
    $g = { 47 54 55 42 45 2D 53 54 41 4E 44 41 52 44 }
  condition:
    uint32(0) == 0x46445025 and $g
}

rule MAL_Pdf_Gtube_Dropper {
  condition:
    MAL_Pdf_Gtube or MAL_Dropper_Eicar
}
"""


def rules_text() -> str:
    return RULES % {"dropper": sha256(DROPPER), "missing": "ab" * 32,
                    "loader_md5": hashlib.md5(LOADER).hexdigest()}


@dataclass
class Lab:
    """A workspace with a malicious and a clean corpus registered and a rule file."""

    workspace: Workspace
    root: Path
    rules: Path
    malicious: Path
    clean: Path


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def edit_rules(lab: Lab, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the lab's rule file (it must be there)."""
    path = lab.rules / "main.yar"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@dataclass
class FakeArtifact:
    sha256: str
    filename: str
    mime: str
    size: int
    message_sha256: str
    path: Path
