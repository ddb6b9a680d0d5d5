"""``workbench validate``, ``workbench hooks install`` and ``workbench release ...``."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.cli.context import CommandError, Context, Reply, add_json_flag, table
from workbench.document import dumps
from workbench.exitcodes import E_CONFLICT, E_FINDINGS, E_INPUT, E_NOT_FOUND, E_OK, E_USAGE
from workbench.humanize import shown
from workbench.release.bundle import BundleError, bundle_name, load_extracted, open_bundle
from workbench.release.corpora import write_corpora
from workbench.release.hooks import install_hook
from workbench.release.release_store import ReleaseStore
from workbench.release.render import render_junit, render_sarif, render_text
from workbench.release.service import ReleaseOutcome, ReleaseRefused, make_release, revert_release
from workbench.release.signature_repository import SignatureRepository
from workbench.release.validate import ValidationReport, validate

if TYPE_CHECKING:
    from workbench.release.worktree import Change

FORMATS = ("text", "json", "sarif", "junit")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a signature repository before it is committed (CI runs this)")
    p.add_argument("path", nargs="?", type=Path, metavar="PATH",
                   help="signatures folder (default: the workspace's signatures)")
    p.add_argument("--changed-since", metavar="REV",
                   help="check only rules changed since REV (the whole set is still compiled)")
    p.add_argument("--base", metavar="REV",
                   help="revision changed rules must bump their version against "
                        "(default: REV of --changed-since, else the newest signatures-N tag)")
    p.add_argument("--no-corpus", action="store_true", help="skip the corpus and scan-time checks")
    p.add_argument("--format", choices=FORMATS, default="text", help="what to print (default text)")
    p.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    p.add_argument("--write", action="append", default=[], metavar="FORMAT:FILE",
                   help="also write the report to FILE (repeatable), e.g. sarif:validate.sarif")
    p.add_argument("--threads", type=int, default=None, help="scanner threads (default: all cores)")
    p.add_argument("--verbose", "-v", action="store_true", help="show infos and uncovered samples too")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("hooks", help="git hooks for a signature repository")
    hs = p.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    h = hs.add_parser("install", help="install a pre-commit hook running `validate --changed-since HEAD`")
    h.add_argument("--force", action="store_true", help="move an existing foreign hook aside")
    h.set_defaults(func=cmd_hooks_install)

    p = sub.add_parser("release", help="make a versioned release bundle of the signatures (or list, show, "
                                       "revert releases)")
    p.add_argument("--message", "-m", default="", help="release note, kept in the tag and CHANGELOG.md")
    p.add_argument("--dry-run", action="store_true", help="validate and show what would be released")
    add_json_flag(p)
    p.set_defaults(func=cmd_release)
    rs = p.add_subparsers(dest="release_command", metavar="ACTION")
    r = rs.add_parser("list", help="releases of this workspace")
    add_json_flag(r)
    r.set_defaults(func=cmd_list)
    r = rs.add_parser("show", help="one release: manifest, changelog, bundle")
    r.add_argument("serial", type=int, metavar="SERIAL")
    add_json_flag(r)
    r.set_defaults(func=cmd_show)
    r = rs.add_parser("revert", help="release the content of SERIAL again under a new serial (a rollback)")
    r.add_argument("serial", type=int, metavar="SERIAL")
    r.add_argument("--message", "-m", default="")
    r.add_argument("--dry-run", action="store_true")
    add_json_flag(r)
    r.set_defaults(func=cmd_revert)
    r = rs.add_parser("verify", help="check a bundle the way a tower does: open, unpack, load, self-test")
    r.add_argument("bundle", metavar="SERIAL|FILE")
    add_json_flag(r)
    r.set_defaults(func=cmd_verify)
    r = rs.add_parser("changes", help="what the next release would carry: rule changes since the last "
                                      "release, and uncommitted files")
    r.add_argument("--diff", metavar="FILE",
                   help="the diff of one file (signatures-relative) since the last release tag")
    add_json_flag(r)
    r.set_defaults(func=cmd_changes)
    r = rs.add_parser("commit", help="check the changed rules as the pre-commit hook does, then commit "
                                     "every change in the signatures folder")
    r.add_argument("--message", "-m", default="",
                   help="commit message (default: one line from the changes, e.g. 'Add MAL_X_Y')")
    add_json_flag(r)
    r.set_defaults(func=cmd_commit)
    r = rs.add_parser("corpora", help="rebuild the signature corpora from workbench.samples")
    r.add_argument("--check", action="store_true", help="only report files that would change")
    add_json_flag(r)
    r.set_defaults(func=cmd_corpora)


# --- validate


def _progress(ctx: Context) -> Callable[[str], None] | None:
    """Step names on stderr, and a line every few seconds in a long step: on a terminal and
    in a CI log alike (a silent minute looks like a hang)."""
    def say(text: str) -> None:
        ctx.err.write(f"... {text}\n")
        ctx.err.flush()
    return say


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    root = (args.path or ctx.workspace.signatures).resolve()
    if not root.is_dir():
        raise CommandError(f"no signatures folder at {root}", E_NOT_FOUND)
    outputs = []
    for spec in args.write:
        fmt, sep, file = spec.partition(":")
        if not sep or fmt not in FORMATS or not file:
            raise CommandError(f"--write {spec!r}: expected FORMAT:FILE with FORMAT one of {', '.join(FORMATS)}",
                               E_USAGE)
        outputs.append((fmt, Path(file)))
    progress = _progress(ctx)          # stderr: the --json or SARIF document is not touched
    from workbench.rules.parse_cache import FULL_PARSES

    report = validate(root, changed_since=args.changed_since, base=args.base, scan_corpus=not args.no_corpus,
                      threads=args.threads, progress=progress, parse_cache=ctx.workspace.state / FULL_PARSES)
    top = SignatureRepository(root).repo
    sarif_root = Path(top.working_tree_dir) if top is not None and top.working_tree_dir else root
    for fmt, file in outputs:
        file.write_text(_render(report, fmt, sarif_root, args.verbose) + "\n", encoding="utf-8")
    ctx.print(_render(report, args.format, sarif_root, args.verbose))
    return E_OK if report.ok else E_FINDINGS


def _render(report: ValidationReport, fmt: str, sarif_root: Path, verbose: bool) -> str:
    if fmt == "json":
        return dumps(report)
    if fmt == "sarif":
        return render_sarif(report, root=sarif_root)
    if fmt == "junit":
        return render_junit(report)
    return render_text(report, verbose=verbose)


# --- hooks


def cmd_hooks_install(args: argparse.Namespace, ctx: Context) -> int:
    done = install_hook(ctx.workspace.signatures, force=args.force)
    ctx.print(f"{'updated' if done.replaced else 'installed'} pre-commit hook {done.path}")
    if done.backup:
        ctx.print(f"the previous hook was moved to {done.backup}")
    return E_OK


# --- release


def cmd_release(args: argparse.Namespace, ctx: Context) -> int:
    return _run(ctx, args.json, lambda: make_release(ctx.workspace, message=args.message, dry_run=args.dry_run,
                                                     progress=_progress(ctx)))


def cmd_revert(args: argparse.Namespace, ctx: Context) -> int:
    return _run(ctx, args.json, lambda: revert_release(ctx.workspace, args.serial, message=args.message,
                                                       dry_run=args.dry_run))


def _run(ctx: Context, as_json: bool, action: Callable[[], ReleaseOutcome]) -> int:
    try:
        outcome = action()
    except ReleaseRefused as exc:
        return _refused(exc, ctx, as_json)
    except BundleError as exc:        # a bundle this release cannot build: the state refuses it
        raise CommandError(str(exc), E_CONFLICT) from None
    _print_outcome(outcome, ctx, as_json)
    return E_OK


def _refused(exc: ReleaseRefused, ctx: Context, as_json: bool) -> int:
    if exc.validation is not None:
        if as_json:
            ctx.json({"refused": exc.reason, "validation": exc.validation})
        else:
            ctx.print(render_text(exc.validation))
    raise CommandError(f"release refused: {exc.reason}", E_CONFLICT)


def _print_outcome(o: ReleaseOutcome, ctx: Context, as_json: bool) -> None:
    if as_json:
        ctx.json(o)
        return
    verb = "would release" if o.dry_run else "released"
    what = f" (revert to signatures-{o.reverts})" if o.reverts else ""
    ctx.print(f"{verb} {o.tag}{what}: commit {o.commit[:12]}, {o.rules_shipped} of {o.rules_total} rules ship")
    if o.bundle_path:
        ctx.print(f"bundle: {o.bundle_path}")
        ctx.print(f"sha256: {o.bundle_sha256}")
    since = f" since signatures-{o.changelog.previous_serial}" if o.changelog.previous_serial else ""
    ctx.print(f"changes{since}: {o.changelog.summary()}")
    for line in o.changelog.lines():
        if line:
            ctx.print(f"  {line}")


def cmd_list(args: argparse.Namespace, ctx: Context) -> int | Reply:
    releases = ReleaseStore(ctx.workspace).list()

    def text(ctx: Context) -> None:
        ctx.print(table([[str(r.serial), shown(r.created), r.commit[:12], str(r.rule_count),
                          f"revert to {r.reverts}" if r.reverts else "", r.message]
                         for r in reversed(releases)],
                        ["SERIAL", "CREATED", "COMMIT", "RULES", "REVERT", "MESSAGE"], max_width={5: 60}))
        ctx.print(f"{len(releases)} releases")

    return Reply({"releases": releases}, text)


def cmd_show(args: argparse.Namespace, ctx: Context) -> int | Reply:
    release = ReleaseStore(ctx.workspace).get(args.serial)

    def text(ctx: Context) -> None:
        m = release.manifest
        for label, value in [("serial", str(release.serial)), ("tag", release.tag), ("commit", release.commit),
                             ("created", release.created), ("built", release.built),
                             ("message", release.message or "-"),
                             ("reverts", f"signatures-{release.reverts}" if release.reverts else "-"),
                             ("bundle", str(release.bundle_path)), ("sha256", release.bundle_sha256),
                             ("size", f"{release.bundle_size} bytes"), ("libyara", m.libyara_version),
                             ("tool", m.tool_version), ("rules", str(m.rule_count)),
                             ("self-tests", str(len(m.selftest)))]:
            ctx.print(f"{label:>10}: {value}")
        ctx.print("")
        ctx.print(table([[r.name, r.status, r.fingerprint[:16], r.file] for r in m.rules],
                        ["RULE", "STATUS", "FINGERPRINT", "FILE"]))
        ctx.print("")
        ctx.print(f"changes: {release.changelog.summary()}")
        for line in release.changelog.lines():
            if line:
                ctx.print(f"  {line}")

    return Reply({"release": release, "manifest": release.manifest, "changelog": release.changelog}, text)


def cmd_changes(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.release.worktree import file_diff, read_signatures

    view = read_signatures(ctx.workspace)
    if view.problem and not view.changes:
        raise CommandError(view.problem, E_NOT_FOUND if "no signatures folder" in view.problem else E_CONFLICT)
    if args.diff:
        if not (view.root / args.diff).exists() and not any(c.file == args.diff for c in view.changes):
            raise CommandError(f"no file {args.diff} in {view.root}", E_NOT_FOUND)
        diff = file_diff(ctx.workspace, args.diff, view.base).rstrip("\n") + "\n"

        def diff_text(ctx: Context) -> None:
            ctx.out.write(diff)

        return Reply({"file": args.diff, "base": view.base, "diff": diff}, diff_text)

    def text(ctx: Context) -> None:
        since = f"since {view.base}" if view.base else "(no release yet)" if view.latest is None \
            else f"since signatures-{view.latest.serial} (its tag is missing)"
        ctx.print(f"{view.root} · branch {view.branch or '-'} · head {view.head or '-'} · changes {since}")
        if view.problem:
            ctx.warn(view.problem)
        ctx.print(table([[c.kind, c.rule or "-", c.file, _status_text(c), _version_text(c), c.git or "committed"]
                         for c in view.changes],
                        ["CHANGE", "RULE", "FILE", "STATUS", "VERSION", "GIT"], max_width={1: 48, 2: 48}))
        uncommitted = len(view.uncommitted)
        ctx.print(f"{len(view.changes)} changes, {uncommitted} uncommitted file(s), {view.ships} rules ship")

    return Reply(view, text)


def _status_text(c: Change) -> str:
    if c.previous_status and c.status != c.previous_status:
        return f"{c.previous_status} -> {c.status}"
    return c.status


def _version_text(c: Change) -> str:
    if c.previous_version and c.version != c.previous_version:
        return f"{c.previous_version} -> {c.version}"
    return c.version


def cmd_commit(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.release.signature_repository import SignatureRepositoryError
    from workbench.release.worktree import commit_changes

    try:
        outcome = commit_changes(ctx.workspace, args.message, progress=_progress(ctx))
    except SignatureRepositoryError as exc:
        if not str(exc).startswith("nothing to commit"):
            raise                   # no git repository: conflict
        nothing = str(exc)

        def nothing_text(ctx: Context) -> None:
            ctx.print(nothing)

        return Reply({"committed": False, "message": nothing}, nothing_text)

    def text(ctx: Context) -> None:
        if outcome.committed:
            ctx.print(f"committed {outcome.commit[:12]}: {outcome.message.splitlines()[0]} "
                      f"({len(outcome.files)} file(s))")
        elif outcome.check is not None:
            ctx.print(render_text(outcome.check))
        if not outcome.committed:
            errors = outcome.check.errors if outcome.check is not None else 0
            ctx.error(f"not committed: {errors} error(s) in the changed rules")

    return Reply(outcome, text, E_OK if outcome.committed else E_FINDINGS)


def cmd_verify(args: argparse.Namespace, ctx: Context) -> int | Reply:
    path = Path(args.bundle)
    if args.bundle.isdigit() and not path.exists():
        path = ReleaseStore(ctx.workspace).get(int(args.bundle)).bundle_path
    if not path.is_file():
        raise CommandError(f"no bundle {path}", E_NOT_FOUND)
    try:
        bundle = open_bundle(path)
        with tempfile.TemporaryDirectory(prefix="wb-verify-") as tmp:
            loaded = load_extracted(bundle.extract_to(Path(tmp) / "bundle"))
    except BundleError as exc:
        raise CommandError(f"{path.name}: refused: {exc.reason}", E_INPUT) from None

    def text(ctx: Context) -> None:
        expected = bundle_name(bundle.manifest.serial)
        note = f" (named {path.name}, expected {expected})" if path.name != expected else ""
        ctx.print(f"{path.name}: OK{note}: serial {bundle.manifest.serial}, {loaded.rule_count} rules loaded from "
                  f"{loaded.loaded_from}, {len(loaded.selftest)} self-tests passed")
        if loaded.fallback_reason:
            ctx.print(f"  {loaded.fallback_reason}")

    return Reply({"bundle": str(path), "sha256": bundle.sha256, "serial": bundle.manifest.serial,
                  "rules": loaded.rule_count, "loaded_from": loaded.loaded_from,
                  "fallback_reason": loaded.fallback_reason, "selftest": loaded.selftest}, text)


def cmd_corpora(args: argparse.Namespace, ctx: Context) -> int | Reply:
    folder = ctx.workspace.signatures / "corpora"
    report = write_corpora(folder, check=args.check)

    def text(ctx: Context) -> None:
        for rel in report.written:
            ctx.print(f"wrote {rel}")
        for rel in report.differing:
            ctx.print(f"differs: {rel}")
        for rel in report.extra:
            ctx.print(f"kept (not built here): {rel}")
        ctx.print(f"{len(report.unchanged)} unchanged, {len(report.written)} written, "
                  f"{len(report.differing)} differ in {folder}")

    return Reply(report, text, E_FINDINGS if args.check and not report.ok else E_OK)
