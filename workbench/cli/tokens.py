"""``workbench tokens ...``: per-tower bearer tokens for the server's write endpoints."""

from __future__ import annotations

import argparse

from workbench.cli.context import (
    Context,
    Reply,
    add_json_flag,
    table,
)


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tokens", help="per-tower bearer tokens for the server's write endpoints")
    ts = t.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    p = ts.add_parser("add", help="issue a token for a tower (printed once, as the last word)")
    p.add_argument("tower")
    p.add_argument("--label", default="", help="a note, e.g. who holds it")
    add_json_flag(p)
    p.set_defaults(func=cmd_tokens_add)
    p = ts.add_parser("list", help="issued tokens (never the tokens themselves)")
    add_json_flag(p)
    p.set_defaults(func=cmd_tokens_list)
    p = ts.add_parser("revoke", help="revoke a token by id, or every token of a tower")
    p.add_argument("ident", metavar="ID|TOWER")
    add_json_flag(p)
    p.set_defaults(func=cmd_tokens_revoke)


def cmd_tokens_add(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.tokens import TokenStore

    record, token = TokenStore.for_workspace(ctx.workspace.ensure()).add(args.tower, label=args.label)

    def text(ctx: Context) -> None:
        ctx.print(f"token {record.id} for tower {record.tower} (shown once; the server keeps only "
                  f"its hash): {token}")

    return Reply({"id": record.id, "tower": record.tower, "created": record.created,
                  "label": record.label, "token": token}, text)


def cmd_tokens_list(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.tokens import TokenStore

    records = TokenStore.for_workspace(ctx.workspace).records()

    def text(ctx: Context) -> None:
        ctx.print(table([[r.id, r.tower, r.created, r.label] for r in records],
                        ["ID", "TOWER", "CREATED", "LABEL"]))

    return Reply(records, text)


def cmd_tokens_revoke(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.tokens import TokenStore

    gone = TokenStore.for_workspace(ctx.workspace).revoke(args.ident)

    def text(ctx: Context) -> None:
        for r in gone:
            ctx.print(f"revoked {r.id} (tower {r.tower})")

    return Reply(gone, text)
