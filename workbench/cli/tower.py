"""``workbench tower ...``: the agent on a tower's mail server that pulls signed bundles."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from workbench.cli.context import (
    CommandError,
    Context,
    Reply,
    add_json_flag,
    duration_arg,
)
from workbench.exitcodes import (
    E_INPUT,
    E_LOCAL,
    E_NOT_FOUND,
    E_OK,
    E_REMOTE,
    E_USAGE,
)
from workbench.humanize import iso_seconds


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--long-poll", action="store_true",
                   help="hold each poll at the server until a publish or the poll interval "
                        "(a new serial arrives in seconds; needs `workbench serve`, not static files)")
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

    from workbench.cli import tower_scan

    tower_scan.register(ts)


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
            "reload_command": args.reload_command, "long_poll": args.long_poll}, where="arguments")
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


def cmd_tower_pull(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.agent import TowerAgent

    agent = TowerAgent(_tower_config(args.config))
    result = agent.pull()

    def text(ctx: Context) -> None:
        ctx.print(_describe(result))

    return Reply(result, text, _pull_code(result))


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


def cmd_tower_status(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.agent import TowerAgent

    status = TowerAgent(_tower_config(args.config)).status()
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

    def text(ctx: Context) -> None:
        for label, value in rows:
            ctx.print(f"{label:>14}: {value}")

    # the same exit code in both views (under --json a damaged install exited 0)
    return Reply(status, text, E_INPUT if status.damaged else E_OK)


def cmd_tower_send(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.client import ClientError, send_message

    config = _tower_config(args.config)
    if not config.token:
        raise CommandError(f"{args.config} has no token: `workbench tokens add {config.tower}` "
                           "on the workbench, then put it in the config", E_USAGE)
    receipts, lines, failed = [], [], 0
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
        lines.append(f"{path}: " + (f"stored {receipt['sha256'][:12]}"
                                    f"{' (new)' if receipt['new'] else ' (seen before)'}"
                                    if receipt.get("stored") else
                                    f"not mail: {receipt.get('failure')} (kept on the server)"))

    def text(ctx: Context) -> None:
        for line in lines:
            ctx.print(line)

    return Reply(receipts, text, E_INPUT if failed else E_OK)
