"""The dissection tree as text: one line per artifact, the key facts of each report beneath it."""

from __future__ import annotations

from typing import Any

from workbench.dissect.model import OK, Artifact, Dissection
from workbench.humanize import shown
from workbench.humanize import size as human_size


def _facts(report: Any) -> list[str]:
    kind = type(report).__name__
    out: list[str] = []
    if kind == "MessageReport":
        out.append(f"from {report.from_addr or '-'} to {report.to or '-'}: {report.subject or '(no subject)'}")
        if report.auth:
            out.append("auth: " + ", ".join(f"{a.method}={a.result}" for a in report.auth[:8]))
        out += [f"mismatch: {m}" for m in report.mismatches]
        if report.received:
            out.append(f"received: {len(report.received)} hops")
        if report.urls:
            out.append("urls: " + ", ".join(u.defanged for u in report.urls[:5])
                       + (f" (+{len(report.urls) - 5})" if len(report.urls) > 5 else ""))
        out += [f"defect: {d}" for d in report.defects[:5]]
    elif kind == "ArchiveReport":
        line = f"{report.format}: {report.member_count} members"
        if report.encrypted:
            line += (f", encrypted, password {report.password!r}" if report.password
                     else f", encrypted, no password found ({report.passwords_tried} tried)"
                     if report.passwords_tried
                     else ", encrypted, no password tried")
        if report.notes:
            line += f" ({'; '.join(report.notes[:3])})"
        out.append(line)
        out += [f"high ratio: {r}" for r in report.high_ratio[:5]]
        if report.overlapping:
            out.append(f"overlapping entries: {', '.join(report.overlapping[:5])}")
        out += [f"link: {m.name} -> {m.link_target}" for m in report.members if m.kind == "symlink"][:5]
    elif kind == "OfficeReport":
        line = f"{report.container}"
        if report.vba:
            line += f", VBA: {', '.join(m.filename for m in report.modules if not m.child.startswith('XLM/'))}"
        if report.xlm:
            line += ", XLM macros"
        if report.mraptor:
            line += f", mraptor {report.mraptor.flags or '-'}{' SUSPICIOUS' if report.mraptor.suspicious else ''}"
        if report.encrypted:
            line += f", encrypted (decrypted with {report.decrypted_with!r})" if report.decrypted_with else ", encrypted"
        out.append(line)
        autoexec = [f.keyword for f in report.findings if f.kind == "AutoExec"]
        suspicious = [f.keyword for f in report.findings if f.kind == "Suspicious"]
        if autoexec:
            out.append("autoexec: " + ", ".join(autoexec[:8]))
        if suspicious:
            out.append("suspicious: " + ", ".join(suspicious[:8]))
        out += [f"external {r.type}: {r.target}" for r in report.external_relationships[:5]]
        out += [f"DDE: {d}" for d in report.dde[:3]]
        if report.xlm:
            out.append(f"XLM macros: {len(report.xlm_macros)} lines")
    elif kind == "PdfReport":
        if report.flags:
            out.append("flags: " + ", ".join(report.flags) + (f" (read by {report.parser})" if report.parser else ""))
        out += [f"script in {s.source}" + (f" via {', '.join(s.triggers[:3])}" if s.triggers else "")
                + (": runs on open" if s.auto else "") for s in report.scripts[:5]]
        if report.keyword_counts:
            out.append("keywords: " + ", ".join(f"{k} {v}" for k, v in report.keyword_counts.items()))
        out += [f"uri: {u}" for u in report.uris[:3]]
        out += [f"launch: {u}" for u in report.launch[:3]]
    elif kind == "PeReport":
        when = shown(report.compile_time, seconds=False) if report.compile_time else "?"
        out.append(f"{report.format} {report.machine} {report.subsystem}{' DLL' if report.dll else ''}, "
                   f"compiled {when}, {report.section_count} sections, imphash {report.imphash or '-'}")
        if report.signed:
            out.append("signed by: " + ("; ".join(report.signers) or "(unreadable)"))
        if report.overlay_offset is not None:
            out.append(f"overlay: {human_size(report.overlay_size)} at {report.overlay_offset}")
        if report.dotnet:
            out.append(f".NET {report.clr_version}")
        if report.tls_callbacks:
            out.append(f"TLS callbacks: {len(report.tls_callbacks)}")
        odd = [f"{s.name}: {s.mismatch}" for s in report.sections if s.mismatch]
        out += odd[:3]
    elif kind == "HtmlReport":
        if report.title:
            out.append(f"title: {report.title}")
        for form in report.forms[:3]:
            out.append(f"form {form.method.upper()} {form.action or '(self)'}"
                       + (" with a password field" if form.password_field else ""))
        if report.keywords:
            out.append("keywords: " + ", ".join(report.keywords[:10]))
        if report.iframes:
            out.append("iframes: " + ", ".join(report.iframes[:3]))
    elif kind == "TnefReport":
        out.append(f"TNEF {report.message_class}: {', '.join(report.attachments) or 'no attachments'}")
    return out


def _line(node: Artifact, parent_path: str) -> str:
    segment = node.path[len(parent_path) + 1:] if parent_path else node.path
    bits = [segment, node.mime or "?", human_size(node.size), node.sha256[:12]]
    if node.dissector:
        bits.append(f"[{node.dissector}]")
    if node.flags:
        bits.append("!" + ",".join(node.flags))
    if node.status != OK:
        bits.append(f"{node.status.upper()}: {node.reason}")
    return "  ".join(bits)


def render_tree(dissection: Dissection, *, facts: bool = True) -> str:
    lines: list[str] = []

    def visit(node: Artifact, parent_path: str, prefix: str, last: bool, is_root: bool) -> None:
        branch = "" if is_root else ("└── " if last else "├── ")
        lines.append(prefix + branch + _line(node, parent_path))
        inner = prefix + ("" if is_root else ("    " if last else "│   "))
        if facts and node.report is not None:
            bar = "│ " if node.children else "  "
            lines.extend(inner + bar + "  " + fact for fact in _facts(node.report))
        for i, child in enumerate(node.children):
            visit(child, node.path, inner, i == len(node.children) - 1, False)

    visit(dissection.root, "", "", True, True)
    lines.append("")
    lines.append(f"{dissection.nodes} artifacts, {human_size(dissection.expanded_bytes)} extracted, "
                 f"{dissection.elapsed_ms:.0f} ms, status {dissection.status}")
    if dissection.root.isolation:
        lines.append(f"isolation: {dissection.root.isolation}")
    return "\n".join(lines)
