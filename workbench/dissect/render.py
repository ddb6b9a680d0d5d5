"""The dissection tree as text: one line per artifact, the key facts of each report beneath it."""

from __future__ import annotations

from workbench.dissect.model import OK, Artifact, Dissection
from workbench.humanize import size as human_size


def report_facts(report: object) -> list[str]:
    """The key facts of a format report, as its type declares them (``facts()``); none for a
    report without that method. The CLI's tree and the UI's report tab both show these."""
    facts = getattr(report, "facts", None)
    return [str(fact) for fact in facts()] if callable(facts) else []


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
            lines.extend(inner + bar + "  " + fact for fact in report_facts(node.report))
        for i, child in enumerate(node.children):
            visit(child, node.path, inner, i == len(node.children) - 1, False)

    visit(dissection.root, "", "", True, True)
    lines.append("")
    lines.append(f"{dissection.nodes} artifacts, {human_size(dissection.expanded_bytes)} extracted, "
                 f"{dissection.elapsed_ms:.0f} ms, status {dissection.status}")
    if dissection.root.isolation:
        lines.append(f"isolation: {dissection.root.isolation}")
    return "\n".join(lines)
