"""The rules of a file as the last release shipped them: what an edit's metadata is measured against."""

from __future__ import annotations

from pathlib import Path

from workbench.release.signature_repository import SignatureRepository, SignatureRepositoryError
from workbench.rules.parse import RuleSource, parse_text


def latest_release_tag(repo: SignatureRepository) -> str:
    """The newest ``signatures-N`` tag, or "" (no git, or nothing released yet)."""
    if repo.repo is None:
        return ""
    tags = repo.release_tags()
    return tags[max(tags)].name if tags else ""


def released_rules(signatures: Path, path: Path) -> dict[str, RuleSource] | None:
    """Rules by name in rule file ``path`` at the newest release tag of ``signatures``.

    ``None`` when there is nothing to compare with (no git repository, no release yet, or
    the file lies outside the signatures folder); ``{}`` when the release had no such file.
    """
    try:
        repo = SignatureRepository(signatures)
        rel = Path(path).resolve().relative_to(repo.root).as_posix()
    except (ValueError, OSError):
        return None
    tag = latest_release_tag(repo)
    if not tag:
        return None
    try:
        data = next((f.data for f in repo.files_at(tag, rel) if f.path == rel), None)
    except SignatureRepositoryError:
        return None
    if data is None:
        return {}
    return {r.name: r for r in parse_text(data.decode("utf-8", "replace")).rules}
