"""The signature repository's working tree: rule changes since the last release, git state, diffs, commits.

A change is judged the way the release changelog judges it (``diff_rulesets``: added,
removed, modified when the fingerprint changed, status changes), but between the last
release and the working tree, so the analyst sees what the next release would carry
before committing. Files that changed without changing a rule (a corpus sample, the
policy, a comment) are listed too: they are part of the next commit.

The release screen and ``workbench release changes`` / ``release commit`` call these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.release.changelog import RuleState, diff_rulesets
from workbench.release.release_store import Release, ReleaseStore
from workbench.release.settings import ReleaseSettings
from workbench.release.signature_repository import SignatureRepository, SignatureRepositoryError
from workbench.release.validate import ValidationReport, load_rule_tree, validate
from workbench.rules.policy import Policy, PolicyError
from workbench.workspace import Workspace

GIT_STATES = {"??": "untracked", "A": "added", "M": "modified", "D": "deleted", "R": "renamed",
              "T": "type changed", "U": "conflict"}


@dataclass(frozen=True)
class Change:
    """One line of the changes table: a rule (added, modified, removed, status) or a file."""

    kind: str                 # "added", "modified", "removed", "status" or "file"
    rule: str                 # "" for a file
    file: str                 # relative to the signatures folder
    status: str = ""
    previous_status: str = ""
    version: str = ""
    previous_version: str = ""
    git: str = ""             # "untracked", "modified", "deleted" ... ; "" when committed
    line: int = 0             # where the rule starts in the working tree (0: gone or unknown)


@dataclass
class SignaturesView:
    """The signature repository as the release screen draws it."""

    root: Path
    problem: str = ""                 # why the repository could not be read ("" when it could)
    branch: str = ""
    head: str = ""                    # short commit id, "" before the first commit
    base: str = ""                    # the release tag changes are counted from ("" for none)
    latest: Release | None = None
    uncommitted: dict[str, str] = field(default_factory=dict)    # path -> git state
    changes: list[Change] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)         # newest first
    published: set[int] = field(default_factory=set)
    newest_published: int | None = None
    repository: bool = False          # an update repository exists (``keys init``)
    ships: int = 0                    # rules of the working tree whose status ships


def git_states(sig: SignatureRepository) -> dict[str, str]:
    """Uncommitted paths under the signatures folder and what git says about each."""
    if sig.repo is None:
        return {}
    scope = sig.prefix or "."
    out = sig.repo.git.status("--porcelain", "-z", "--no-renames", "--untracked-files=all",
                              "--", scope)
    states: dict[str, str] = {}
    for entry in out.split("\0"):
        if len(entry) <= 3:
            continue
        code, top_rel = entry[:2], entry[3:]
        rel = top_rel[len(sig.prefix) + 1:] if sig.prefix and top_rel.startswith(sig.prefix + "/") \
            else (top_rel if not sig.prefix else None)
        if rel is None:
            continue
        letter = "??" if code == "??" else (code[1].strip() or code[0].strip())
        states[rel] = GIT_STATES.get(letter, "changed")
    return states


def current_rules(root: Path, settings: ReleaseSettings) -> tuple[list[RuleState], dict[str, int]]:
    """Every rule of the working tree as a changelog entry, and the line each starts on."""
    files, _problems = load_rule_tree(root / settings.rules)
    states: list[RuleState] = []
    lines: dict[str, int] = {}
    for rf in files:
        if rf.path is None:
            continue
        rel = rf.path.resolve().relative_to(root).as_posix()
        for r in rf.rules:
            status = str(r.meta_value("status", "") or "")
            states.append(RuleState(r.name, rel, status, str(r.meta_value("version", "") or ""),
                                    r.fingerprint, settings.ships(status)))
            lines.setdefault(r.name, r.start_line)
    return states, lines


def read_signatures(workspace: Workspace) -> SignaturesView:
    """Everything the release screen shows, read in one go (run it off the event loop)."""
    root = workspace.signatures.resolve()
    view = SignaturesView(root=root)
    if not root.is_dir():
        view.problem = f"no signatures folder at {root}"
        return view
    try:
        settings = ReleaseSettings.from_policy(Policy.load(root))
    except PolicyError as exc:
        view.problem = f"policy: {exc}"
        return view
    sig = SignatureRepository(root)
    store = ReleaseStore(workspace)
    view.releases = list(reversed(store.list()))
    view.latest = view.releases[0] if view.releases else None
    _read_published(workspace, view)
    if sig.repo is None:
        view.problem = f"{root} is not in a git repository: run `git init` there and commit"
    elif sig.has_commits():
        view.branch = sig.repo.head.reference.name if not sig.repo.head.is_detached else "(detached)"
        view.head = sig.repo.head.commit.hexsha[:12]
        view.uncommitted = git_states(sig)
    else:
        view.problem = "the signature repository has no commits yet"
        view.uncommitted = git_states(sig)
    current, lines = current_rules(root, settings)
    view.ships = sum(1 for r in current if r.shipped)
    latest = view.latest
    changelog = diff_rulesets(latest.ruleset if latest else [], current,
                              latest.serial if latest else None)
    states = view.uncommitted
    rows: dict[str, Change] = {}
    for kind, changes in (("added", changelog.added), ("modified", changelog.modified),
                          ("removed", changelog.removed), ("status", changelog.status_changed)):
        for c in changes:
            if c.name in rows:          # modified and its status changed: one row says both
                continue
            rows[c.name] = Change(kind, c.name, c.file, c.status, c.previous_status, c.version,
                                  c.previous_version, states.get(c.file, ""), lines.get(c.name, 0))
    view.changes = sorted(rows.values(), key=lambda c: (c.file, c.line, c.rule))
    if latest is not None and sig.repo is not None and latest.tag in {t.name for t in sig.repo.tags}:
        view.base = latest.tag
    touched = {c.file for c in view.changes}
    others = set(states)
    if view.base:
        try:
            others |= set(sig.changed_since(view.base))
        except SignatureRepositoryError:
            pass
    for path in sorted(others - touched):
        if path != settings.changelog:
            view.changes.append(Change("file", "", path, git=states.get(path, "")))
    return view


def _read_published(workspace: Workspace, view: SignaturesView) -> None:
    from workbench.distribute.update_repository import UpdateRepository, UpdateRepositoryError

    repository = UpdateRepository.for_workspace(workspace)
    view.repository = repository.exists()
    if not view.repository:
        return
    try:
        view.published = {t.serial for t in repository.targets()}
    except UpdateRepositoryError:
        return
    view.newest_published = max(view.published, default=None)


def file_diff(workspace: Workspace, rel: str, base: str) -> str:
    """The unified diff of one file between ``base`` (a tag; "" for HEAD) and the working tree."""
    root = workspace.signatures.resolve()
    path = root / rel
    sig = SignatureRepository(root)
    if sig.repo is None or not sig.has_commits():
        return _as_new(path, rel)
    top = f"{sig.prefix}/{rel}" if sig.prefix else rel
    tracked = sig.repo.git.ls_files("--", top)
    try:        # before any release the base is HEAD: an untracked file is new there too
        sig.repo.git.cat_file("-e", f"{base or 'HEAD'}:{top}")
        in_base = True
    except Exception:
        in_base = False
    if not tracked and not in_base:
        return _as_new(path, rel)
    text: str = sig.repo.git.diff("--no-color", "--no-ext-diff", base or "HEAD", "--", top)
    return text or f"{rel}: no changes since {base or 'the last commit'}"


def _as_new(path: Path, rel: str) -> str:
    try:
        body = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"{rel}: {exc.strerror or exc}"
    lines = body.splitlines()
    return "\n".join([f"new file {rel}", f"@@ -0,0 +1,{len(lines)} @@", *(f"+{line}" for line in lines)])


def commit_message(changes: list[Change]) -> str:
    """A first line for the commit dialog, from what changed."""
    added = [c.rule for c in changes if c.kind == "added"]
    modified = [c.rule for c in changes if c.kind in ("modified", "status")]
    removed = [c.rule for c in changes if c.kind == "removed"]
    parts = []
    for verb, names in (("Add", added), ("Update", modified), ("Remove", removed)):
        if len(names) == 1:
            parts.append(f"{verb} {names[0]}")
        elif names:
            parts.append(f"{verb} {len(names)} rules")
    if not parts and changes:
        return f"Update {changes[0].file}" if len(changes) == 1 else f"Update {len(changes)} files"
    return "; ".join(parts)


def commit_signatures(workspace: Workspace, message: str) -> str:
    """Commit every change under the signatures folder; returns the new commit id."""
    sig = SignatureRepository(workspace.signatures.resolve())
    paths = sig.dirty_paths()
    if not paths:
        raise SignatureRepositoryError("nothing to commit: the signatures folder has no changes")
    return str(sig.commit_paths(paths, message).hexsha)


@dataclass
class CommitOutcome:
    """What ``commit_changes`` did: the check of the changed rules, then the commit (or not)."""

    message: str
    files: list[str]                  # the paths committed (or that would have been)
    check: ValidationReport | None    # None when the check was skipped
    commit: str = ""                  # the new commit id; "" when the check refused it

    @property
    def committed(self) -> bool:
        return bool(self.commit)


def commit_changes(workspace: Workspace, message: str = "", *, check: bool = True,
                   progress: Callable[[str], None] | None = None,
                   checked: Callable[[ValidationReport], None] | None = None) -> CommitOutcome:
    """Check the changed rules as the pre-commit hook does, then commit every change under
    the signatures folder. An error in the check refuses the commit (``commit`` stays "").

    Without ``message`` the first line comes from the changes (``commit_message``).
    ``checked`` gets the check's report as soon as it is there, before the commit.
    Raises SignatureRepositoryError when there is nothing to commit or no git repository.
    """
    root = workspace.signatures.resolve()
    sig = SignatureRepository(root)
    if sig.repo is None:
        raise SignatureRepositoryError(f"{root} is not in a git repository: run `git init` there")
    files = sorted(sig.dirty_paths())
    if not files:
        raise SignatureRepositoryError("nothing to commit: the signatures folder has no changes")
    if not message.strip():
        message = commit_message([c for c in read_signatures(workspace).changes if c.git]) \
            or "Update signatures"
    report = None
    if check:
        since = "HEAD" if sig.has_commits() else None
        report = validate(root, changed_since=since, progress=progress)
        if checked is not None:
            checked(report)
        if not report.ok:
            return CommitOutcome(message, files, report)
    return CommitOutcome(message, files, report, commit_signatures(workspace, message))


def rule_path(workspace: Workspace, file: str) -> Path:
    """A finding's or change's file as a path (findings carry absolute paths, changes relative)."""
    path = Path(file)
    return path if path.is_absolute() else workspace.signatures.resolve() / path
