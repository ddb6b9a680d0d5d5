"""The Office and PE builders produce files that the field's own tools read back."""

from __future__ import annotations

import random

import olefile
import pefile
import pytest
from oletools.mraptor import MacroRaptor
from oletools.olevba import VBA_Parser, decompress_stream

from workbench.samples.office import (
    AUTOOPEN_SHELL_MACRO,
    build_cfb,
    build_encrypted_docx,
    build_vba_document,
    ovba_compress,
)
from workbench.samples.pe import RT_RCDATA, Resource, build_pe


@pytest.mark.parametrize("size", [0, 1, 7, 100, 4095, 4096, 4097, 20_000])
def test_ovba_compression_round_trips_through_olevba(size: int) -> None:
    rnd = random.Random(size)
    text = bytes(rnd.choice(b"Sub End Shell Dim x = 1\r\n") for _ in range(size))
    packed = ovba_compress(text)
    assert decompress_stream(packed) == text
    if size > 200:
        assert len(packed) < size           # real LZ77, not just literals


def test_ovba_incompressible_chunks_are_raw() -> None:
    data = random.Random(3).randbytes(8192)
    assert decompress_stream(ovba_compress(data)) == data


def test_cfb_writer_big_and_small_streams() -> None:
    streams = {"A": b"a" * 10, "Dir/B": b"b" * 5000, "Dir/Sub/C": b"c" * 4095, "Empty": b""}
    ole = olefile.OleFileIO(build_cfb(streams))
    for path, data in streams.items():
        assert ole.openstream(path).read() == data
    assert sorted("/".join(p) for p in ole.listdir()) == sorted(streams)


@pytest.mark.parametrize("kind", ["doc", "docm"])
@pytest.mark.parametrize("module", ["ThisDocument", "NewMacros"])
def test_vba_document_is_read_by_olevba_and_mraptor(kind: str, module: str) -> None:
    data = build_vba_document(AUTOOPEN_SHELL_MACRO, kind=kind, module_name=module)
    parser = VBA_Parser(f"sample.{kind}", data=data)
    assert parser.detect_vba_macros()
    macros = {vba_name: code for _, _, vba_name, code in parser.extract_macros()}
    suffix = ".cls" if module == "ThisDocument" else ".bas"
    assert "Shell cmd, vbHide" in macros[module + suffix]
    found = {(kind_, keyword) for kind_, keyword, _ in parser.analyze_macros()}
    assert ("AutoExec", "AutoOpen") in found
    assert ("Suspicious", "Shell") in found
    raptor = MacroRaptor(parser.get_vba_code_all_modules())
    raptor.scan()
    assert raptor.suspicious and raptor.autoexec and raptor.execute


def test_vba_document_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        build_vba_document("Sub X()\nEnd Sub", kind="pptm")


def test_pe_loads_with_imports_exports_resources_and_overlay() -> None:
    data = build_pe(exports=["Run", "Install"], dll=True,
                    resources=[Resource(RT_RCDATA, 101, b"R" * 3000)],
                    version_info={"CompanyName": "Contoso", "OriginalFilename": "invoice.exe"},
                    tls_callbacks=2, overlay=b"OVERLAY!" * 16)
    pe = pefile.PE(data=data)
    assert [s.Name.rstrip(b"\0") for s in pe.sections] == [b".text", b".data", b".rdata", b".rsrc"]
    imports = {e.dll: [i.name for i in e.imports] for e in pe.DIRECTORY_ENTRY_IMPORT}
    assert imports[b"kernel32.dll"][:2] == [b"GetProcAddress", b"LoadLibraryA"]
    assert sorted(s.name for s in pe.DIRECTORY_ENTRY_EXPORT.symbols) == [b"Install", b"Run"]
    assert pe.get_overlay() == b"OVERLAY!" * 16
    assert pe.parse_rich_header()["values"]
    strings = pe.FileInfo[0][0].StringTable[0].entries
    assert strings[b"OriginalFilename"] == b"invoice.exe"
    assert pe.DIRECTORY_ENTRY_TLS.struct.AddressOfCallBacks


def test_pe_amd64_and_hostile_options() -> None:
    assert pefile.PE(data=build_pe(machine="amd64")).OPTIONAL_HEADER.Magic == 0x20B
    many = pefile.PE(data=build_pe(n_sections=5000), fast_load=True)
    assert many.FILE_HEADER.NumberOfSections == 5000
    assert any("Too many sections" in w for w in many.get_warnings())
    assert len(build_pe(truncate=300)) == 300


@pytest.mark.parametrize("password", ["VelvetSweatshop", "4471"])
def test_encrypted_docx_decrypts_with_msoffcrypto(password: str) -> None:
    import io
    import zipfile

    import msoffcrypto

    office = msoffcrypto.OfficeFile(io.BytesIO(build_encrypted_docx(password, paragraphs=["secret contract"])))
    assert office.is_encrypted()
    office.load_key(password=password)
    plain = io.BytesIO()
    office.decrypt(plain)
    with zipfile.ZipFile(plain) as zf:
        assert b"secret contract" in zf.read("word/document.xml")
    wrong = msoffcrypto.OfficeFile(io.BytesIO(build_encrypted_docx(password)))
    wrong.load_key(password=password + "x")
    with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
        wrong.decrypt(io.BytesIO())
