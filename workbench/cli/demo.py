"""``workbench demo``: seed a realistic demo quarantine and corpora."""

from __future__ import annotations

import argparse

from workbench.cli.context import Context, Reply, add_json_flag
from workbench.demo.seed import seed_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="seed a realistic demo quarantine and corpora in the workspace")
    p.add_argument("--messages", type=int, default=240, metavar="N",
                   help="messages to generate (default 240; every threat family is always included)")
    p.add_argument("--force", action="store_true", help="seed even if the quarantine is not empty")
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int | Reply:
    report = seed_demo(ctx.workspace, messages=args.messages, force=args.force)

    def text(ctx: Context) -> None:
        if report.skipped:
            ctx.print(f"demo quarantine already seeded in {report.home}/quarantine (use --force to add more)")
        else:
            s = report.ingest
            ctx.print(f"wrote {report.messages_written} spool files and {report.failed_written} junk "
                      f"files; ingest: accepted {s.accepted}, duplicates {s.duplicates}, "
                      f"flagged {s.flagged}, failed {s.failed}")
        for name, count in report.corpora.items():
            ctx.print(f"corpus {name}: {count} files")

    return Reply(report, text)
