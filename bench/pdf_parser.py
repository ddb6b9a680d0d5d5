"""Benchmark: which PDF object parser the dissector uses, measured on the same files.

    python bench/pdf_parser.py [--pages N] [--rounds R]

Files (built in memory): the small sample PDF with a script and an embedded file; a
PDF of N pages saved by qpdf with object streams; the sample made broken (NUL as
white-space, the xref keyword damaged). Each reader opens the file and touches every
object: pikepdf (qpdf, the dissector's parser), pypdf (pure Python, when installed:
``pip install pypdf``), and the workbench's PDF dissector in-process (qpdf walk plus
the raw keyword scan) and its raw scanner alone (the fallback). Best of R rounds.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable

import pikepdf

from workbench.dissect.dissectors import DissectContext
from workbench.dissect.formats.pdf import PdfDissector, PdfReport
from workbench.dissect.model import DissectResult, Limits
from workbench.samples.documents import build_pdf
from workbench.samples.pe import build_pe


def _files(pages: int) -> dict[str, bytes]:
    sample = build_pdf("x", javascript="app.alert(1);", uri="http://pdf.example/", embedded=("a.exe", build_pe()))
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page()
    out = io.BytesIO()
    pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    broken = sample.replace(b" 0 obj", b"\x000 obj").replace(b"xref", b"xre_")
    return {"sample": sample, f"{pages}-pages-objstm": out.getvalue(), "broken": broken}


def _pikepdf(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return sum(1 for _ in pdf.objects)


def _pypdf(data: bytes) -> int:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    count = 0
    for number in range(1, int(reader.trailer["/Size"])):
        try:
            reader.get_object(number)
            count += 1
        except Exception:
            pass
    return count


def _ctx() -> DissectContext:
    return DissectContext("b.pdf", "", "application/pdf", "", Limits(max_pdf_objects=1 << 30))


def _dissector(data: bytes) -> int:
    report = PdfDissector().dissect(data, _ctx()).report
    assert isinstance(report, PdfReport)
    return report.objects_examined


def _raw(data: bytes) -> int:
    result, report = DissectResult(), PdfReport()
    PdfDissector()._raw(data, _ctx(), report, result)
    return report.objects_examined


def _best(fn: Callable[[bytes], int], data: bytes, rounds: int) -> tuple[float, str]:
    best, answer = float("inf"), ""
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            answer = str(fn(data))
        except Exception as exc:
            answer = f"failed: {type(exc).__name__}"
        best = min(best, time.perf_counter() - start)
    return best * 1000, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    readers: dict[str, Callable[[bytes], int]] = {"pikepdf": _pikepdf, "pypdf": _pypdf,
                                                   "dissector": _dissector, "raw scanner": _raw}
    try:
        import pypdf  # noqa: F401
    except ImportError:
        del readers["pypdf"]
        print("pypdf not installed: pip install pypdf to compare it")
    print(f"load average {os.getloadavg()[0]:.1f}, pikepdf {pikepdf.__version__} (qpdf {pikepdf.__libqpdf_version__})")
    for name, data in _files(args.pages).items():
        print(f"\n{name}: {len(data):,} bytes")
        times = {}
        for reader, fn in readers.items():
            ms, answer = _best(fn, data, args.rounds)
            times[reader] = ms
            print(f"  {reader:12} {ms:9.1f} ms   objects: {answer}")
        if "pypdf" in times:
            print(f"  pypdf / pikepdf: {times['pypdf'] / times['pikepdf']:.1f}x")


if __name__ == "__main__":
    main()
