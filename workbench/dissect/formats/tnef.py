"""TNEF (winmail.dat): Outlook's wrapper; its attachments and bodies become children (tnefparse)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.dissect.dissectors import DissectContext, Dissector
from workbench.dissect.model import PARSER_ERROR, PARTIAL, Child, DissectResult


@dataclass
class TnefReport:
    key: int = 0
    message_class: str = ""
    subject: str = ""
    attachments: list[str] = field(default_factory=list)
    has_body: bool = False
    has_html: bool = False
    has_rtf: bool = False

    def facts(self) -> list[str]:
        """What the dissection tree shows beneath a TNEF wrapper, in the CLI and the UI alike."""
        return [f"TNEF {self.message_class}: {', '.join(self.attachments) or 'no attachments'}"]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("latin-1")
    return str(value or "")


class TnefDissector(Dissector):
    name = "tnef"
    version = 1
    mimes = ("application/ms-tnef", "application/vnd.ms-tnef")
    magic_words = ("Transport Neutral Encapsulation Format",)
    prefixes = (b"\x78\x9f\x3e\x22",)
    report_type = TnefReport

    def dissect(self, data: bytes, ctx: DissectContext) -> DissectResult:
        from tnefparse import TNEF

        result = DissectResult()
        report = TnefReport()
        result.report = report
        try:
            tnef = TNEF(data)
        except Exception as exc:   # tnefparse raises ValueError, struct.error, IndexError ...
            result.problem(PARSER_ERROR, f"TNEF unreadable: {type(exc).__name__}: {exc}")
            return result
        report.key = tnef.key
        for obj in tnef.objects:
            if obj.name == TNEF.ATTMESSAGECLASS:
                report.message_class = _text(obj.data)
            elif obj.name == TNEF.ATTSUBJECT:
                report.subject = _text(obj.data)[:1000]
        for i, att in enumerate(tnef.attachments, start=1):
            try:
                name = att.long_filename() or _text(getattr(att, "name", "")) or f"attachment{i}.bin"
            except Exception:
                name = f"attachment{i}.bin"
            payload = getattr(att, "data", b"") or b""
            report.attachments.append(name)
            if len(payload) > ctx.limits.max_child:
                result.problem("limit-hit", f"{name}: {len(payload)} bytes over the child limit")
                continue
            result.children.append(Child(name, bytes(payload), note="TNEF attachment"))
        if tnef.body:
            report.has_body = True
            body = tnef.body if isinstance(tnef.body, bytes) else str(tnef.body).encode("utf-8")
            result.children.append(Child("body.txt", body, declared_type="text/plain", note="TNEF body"))
        if tnef.htmlbody:
            report.has_html = True
            body = tnef.htmlbody if isinstance(tnef.htmlbody, bytes) else str(tnef.htmlbody).encode("utf-8")
            result.children.append(Child("body.html", body, declared_type="text/html", note="TNEF HTML body"))
        try:
            rtf = tnef.rtfbody
        except Exception as exc:
            result.problem(PARTIAL, f"compressed RTF body unreadable: {type(exc).__name__}")
            rtf = None
        if rtf:
            report.has_rtf = True
            result.children.append(Child("body.rtf", rtf if isinstance(rtf, bytes) else str(rtf).encode(),
                                         note="TNEF RTF body"))
        return result


DISSECTORS = [TnefDissector]
