"""Signature repositories for tests: the house tree, git repositories, house-style rules."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import git

from workbench.rules.parse import parse_file, parse_text
from workbench.workspace import Workspace

HOUSE = Path(__file__).resolve().parents[2] / "signatures"


def init_repo(folder: Path, message: str) -> git.Repo:
    """A repository of everything in ``folder``, committed once."""
    repo = git.Repo.init(folder)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Tester")
        cw.set_value("user", "email", "tester@example.invalid")
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo


def house_rule(name: str, *, strings: str, condition: str, status: str = "RELEASED",
               hashes: list[str] | None = None, version: int = 1, modified: str = "2026-11-20",
               category: str | None = None, family: str | None = None, private: bool = False) -> str:
    """A rule following the house conventions, with its true fingerprint."""
    category = category or name.split("_")[0]
    family = family or name.split("_")[1]
    hashes = hashes or ["0" * 64]

    def render(fp: str) -> str:
        meta = [("id", str(uuid.uuid5(uuid.NAMESPACE_URL, name))), ("fingerprint", fp), ("version", version),
                ("date", "2026-11-20"), ("modified", modified), ("status", status),
                ("author", "Tester"), ("description", f"test rule {name}"), ("category", category),
                ("family", family), *[("hash", h) for h in hashes], ("source", hashes[0])]
        body = "\n".join(f"        {k} = {v}" if isinstance(v, int) else f'        {k} = "{v}"' for k, v in meta)
        strings_part = f"    strings:\n{strings}\n" if strings else ""
        return (f"{'private ' if private else ''}rule {name} {{\n    meta:\n{body}\n{strings_part}"
                f"    condition:\n        {condition}\n}}\n")

    fp = parse_text(render("0" * 64)).rules[0].fingerprint
    return render(fp)


def set_meta(path: Path, rule: str, key: str, value: str | int) -> None:
    """Replace the first ``key = ...`` line of ``rule`` in ``path``."""
    text = path.read_text()
    start = text.index(f"rule {rule} ")
    end = text.index("\n}", start)
    body = text[start:end]
    literal = str(value) if isinstance(value, int) else f'"{value}"'
    body = re.sub(rf"(\n\s*{key} = )[^\n]*", lambda m: m.group(1) + literal, body, count=1)
    path.write_text(text[:start] + body + text[end:])


def refresh_fingerprint(path: Path, rule: str) -> None:
    parsed = next(r for r in parse_file(path).rules if r.name == rule)
    set_meta(path, rule, "fingerprint", parsed.fingerprint)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class SigRepo:
    root: Path
    repo: git.Repo
    workspace: Workspace

    def commit(self, message: str = "change") -> git.Commit:
        self.repo.git.add(A=True)
        return self.repo.index.commit(message)

    def rule_file(self, rel: str) -> Path:
        return self.root / "rules" / rel


def change_gtube(sig: SigRepo, *, status: str | None = None) -> None:
    """A committed change to the house GTUBE rule (new fingerprint, version 2); with ``status``,
    the RTF rule's status changes too."""
    path = sig.rule_file("spam/gtube.yar")
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 12MB"))
    refresh_fingerprint(path, "SPAM_GTUBE_TestString")
    set_meta(path, "SPAM_GTUBE_TestString", "version", 2)
    set_meta(path, "SPAM_GTUBE_TestString", "modified", "2026-11-24")
    if status:
        set_meta(sig.rule_file("mal/wbrtfobj.yar"), "MAL_WbRtfObj_Package_Rtf", "status", status)
    sig.commit("gtube: allow bigger messages")
