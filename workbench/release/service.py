"""Making releases: validate, serial, changelog, commit, annotated tag, bundle; and rolling back.

A release refuses unless the signatures tree is clean and validation passes. Its
serial comes from the store's counter (never reused, even after a failed attempt);
a rollback (``revert``) is a new serial carrying the content of an older release.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.durable import atomic_write, crash_point
from workbench.errors import Kind, WorkbenchError
from workbench.humanize import utc_day
from workbench.release.build import BuiltRuleset, prepare_commit
from workbench.release.bundle import BundleError
from workbench.release.changelog import Changelog, diff_rulesets
from workbench.release.release_store import (
    PENDING_NAME,
    Release,
    ReleaseNotFound,
    ReleaseStore,
    tag_name,
)
from workbench.release.settings import ReleaseSettings
from workbench.release.signature_repository import (
    SignatureRepository,
    SignatureRepositoryError,
    commit_time,
)
from workbench.release.validate import ValidationReport, validate
from workbench.rules.policy import Policy, PolicyError
from workbench.workspace import Workspace

CHANGELOG_TITLE = "# Signature releases\n"


class ReleaseRefused(WorkbenchError):
    """The release cannot be made in the current state (dirty tree, failed validation ...)."""

    kind = Kind.CONFLICT

    def __init__(self, reason: str, validation: ValidationReport | None = None, *,
                 kind: Kind | None = None):
        super().__init__(reason, kind=kind)
        self.reason = reason
        self.validation = validation


@dataclass
class ReleaseOutcome:
    """What ``workbench release`` (or ``release revert``) did, or with ``--dry-run`` would do."""

    serial: int
    tag: str
    commit: str                   # the commit the bundle is built from
    previous_serial: int | None
    changelog: Changelog
    rules_shipped: int
    rules_total: int
    dry_run: bool
    reverts: int | None = None
    bundle_path: str = ""
    bundle_sha256: str = ""
    validation: ValidationReport | None = field(default=None, metadata={"internal": True})
    release: Release | None = field(default=None, metadata={"internal": True})


def make_release(workspace: Workspace, *, message: str = "", dry_run: bool = False,
                 progress: Callable[[str], None] | None = None) -> ReleaseOutcome:
    say = progress or (lambda _text: None)
    repo = _open_repo(workspace)
    store = ReleaseStore(workspace)
    with store.releasing():
        for done in recover(repo, store):
            say(done)
        return _make_release(repo, store, message=message, dry_run=dry_run, say=say)


def recover(repo: SignatureRepository, store: ReleaseStore) -> list[str]:
    """Clean up after a release that was killed (call holding ``store.releasing()``).

    A temporary release folder is removed (its serial stays used, as after any failed
    release). A CHANGELOG.md the dead release wrote but did not commit is put back as
    committed, when it is exactly what that release wrote: an analyst's edit is kept
    and the release refuses as for any dirty tree.
    """
    done = []
    for leftover in store.leftovers():
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name}, left by a release that did not finish")
    pending = store.root / PENDING_NAME
    try:
        record = json.loads(pending.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return done
    except ValueError:
        record = {}
    rel = str(record.get("changelog", ""))
    path = repo.root / rel
    if rel and rel in repo.dirty_paths() and path.is_file() and \
            hashlib.sha256(path.read_bytes()).hexdigest() == record.get("sha256"):
        repo.restore_path(rel)
        done.append(f"put {rel} back as committed: release {tag_name(int(record['serial']))} "
                    f"wrote it and did not finish")
    pending.unlink(missing_ok=True)
    return done


def _make_release(repo: SignatureRepository, store: ReleaseStore, *, message: str, dry_run: bool,
                  say: Callable[[str], None]) -> ReleaseOutcome:
    dirty = repo.dirty_paths()
    if dirty:
        more = f" and {len(dirty) - 1} more" if len(dirty) > 1 else ""
        raise ReleaseRefused(f"the signatures tree has uncommitted changes ({dirty[0]}{more}): "
                             "commit or discard them first")
    latest = store.latest()
    head = repo.commit("HEAD")
    if latest is not None and latest.reverts is None and _same_tree(repo, latest.commit, head.hexsha):
        raise ReleaseRefused(f"nothing to release: the signatures are unchanged since {latest.tag}")
    say("validating")
    report = validate(repo.root, base=latest.tag if latest else None, progress=say)
    if not report.ok:
        first = next(f for f in report.findings if f.severity == "error")
        raise ReleaseRefused(f"validation failed with {report.errors} error(s), first {first.id}"
                             f"{' [' + first.rule + ']' if first.rule else ''}: {first.message}", report)
    say("building the bundle")
    built = _prepare(repo, head.hexsha)
    if latest is not None and _same_content(built, latest):
        raise ReleaseRefused(f"nothing to release: the bundle would ship what {latest.tag} ships")
    changelog = diff_rulesets(latest.ruleset if latest else [], built.ruleset,
                              latest.serial if latest else None)
    floor = repo.max_tag_serial()
    if dry_run:
        serial = store.peek_next_serial(floor)
        return _outcome(serial, head.hexsha, latest, changelog, built, dry_run=True, validation=report)
    serial = store.next_serial(floor)
    crash_point("release.serial")
    settings = _settings(repo.root)
    title = f"Release {tag_name(serial)}"
    text = _changelog_text(repo.root / settings.changelog, serial, message, changelog)
    # Say what is about to be written, so that if this process dies before the commit the
    # next release knows the dirty CHANGELOG.md is this one's and puts it back.
    pending = store.root / PENDING_NAME
    atomic_write(pending, json.dumps({"serial": serial, "changelog": settings.changelog,
                                      "sha256": hashlib.sha256(text.encode()).hexdigest()}) + "\n")
    try:
        atomic_write(repo.root / settings.changelog, text)
        crash_point("release.changelog")
        say("committing the changelog and tagging")
        commit = repo.commit_paths([settings.changelog],
                                   f"{title}\n\n{message}\n\n{changelog.summary()}".replace("\n\n\n", "\n\n"))
    except BaseException:
        recover(repo, store)
        raise
    pending.unlink(missing_ok=True)
    crash_point("release.commit")
    repo.create_tag(tag_name(serial), commit, _tag_message(title, message, changelog))
    crash_point("release.tag")
    release = store.add(built.prepared, serial=serial, commit=commit.hexsha, created=commit_time(commit),
                        message=message, changelog=changelog, ruleset=built.ruleset)
    return _outcome(serial, commit.hexsha, latest, changelog, built, dry_run=False, validation=report,
                    release=release)


def revert_release(workspace: Workspace, serial: int, *, message: str = "",
                   dry_run: bool = False) -> ReleaseOutcome:
    """Release the content of release ``serial`` again under a new serial (the branch is not touched)."""
    repo = _open_repo(workspace)
    store = ReleaseStore(workspace)
    with store.releasing():
        recover(repo, store)
        return _revert_release(repo, store, serial, message=message, dry_run=dry_run)


def _revert_release(repo: SignatureRepository, store: ReleaseStore, serial: int, *, message: str,
                    dry_run: bool) -> ReleaseOutcome:
    try:
        target_commit = store.get(serial).commit
    except ReleaseNotFound:
        tag = repo.release_tags().get(serial)
        if tag is None:
            raise ReleaseNotFound(f"no release {serial}: not in this workspace and no tag "
                                  f"{tag_name(serial)}") from None
        target_commit = tag.commit.hexsha
    latest = store.latest()
    built = _prepare(repo, target_commit)
    changelog = diff_rulesets(latest.ruleset if latest else [], built.ruleset,
                              latest.serial if latest else None)
    floor = repo.max_tag_serial()
    if dry_run:
        return _outcome(store.peek_next_serial(floor), target_commit, latest, changelog, built,
                        dry_run=True, reverts=serial)
    new = store.next_serial(floor)
    message = message or f"roll back to {tag_name(serial)}"
    title = f"Release {tag_name(new)}: revert to {tag_name(serial)}"
    commit = repo.commit(target_commit)
    repo.create_tag(tag_name(new), commit, _tag_message(title, message, changelog))
    release = store.add(built.prepared, serial=new, commit=target_commit, created=commit_time(commit),
                        message=message, changelog=changelog, ruleset=built.ruleset, reverts=serial)
    return _outcome(new, target_commit, latest, changelog, built, dry_run=False, reverts=serial,
                    release=release)


def _open_repo(workspace: Workspace) -> SignatureRepository:
    root = workspace.signatures
    if not root.is_dir():
        raise ReleaseRefused(f"no signatures folder at {root}")
    repo = SignatureRepository(root)
    repo.require_git()
    if not repo.has_commits():
        raise ReleaseRefused(f"the repository of {root} has no commits yet")
    return repo


def _settings(root: Path) -> ReleaseSettings:
    try:
        return ReleaseSettings.from_policy(Policy.load(root))
    except PolicyError as exc:
        raise ReleaseRefused(f"policy: {exc}") from None


def _prepare(repo: SignatureRepository, rev: str) -> BuiltRuleset:
    try:
        return prepare_commit(repo, rev)
    except BundleError as exc:
        raise ReleaseRefused(exc.reason) from None


def _same_content(built: BuiltRuleset, release: Release) -> bool:
    """Whether a bundle would carry exactly the rules, files and externals of ``release``."""
    new = built.prepared.manifest(serial=release.serial, created=dt.datetime.now(dt.UTC), commit="")
    old = release.manifest
    return (new.files, new.rules, new.externals, new.sources) == (old.files, old.rules, old.externals, old.sources)


def _same_tree(repo: SignatureRepository, a: str, b: str) -> bool:
    """Whether the signatures folder is identical at two commits."""
    try:
        ta, tb = repo.commit(a).tree, repo.commit(b).tree
        if repo.prefix:
            ta, tb = ta / repo.prefix, tb / repo.prefix
    except (SignatureRepositoryError, KeyError):
        return False
    return bool(ta.hexsha == tb.hexsha)


def _outcome(serial: int, commit: str, latest: Release | None, changelog: Changelog, built: BuiltRuleset,
             *, dry_run: bool, validation: ValidationReport | None = None, reverts: int | None = None,
             release: Release | None = None) -> ReleaseOutcome:
    return ReleaseOutcome(
        serial=serial, tag=tag_name(serial), commit=commit,
        previous_serial=latest.serial if latest else None, changelog=changelog,
        rules_shipped=built.shipped, rules_total=len(built.ruleset), dry_run=dry_run, reverts=reverts,
        bundle_path=str(release.bundle_path) if release else "",
        bundle_sha256=release.bundle_sha256 if release else "", validation=validation, release=release)


def _changelog_text(path: Path, serial: int, message: str, changelog: Changelog) -> str:
    """CHANGELOG.md with this release's section prepended under the title, keeping
    everything already there."""
    old = path.read_text(encoding="utf-8") if path.exists() else CHANGELOG_TITLE
    body = old[len(CHANGELOG_TITLE):] if old.startswith(CHANGELOG_TITLE) else old
    day = utc_day()
    section = [f"## {tag_name(serial)} ({day})", ""]
    if message:
        section += [message.strip(), ""]
    section.append(f"{changelog.summary()}" + (f" since {tag_name(changelog.previous_serial)}."
                                               if changelog.previous_serial else "."))
    section.append("")
    section += changelog.lines()
    earlier = body.strip("\n")
    text = CHANGELOG_TITLE + "\n" + "\n".join(section).rstrip("\n") + "\n"
    return text + (f"\n{earlier}\n" if earlier else "")


TAG_MESSAGE_LINES = 200


def _tag_message(title: str, message: str, changelog: Changelog) -> str:
    parts = [title, ""]
    if message:
        parts += [message.strip(), ""]
    parts.append(changelog.summary())
    parts.append("")
    lines = changelog.lines()
    if len(lines) > TAG_MESSAGE_LINES:
        lines = [*lines[:TAG_MESSAGE_LINES], f"... and {len(lines) - TAG_MESSAGE_LINES} more lines: see CHANGELOG.md"]
    parts += lines
    return "\n".join(parts).rstrip() + "\n"
