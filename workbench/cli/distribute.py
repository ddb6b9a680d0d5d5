"""``workbench keys|publish|serve|tokens|tower|fleet``: the update repository, its server and the towers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import threading
from pathlib import Path
from typing import Any

from workbench.cli.context import (
    CommandError,
    Context,
    add_json_flag,
    duration_arg,
    duration_or_zero_arg,
    table,
)
from workbench.distribute.keys import ROLES
from workbench.distribute.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ExpiryPolicy,
    RepositorySettings,
)
from workbench.exitcodes import (
    E_CONFLICT,
    E_FINDINGS,
    E_INPUT,
    E_LOCAL,
    E_NOT_FOUND,
    E_OK,
    E_REMOTE,
    E_USAGE,
)
from workbench.humanize import format_duration, iso_seconds, shown, utc_now


def register(sub: argparse._SubParsersAction) -> None:
    _register_keys(sub)
    _register_publish(sub)
    _register_serve(sub)
    _register_tokens(sub)
    _register_tower(sub)
    _register_fleet(sub)


# --- keys -------------------------------------------------------------------------------


def _register_keys(sub: argparse._SubParsersAction) -> None:
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


def _repository(ctx: Context) -> Any:
    from workbench.distribute.repository import UpdateRepository

    return UpdateRepository.for_workspace(ctx.workspace)


def cmd_keys_init(args: argparse.Namespace, ctx: Context) -> int:
    settings = RepositorySettings(
        expiry=ExpiryPolicy(root=args.root_expiry, targets=args.targets_expiry,
                            snapshot=args.snapshot_expiry, timestamp=args.timestamp_expiry),
        keep_releases=args.keep_releases)
    repo = _repository(ctx)
    ctx.workspace.ensure()
    result = repo.init(settings, force=args.force)
    if args.json:
        ctx.json(result)
        return E_OK
    ctx.print(f"repository: {result.path}")
    ctx.print(f"keys:       {repo.keys.folder} (root, targets, snapshot, timestamp)")
    for role, keyid in result.keyids.items():
        ctx.print(f"  {role:<9} {keyid[:16]}")
    ctx.print("The root key is only needed for `keys rotate` and `keys renew-root`: move "
              f"{repo.keys.path('root')} offline.")
    ctx.print(f"Distribute the FILE {result.trusted_root} to every tower (a copy, by a channel you "
              "trust) and pin it there: `workbench tower init --trusted-root FILE` keeps its own "
              "copy. Never point a tower at this path.")
    return E_OK


def cmd_keys_status(args: argparse.Namespace, ctx: Context) -> int:
    status = _repository(ctx).status()
    # Not verified (a tower would refuse the repository): E_FINDINGS, the operator must act.
    code = E_OK if status.verified else E_FINDINGS
    if args.json:
        ctx.json(status)
        return code
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
    return code


def cmd_keys_rotate(args: argparse.Namespace, ctx: Context) -> int:
    result = _repository(ctx).rotate(args.role, root_key=args.root_key)
    if args.json:
        ctx.json(result)
        return E_OK
    ctx.print(f"{result.role} key rotated: {', '.join(k[:12] for k in result.old_keyids)} -> "
              f"{result.new_keyid[:12]}; root version {result.root_version}; "
              f"re-signed {', '.join(result.resigned)}")
    if result.role == "root":
        ctx.print("Towers follow the new root on their next poll; new towers should pin the new "
                  "root.json.")
    return E_OK


def cmd_keys_renew_root(args: argparse.Namespace, ctx: Context) -> int:
    result = _repository(ctx).renew_root(root_key=args.root_key)
    if args.json:
        ctx.json(result)
        return E_OK
    ctx.print(f"root version {result.version}, valid until {result.expires:%Y-%m-%d %H:%M}Z")
    return E_OK


# --- publish ------------------------------------------------------------------------------


def _register_publish(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="add a release bundle to the update repository")
    p.add_argument("serial", nargs="?", type=int, metavar="SERIAL",
                   help="release serial (default: the newest release)")
    p.add_argument("--bundle", type=Path, metavar="FILE",
                   help="publish this bundle file instead of one from the release store")
    p.add_argument("--refresh", action="store_true",
                   help="only re-sign the timestamp (and snapshot/targets when half their "
                        "lifetime is gone); run from cron so a quiet week is not a freeze")
    add_json_flag(p)
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.repository import publish_bundle

    repo = _repository(ctx)
    if args.refresh:
        if args.serial is not None or args.bundle is not None:
            raise CommandError("--refresh takes no SERIAL or --bundle", E_USAGE)
        refreshed = repo.refresh()
        if args.json:
            ctx.json(refreshed)
        else:
            ctx.print(f"re-signed {', '.join(refreshed.resigned)}; timestamp valid until "
                      f"{refreshed.expires['timestamp']:%Y-%m-%d %H:%M}Z")
        for warning in refreshed.warnings:
            ctx.warn(warning)
        return E_OK
    if args.bundle is not None:
        if args.serial is not None:
            raise CommandError("give SERIAL or --bundle, not both", E_USAGE)
        bundle_path = args.bundle
        if not bundle_path.is_file():
            raise CommandError(f"{bundle_path}: no such file", E_NOT_FOUND)
    else:
        bundle_path = _release_bundle(ctx, args.serial)
    result = publish_bundle(repo, bundle_path)
    if args.json:
        ctx.json(result)
        return E_OK
    t = result.target
    if result.already_published:
        ctx.print(f"serial {t.serial} is already published ({t.path}); nothing to do")
        return E_OK
    ctx.print(f"published serial {t.serial}: {t.path} ({t.length} bytes, sha256 {t.sha256[:16]}, "
              f"{t.rule_count} rules)")
    ctx.print(f"targets v{result.versions['targets']}, snapshot v{result.versions['snapshot']}, "
              f"timestamp v{result.versions['timestamp']} (valid until "
              f"{result.expires['timestamp']:%Y-%m-%d %H:%M}Z)")
    if result.pruned:
        ctx.print(f"no longer listed: {', '.join(result.pruned)}")
    return E_OK


def _release_bundle(ctx: Context, serial: int | None) -> Path:
    from workbench.release.store import ReleaseNotFound, ReleaseStore

    store = ReleaseStore(ctx.workspace)
    try:
        release = store.get(serial) if serial is not None else store.latest()
    except ReleaseNotFound as exc:
        raise CommandError(str(exc), E_NOT_FOUND) from None
    if release is None:
        raise CommandError("no releases yet: run `workbench release` (or pass --bundle FILE)",
                           E_NOT_FOUND)
    return Path(release.bundle_path)


# --- serve ----------------------------------------------------------------------------------


def _register_serve(sub: argparse._SubParsersAction) -> None:
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

    if args.openapi:
        ctx.print(json.dumps(openapi_document(), indent=2))
        return E_OK
    if args.nginx_config:
        from workbench.distribute.nginx import nginx_server_block

        ctx.out.write(nginx_server_block(_repository(ctx).root, server_name=args.nginx_config,
                                         api_upstream=f"http://{args.host}:{args.port}",
                                         max_body=str(args.max_message_bytes)))
        return E_OK
    if args.silent_after <= args.stale_after:
        raise CommandError("--silent-after must be longer than --stale-after", E_USAGE)
    repo = _repository(ctx)
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
                  f"(repository at /repository/)\n")
    try:
        serve(ctx.workspace, host=args.host, port=args.port, settings=settings,
              access_log=args.access_log)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                           E_CONFLICT) from None
    return E_OK


# --- tokens -----------------------------------------------------------------------------------


def _register_tokens(sub: argparse._SubParsersAction) -> None:
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


def cmd_tokens_add(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.tokens import TokenStore

    record, token = TokenStore.for_workspace(ctx.workspace.ensure()).add(args.tower, label=args.label)
    if args.json:
        ctx.json({"id": record.id, "tower": record.tower, "created": record.created,
                  "label": record.label, "token": token})
        return E_OK
    ctx.print(f"token {record.id} for tower {record.tower} (shown once; the server keeps only "
              f"its hash): {token}")
    return E_OK


def cmd_tokens_list(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.tokens import TokenStore

    records = TokenStore.for_workspace(ctx.workspace).records()
    if args.json:
        ctx.json(records)
        return E_OK
    ctx.print(table([[r.id, r.tower, r.created, r.label] for r in records],
                    ["ID", "TOWER", "CREATED", "LABEL"]))
    return E_OK


def cmd_tokens_revoke(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.tokens import TokenStore

    gone = TokenStore.for_workspace(ctx.workspace).revoke(args.ident)
    if args.json:
        ctx.json(gone)
        return E_OK
    for r in gone:
        ctx.print(f"revoked {r.id} (tower {r.tower})")
    return E_OK


# --- tower --------------------------------------------------------------------------------------


def _register_tower(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tower", help="the agent on a tower's mail server: pull signed bundles")
    ts = t.add_subparsers(dest="tower_command", metavar="ACTION", required=True)

    p = ts.add_parser("init", help="write the agent's config file")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--repository-url", required=True, metavar="URL",
                   help="the server's /repository, e.g. http://updates:8470/repository")
    p.add_argument("--trusted-root", type=Path, required=True, metavar="ROOT_JSON",
                   help="a copy of the root metadata `workbench keys init` wrote; it is copied "
                        "into INSTALL_DIR/pinned-root.json and never read again")
    p.add_argument("--install-dir", type=Path, required=True, metavar="DIR")
    p.add_argument("--tower", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--token", default="", help="from `workbench tokens add TOWER`; without it, "
                                                "the agent does not report")
    p.add_argument("--poll", type=duration_arg, default=60.0, metavar="DURATION",
                   help="poll interval (default 60s)")
    p.add_argument("--reload-command", default="", metavar="CMD",
                   help="run after switching bundles, e.g. 'systemctl reload scanner'")
    p.add_argument("--force", action="store_true", help="overwrite an existing config")
    p.set_defaults(func=cmd_tower_init)

    for name, helptext, func in (
            ("pull", "one attempt: check, download, verify, switch, report", cmd_tower_pull),
            ("run", "poll forever (with jitter, backing off while the server fails)", cmd_tower_run),
            ("status", "the local install: serial in use, kept bundles, last attempt",
             cmd_tower_status)):
        p = ts.add_parser(name, help=helptext)
        p.add_argument("--config", type=Path, required=True, metavar="FILE")
        if name != "run":
            add_json_flag(p)
        else:
            p.add_argument("--max-attempts", type=int, default=None, help=argparse.SUPPRESS)
        p.set_defaults(func=func)

    p = ts.add_parser("send", help="send stuck or unknown-virus mail to the central quarantine")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("messages", nargs="+", type=Path, metavar="MESSAGE")
    p.add_argument("--reason", default="", help="why it was quarantined")
    add_json_flag(p)
    p.set_defaults(func=cmd_tower_send)


def _tower_config(path: Path) -> Any:
    from workbench.distribute.tower_config import TowerConfig

    return TowerConfig.load(path)


def cmd_tower_init(args: argparse.Namespace, ctx: Context) -> int:
    from tuf.api.metadata import Metadata, Root

    from workbench.distribute.install import PINNED_ROOT
    from workbench.distribute.tower_config import ConfigError, TowerConfig
    from workbench.durable import atomic_write

    root_path = args.trusted_root.expanduser().resolve()
    try:
        root_bytes = root_path.read_bytes()
        md = Metadata.from_bytes(root_bytes)
    except OSError as exc:
        raise CommandError(f"{root_path}: {exc.strerror or exc}", E_NOT_FOUND) from None
    except Exception as exc:
        raise CommandError(f"{root_path} is not TUF metadata: {exc}", E_INPUT) from None
    if not isinstance(md.signed, Root):
        raise CommandError(f"{root_path} is {md.signed.type} metadata, not root", E_INPUT)
    install_dir = args.install_dir.expanduser().resolve()
    # The trust anchor is the root given here, copied into the tower's own state: a path
    # re-read later would trust whatever is put there (e.g. a workbench's live root.json).
    pinned = install_dir / PINNED_ROOT
    try:
        config = TowerConfig.from_data({
            "repository_url": args.repository_url, "trusted_root": str(pinned),
            "install_dir": str(install_dir), "tower": args.tower,
            "server": args.server, "token": args.token, "poll_seconds": args.poll,
            "reload_command": args.reload_command}, where="arguments")
        if Path(args.config).exists() and not args.force:
            raise ConfigError(f"{args.config} exists (use --force to overwrite)")
        install_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(pinned, root_bytes, mode=0o644)
        written = config.write(args.config, overwrite=args.force)
    except OSError as exc:
        raise CommandError(f"cannot write {exc.filename or pinned}: {exc.strerror or exc}",
                           E_LOCAL) from None
    ctx.print(f"wrote {written} (tower {config.tower}, server {config.server}); pinned root "
              f"version {md.signed.version}, copied to {pinned}; start the agent with "
              f"`workbench tower run --config {written}`")
    return E_OK


def _pull_code(result: Any) -> int:
    if result.state == "ok":
        return E_OK
    if result.local:
        return E_LOCAL
    return E_REMOTE if result.transient else E_INPUT


def cmd_tower_pull(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.agent import TowerAgent

    agent = TowerAgent(_tower_config(args.config))
    result = agent.pull()
    if args.json:
        ctx.json(result)
    else:
        ctx.print(_describe(result))
    return _pull_code(result)


def _describe(result: Any) -> str:
    if result.state == "ok":
        if result.changed:
            text = (f"installed serial {result.serial} (was {result.previous_serial or '-'}; "
                    f"{result.loaded_from} rules; {result.bytes_downloaded} bytes)")
        else:
            text = f"serial {result.serial if result.serial is not None else '-'} is current ({result.checked})"
        return text + (f"; {result.repaired}" if result.repaired else "")
    kept = f"still on serial {result.serial}" if result.serial is not None else "no rules installed"
    return f"failed ({kept}): {result.error}"


def cmd_tower_run(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.agent import TowerAgent

    stop = threading.Event()

    def log(message: str) -> None:
        stamp = iso_seconds()
        ctx.err.write(f"{stamp} {message}\n")
        ctx.err.flush()

    def on_signal(signum: int, _frame: object) -> None:
        log(f"signal {signum}: stopping after this attempt")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    agent = TowerAgent(_tower_config(args.config), log=log)
    agent.run(stop, max_attempts=args.max_attempts)
    return E_OK


def cmd_tower_status(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.agent import TowerAgent

    status = TowerAgent(_tower_config(args.config)).status()
    if args.json:
        ctx.json(status)
        return E_OK
    rows = [("tower/server", f"{status.tower}/{status.server}"),
            ("repository", status.repository_url),
            ("install dir", str(status.install_dir)),
            ("serial", str(status.serial) if status.serial is not None else "-"),
            ("rules", str(status.rule_count) if status.rule_count is not None else "-"),
            ("kept", ", ".join(map(str, status.kept)) or "-"),
            ("agent", f"running (pid {status.agent_pid})" if status.agent_pid else "not running"),
            ("last attempt", f"{status.last_attempt or '-'} {status.last_state}"),
            ("last error", status.last_error or "-"),
            ("refused serial", str(status.rejected_serial) if status.rejected_serial else "-"),
            ("unsent reports", str(status.pending_reports))]
    if status.reload_pending is not None:
        rows.append(("RELOAD PENDING", f"serial {status.reload_pending} installed, not reloaded "
                                       "(the next run finishes it)"))
    if status.damaged:
        rows.append(("DAMAGED", status.damaged))
    for label, value in rows:
        ctx.print(f"{label:>14}: {value}")
    return E_INPUT if status.damaged else E_OK


def cmd_tower_send(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.client import ClientError, send_message

    config = _tower_config(args.config)
    if not config.token:
        raise CommandError(f"{args.config} has no token: `workbench tokens add {config.tower}` "
                           "on the workbench, then put it in the config", E_USAGE)
    receipts, failed = [], 0
    for path in args.messages:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}", E_NOT_FOUND) from None
        try:
            receipt = send_message(config.report_url, config.token, data, server=config.server,
                                   tower=config.tower, reason=args.reason)
        except ClientError as exc:
            raise CommandError(f"{path}: {exc}", E_REMOTE) from None
        receipt["file"] = str(path)
        receipts.append(receipt)
        failed += not receipt.get("stored")
        if not args.json:
            ctx.print(f"{path}: " + (f"stored {receipt['sha256'][:12]}"
                                     f"{' (new)' if receipt['new'] else ' (seen before)'}"
                                     if receipt.get("stored") else
                                     f"not mail: {receipt.get('failure')} (kept on the server)"))
    if args.json:
        ctx.json(receipts)
    return E_INPUT if failed else E_OK


# --- fleet ----------------------------------------------------------------------------------------


def _register_fleet(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fleet", help="which tower server runs which serial, and why not")
    f.add_argument("--url", metavar="URL",
                   help="ask a running server (default: read this workspace's fleet store)")
    f.add_argument("--tower", help="only this tower")
    f.add_argument("--all", action="store_true", help="list green servers too")
    add_json_flag(f)
    f.set_defaults(func=cmd_fleet)
    fs = f.add_subparsers(dest="fleet_command", metavar="ACTION")
    p = fs.add_parser("history", help="changes of state, serial or error, newest first")
    p.add_argument("--url", metavar="URL")
    p.add_argument("--tower")
    p.add_argument("--server")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(func=cmd_fleet_history)
    p = fs.add_parser("forget", help="drop decommissioned servers (or a whole tower) from the "
                                     "board and the inventory")
    p.add_argument("tower")
    p.add_argument("servers", nargs="*", metavar="SERVER", help="default: every server of TOWER")
    p.set_defaults(func=cmd_fleet_forget)
    p = fs.add_parser("expect", help="declare the servers a tower should have: those that never "
                                     "report show red")
    p.add_argument("tower", nargs="?", help="the tower (or --from FILE)")
    p.add_argument("servers", nargs="*", metavar="SERVER")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="read towers and servers from a .toml or .csv file (docs/distribution.md)")
    p.add_argument("--replace", action="store_true",
                   help="each tower named has exactly these servers (others leave its inventory)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    add_json_flag(p)
    p.set_defaults(func=cmd_fleet_expect)
    p = fs.add_parser("inventory", help="the servers each tower should have")
    p.add_argument("--tower", help="only this tower")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the inventory as JSON")
    out.add_argument("--toml", action="store_true",
                     help="print it as the TOML file `fleet expect --from` reads")
    p.set_defaults(func=cmd_fleet_inventory)


def _local_fleet_state(ctx: Context) -> Any:
    from workbench.distribute.fleet import FleetStore
    from workbench.distribute.repository import UpdateRepositoryError

    try:
        newest = _repository(ctx).newest_serial()
    except UpdateRepositoryError:
        newest = None
    with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
        return store.state(newest)


def cmd_fleet(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.client import fetch_fleet

    fleet = fetch_fleet(args.url, tower=args.tower) if args.url else _local_fleet_state(ctx)
    if args.tower:
        fleet = dataclasses.replace(
            fleet, towers=[t for t in fleet.towers if t.tower == args.tower],
            servers=[s for s in fleet.servers if s.tower == args.tower])
    if args.json:
        from workbench.distribute.fleet import fleet_json_data

        ctx.json(fleet_json_data(fleet))
        return E_OK
    counts = fleet.counts
    never = f" ({fleet.never_reported} never reported)" if fleet.never_reported else ""
    ctx.print(f"newest serial {fleet.newest_serial if fleet.newest_serial is not None else '-'}; "
              f"{sum(counts.values())} servers: {counts.get('green', 0)} green, "
              f"{counts.get('yellow', 0)} yellow, {counts.get('red', 0)} red{never}; serials in use: "
              + (", ".join(f"{k}x{v}" for k, v in fleet.serials.items()) or "-"))
    if fleet.not_in_inventory:
        ctx.print(f"{fleet.not_in_inventory} reporting server"
                  f"{'s are' if fleet.not_in_inventory != 1 else ' is'} not in the inventory "
                  "(`workbench fleet expect TOWER SERVER` adds them)")
    if fleet.towers:
        ctx.print("")
        # the inventory's columns only once there is one: without it nothing else changes
        listed = fleet.expected > 0
        ctx.print(table([[t.tower, t.health.value, str(t.servers), str(t.green), str(t.yellow),
                          str(t.red)]
                         + ([str(t.expected), str(t.never_reported)] if listed else [])
                         + [", ".join(f"{k}x{v}" for k, v in t.serials.items())]
                         for t in fleet.towers],
                        ["TOWER", "HEALTH", "SERVERS", "GREEN", "YELLOW", "RED"]
                        + (["EXPECTED", "NEVER"] if listed else []) + ["SERIALS"]))
    shown = [s for s in fleet.servers if args.all or s.health.value != "green"]
    if shown:
        ctx.print("")
        ctx.print(table([[s.tower, s.server, s.health.value,
                          str(s.serial) if s.serial is not None else "-", s.reason]
                         for s in shown],
                        ["TOWER", "SERVER", "HEALTH", "SERIAL", "WHY"], max_width={4: 100}))
    return E_OK


def cmd_fleet_history(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.client import fetch_history
    from workbench.distribute.fleet import FleetStore

    if args.url:
        events = fetch_history(args.url, tower=args.tower, server=args.server, limit=args.limit)
    else:
        with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
            events = store.events(tower=args.tower, server=args.server, limit=args.limit)
    if args.json:
        ctx.json(events)
        return E_OK
    ctx.print(table([[f"{e.at:%Y-%m-%d %H:%M:%S}", e.tower, e.server, e.state,
                      str(e.serial) if e.serial is not None else "-", e.error]
                     for e in events], ["AT", "TOWER", "SERVER", "STATE", "SERIAL", "ERROR"],
                    max_width={5: 100}))
    return E_OK


def cmd_fleet_forget(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.fleet import FleetStore

    with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
        removed = store.forget(args.tower, *args.servers)
    if not removed:
        raise CommandError(f"no such server in the fleet or the inventory: {args.tower} "
                           f"{' '.join(args.servers)}".rstrip(), E_NOT_FOUND)
    unknown = [s for s in dict.fromkeys(args.servers) if s not in removed]
    if unknown:
        ctx.warn(f"not in the fleet or the inventory of {args.tower}: {', '.join(unknown)}")
    ctx.print(f"forgot {len(removed)} server{'s' if len(removed) != 1 else ''} of {args.tower}: "
              f"{', '.join(removed)} (reports and inventory; the history stays)")
    return E_OK


def cmd_fleet_expect(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.fleet import FleetStore
    from workbench.distribute.inventory import InventoryError, check_name, read_inventory

    if args.from_file is not None:
        if args.tower or args.servers:
            raise CommandError("give TOWER SERVER... or --from FILE, not both", E_USAGE)
        try:
            inventory = read_inventory(args.from_file)
        except OSError as exc:
            raise CommandError(f"{args.from_file}: {exc.strerror or exc}", E_NOT_FOUND) from None
        except InventoryError as exc:
            raise CommandError(str(exc), E_INPUT) from None
    else:
        if not args.tower or not (args.servers or args.replace):
            raise CommandError("name a TOWER and its SERVERs (or --from FILE)", E_USAGE)
        try:
            inventory = {check_name("tower", args.tower):
                         [check_name("server", s) for s in args.servers]}
        except InventoryError as exc:
            raise CommandError(str(exc), E_USAGE) from None
    with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
        change = store.expect(inventory, replace=args.replace, dry_run=args.dry_run)
    if args.json:
        ctx.json(change)
        return E_OK
    would = "would be " if change.dry_run else ""
    for verb, entries in (("added", change.added), ("removed", change.removed)):
        per_tower: dict[str, list[str]] = {}
        for e in entries:
            per_tower.setdefault(e.tower, []).append(e.server)
        for tower, servers in per_tower.items():
            ctx.print(f"{tower}: {would}{verb} {', '.join(servers)}")
    ctx.print(f"{len(change.added)} {would}added, {len(change.removed)} {would}removed; "
              f"{change.expected} server{'s' if change.expected != 1 else ''} expected"
              + (" (dry run: nothing changed)" if change.dry_run else ""))
    return E_OK


def cmd_fleet_inventory(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.distribute.fleet import FleetStore
    from workbench.distribute.inventory import Inventory, inventory_toml

    with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
        inventory = store.inventory()
    if args.tower:
        inventory = {t: s for t, s in inventory.items() if t == args.tower}
    if args.toml:
        ctx.out.write(inventory_toml(inventory))
        return E_OK
    document = Inventory.from_mapping(inventory)
    if args.json:
        ctx.json(document)
        return E_OK
    if not document.towers:
        ctx.print("no inventory" + (f" for tower {args.tower}" if args.tower else "")
                  + ": every server that reports is on the board, and none is missing "
                    "(`workbench fleet expect TOWER SERVER...`)")
        return E_OK
    ctx.print(table([[t.tower, str(len(t.servers)), " ".join(t.servers)] for t in document.towers],
                    ["TOWER", "EXPECTED", "SERVERS"]))
    ctx.print(f"\n{document.servers} servers in {len(document.towers)} towers")
    return E_OK
