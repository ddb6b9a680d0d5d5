"""``workbench fleet ...``: which tower server runs which serial, and why not."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from workbench.cli.context import (
    CommandError,
    Context,
    Reply,
    add_json_flag,
    table,
)
from workbench.exitcodes import (
    E_INPUT,
    E_NOT_FOUND,
    E_OK,
    E_USAGE,
)
from workbench.humanize import shown


def register(sub: argparse._SubParsersAction) -> None:
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
    from workbench.distribute.rollout import fleet_view
    from workbench.distribute.update_repository import UpdateRepository, UpdateRepositoryError

    try:
        newest, canary = fleet_view(UpdateRepository.for_workspace(ctx.workspace))
    except UpdateRepositoryError:
        newest, canary = None, None
    with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
        return store.state(newest, canary=canary)


def cmd_fleet(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.client import fetch_fleet

    fleet = fetch_fleet(args.url, tower=args.tower) if args.url else _local_fleet_state(ctx)
    if args.tower:
        fleet = dataclasses.replace(
            fleet, towers=[t for t in fleet.towers if t.tower == args.tower],
            servers=[s for s in fleet.servers if s.tower == args.tower])
    from workbench.distribute.fleet import fleet_json_data

    def text(ctx: Context) -> None:
        counts = fleet.counts
        never = f" ({fleet.never_reported} never reported)" if fleet.never_reported else ""
        ctx.print(f"newest serial {fleet.newest_serial if fleet.newest_serial is not None else '-'}; "
                  f"{sum(counts.values())} servers: {counts.get('green', 0)} green, "
                  f"{counts.get('yellow', 0)} yellow, {counts.get('red', 0)} red{never}; serials in use: "
                  + (", ".join(f"{k}x{v}" for k, v in fleet.serials.items()) or "-"))
        if fleet.rollout is not None:
            ctx.print(f"rollout: {fleet.rollout.describe()}")
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
        listed_servers = [s for s in fleet.servers if args.all or s.health.value != "green"]
        if listed_servers:
            ctx.print("")
            ctx.print(table([[s.tower, s.server, s.health.value,
                              str(s.serial) if s.serial is not None else "-", s.reason]
                             for s in listed_servers],
                            ["TOWER", "SERVER", "HEALTH", "SERIAL", "WHY"], max_width={4: 100}))

    return Reply(fleet_json_data(fleet), text)


def cmd_fleet_history(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.client import fetch_history
    from workbench.distribute.fleet import FleetStore

    if args.url:
        events = fetch_history(args.url, tower=args.tower, server=args.server, limit=args.limit)
    else:
        with FleetStore.for_workspace(ctx.workspace.ensure()) as store:
            events = store.events(tower=args.tower, server=args.server, limit=args.limit)

    def text(ctx: Context) -> None:
        ctx.print(table([[shown(e.at), e.tower, e.server, e.state,
                          str(e.serial) if e.serial is not None else "-", e.error]
                         for e in events], ["AT", "TOWER", "SERVER", "STATE", "SERIAL", "ERROR"],
                        max_width={5: 100}))

    return Reply(events, text)


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


def cmd_fleet_expect(args: argparse.Namespace, ctx: Context) -> int | Reply:
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

    def text(ctx: Context) -> None:
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

    return Reply(change, text)


def cmd_fleet_inventory(args: argparse.Namespace, ctx: Context) -> int | Reply:
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

    def text(ctx: Context) -> None:
        if not document.towers:
            ctx.print("no inventory" + (f" for tower {args.tower}" if args.tower else "")
                      + ": every server that reports is on the board, and none is missing "
                        "(`workbench fleet expect TOWER SERVER...`)")
            return
        ctx.print(table([[t.tower, str(len(t.servers)), " ".join(t.servers)] for t in document.towers],
                        ["TOWER", "EXPECTED", "SERVERS"]))
        ctx.print(f"\n{document.servers} servers in {len(document.towers)} towers")

    return Reply(document, text)
