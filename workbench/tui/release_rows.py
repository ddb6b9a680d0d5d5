"""What the release screen draws: table cells and detail texts of changes, findings and releases (no Textual)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from workbench.humanize import shown
from workbench.tui.render import SEVERITY_STYLES

if TYPE_CHECKING:
    from workbench.release.release_store import Release
    from workbench.release.validate import ValidationReport
    from workbench.release.worktree import Change, SignaturesView
    from workbench.rules.findings import Finding

Cell = str | Text

KIND_STYLES = {"added": "bold green", "modified": "bold yellow", "removed": "bold red",
               "status": "cyan", "file": "dim"}


def change_cells(c: Change) -> list[Cell]:
    if c.kind == "status" or (c.previous_status and c.status != c.previous_status and c.kind != "added"):
        status = f"{c.previous_status or '-'} → {c.status or '-'}"
    else:
        status = c.status or c.previous_status
    if c.kind == "modified" and c.previous_version != c.version:
        version = f"{c.previous_version or '?'} → {c.version or '?'}"
    else:
        version = c.version or c.previous_version
    git = Text(c.git or "committed", style="yellow" if c.git else "dim")
    # every rule lives under rules/: the prefix only takes room
    return [Text(c.kind, style=KIND_STYLES.get(c.kind, "")), c.rule or "(file)",
            c.file.removeprefix("rules/"), version, status, git]


def finding_cells(f: Finding) -> list[Cell]:
    where = f"{Path(f.file).name}:{f.line}" if f.line else Path(f.file).name
    return [Text(f.severity, style=SEVERITY_STYLES.get(f.severity, "")), f.id, where, f.rule, f.message]


def release_cells(item: tuple[Release, bool]) -> list[Cell]:
    release, published = item
    note = f"(reverts to {release.reverts}) {release.message}" if release.reverts else release.message
    return [str(release.serial), shown(release.created, seconds=False), release.commit[:10],
            str(release.rule_count), Text("✓", style="bold green") if published else Text("-", style="dim"),
            note]


def diff_text(diff: str) -> Text:
    """A unified diff coloured line by line (never parsed as markup, never wrapped)."""
    out = Text(no_wrap=True, overflow="ignore")
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff ", "index ", "new file")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        out.append(line + "\n", style=style)
    return out


def status_text(view: SignaturesView) -> Text:
    out = Text()
    out.append("Signatures ", style="bold")
    out.append(view.root.name)
    if view.branch:
        out.append(f" · {view.branch} @ {view.head}")
    if view.uncommitted:
        out.append(f" · {len(view.uncommitted)} uncommitted", style="yellow")
    elif view.head:
        out.append(" · clean", style="green")
    out.append(f" · {view.ships} rules ship\n", style="")
    out.append("Last release ", style="bold")
    if view.latest is not None:
        out.append(f"{view.latest.tag} ({shown(view.latest.created, seconds=False)}, "
                   f"{view.latest.rule_count} rules)")
    else:
        out.append("none yet", style="dim")
    out.append(" · published ", style="bold")
    if not view.repository:
        out.append("no update repository (workbench keys init)", style="yellow")
    elif view.newest_published is None:
        out.append("nothing yet", style="dim")
    else:
        out.append(f"up to serial {view.newest_published}")
        if view.latest is not None and view.latest.serial > view.newest_published:
            out.append(f" · {view.latest.tag} not published (p)", style="yellow")
    if view.problem:
        out.append(f"\n{view.problem}", style="bold red")
    return out


def finding_text(finding: Finding | None, report: ValidationReport | None) -> Text:
    if finding is None:
        if report is None:
            return Text("v validates the whole repository; c checks the changed rules before committing",
                        style="dim")
        out = Text()
        if not report.findings:
            out.append("✓ no findings\n\n", style="green")
        for check in report.checks:
            out.append(f"{check.status:<8}", style="green" if check.status == "passed" else
                       ("dim" if check.status == "skipped" else "bold red"))
            out.append(f" {check.title}  ({check.errors} errors, {check.warnings} warnings)\n")
        for note in report.notes:
            out.append(f"\n{note}", style="dim")
        return out
    out = Text()
    out.append(f"{finding.severity} {finding.id}", style=SEVERITY_STYLES.get(finding.severity, ""))
    out.append(f"  {finding.file}:{finding.line}:{finding.column}\n", style="dim")
    if finding.rule:
        out.append(f"rule {finding.rule}\n", style="bold")
    out.append(f"\n{finding.message}\n")
    if finding.hint:
        out.append(f"\n→ {finding.hint}\n", style="italic")
    out.append("\nenter opens the rule in the editor at this line", style="dim")
    return out


def release_text(release: Release, published: bool) -> Text:
    out = Text()
    out.append(release.tag, style="bold")
    out.append(f"  {'published' if published else 'not published (p publishes)'}\n",
               style="green" if published else "yellow")
    out.append(f"commit {release.commit}\ncreated {release.created} · built {release.built}\n"
               f"{release.rule_count} rules · bundle {release.bundle_sha256[:16]}… "
               f"({release.bundle_size:,} bytes)\n", style="dim")
    if release.reverts:
        out.append(f"re-ships the content of signatures-{release.reverts}\n", style="yellow")
    if release.message:
        out.append(f"\n{release.message}\n")
    try:
        lines = release.changelog.lines()
    except (OSError, ValueError, KeyError):
        lines = ["(changelog unreadable)"]
    out.append("\n" + "\n".join(lines))
    return out
