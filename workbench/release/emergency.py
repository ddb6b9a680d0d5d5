"""The emergency kill switch: take one rule out of service in a minimal, signed-off release.

``rule disable ID --emergency`` must not wait for a full validation, and must not ship
anything but the removal. So the new release is the newest release's tree with that one
rule's status set to DISABLED, nothing else:

- what still runs: the bundle build (the remaining rules compile together: a rule that
  uses the removed one fails here, and says so) and every remaining self-test;
- what is skipped, because removing a rule cannot change its outcome: lint, version-bump
  checks, the corpus runs (true and false positives of other rules), scan-time budgets;
- what is recorded: the status change committed on the branch with CHANGELOG.md, an
  annotated ``signatures-N`` tag, and the release in the store like any other.

If the branch has moved on since the newest release, the tag points at a commit made
beside the branch (the released tree plus the removal, parent: the released commit),
so unreleased, unvalidated work never ships by this path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import git

from workbench.durable import atomic_write
from workbench.errors import Kind
from workbench.release.build import BuiltRuleset, prepare_tree
from workbench.release.bundle import BundleError
from workbench.release.changelog import Changelog, diff_rulesets
from workbench.release.release_store import PENDING_NAME, Release, ReleaseStore, tag_name
from workbench.release.service import (
    ReleaseRefused,
    _changelog_text,
    _open_repo,
    _settings,
    _tag_message,
    recover,
)
from workbench.release.signature_repository import SignatureRepository, commit_time
from workbench.rules.parse import parse_text
from workbench.workspace import Workspace

DISABLED = "DISABLED"
SKIPPED = ("lint", "version bump", "corpus true/false positives", "scan-time budget")


@dataclass
class EmergencyOutcome:
    """What ``workbench rule disable ID --emergency`` did."""

    rule: str
    file: str
    serial: int
    tag: str
    commit: str                       # the commit the bundle is built from (tagged)
    branch_commit: str                # the status change on the branch
    previous_serial: int
    rules_shipped: int
    bundle_path: str
    bundle_sha256: str
    skipped: list[str] = field(default_factory=lambda: list(SKIPPED))
    release: Release | None = field(default=None, metadata={"internal": True})


def set_rule_status(text: str, rule: str, status: str) -> str:
    """``text`` with ``rule``'s ``status`` meta set (added to its meta section if missing)."""
    head = re.search(rf"(?m)^[ \t]*(?:(?:private|global)[ \t]+)*rule[ \t]+{re.escape(rule)}\b", text)
    if head is None:
        raise ReleaseRefused(f"rule {rule} not found in its file", kind=Kind.INPUT)
    end = text.find("\n}", head.end())
    end = len(text) if end < 0 else end
    body = text[head.end():end]
    meta = re.search(r"(?m)^([ \t]*)meta[ \t]*:[ \t]*$", body)
    section_end = re.search(r"(?m)^[ \t]*(?:strings|condition)[ \t]*:", body)
    if meta is not None:
        stop = section_end.start() if section_end else len(body)
        status_line = re.compile(r'(?m)^([ \t]*status[ \t]*=[ \t]*)"[^"\n]*"')
        found = status_line.search(body, meta.end(), stop)
        if found:
            body = body[:found.start()] + f'{found.group(1)}"{status}"' + body[found.end():]
        else:
            indent = meta.group(1) + "    "
            body = body[:meta.end()] + f'\n{indent}status = "{status}"' + body[meta.end():]
    else:
        at = section_end.start() if section_end else len(body)
        body = body[:at] + f'    meta:\n        status = "{status}"\n' + body[at:]
    new = text[:head.end()] + body + text[end:]
    parsed = next((r for r in parse_text(new).rules if r.name == rule), None)
    if parsed is None or parsed.meta_value("status") != status:
        raise ReleaseRefused(f"could not set the status of {rule} in its file", kind=Kind.INPUT)
    return new


def rule_file(workspace: Workspace, rule: str) -> Path:
    """The file of the signatures tree that defines ``rule`` (``ReleaseRefused`` NOT_FOUND if none)."""
    from workbench.release.validate import load_rule_tree

    rules_dir = workspace.signatures / "rules"
    files, _problems = load_rule_tree(rules_dir)
    for rf in files:
        if rf.path is not None and any(r.name == rule for r in rf.rules):
            return rf.path
    raise ReleaseRefused(f"no rule {rule} under {rules_dir}", kind=Kind.NOT_FOUND)


def set_status_in_tree(workspace: Workspace, rule: str, status: str) -> Path:
    """Set ``rule``'s status in its file of the working tree (``rule disable`` without
    ``--emergency``, and a NOISY or DISABLED proposal taken from the rule-health view):
    the change then goes through the ordinary commit, validation and release."""
    path = rule_file(workspace, rule)
    # ReleaseRefused from the rule's own text is about the input: it says what to fix
    changed = set_rule_status(path.read_text(encoding="utf-8", errors="surrogateescape"), rule, status)
    atomic_write(path, changed.encode("utf-8", "surrogateescape"))
    return path


def emergency_disable(workspace: Workspace, rule: str, *, message: str = "") -> EmergencyOutcome:
    repo = _open_repo(workspace)
    store = ReleaseStore(workspace)
    with store.releasing():
        recover(repo, store)
        return _emergency_disable(repo, store, rule, message=message)


