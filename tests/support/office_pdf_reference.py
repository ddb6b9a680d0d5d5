"""The reference tools the Office and PDF parity tests run on the same bytes as the workbench.

oletools (msodde, oleobj, rtfobj, olevba, mraptor) and pikepdf, called as their own
command-line front ends call them; each answer is normalised so it compares with the
workbench's report field by field.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any


def _quiet() -> None:
    for name in ("msodde", "oleobj", "rtfobj", "olevba", "olefile", "mraptor", "xls_parser", "ppt_parser",
                 "ooxml", "record_base", "oletools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def normalise_command(text: str) -> str:
    """A DDE command as text to compare: msodde keeps a UTF-16 field's NULs and the field's spaces."""
    return " ".join(text.replace("\x00", "").split())


def msodde_commands(data: bytes, suffix: str) -> list[str]:
    """What ``msodde --dde-only FILE`` prints, one command a line (msodde reads a path, not bytes).

    msodde raises on text it cannot sniff as CSV (a SYLK file, for one): that is "found
    nothing", which is what its command line reports after the error.
    """
    import csv

    from oletools import msodde

    _quiet()
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            out = msodde.process_file(path, msodde.FIELD_FILTER_DDE)
        except csv.Error:
            return []
    finally:
        os.unlink(path)
    return [normalise_command(line) for line in out.splitlines() if normalise_command(line)]


def oleobj_packages(data: bytes, name: str = "sample") -> list[tuple[str, str]]:
    """(file name, sha256) of every embedded file oleobj would dump (linked objects are skipped)."""
    from oletools import oleobj

    _quiet()
    found = []
    for ole in oleobj.find_ole(name, data):
        if ole is None:
            continue
        for parts in ole.listdir():
            if parts[-1].lower() != "\x01ole10native":
                continue
            native = oleobj.OleNativeStream(ole.openstream(parts).read())
            if native.is_link:
                continue
            found.append((native.filename, hashlib.sha256(native.data or b"").hexdigest()))
    return found


def rtfobj_objects(data: bytes) -> list[tuple[str, str]]:
    """(file name, sha256) of each object rtfobj extracts: the package's file, or the OLE data."""
    from oletools.rtfobj import RtfObjParser

    _quiet()
    parser = RtfObjParser(data)
    parser.parse()
    out = []
    for obj in parser.objects:
        if obj.is_package:
            out.append((obj.filename, hashlib.sha256(obj.olepkgdata).hexdigest()))
        elif obj.is_ole:
            out.append(("", hashlib.sha256(obj.oledata).hexdigest()))
        else:
            out.append(("", hashlib.sha256(obj.rawdata).hexdigest()))
    return out


@dataclass
class OlevbaAnswer:
    vba: bool = False
    xlm: bool = False
    modules: list[str] = field(default_factory=list)       # vba_filename of each module (xlm_macro.txt)
    autoexec: list[str] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)
    mraptor_flags: str = ""
    xlm_lines: list[str] = field(default_factory=list)


def olevba_answer(data: bytes, filename: str) -> OlevbaAnswer:
    """olevba's macros, AutoExec and Suspicious keywords, and mraptor's flags over the same code."""
    from oletools.mraptor import MacroRaptor
    from oletools.olevba import VBA_Parser

    _quiet()
    parser = VBA_Parser(filename, data=data)
    try:
        answer = OlevbaAnswer(vba=bool(parser.detect_vba_macros()), xlm=bool(parser.detect_xlm_macros()))
        if not (answer.vba or answer.xlm):
            return answer
        answer.modules = [vba_filename for _f, _s, vba_filename, _c in parser.extract_macros()]
        results = parser.analyze_macros() or []
        answer.autoexec = [str(k) for kind, k, _d in results if kind == "AutoExec"]
        answer.suspicious = [str(k) for kind, k, _d in results if kind == "Suspicious"]
        raptor = MacroRaptor(parser.get_vba_code_all_modules())
        raptor.scan()
        answer.mraptor_flags = raptor.get_flags()
        answer.xlm_lines = [str(line) for line in parser.xlm_macros or []]
        return answer
    finally:
        parser.close()


@dataclass
class PikepdfAnswer:
    scripts: list[str] = field(default_factory=list)        # sha256 of each /JS value (string or stream)
    attachments: list[tuple[str, str]] = field(default_factory=list)   # (name, sha256)


def pikepdf_answer(data: bytes) -> PikepdfAnswer:
    """Every /JS value in any dictionary (trailer, object streams, name trees, nested actions) and
    every embedded file, as read by pikepdf/qpdf, independently of the workbench's walk."""
    import io

    import pikepdf

    answer = PikepdfAnswer()

    def value_bytes(value: Any) -> bytes | None:
        if isinstance(value, pikepdf.String):
            raw = bytes(value)
            return raw.decode("utf-16").encode("utf-8") if raw.startswith((b"\xfe\xff", b"\xff\xfe")) else raw
        if isinstance(value, pikepdf.Stream):
            return bytes(value.read_bytes())
        return None

    def walk(obj: Any, depth: int = 0) -> None:
        if depth > 50:
            return
        if isinstance(obj, pikepdf.Stream):
            obj = obj.stream_dict
        if isinstance(obj, pikepdf.Dictionary):
            if "/JS" in obj:
                code = value_bytes(obj.JS)
                if code is not None:
                    answer.scripts.append(hashlib.sha256(code).hexdigest())
            for value in obj.values():
                if not getattr(value, "is_indirect", False):
                    walk(value, depth + 1)
        elif isinstance(obj, pikepdf.Array):
            for value in obj:
                if not getattr(value, "is_indirect", False):
                    walk(value, depth + 1)

    with pikepdf.open(io.BytesIO(data)) as pdf:
        walk(pdf.trailer)
        for obj in pdf.objects:
            walk(obj)
        for name, spec in pdf.attachments.items():
            answer.attachments.append((name, hashlib.sha256(spec.get_file().read_bytes()).hexdigest()))
    return answer
