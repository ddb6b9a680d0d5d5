"""``workbench tower scan``: run the SMTP content filter on a tower's mail server."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
from pathlib import Path
from typing import Any

from workbench.cli.context import CommandError, Context
from workbench.exitcodes import E_OK, E_USAGE
from workbench.humanize import iso_seconds


def register(ts: argparse._SubParsersAction) -> None:
    p = ts.add_parser("scan", help="the SMTP content filter: scan with the current bundle, "
                                   "tag/hold, re-inject, copy unknown and stuck mail to the quarantine")
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help="the agent's tower.toml")
    p.add_argument("--scanner-config", type=Path, default=None, metavar="FILE",
                   help="scanner.toml (policy, limits, next hop); default: built-in defaults")
    p.add_argument("--listen", default=None, metavar="HOST:PORT", help="default 127.0.0.1:10025")
    p.add_argument("--next-hop", default=None, metavar="HOST:PORT", help="default 127.0.0.1:10026")
    p.set_defaults(func=cmd_tower_scan)


def _host_port(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{what}: expected HOST:PORT, got {text!r}", E_USAGE)
    return host, int(port)


def cmd_tower_scan(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.cli.tower import _tower_config
    from workbench.distribute.scanner import ScanConfig
    from workbench.distribute.smtp_filter import TowerScanService

    tower = _tower_config(args.config)
    config = ScanConfig.load(args.scanner_config) if args.scanner_config else ScanConfig()   # ScanConfigError: usage
    changes: dict[str, Any] = {}
    if args.listen:
        changes["listen_host"], changes["listen_port"] = _host_port(args.listen, "--listen")
    if args.next_hop:
        changes["next_hop_host"], changes["next_hop_port"] = _host_port(args.next_hop, "--next-hop")
    config = dataclasses.replace(config, **changes)
    stop = threading.Event()

    def log(message: str) -> None:
        ctx.err.write(f"{iso_seconds()} {message}\n")
        ctx.err.flush()

    def on_signal(signum: int, _frame: object) -> None:
        log(f"signal {signum}: stopping (messages in progress finish)")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    service = TowerScanService(tower, config, log=log)
    log(f"scanning on {config.listen_host}:{config.listen_port}, re-injecting to "
        f"{config.next_hop_host}:{config.next_hop_port}, rules serial {service.rules.get() and service.rules.serial}")
    try:
        service.run(stop)
    except OSError as exc:
        raise CommandError(f"cannot listen on {config.listen_host}:{config.listen_port}: {exc}",
                           E_USAGE) from None
    return E_OK
