"""``workbench campaigns ...``: the waves in the quarantine, what links them, one rule for each."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.cli.context import CommandError, Context, Reply, add_json_flag, table
from workbench.exitcodes import E_FINDINGS, E_OK, E_USAGE
from workbench.humanize import shown
from workbench.quarantine.index import STATUSES
from workbench.terminal_text import sparkline

if TYPE_CHECKING:
    from workbench.campaigns.service import BulkTriage


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("campaigns", help="campaigns: quarantined messages grouped by what links them")
    c.add_argument("--since", default="", metavar="WHEN",
                   help="only campaigns active since then: a duration (90m, 1h, 2d) or an ISO time")
    c.add_argument("--min-size", type=int, default=2, metavar="N", help="at least N members (default 2)")
    c.add_argument("--limit", type=int, default=50)
    add_json_flag(c)
    c.set_defaults(func=cmd_list)
    cs = c.add_subparsers(dest="campaigns_command", metavar="ACTION")

    p = cs.add_parser("show", help="one campaign: reach, growth, why its members are together, members")
    p.add_argument("id", metavar="ID", help="campaign id (C-...), a unique prefix, or a member message's sha256")
    p.add_argument("--members", type=int, default=200, metavar="N", help="list at most N members")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = cs.add_parser("status", help="set the triage status of every member")
    p.add_argument("id", metavar="ID")
    p.add_argument("status", choices=STATUSES)
    p.add_argument("--note", default="")
    add_json_flag(p)
    p.set_defaults(func=cmd_status)

    p = cs.add_parser("tag", help="add or remove tags on every member")
    p.add_argument("id", metavar="ID")
    p.add_argument("--add", action="append", default=[], metavar="TAG")
    p.add_argument("--remove", action="append", default=[], metavar="TAG")
    add_json_flag(p)
    p.set_defaults(func=cmd_tag)

    p = cs.add_parser("draft", help="draft one rule for every member, then test it (coverage, clean hits)")
    p.add_argument("id", metavar="ID")
    add_draft_options(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_draft)

    p = cs.add_parser("update", help="take in what the quarantine and dissection added since the last update")
    add_json_flag(p)
    p.set_defaults(func=cmd_update, rebuild=False)

    p = cs.add_parser("rebuild", help="recompute every campaign from the quarantine and the dissection cache")
    add_json_flag(p)
    p.set_defaults(func=cmd_update, rebuild=True)


def add_draft_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="rule name (default from --family)")
    p.add_argument("--family", default="Unknown", help="malware family, for the name and metadata")
    p.add_argument("--category", default="MAL")
    p.add_argument("--corpus", action="append", default=None, metavar="NAME",
                   help="clean corpus to test against (default: every registered clean corpus)")
    p.add_argument("--no-dissect", action="store_true",
                   help="do not dissect members that were not dissected yet")
    p.add_argument("--out", type=Path, metavar="FILE.yar", help="append the rule to this file (created if missing)")


def _time(iso: str) -> str:
    return shown(iso, seconds=False)


def cmd_list(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.campaigns.service import list_campaigns, parse_since

    since = parse_since(args.since)
    found = list_campaigns(ctx.workspace, since=since, min_size=args.min_size, limit=args.limit)

    def text(ctx: Context) -> None:
        if not found:
            ctx.print("no campaigns" + (f" active since {_time(since)}" if since else "")
                      + " (messages join one when they share a payload, URL, template or relay)")
            return
        rows = [[c.id, str(c.size), f"{c.towers}/{c.servers}", _time(c.first_seen), _time(c.last_seen),
                 sparkline(c.growth, 16), ", ".join(c.reasons[:3])] for c in found]
        ctx.print(table(rows, ["campaign", "msgs", "towers/servers", "first seen", "last seen", "growth",
                               "linked by"], max_width={6: 48}))

    return Reply({"campaigns": found}, text)


def cmd_show(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.campaigns.service import show_campaign

    report = show_campaign(ctx.workspace, args.id, members=args.members)

    def text(ctx: Context) -> None:
        s = report.summary
        for note in report.notes:
            ctx.print(f"note: {note}")
        ctx.print(f"campaign {s.id}: {s.size} messages, {s.towers} towers, {s.servers} servers")
        ctx.print(f"first seen {_time(s.first_seen)}, last seen {_time(s.last_seen)}")
        ctx.print(f"growth per hour  {sparkline(s.growth, 48)}  ({len(s.growth)} h, peak {max(s.growth, default=0)})")
        ctx.print("\nwhy they are together (members that joined by each link):")
        for kind, n in report.links.items():
            from workbench.campaigns.features import KINDS

            ctx.print(f"  {n:>5}  {KINDS[kind].label}")
        if report.shared:
            ctx.print("\nshared values:")
            ctx.print(table([[v.kind, str(v.messages), v.value] for v in report.shared],
                            ["kind", "msgs", "value"], max_width={2: 80}))
        ctx.print("\nreach:")
        ctx.print(table([[r.tower, r.server, str(r.messages)] for r in report.reach], ["tower", "server", "msgs"]))
        ctx.print(f"\nmembers ({report.members_shown} of {s.size}):")
        rows = [[m.sha256[:12], _time(m.seen), m.tower, m.status, m.subject,
                 ", ".join(sorted({w.kind for w in m.why})) or "(first)"] for m in report.members]
        ctx.print(table(rows, ["id", "seen", "tower", "status", "subject", "joined by"],
                        max_width={4: 50, 5: 40}))

    return Reply(report, text)


def cmd_status(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.campaigns.service import set_campaign_status

    result = set_campaign_status(ctx.workspace, args.id, args.status, note=args.note)
    return _triaged(args, ctx, result)


def _triaged(args: argparse.Namespace, ctx: Context, result: BulkTriage) -> int | Reply:
    def text(ctx: Context) -> None:
        ctx.print(f"{result.campaign}: {result.action} on {len(result.changed)} messages")

    return Reply(result, text)


def cmd_tag(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.campaigns.service import tag_campaign

    if not args.add and not args.remove:
        raise CommandError("give --add TAG or --remove TAG", E_USAGE)
    result = tag_campaign(ctx.workspace, args.id, args.add, args.remove)
    return _triaged(args, ctx, result)


def cmd_draft(args: argparse.Namespace, ctx: Context) -> int | Reply:
    return run_campaign_draft(args, ctx, args.id)


def run_campaign_draft(args: argparse.Namespace, ctx: Context, ident: str) -> int | Reply:
    """``campaigns draft ID`` and ``rule draft --campaign ID``: one handler for both."""
    from workbench.campaigns.draft import draft_for_campaign
    from workbench.cli.rules import append_to_file

    result = draft_for_campaign(ctx.workspace, ident, name=args.name, family=args.family,
                                category=args.category, clean_corpora=args.corpus,
                                dissect_missing=not args.no_dissect)
    if args.out:
        append_to_file(args.out, result.draft.text)

    def text(ctx: Context) -> None:
        ctx.print(result.draft.text.rstrip())
        cov = result.coverage
        ctx.print(f"\n// campaign {result.campaign}: {len(result.payloads)} {result.kind} payload(s), "
                  f"{len(result.shared)} shared strings, {result.need} needed")
        if result.dissected:
            ctx.print(f"// dissected {result.dissected} member(s) first")
        ctx.print(f"// coverage: {len(cov.caught)} of {cov.members} members caught ({cov.share:.0%})")
        for miss in cov.missed[:20]:
            ctx.print(f"//   missed {miss.message[:12]}: {miss.reason}")
        if result.clean_corpora:
            ctx.print(f"// clean corpora ({', '.join(result.clean_corpora)}, {result.clean_files} files): "
                      f"{len(result.false_positives)} hit(s)")
            for hit in result.false_positives[:20]:
                ctx.print(f"//   FALSE POSITIVE {hit.sha256[:12]} {hit.name} ({', '.join(hit.corpora)})")
        else:
            ctx.print("// no clean corpus registered: false positives not checked (workbench corpus add NAME PATH --label clean)")
        for finding in result.draft.findings:
            ctx.print(f"// lint {finding.id}: {finding.message}")
        for note in [*result.notes, *result.draft.notes]:
            ctx.print(f"// note: {note}")
        if args.out:
            ctx.print(f"// written to {args.out}")

    return Reply(result, text, E_OK if result.passed else E_FINDINGS)


def cmd_update(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.campaigns.service import catch_up, rebuild

    report = rebuild(ctx.workspace) if args.rebuild else catch_up(ctx.workspace)

    def text(ctx: Context) -> None:
        ctx.print(f"{'rebuilt' if args.rebuild else 'updated'}: {report.messages} messages, "
                  f"{report.dissections} dissections taken in; {report.joined} joined a campaign, "
                  f"{report.merges} merges, {report.elapsed_ms:.0f} ms")

    return Reply(report, text)
