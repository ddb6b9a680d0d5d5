"""``workbench rules health``: lint, cost, corpus results, live hits and dismissals per rule."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

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
    from workbench.distribute.health import build_health, quarantine_verdicts

    telemetry = _telemetry(ctx, args)
    validation = None
    if not args.no_validate and ctx.workspace.signatures.is_dir():
        from workbench.release.validate import validate

        validation = validate(ctx.workspace.signatures, scan_corpus=not args.no_corpus)
    copies, dismissed = quarantine_verdicts(_quarantine_rows(ctx))
    report = build_health(validation=validation, telemetry=telemetry, copies=copies,
                          dismissed=dismissed, corpus=validation is not None and not args.no_corpus)
    if args.flagged:
        report = type(report)(report.window_hours, report.messages_scanned, report.corpus,
                              [h for h in report.rules if h.flag])

    def text(ctx: Context) -> None:
        rows = [[h.rule, h.status or "-", f"{h.lint_errors}/{h.lint_warnings}",
                 "-" if h.ms_per_mib is None else f"{h.ms_per_mib:g}",
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


def _telemetry(ctx: Context, args: argparse.Namespace) -> Any:
    from workbench.distribute.telemetry import FleetRules, RuleTelemetry

    if args.url:
        from workbench.distribute.client import fetch_rules

        return fetch_rules(args.url, hours=args.hours)      # ClientError: remote
    from workbench.distribute.fleet import FleetStore

    path = ctx.workspace.state / "fleet.sqlite"
    if not path.exists():
        return FleetRules(generated_at=0.0, window_hours=args.hours, messages=0, scan_seconds=0.0,
                          errors=0, rules=list[RuleTelemetry]())
    with FleetStore(path) as store:
        return store.rules(window_hours=args.hours)


def _quarantine_rows(ctx: Context) -> list[tuple[str, str]]:
    from workbench.quarantine.service import Quarantine

    if not (ctx.workspace.quarantine / "index.sqlite").exists():
        return []
    out: list[tuple[str, str]] = []
    with Quarantine.open(ctx.workspace) as q:
        offset = 0
        while True:             # the reasons are free text: read them page by page
            page = q.index.list("", offset=offset, limit=5000)
            out += [(r.reason, r.status) for r in page if str(r.reason).startswith("match:")]
            if len(page) < 5000:
                return out
            offset += 5000


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return shown(dt.datetime.fromtimestamp(ts, dt.UTC), seconds=False)
