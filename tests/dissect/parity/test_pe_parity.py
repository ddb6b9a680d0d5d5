"""PE parity: whatever pefile finds (overlay, imphash, imports, sections, data directories), the PE
dissector reports, including on PEs that declare fewer than 16 data directories."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pefile
import pytest

from workbench.dissect.model import OK, Artifact
from workbench.dissect.walker import dissect_bytes
from workbench.dissect.worker import WorkerPool
from workbench.samples.pe import build_pe

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

OVERLAY = b"OVERLAY-CONFIG:" + bytes(range(256)) * 4


def assert_covers(node: Artifact, data: bytes) -> None:
    """The node shows at least what pefile finds in ``data``."""
    pe = pefile.PE(data=data)
    r = node.report
    assert node.dissector == "pe" and r is not None
    # Sections
    assert [(s.name, s.virtual_address, s.raw_size) for s in r.sections] == [
        (s.Name.rstrip(b"\x00").decode("latin-1"), s.VirtualAddress, s.SizeOfRawData) for s in pe.sections]
    # Data directories: every non-empty one, and no more than the header declares.
    expected = [(d.name.removeprefix("IMAGE_DIRECTORY_ENTRY_"), d.VirtualAddress, d.Size)
                for d in pe.OPTIONAL_HEADER.DATA_DIRECTORY if d.VirtualAddress or d.Size]
    assert [(d.name, d.virtual_address, d.size) for d in r.directories] == expected
    assert r.directory_count == pe.OPTIONAL_HEADER.NumberOfRvaAndSizes
    # Imports and imphash
    found = {(i.dll, f) for i in r.imports for f in i.functions}
    ref = {(e.dll.decode(), i.name.decode() if i.name else f"ord{i.ordinal}")
           for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []) for i in e.imports}
    assert ref <= found
    assert r.imphash == pe.get_imphash()
    # Exports
    ref_exports = [s.name.decode() for s in getattr(getattr(pe, "DIRECTORY_ENTRY_EXPORT", None), "symbols", [])
                   if s.name]
    assert set(ref_exports) <= set(r.exports)
    # Overlay: pefile's offset (past an Authenticode table, which the workbench reports as the signature).
    start = pe.get_overlay_data_start_offset()
    if start is None or start >= len(data):
        assert r.overlay_offset is None
        return
    security = pe.OPTIONAL_HEADER.DATA_DIRECTORY[4] if len(pe.OPTIONAL_HEADER.DATA_DIRECTORY) > 4 else None
    if security is not None and security.Size and security.VirtualAddress == start:
        start += security.Size
    if start >= len(data):
        assert r.overlay_offset is None
        return
    assert (r.overlay_offset, r.overlay_size) == (start, len(data) - start)
    overlay = next(c for c in node.children if c.note.startswith("PE overlay"))
    assert overlay.sha256 == hashlib.sha256(data[start:]).hexdigest()


@pytest.mark.parametrize("directories", [0, 1, 2, 4, 5, 10, 13, 14, 15, 16])
def test_few_data_directories(pool: WorkerPool, directories: int) -> None:
    imports = None if directories >= 2 else {}
    data = build_pe(data_directories=directories, imports=imports, signer="Contoso" if directories > 4 else None,
                    dotnet=directories > 14, overlay=OVERLAY)
    assert pefile.PE(data=data).OPTIONAL_HEADER.NumberOfRvaAndSizes == directories
    node = dissect_bytes(data, "tiny.exe", pool=pool).root
    assert node.status == OK, node.reason          # no IndexError, nothing partial
    assert_covers(node, data)
    assert node.report.overlay_size >= len(OVERLAY)


def test_dotnet_and_signature_past_the_declared_directories_are_not_read(pool: WorkerPool) -> None:
    # The builder lays out a CLR header and a certificate, but the header declares 4 directories:
    # neither exists for a loader, so neither is reported, and the certificate bytes are overlay.
    data = build_pe(data_directories=4, dotnet=True, signer="Contoso", overlay=OVERLAY)
    node = dissect_bytes(data, "tiny.exe", pool=pool).root
    assert node.status == OK and not node.report.dotnet and not node.report.signed
    assert_covers(node, data)


def test_amd64_with_few_directories(pool: WorkerPool) -> None:
    data = build_pe(machine="amd64", data_directories=3, exports=["Run"], dll=True, overlay=OVERLAY)
    node = dissect_bytes(data, "tiny.dll", pool=pool).root
    assert node.status == OK and node.report.format == "PE32+"
    assert_covers(node, data)


def test_benign_twin_full_pe(pool: WorkerPool) -> None:
    data = build_pe(exports=["Run"], dll=True, tls_callbacks=1, signer="Contoso", dotnet=True, overlay=OVERLAY)
    node = dissect_bytes(data, "x.dll", pool=pool).root
    assert node.status == OK and node.report.signed and node.report.dotnet
    assert_covers(node, data)
    plain = build_pe()
    node = dissect_bytes(plain, "plain.exe", pool=pool).root
    assert node.report.overlay_offset is None and not [c for c in node.children if c.note.startswith("PE overlay")]
    assert_covers(node, plain)


def _real_pes() -> list[Path]:
    import importlib.util

    roots = []
    for package, sub in (("pip", "_vendor/distlib"), ("setuptools", "")):
        spec = importlib.util.find_spec(package)           # found, not imported (setuptools patches distutils)
        if spec is not None and spec.origin:
            roots.append(Path(spec.origin).parent / sub)
    return sorted(p for root in roots for p in root.glob("*.exe"))


@pytest.mark.skipif(not _real_pes(), reason="no launcher .exe files in pip/setuptools here")
def test_real_launchers_from_python_packages(pool: WorkerPool) -> None:
    for path in _real_pes():
        data = path.read_bytes()
        node = dissect_bytes(data, path.name, pool=pool).root
        try:
            assert_covers(node, data)
        except AssertionError as exc:
            raise AssertionError(f"{path}: {exc}") from exc
