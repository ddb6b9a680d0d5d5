"""``workbench quarantine ...``: ingest, list, show, triage, export, fsck, reindex."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from workbench.cli.context import (
    CommandError,
    Context,
    Reply,
    accept_query_terms,
    add_json_flag,
    duration_arg,
    duration_or_zero_arg,
    table,
)
from workbench.document import dumps, to_data
from workbench.exitcodes import (
    E_CONFLICT,
    E_FINDINGS,
    E_INPUT,
    E_NOT_FOUND,
    E_OK,
    E_REMOTE,
    E_USAGE,
)
from workbench.humanize import shown, stamp
from workbench.quarantine.index import STATUSES
from workbench.quarantine.ingest import DEFAULT_MAX_MESSAGE, IngestSummary, ingest_paths
from workbench.quarantine.query import parse_query
from workbench.quarantine.service import Quarantine
from workbench.quarantine.watch import DEFAULT_INTERVAL, DEFAULT_SETTLE, DrainResult, SpoolWatcher
from workbench.terminal_text import json_for_terminal, visible


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("quarantine", help="the central quarantine: ingest, browse, triage")
    qs = q.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)

    p = qs.add_parser("ingest", help="ingest files, folders, Maildirs, mboxes or the spool")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--tower", default="", help="tower that sent these (default: sidecar or empty)")
    p.add_argument("--server", default="", help="mail server that sent these")
    p.add_argument("--reason", default="", help="quarantine reason (overrides headers and sidecars)")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_MESSAGE, metavar="BYTES",
                   help="messages larger than this go to failed/ (default 100 MiB)")
    add_json_flag(p)
    p.set_defaults(func=cmd_ingest)

    p = qs.add_parser("watch", help="ingest the tower spool continuously as mail arrives")
    p.add_argument("--interval", type=duration_arg, default=DEFAULT_INTERVAL, metavar="DURATION",
                   help=f"poll the spool this often (default {DEFAULT_INTERVAL:g}s)")
    p.add_argument("--settle", type=duration_or_zero_arg, default=DEFAULT_SETTLE,
                   metavar="DURATION",
                   help=f"leave files modified less than this ago; a tower may still be "
                        f"writing them (default {DEFAULT_SETTLE:g}s, 0 takes everything)")
    p.add_argument("--once", action="store_true", help="drain once and exit")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_MESSAGE, metavar="BYTES",
                   help="larger inputs go to failed/ (default 100 MiB)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per drain that did something (see docs/formats.md)")
    p.set_defaults(func=cmd_watch)

    p = qs.add_parser("list", help="list quarantined messages, newest first")
    p.add_argument("--query", "-q", default="",
                   help="filter, e.g. 'tower:t12 status:new has:attachment invoice' or '-status:dismissed'")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--count", action="store_true",
                   help="count every matching message (a full count; without it the total is "
                        "given only when this page reaches the end)")
    add_json_flag(p)
    accept_query_terms(p)
    p.set_defaults(func=cmd_list)

    p = qs.add_parser("show", help="one message: index row, sightings, audit log")
    p.add_argument("id", metavar="ID", help="sha256 or a unique prefix of it")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = qs.add_parser("set-status", help="set the triage status")
    p.add_argument("id", metavar="ID")
    p.add_argument("status", choices=STATUSES)
    p.add_argument("--note", default="")
    p.set_defaults(func=cmd_set_status)

    p = qs.add_parser("tag", help="add or remove tags")
    p.add_argument("id", metavar="ID")
    p.add_argument("tags", nargs="+", metavar="TAG", help="+tag adds (or just tag), -tag removes")
    p.set_defaults(func=cmd_tag)

    p = qs.add_parser("export", help="export raw messages into an AES zip (password 'infected')")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--zip", required=True, type=Path, metavar="OUT.zip")
    p.set_defaults(func=cmd_export)

    p = qs.add_parser("fsck", help="check objects against their hashes and the index against the objects")
    p.add_argument("--quick", action="store_true", help="do not re-hash every object")
    p.add_argument("--repair", action="store_true",
                   help="fix what can be fixed without losing anything: torn journal lines, "
                        "sightings only the index or only the journal has, object modes")
    add_json_flag(p)
    p.set_defaults(func=cmd_fsck)

    p = qs.add_parser("reindex", help="rebuild the index from the objects and the journal")
    add_json_flag(p)
    p.set_defaults(func=cmd_reindex)

    p = qs.add_parser("failed", help="inputs that were not mail, kept in quarantine/failed/")
    p.add_argument("--limit", type=int, default=100)
    add_json_flag(p)
    p.set_defaults(func=cmd_failed)


def _open(ctx: Context) -> Quarantine:
    q = Quarantine.open(ctx.workspace)     # AccessError: conflict; IndexSettingError: usage
    if q.index_address:
        import psycopg

        try:
            q.index   # noqa: B018 -- connect now, to say plainly when the server is not there
        except psycopg.OperationalError as exc:
            q.close()
            raise CommandError(f"the quarantine index cannot be reached: {exc}".strip(),
                               E_REMOTE) from None
    return q


def _resolve(q: Quarantine, ident: str) -> str:
    return q.resolve(ident)


def cmd_ingest(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with _open(ctx) as q:
        try:
            summary = ingest_paths(q, args.paths, tower=args.tower, server=args.server,
                                   reason=args.reason, max_message=args.max_size,
                                   actor="ingest")
        except FileNotFoundError as exc:
            raise CommandError(str(exc), E_NOT_FOUND) from None

    def text(ctx: Context) -> None:
        ctx.print(_summary_line(summary))
        for f in summary.failures:
            ctx.print(f"  failed: {f.source}: {f.reason} (kept as quarantine/{f.stored_as})")

    return Reply(summary, text, E_INPUT if summary.failed and not summary.messages else E_OK)


def cmd_watch(args: argparse.Namespace, ctx: Context) -> int:
    watcher = SpoolWatcher(ctx.workspace, interval=args.interval, settle=args.settle,
                           max_message=args.max_size)

    def report(result: DrainResult) -> None:
        if args.json:
            ctx.out.write(json_for_terminal(dumps({"at": stamp(), **to_data(result)}, indent=None))
                          + "\n")
        elif result.error:
            ctx.warn(f"spool drain failed, retrying in {args.interval:g}s: {result.error}")
        elif result.summary is not None:
            ctx.print(f"{stamp()} {_summary_line(result.summary)}")
            for f in result.summary.failures:
                ctx.print(f"  failed: {f.source}: {f.reason} (kept as quarantine/{f.stored_as})")
        if result.summary is not None and result.summary.accepted:
            _follow_campaigns(ctx, quiet=args.json)
        ctx.out.flush()

    if args.once:
        with _open(ctx) as q:
            result = watcher.drain(q)
        if result.busy:
            raise CommandError("another reader holds the spool (quarantine/spool.lock)", E_CONFLICT)
        if result.error:
            raise CommandError(f"spool drain failed (the files are still in the spool): "
                               f"{result.error}", E_CONFLICT)
        report(result)
        return E_OK
    ctx.err.write(f"workbench: watching {ctx.workspace.quarantine / 'incoming'} every "
                  f"{args.interval:g}s (Ctrl-C to stop)\n")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watcher.run(stop, report)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    t = watcher.totals
    ctx.err.write(f"workbench: stopped after {watcher.drains} drains: {_summary_line(t)}\n")
    return E_OK


def _follow_campaigns(ctx: Context, *, quiet: bool) -> None:
    """New mail joins its campaign as it arrives: the watcher is what keeps up with towers."""
    from workbench.campaigns.service import catch_up

    try:
        report = catch_up(ctx.workspace)
    except Exception as exc:        # campaigns are derived data: ingest goes on without them
        ctx.warn(f"campaigns not updated: {type(exc).__name__}: {exc}")
        return
    if report.joined and not quiet:
        ctx.print(f"  {report.joined} of {report.messages} joined a campaign (workbench campaigns)")


def _summary_line(summary: IngestSummary) -> str:
    return (f"accepted {summary.accepted}, duplicates {summary.duplicates}, "
            f"repeated {summary.repeated}, flagged {summary.flagged}, failed {summary.failed}")


def cmd_list(args: argparse.Namespace, ctx: Context) -> int | Reply:
    query = parse_query(args.query)
    if args.limit < 0 or args.offset < 0:
        raise CommandError("--limit and --offset must be 0 or more", E_USAGE)
    with _open(ctx) as q:
        rows = q.index.list(query, offset=args.offset, limit=args.limit)
        total = listed_total(args.offset, args.limit, len(rows))
        if total is None and args.count:
            total = q.index.count(query)

    def text(ctx: Context) -> None:
        ctx.print(table(
            [[r.sha256[:12], shown(r.first_seen), r.tower, r.server, r.reason,
              r.status, r.from_addr, r.subject, ", ".join(r.attachment_names)] for r in rows],
            ["ID", "RECEIVED", "TOWER", "SERVER", "REASON", "STATUS", "FROM", "SUBJECT", "ATTACHMENTS"],
            max_width={6: 32, 7: 48, 8: 40}))
        if total is not None:
            ctx.print(f"{len(rows)} of {total} messages")
        else:
            ctx.print(f"{len(rows)} messages from {args.offset + 1}, more follow (--count counts them)")

    return Reply({"query": args.query, "total": total, "offset": args.offset, "messages": rows}, text)


def listed_total(offset: int, limit: int, found: int) -> int | None:
    """The total when a page shows it for free: a short page (found after the offset) is the
    last one. Otherwise None: counting is a walk over every match, done only on --count."""
    if found < limit and (found > 0 or offset == 0):
        return offset + found
    return None


def cmd_show(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with _open(ctx) as q:
        sha = _resolve(q, args.id)
        row = q.index.get(sha)
        sightings = q.index.sightings(sha)
        audit = q.index.audit(sha)

    def text(ctx: Context) -> None:
        for label, value in [
            ("sha256", row.sha256), ("message-id", row.message_id), ("from", row.from_addr),
            ("to", row.to_addrs), ("subject", row.subject), ("date", row.date or "-"),
            ("size", str(row.size)), ("status", row.status), ("tags", ", ".join(row.tags) or "-"),
            ("reason", row.reason), ("first seen", row.first_seen), ("last seen", row.last_seen),
            ("sightings", str(row.sightings)),
            ("attachments", ", ".join(row.attachment_names) or "-"),
        ]:
            # One line per field, always: a decoded subject may carry a newline that would
            # otherwise print a fake "status:" line under it.
            ctx.print(f"{label:>12}: {visible(value)}")
        for defect in row.defects:
            ctx.print(f"{'defect':>12}: {visible(defect)}")
        ctx.print("\nsightings:")
        for s in sightings:
            ctx.print("  " + visible(f"{s.seen_at}  {s.tower}/{s.server}  {s.reason}  {s.source}"))
        ctx.print("\naudit:")
        for a in audit:
            note = f"  note: {a.note}" if a.note else ""
            ctx.print("  " + visible(f"{a.at}  {a.actor}  {a.action}  {a.detail}{note}"))

    return Reply({"message": row, "sightings": sightings, "audit": audit}, text)


def cmd_set_status(args: argparse.Namespace, ctx: Context) -> int:
    with _open(ctx) as q:
        sha = _resolve(q, args.id)
        q.set_status(sha, args.status, note=args.note)
    ctx.print(f"{sha[:12]} -> {args.status}")
    return E_OK


def cmd_tag(args: argparse.Namespace, ctx: Context) -> int:
    add = [t.lstrip("+") for t in args.tags if not t.startswith("-")]
    remove = [t[1:] for t in args.tags if t.startswith("-")]
    with _open(ctx) as q:
        sha = _resolve(q, args.id)
        tags = q.tag(sha, add, remove)
    ctx.print(f"{sha[:12]} tags: {', '.join(tags) or '-'}")
    return E_OK


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    with _open(ctx) as q:
        shas = [_resolve(q, i) for i in args.ids]
        q.export_zip(shas, args.zip)
    ctx.print(f"exported {len(shas)} message(s) to {args.zip} (AES-256, password 'infected')")
    return E_OK


def cmd_fsck(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with _open(ctx) as q:
        report = q.fsck(verify_hashes=not args.quick, repair=args.repair)
        if args.repair and report.repaired:
            after = q.fsck(verify_hashes=False)
            report.unindexed_sightings = after.unindexed_sightings
            report.unjournaled_sightings = after.unjournaled_sightings
            report.torn_journal_lines = after.torn_journal_lines

    def text(ctx: Context) -> None:
        ctx.print(f"objects {report.objects}, indexed messages {report.messages}, "
                  f"failed inputs {report.failed_inputs}, tmp leftovers removed {report.tmp_leftovers}")
        for sha in report.corrupt_objects:
            ctx.print(f"CORRUPT  {sha}: content does not match its sha256")
        for sha in report.missing_objects:
            ctx.print(f"MISSING  {sha}: indexed but no object")
        for sha in report.unindexed_sightings:
            ctx.print(f"UNINDEXED {sha}: journaled but not in the index (run 'quarantine reindex')")
        for sha in report.unjournaled_sightings:
            ctx.print(f"UNJOURNALED {sha}: indexed but not in the journal; a reindex would "
                      f"drop it (run 'quarantine fsck --repair')")
        for torn in report.torn_journal_lines:
            ctx.print(f"TORN     journal/{torn.file} line {torn.line}: not a whole event "
                      f"(run 'quarantine fsck --repair')")
        for sha in report.writable_objects:
            ctx.print(f"WRITABLE {sha}: object is not read-only")
        loose = [s for s in report.loose_objects if s not in report.writable_objects]
        if loose:
            ctx.print(f"MODE     {len(loose)} object(s) not at the mode of access.json "
                      f"(--repair sets it)")
        for done in report.repaired:
            ctx.print(f"repaired: {done}")
        ctx.print("ok" if report.ok else "problems found")

    return Reply({"ok": report.ok, **to_data(report)}, text, E_OK if report.ok else E_FINDINGS)


def cmd_reindex(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with _open(ctx) as q:
        report = q.reindex()

    def text(ctx: Context) -> None:
        ctx.print(f"reindexed {report.messages} messages, {report.sightings} sightings, "
                  f"{report.status_changes} status changes, {report.failed} failed inputs")
        for sha in report.missing_objects:
            ctx.print(f"MISSING  {sha}: journaled but no object")

    return Reply(report, text, E_FINDINGS if report.missing_objects else E_OK)


def cmd_failed(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with _open(ctx) as q:
        rows = q.index.failed(limit=args.limit)

    def text(ctx: Context) -> None:
        ctx.print(table([[shown(f.at), f.tower, f.server, str(f.size), f.reason, f.stored_as] for f in rows],
                        ["AT", "TOWER", "SERVER", "SIZE", "REASON", "KEPT AS"], max_width={4: 50}))

    return Reply({"failed": rows}, text)
