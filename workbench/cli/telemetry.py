"""``workbench rules health``: lint, cost, corpus results, live hits and dismissals per rule."""

from __future__ import annotations

import argparse
import datetime as dt

from workbench.cli.context import Context, Reply, add_json_flag, table
from workbench.exitcodes import E_FINDINGS, E_OK
from workbench.humanize import shown


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rules", help="the rules as a whole: health (lint, cost, corpus, live hits)")
    rs = r.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    p = rs.add_parser("health", help="per rule: lint, cost, corpus TP/FP/FN, live hits per hour and "
                                     "tower, last hit, dismissed as clean; flags likely FP storms")
    p.add_argument("--url", metavar="URL", help="the server (GET /v1/fleet/rules); default: this "
                                                "workspace's fleet store")
    p.add_argument("--hours", type=int, default=24, help="live window (default 24)")
    p.add_argument("--no-corpus", action="store_true", help="skip the corpus runs (no TP/FP/FN, "
                                                            "no cost)")
    p.add_argument("--no-validate", action="store_true", help="live data only: no lint or corpus")
    p.add_argument("--flagged", action="store_true", help="only rules flagged as likely FP storms")
    add_json_flag(p)
    p.set_defaults(func=cmd_health)


def cmd_health(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.distribute.health import rule_health

    # ClientError when --url cannot be reached: remote
    report = rule_health(ctx.workspace, url=args.url, hours=args.hours, validate=not args.no_validate,
                         corpus=not args.no_corpus, flagged=args.flagged)

    def text(ctx: Context) -> None:
        rows = [[h.rule, h.status or "-", f"{h.lint_errors}/{h.lint_warnings}",
                 h.cost_text(),
                 "-" if h.true_positives is None else f"{h.true_positives}/{h.false_positives}/{h.false_negatives}",
                 f"{h.hits_per_hour:g}", str(h.hits), ",".join(f"{t}:{n}" for t, n in h.towers.items()) or "-",
                 _when(h.last_hit), f"{h.dismissed}/{h.copies}", (h.proposal and f"{h.flag} -> {h.proposal}") or ""]
                for h in report.rules]
        ctx.print(table(rows, ["rule", "status", "lint e/w", "ms/MiB", "tp/fp/fn", "hits/h",
                               f"hits {report.window_hours}h", "towers", "last hit", "dismissed",
                               "flag"]))
        for h in report.rules:
            for line in h.evidence:
                ctx.print(f"{h.rule}: {line}")
        flagged = [h for h in report.rules if h.proposal]
        if flagged:
            ctx.print(f"{len(flagged)} rule(s) flagged: `workbench rule disable ID --emergency` takes "
                      "one off the fleet now")

    return Reply(report, text, E_FINDINGS if any(h.flag for h in report.rules) else E_OK)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return shown(dt.datetime.fromtimestamp(ts, dt.UTC), seconds=False)
