"""``workbench init`` and ``workbench demo``: create a workspace; seed the demo and run its lab."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli.context import CommandError, Context, Reply, add_json_flag
from workbench.demo.seed import seed_demo
from workbench.exitcodes import E_CONFLICT, E_NOT_FOUND
from workbench.workspace import CreatedWorkspace, create_workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a workspace: quarantine, state and a signature "
                                    "repository of its own (git)")
    p.add_argument("folder", nargs="?", type=Path, metavar="DIR",
                   help="the workspace folder (default: --home, $WORKBENCH_HOME or the current folder)")
    p.add_argument("--signatures-from", type=Path, metavar="DIR",
                   help="seed the new signature repository with a copy of this one")
    add_json_flag(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("demo", help="create (if needed) and seed a demo workspace: quarantine, "
                                    "corpora, signatures, a local update lab")
    p.add_argument("--messages", type=int, default=240, metavar="N",
                   help="messages to generate (default 240; every threat family is always included)")
    p.add_argument("--force", action="store_true", help="seed even if the quarantine is not empty")
    p.add_argument("--signatures-from", type=Path, metavar="DIR",
                   help="when the workspace has no signature repository yet, start one as a "
                        "copy of this one (e.g. the checkout's signatures/)")
    p.add_argument("--no-dissect", action="store_true",
                   help="do not dissect the seeded messages (search then covers headers only "
                        "until they are dissected)")
    p.add_argument("--open", action="store_true",
                   help="then start the lab (update repository, `serve` on loopback, tower "
                        "agents), open the terminal UI, and stop the lab when the UI exits")
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


def _create(ctx: Context, folder: Path | None, signatures_from: Path | None) -> CreatedWorkspace:
    workspace = ctx.workspace
    if folder is not None:
        from workbench.workspace import Workspace

        workspace = ctx.workspace = Workspace.resolve(folder, workspace.signatures_override)
    try:
        return create_workspace(workspace, signatures_from=signatures_from)
    except FileExistsError as exc:
        raise CommandError(str(exc), E_CONFLICT) from None
    except FileNotFoundError as exc:
        raise CommandError(str(exc), E_NOT_FOUND) from None


def cmd_init(args: argparse.Namespace, ctx: Context) -> Reply:
    created = _create(ctx, args.folder, args.signatures_from)

    def text(ctx: Context) -> None:
        ctx.print(f"workspace {created.home}")
        if created.signatures_created:
            seeded = f", a copy of {created.seeded_from}" if created.seeded_from else ""
            ctx.print(f"signature repository {created.signatures}: a new git repository{seeded}")
        else:
            ctx.print(f"signature repository {created.signatures}: already there, left as it is")

    return Reply(created, text)


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int | Reply:
    created = _create(ctx, None, args.signatures_from)
    report = seed_demo(ctx.workspace, messages=args.messages, force=args.force,
                       dissect=not args.no_dissect)

    def text(ctx: Context) -> None:
        if created.signatures_created:
            ctx.print(f"signature repository {created.signatures}: a new git repository"
                      + (f", a copy of {created.seeded_from}" if created.seeded_from else ""))
        if report.skipped:
            ctx.print(f"demo quarantine already seeded in {report.home}/quarantine (use --force to add more)")
        else:
            s = report.ingest
            ctx.print(f"wrote {report.messages_written} spool files and {report.failed_written} junk "
                      f"files; ingest: accepted {s.accepted}, duplicates {s.duplicates}, "
                      f"flagged {s.flagged}, failed {s.failed}; dissected {report.dissected}")
        for name, count in report.corpora.items():
            ctx.print(f"corpus {name}: {count} files")

    if args.open:
        text(ctx)           # the UI takes the terminal next: what was seeded, said first
        return _open_with_lab(args, ctx)
    return Reply(report, text)


def _open_with_lab(args: argparse.Namespace, ctx: Context) -> int:
    from workbench.cli.tui import run_tui
    from workbench.demo.lab import Lab, LabError, prepare_lab

    prepared = prepare_lab(ctx.workspace)
    if prepared.published_serial is not None:
        ctx.print(f"lab: released and published serial {prepared.published_serial}")
    try:
        lab = Lab(ctx.workspace).start()
    except LabError as exc:
        raise CommandError(str(exc), E_CONFLICT) from None
    with lab:
        lab.hold_signals()
        ctx.print(f"lab: workbench serve on {lab.url}, agents for {', '.join(prepared.towers)}; "
                  f"logs in {prepared.folder}/logs")
        ui = argparse.Namespace(query="", open_message=None, edit=None, theme="dark",
                                fleet_url=None, fleet_refresh=2.0, list_refresh=3.0)
        return run_tui(ui, ctx)
