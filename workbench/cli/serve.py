"""``workbench serve``: the update server (repository, reports, quarantine upload)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from workbench.cli.context import (
    CommandError,
    Context,
    duration_arg,
    duration_or_zero_arg,
)
from workbench.distribute.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
)
from workbench.exitcodes import (
    E_CONFLICT,
    E_OK,
    E_USAGE,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the update server (repository, reports, quarantine upload)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--max-message-bytes", type=int, default=50 * 1024 * 1024, metavar="BYTES",
                   help="largest message POST /v1/quarantine takes (default 50 MiB)")
    p.add_argument("--stale-after", type=duration_arg, default=300.0, metavar="DURATION",
                   help="a server whose last report is older turns yellow (default 5m)")
    p.add_argument("--silent-after", type=duration_arg, default=1800.0, metavar="DURATION",
                   help="... and red (default 30m)")
    p.add_argument("--spool-interval", type=duration_or_zero_arg, default=5.0, metavar="DURATION",
                   help="also ingest quarantine/incoming this often, as `quarantine watch` "
                        "does (default 5s; 0 leaves the spool to another process)")
    p.add_argument("--max-inflight-bytes", type=int, default=256 * 1024 * 1024, metavar="BYTES",
                   help="request bodies being received at once, all towers; more get 503 "
                        "(default 256 MiB)")
    p.add_argument("--max-inflight-bytes-per-tower", type=int, default=64 * 1024 * 1024,
                   metavar="BYTES", help="... one tower's; more get 429 (default 64 MiB)")
    p.add_argument("--header-timeout", type=duration_arg, default=10.0, metavar="DURATION",
                   help="a request's headers must arrive within this, else 408 (default 10s)")
    p.add_argument("--body-timeout", type=duration_arg, default=20.0, metavar="DURATION",
                   help="longest pause inside a request body, else 408 (default 20s)")
    p.add_argument("--host-name", metavar="NAME",
                   help="the name this ingest host writes the quarantine journal as, unique "
                        "among the hosts sharing the quarantine (default: $WORKBENCH_HOST_NAME, "
                        "else host_name in <home>/settings.toml, else the machine's name)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--openapi", action="store_true",
                   help="print the OpenAPI document and exit (docs/openapi.json)")
    p.add_argument("--nginx-config", metavar="SERVER_NAME",
                   help="print an nginx server block that serves this repository as static "
                        "files and proxies the API to --host/--port, then exit")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.fleet import FleetThresholds
    from workbench.distribute.server import ServerSettings, openapi_document, serve
    from workbench.distribute.update_repository import UpdateRepository

    if args.openapi:
        ctx.print(json.dumps(openapi_document(), indent=2))
        return E_OK
    if args.nginx_config:
        from workbench.distribute.nginx import nginx_server_block

        ctx.out.write(nginx_server_block(UpdateRepository.for_workspace(ctx.workspace).root, server_name=args.nginx_config,
                                         api_upstream=f"http://{args.host}:{args.port}",
                                         max_body=str(args.max_message_bytes)))
        return E_OK
    if args.silent_after <= args.stale_after:
        raise CommandError("--silent-after must be longer than --stale-after", E_USAGE)
    from workbench.quarantine.host_name import host_name

    # resolved once, before listening: a name that cannot name a file is a usage error now
    ctx.workspace = dataclasses.replace(
        ctx.workspace, host_name=host_name(ctx.workspace.home, args.host_name))
    repo = UpdateRepository.for_workspace(ctx.workspace)
    if not repo.exists():
        ctx.warn(f"no update repository at {repo.root} yet: run `workbench keys init`")
    settings = ServerSettings(max_message_bytes=args.max_message_bytes,
                              thresholds=FleetThresholds(stale_after=args.stale_after,
                                                         silent_after=args.silent_after),
                              spool_interval=args.spool_interval,
                              max_inflight_bytes=args.max_inflight_bytes,
                              max_inflight_bytes_per_tower=args.max_inflight_bytes_per_tower,
                              header_timeout=args.header_timeout, body_timeout=args.body_timeout)
    ctx.err.write(f"workbench: serving {ctx.workspace.home} on http://{args.host}:{args.port} "
                  f"(repository at /repository/; journal host {ctx.workspace.host_name})\n")
    try:
        serve(ctx.workspace, host=args.host, port=args.port, settings=settings,
              access_log=args.access_log)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                           E_CONFLICT) from None
    return E_OK
