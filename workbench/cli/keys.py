"""``workbench keys ...``: the update repository's signing keys (TUF roles)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli.context import (
    Context,
    Reply,
    add_json_flag,
    duration_arg,
    table,
)
from workbench.distribute.keys import ROLES
from workbench.distribute.settings import (
    ExpiryPolicy,
    RepositorySettings,
)
from workbench.exitcodes import (
    E_FINDINGS,
    E_OK,
)
from workbench.humanize import format_duration, shown, utc_now


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("keys", help="the update repository's signing keys (TUF roles)")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = ks.add_parser("init", help="generate the keys and an empty signed repository")
    defaults = ExpiryPolicy()
    for role in ("timestamp", "snapshot", "targets", "root"):
        p.add_argument(f"--{role}-expiry", type=duration_arg, metavar="DURATION",
                       default=getattr(defaults, role),
                       help=f"how long {role} metadata stays valid (default "
                            f"{format_duration(getattr(defaults, role))})")
    p.add_argument("--keep-releases", type=int, default=10, metavar="N",
                   help="bundles listed in the repository (default 10)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing repository and its keys (every tower must re-pin)")
    add_json_flag(p)
    p.set_defaults(func=cmd_keys_init)

    p = ks.add_parser("status", help="keys, metadata versions and expiry dates")
    add_json_flag(p)
    p.set_defaults(func=cmd_keys_status)

    p = ks.add_parser("rotate", help="replace one role's key (needs the root key)")
    p.add_argument("role", choices=ROLES)
    p.add_argument("--root-key", type=Path, metavar="PEM", help="the root key, if kept offline")
    add_json_flag(p)
    p.set_defaults(func=cmd_keys_rotate)

    p = ks.add_parser("renew-root", help="sign a new root version with a fresh expiry")
    p.add_argument("--root-key", type=Path, metavar="PEM", help="the root key, if kept offline")
    add_json_flag(p)
    p.set_defaults(func=cmd_keys_renew_root)


def cmd_keys_init(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository

    settings = RepositorySettings(
        expiry=ExpiryPolicy(root=args.root_expiry, targets=args.targets_expiry,
                            snapshot=args.snapshot_expiry, timestamp=args.timestamp_expiry),
        keep_releases=args.keep_releases)
    repo = UpdateRepository.for_workspace(ctx.workspace)
    ctx.workspace.ensure()
    result = repo.init(settings, force=args.force)

    def text(ctx: Context) -> None:
        ctx.print(f"repository: {result.path}")
        ctx.print(f"keys:       {repo.keys.folder} (root, targets, snapshot, timestamp)")
        for role, keyid in result.keyids.items():
            ctx.print(f"  {role:<9} {keyid[:16]}")
        ctx.print("The root key is only needed for `keys rotate` and `keys renew-root`: move "
                  f"{repo.keys.path('root')} offline.")
        ctx.print(f"Distribute the FILE {result.trusted_root} to every tower (a copy, by a channel you "
                  "trust) and pin it there: `workbench tower init --trusted-root FILE` keeps its own "
                  "copy. Never point a tower at this path.")

    return Reply(result, text)


def cmd_keys_status(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository

    status = UpdateRepository.for_workspace(ctx.workspace).status()
    # Not verified (a tower would refuse the repository): E_FINDINGS, the operator must act.
    code = E_OK if status.verified else E_FINDINGS

    def text(ctx: Context) -> None:
        now = utc_now()
        ctx.print(table([[r.role, str(r.version), shown(r.expires, seconds=False) + "Z",
                          format_duration(round((r.expires - now).total_seconds())),
                          ", ".join(k[:12] for k in r.keyids),
                          ("offline" if not r.key_online else
                           "online" if r.key_trusted is not False else "NOT TRUSTED")]
                         for r in status.roles],
                        ["ROLE", "VERSION", "EXPIRES", "IN", "KEY", "KEY FILE"]))
        ctx.print(f"\nnewest serial: {status.newest_serial if status.newest_serial is not None else '-'}"
                  f" ({len(status.targets)} bundles listed)")
        ctx.print(f"trusted root:  {status.trusted_root}")
        ctx.print("as a tower:    " + ("verified (root chain from version 1, timestamp, snapshot, "
                                       "targets, bundle files)" if status.verified
                                       else f"REFUSED: {status.verify_error}"))
        for warning in status.warnings:
            ctx.warn(warning)

    return Reply(status, text, code)


def cmd_keys_rotate(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository

    result = UpdateRepository.for_workspace(ctx.workspace).rotate(args.role, root_key=args.root_key)

    def text(ctx: Context) -> None:
        ctx.print(f"{result.role} key rotated: {', '.join(k[:12] for k in result.old_keyids)} -> "
                  f"{result.new_keyid[:12]}; root version {result.root_version}; "
                  f"re-signed {', '.join(result.resigned)}")
        if result.role == "root":
            ctx.print("Towers follow the new root on their next poll; new towers should pin the new "
                      "root.json.")

    return Reply(result, text)


def cmd_keys_renew_root(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.update_repository import UpdateRepository

    result = UpdateRepository.for_workspace(ctx.workspace).renew_root(root_key=args.root_key)

    def text(ctx: Context) -> None:
        ctx.print(f"root version {result.version}, valid until {shown(result.expires, seconds=False)}Z")

    return Reply(result, text)
