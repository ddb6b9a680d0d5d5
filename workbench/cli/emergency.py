"""``workbench rule disable ID [--emergency]``: take a rule out of service (now, with --emergency)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli.context import CommandError, Context, Reply, add_json_flag
from workbench.exitcodes import E_NOT_FOUND


def register(rs: argparse._SubParsersAction) -> None:
    p = rs.add_parser("disable", help="set a rule's status to DISABLED; --emergency: release and "
                                      "publish that alone, now")
    p.add_argument("rule", metavar="ID", help="the rule's name")
    p.add_argument("--emergency", action="store_true",
                   help="a minimal signed release of the newest release without this rule "
                        "(compile and self-tests only), committed, tagged and published")
    p.add_argument("--message", "-m", default="", help="why (kept in the changelog and the tag)")
    p.add_argument("--no-publish", action="store_true",
                   help="with --emergency: make the release but do not publish it")
    add_json_flag(p)
    p.set_defaults(func=cmd_disable)


def cmd_disable(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.release.emergency import DISABLED, emergency_disable, set_rule_status

    if not args.emergency:
        path = _rule_file(ctx, args.rule)
        # ReleaseRefused from the rule's own text is about the input: it says what to fix
        changed = set_rule_status(path.read_text(encoding="utf-8"), args.rule, DISABLED)
        path.write_text(changed, encoding="utf-8")

        def disabled(ctx: Context) -> None:
            ctx.print(f"{args.rule}: status DISABLED in {path}; commit and release it "
                      "(or use --emergency to take it off the fleet now)")

        return Reply({"rule": args.rule, "file": str(path), "status": DISABLED}, disabled)
    outcome = emergency_disable(ctx.workspace, args.rule, message=args.message)   # ReleaseRefused: conflict
    published = None
    if not args.no_publish:
        from workbench.distribute.update_repository import (
            UpdateRepository,
            UpdateRepositoryError,
            publish_bundle,
        )

        repo = UpdateRepository.for_workspace(ctx.workspace)
        if repo.exists():
            try:
                published = publish_bundle(repo, Path(outcome.bundle_path))
            except UpdateRepositoryError as exc:
                # the release exists now: say so, in the error's own kind
                raise UpdateRepositoryError(f"released {outcome.tag} but not published: {exc.message}",
                                            kind=exc.kind) from exc

    def text(ctx: Context) -> None:
        ctx.print(f"{outcome.tag}: {args.rule} disabled (was shipping in signatures-{outcome.previous_serial}); "
                  f"{outcome.rules_shipped} rules ship; skipped: {', '.join(outcome.skipped)}")
        ctx.print(f"committed {outcome.branch_commit[:12]} ({outcome.file}, CHANGELOG.md); "
                  f"tag on {outcome.commit[:12]}")
        if published is not None:
            ctx.print(f"published serial {outcome.serial}: towers waiting on the repository get it now")
        elif not args.no_publish:
            ctx.print("no update repository in this workspace: publish it with "
                      f"`workbench publish {outcome.serial}`")

    return Reply({"emergency": outcome, "published": published}, text)


def _rule_file(ctx: Context, rule: str) -> Path:
    from workbench.release.validate import load_rule_tree

    rules_dir = ctx.workspace.signatures / "rules"
    files, _problems = load_rule_tree(rules_dir)
    for rf in files:
        if rf.path is not None and any(r.name == rule for r in rf.rules):
            return rf.path
    raise CommandError(f"no rule {rule} under {rules_dir}", E_NOT_FOUND)
