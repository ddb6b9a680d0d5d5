"""``workbench publish``: add a release bundle to the update repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli.context import (
    CommandError,
    Context,
    Reply,
    add_json_flag,
)
from workbench.exitcodes import (
    E_NOT_FOUND,
    E_USAGE,
)
from workbench.humanize import shown


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="add a release bundle to the update repository")
    p.add_argument("serial", nargs="?", type=int, metavar="SERIAL",
                   help="release serial (default: the newest release)")
    p.add_argument("--bundle", type=Path, metavar="FILE",
                   help="publish this bundle file instead of one from the release store")
    p.add_argument("--refresh", action="store_true",
                   help="only re-sign the timestamp (and snapshot/targets when half their "
                        "lifetime is gone); run from cron so a quiet week is not a freeze")
    p.add_argument("--canary", default="", metavar="TOWER,...",
                   help="offer it to these towers first; `serve` promotes it to all once they "
                        "are green (or halts it); see `workbench rollout`")
    add_json_flag(p)
    p.set_defaults(func=cmd_publish)

    from workbench.cli import rollout

    rollout.register(sub)


def cmd_publish(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository, publish_bundle

    repo = UpdateRepository.for_workspace(ctx.workspace)
    if args.refresh:
        if args.serial is not None or args.bundle is not None:
            raise CommandError("--refresh takes no SERIAL or --bundle", E_USAGE)
        refreshed = repo.refresh()
        for warning in refreshed.warnings:
            ctx.warn(warning)

        def resigned(ctx: Context) -> None:
            ctx.print(f"re-signed {', '.join(refreshed.resigned)}; timestamp valid until "
                      f"{shown(refreshed.expires['timestamp'], seconds=False)}Z")

        return Reply(refreshed, resigned)
    if args.bundle is not None:
        if args.serial is not None:
            raise CommandError("give SERIAL or --bundle, not both", E_USAGE)
        bundle_path = args.bundle
        if not bundle_path.is_file():
            raise CommandError(f"{bundle_path}: no such file", E_NOT_FOUND)
    else:
        bundle_path = _release_bundle(ctx, args.serial)
    canaries = tuple(t for t in (x.strip() for x in args.canary.split(",")) if t)
    result = publish_bundle(repo, bundle_path, canaries=canaries)

    def text(ctx: Context) -> None:
        if result.target.rollout is not None:
            ctx.print(f"canary: only {', '.join(result.target.rollout.canaries)} get serial "
                      f"{result.target.serial} until it is promoted")
        t = result.target
        if result.already_published:
            ctx.print(f"serial {t.serial} is already published ({t.path}); nothing to do")
            return
        ctx.print(f"published serial {t.serial}: {t.path} ({t.length} bytes, sha256 {t.sha256[:16]}, "
                  f"{t.rule_count} rules)")
        ctx.print(f"targets v{result.versions['targets']}, snapshot v{result.versions['snapshot']}, "
                  f"timestamp v{result.versions['timestamp']} (valid until "
                  f"{shown(result.expires['timestamp'], seconds=False)}Z)")
        if result.pruned:
            ctx.print(f"no longer listed: {', '.join(result.pruned)}")

    return Reply(result, text)


def _release_bundle(ctx: Context, serial: int | None) -> Path:
    from workbench.release.release_store import ReleaseStore

    store = ReleaseStore(ctx.workspace)
    release = store.get(serial) if serial is not None else store.latest()
    if release is None:
        raise CommandError("no releases yet: run `workbench release` (or pass --bundle FILE)",
                           E_NOT_FOUND)
    return Path(release.bundle_path)
