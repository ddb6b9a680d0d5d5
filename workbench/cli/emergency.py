"""``workbench rule disable ID [--emergency]``: take a rule out of service (now, with --emergency)."""

from __future__ import annotations

import argparse

from workbench.cli.context import Context, Reply, add_json_flag


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
    from workbench.release.emergency import DISABLED, set_status_in_tree

    if not args.emergency:
        path = set_status_in_tree(ctx.workspace, args.rule, DISABLED)     # ReleaseRefused: input

        def disabled(ctx: Context) -> None:
            ctx.print(f"{args.rule}: status DISABLED in {path}; commit and release it "
                      "(or use --emergency to take it off the fleet now)")

        return Reply({"rule": args.rule, "file": str(path), "status": DISABLED}, disabled)
    from workbench.distribute.kill_switch import kill_rule

    # ReleaseRefused: conflict; UpdateRepositoryError: released but not published
    killed = kill_rule(ctx.workspace, args.rule, message=args.message, publish=not args.no_publish)
    outcome = killed.emergency

    def text(ctx: Context) -> None:
        ctx.print(f"{outcome.tag}: {args.rule} disabled (was shipping in signatures-{outcome.previous_serial}); "
                  f"{outcome.rules_shipped} rules ship; skipped: {', '.join(outcome.skipped)}")
        ctx.print(f"committed {outcome.branch_commit[:12]} ({outcome.file}, CHANGELOG.md); "
                  f"tag on {outcome.commit[:12]}")
        if killed.published is not None:
            ctx.print(f"published serial {outcome.serial}: towers waiting on the repository get it now")
        elif not args.no_publish:
            ctx.print("no update repository in this workspace: publish it with "
                      f"`workbench publish {outcome.serial}`")

    return Reply({"emergency": outcome, "published": killed.published}, text)