def _emergency_disable(repo: SignatureRepository, store: ReleaseStore, rule: str, *,
                       message: str) -> EmergencyOutcome:
    latest = store.latest()
    if latest is None:
        raise ReleaseRefused("no release yet: there is nothing to take a rule out of")
    state = next((r for r in latest.ruleset if r.name == rule), None)
    if state is None or not state.shipped:
        raise ReleaseRefused(f"rule {rule} does not ship in {latest.tag}: nothing to disable")
    rel = state.file
    settings = _settings(repo.root)
    if rel in repo.dirty_paths() or settings.changelog in repo.dirty_paths():
        raise ReleaseRefused(f"{rel} or {settings.changelog} has uncommitted changes: commit or "
                             "discard them first")
    released = {f.path: f.data for f in repo.files_at(latest.commit)}
    if rel not in released:
        raise ReleaseRefused(f"{rel} is not in {latest.tag}; is it a vendor rule? hold vendor "
                             "rules through their source's profile")
    released_text = released[rel].decode("utf-8", "surrogateescape")
    disabled_released = set_rule_status(released_text, rule, DISABLED)
    with tempfile.TemporaryDirectory(prefix="wb-emergency-") as tmp:
        tree = repo.export(latest.commit, Path(tmp) / "signatures")
        (tree / rel).write_text(disabled_released, encoding="utf-8", errors="surrogateescape")
        try:
            built = prepare_tree(tree)
        except BundleError as exc:
            raise ReleaseRefused(f"without {rule} the release does not build: {exc.reason} "
                                 "(disable the rules that use it too)") from None
    changelog = diff_rulesets(latest.ruleset, built.ruleset, latest.serial)
    _only_this_rule(changelog, rule)
    serial = store.next_serial(repo.max_tag_serial())
    note = f"EMERGENCY: {rule} disabled" + (f": {message.strip()}" if message.strip() else "")
    title = f"Release {tag_name(serial)}: emergency, {rule} disabled"
    branch_commit, text = _commit_on_branch(repo, store, rel, rule, serial, note, changelog,
                                            settings.changelog)
    if _same_tree(repo, latest.commit, branch_commit.parents[0].hexsha):
        tagged = branch_commit
    else:
        tagged = _side_commit(repo, latest.commit, {rel: disabled_released.encode(
            "utf-8", "surrogateescape"), settings.changelog: text.encode("utf-8")}, title)
    repo.create_tag(tag_name(serial), tagged, _tag_message(title, note, changelog))
    release = store.add(built.prepared, serial=serial, commit=tagged.hexsha,
                        created=commit_time(tagged), message=note, changelog=changelog,
                        ruleset=built.ruleset)
    return _outcome(rule, rel, serial, tagged.hexsha, branch_commit.hexsha, latest, built, release)


def _only_this_rule(changelog: Changelog, rule: str) -> None:
    changed = {c.name for c in (*changelog.added, *changelog.modified, *changelog.removed,
                                *changelog.status_changed)}
    if changed != {rule}:
        raise ReleaseRefused(f"the emergency release would change {sorted(changed)}, not only {rule}")


def _commit_on_branch(repo: SignatureRepository, store: ReleaseStore, rel: str, rule: str,
                      serial: int, note: str, changelog: Changelog, changelog_rel: str) -> tuple[git.Commit, str]:
    """Disable the rule in the working tree's file and commit it with the changelog section."""
    path = repo.root / rel
    path.write_text(set_rule_status(path.read_text(encoding="utf-8", errors="surrogateescape"),
                                    rule, DISABLED), encoding="utf-8", errors="surrogateescape")
    text = _changelog_text(repo.root / changelog_rel, serial, note, changelog)
    pending = store.root / PENDING_NAME
    atomic_write(pending, json.dumps({"serial": serial, "changelog": changelog_rel,
                                      "sha256": hashlib.sha256(text.encode()).hexdigest()}) + "\n")
    try:
        atomic_write(repo.root / changelog_rel, text)
        commit = repo.commit_paths([rel, changelog_rel], f"{note}\n\nEmergency release "
                                                          f"{tag_name(serial)}: {changelog.summary()}")
    except BaseException:
        recover(repo, store)
        repo.restore_path(rel)
        raise
    pending.unlink(missing_ok=True)
    return commit, text


def _same_tree(repo: SignatureRepository, a: str, b: str) -> bool:
    from workbench.release.service import _same_tree as same

    return same(repo, a, b)


def _side_commit(repo: SignatureRepository, parent: str, files: dict[str, bytes], message: str) -> git.Commit:
    """A commit beside the branch: ``parent``'s tree with ``files`` replaced (git plumbing,
    in a temporary index, so the working tree and the real index are not touched)."""
    git_repo = repo.require_git()
    with tempfile.TemporaryDirectory(prefix="wb-index-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        with git_repo.git.custom_environment(**env):
            git_repo.git.read_tree(parent)
            for rel, data in files.items():
                blob_file = Path(tmp) / "blob"
                blob_file.write_bytes(data)
                blob = git_repo.git.hash_object("-w", str(blob_file))
                top = f"{repo.prefix}/{rel}" if repo.prefix else rel
                git_repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{top}")
            tree = git_repo.git.write_tree()
        with repo._identity():
            sha = git_repo.git.commit_tree(tree, "-p", parent, "-m", message)
    return git_repo.commit(sha)


def _outcome(rule: str, rel: str, serial: int, commit: str, branch_commit: str, latest: Release,
             built: BuiltRuleset, release: Release) -> EmergencyOutcome:
    return EmergencyOutcome(rule=rule, file=rel, serial=serial, tag=tag_name(serial), commit=commit,
                            branch_commit=branch_commit, previous_serial=latest.serial,
                            rules_shipped=built.shipped, bundle_path=str(release.bundle_path),
                            bundle_sha256=release.bundle_sha256, release=release)
