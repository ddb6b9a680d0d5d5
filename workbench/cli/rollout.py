"""``workbench rollout``: a release on its canary towers; promote or halt it by hand."""

from __future__ import annotations

import argparse

from workbench.cli.context import Context, Reply, add_json_flag


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rollout", help="canary rollout: status, promote or halt (signed repository "
                                       "state; `serve` also decides on its own)")
    add_json_flag(r)
    r.set_defaults(func=cmd_status)
    rs = r.add_subparsers(dest="rollout_command", metavar="ACTION")
    p = rs.add_parser("promote", help="offer a canary release to every tower now")
    p.add_argument("serial", type=int)
    p.add_argument("--reason", "-m", default="promoted by hand")
    add_json_flag(p)
    p.set_defaults(func=cmd_set, stage="all")
    p = rs.add_parser("halt", help="stop a canary release where it is (the canaries keep it)")
    p.add_argument("serial", type=int)
    p.add_argument("--reason", "-m", required=True)
    add_json_flag(p)
    p.set_defaults(func=cmd_set, stage="halted")


def cmd_status(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository

    repo = UpdateRepository.for_workspace(ctx.workspace)
    targets = [t for t in repo.targets() if t.rollout is not None] if repo.exists() else []

    def text(ctx: Context) -> None:
        if not targets:
            ctx.print("no canary releases")
        for t in targets:
            assert t.rollout is not None
            ctx.print(f"serial {t.serial}: {t.rollout.stage} on {', '.join(t.rollout.canaries)} since "
                      f"{t.rollout.since}" + (f": {t.rollout.reason}" if t.rollout.reason else ""))

    return Reply([{"serial": t.serial, **t.rollout.to_custom()} for t in targets if t.rollout], text)


def cmd_set(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository

    # not a canary release, or already promoted/halted: UpdateRepositoryError (conflict)
    target = UpdateRepository.for_workspace(ctx.workspace).set_rollout(
        args.serial, args.stage, reason=args.reason)

    def text(ctx: Context) -> None:
        ctx.print(f"serial {target.serial}: {args.stage} (signed; towers see it on their next look)")

    return Reply(target, text)
