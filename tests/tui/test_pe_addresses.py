"""PE addresses and file offsets are shown in hex, as pefile and every PE tool shows them."""

from __future__ import annotations

import pefile
from rich.console import Console

from workbench.dissect.formats.pe import PeReport
from workbench.dissect.model import Limits
from workbench.dissect.render import report_facts
from workbench.dissect.walker import dissect_bytes
from workbench.samples.threats import benign_pe
from workbench.tui.render import report_renderable


def plain(renderable: object) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_entry_point_image_base_and_sections_are_hex() -> None:
    name, data = benign_pe()
    result = dissect_bytes(data, name, limits=Limits(isolate=False))
    report = result.root.report
    assert isinstance(report, PeReport)
    reference = pefile.PE(data=data)
    entry = reference.OPTIONAL_HEADER.AddressOfEntryPoint
    assert report.entry_point == entry
    shown = plain(report_renderable(report))
    assert f"0x{entry:X}" in shown and f"0x{reference.OPTIONAL_HEADER.ImageBase:X}" in shown
    assert f"{entry:,}" not in shown.replace(f"0x{entry:X}", ""), "no decimal address beside it"
    for section in reference.sections:
        assert f"0x{section.VirtualAddress:X}" in shown
        assert f"0x{section.PointerToRawData:X}" in shown


def test_the_text_report_shows_the_overlay_offset_in_hex() -> None:
    name, data = benign_pe()
    data += b"OVERLAY!" * 64
    result = dissect_bytes(data, name, limits=Limits(isolate=False))
    offset = pefile.PE(data=data).get_overlay_data_start_offset()
    assert offset is not None
    assert any(f"at 0x{offset:X}" in line for line in report_facts(result.root.report))
