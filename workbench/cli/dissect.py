"""``workbench dissect`` and ``workbench strings``: the artifact tree and an artifact's strings."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.cli.context import (
    CommandError,
    Context,
    Reply,
    accept_query_terms,
    add_json_flag,
    duration_arg,
    table,
)
from workbench.exitcodes import E_INPUT, E_USAGE
from workbench.humanize import age, iso_seconds, utc_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from workbench.dissect.catalog import CatalogProgress
    from workbench.dissect.model import Dissection, Limits


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dissect", help="take a message or file apart into its artifact tree")
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="quarantine ID (sha256 or unique prefix), a stored artifact's sha256, or a file path")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="how deep to follow nested artifacts (default 6, at most 15)")
    p.add_argument("--no-cache", action="store_true", help="ignore cached reports and dissect afresh")
    p.add_argument("--all", action="store_true",
                   help="dissect every quarantined message not yet in the catalog (for corpora)")
    p.add_argument("--require-sandbox", action="store_true",
                   help="refuse to dissect unless the parsers run in the sandbox (also: [dissect] sandbox = "
                        "\"require\" in HOME/workbench.toml)")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                   help="with --all: messages dissected side by side (default: one per core)")
    p.add_argument("--query", "-q", default="", metavar="QUERY",
                   help="with --all: only messages this quarantine query selects")
    p.add_argument("--since", type=duration_arg, default=None, metavar="DURATION",
                   help="with --all: only messages first seen this long ago or later (e.g. 7d)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="with --all: at most N messages, newest first")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="with --all: messages done, rate and time left on stderr (default: only "
                        "when stderr is a terminal and without --json)")
    add_json_flag(p)
    accept_query_terms(p)
    p.set_defaults(func=cmd_dissect)

    p = sub.add_parser("strings", help="printable ASCII and UTF-16LE strings of a stored artifact")
    p.add_argument("sha256", metavar="SHA256", help="a stored object's sha256 (or a unique message prefix)")
    p.add_argument("--min-len", type=int, default=4, metavar="N")
    p.add_argument("--wide", action=argparse.BooleanOptionalAction, default=True,
                   help="include UTF-16LE strings (default on; --no-wide for ASCII only)")
    p.add_argument("--offset", type=int, default=0, help="skip this many strings (paging)")
    p.add_argument("--limit", type=int, default=None, help="at most this many strings")
    p.add_argument("--suggest", action="store_true",
                   help="rank the strings as YARA string candidates (goodware-aware)")
    add_json_flag(p)
    p.set_defaults(func=cmd_strings)


def _limits(args: argparse.Namespace, ctx: Context) -> Limits:
    from workbench.dissect.model import Limits
    from workbench.dissect.sandbox import REQUIRE, workspace_mode

    mode = REQUIRE if args.require_sandbox else workspace_mode(ctx.workspace)
    if args.depth is None:
        return Limits(sandbox=mode)
    if not 0 <= args.depth <= Limits.HARD_MAX_DEPTH:
        raise CommandError(f"--depth must be between 0 and {Limits.HARD_MAX_DEPTH}", E_USAGE)
    return Limits(max_depth=args.depth, sandbox=mode)


def _warn_unsandboxed(ctx: Context, isolation: str) -> None:
    """Once per command: the parsers ran with resource limits only."""
    from workbench.dissect.sandbox import is_sandboxed

    if isolation and not is_sandboxed(isolation):
        ctx.warn(f"WARNING: dissection ran WITHOUT the sandbox ({isolation}): a parser exploited by this "
                 "input runs as you, with your files and the network. 'workbench doctor' says why; "
                 "--require-sandbox refuses instead.")


def cmd_dissect(args: argparse.Namespace, ctx: Context) -> int | Reply:
    return _dissect(args, ctx)


def _dissect(args: argparse.Namespace, ctx: Context) -> int | Reply:
    if args.all:
        return _dissect_all(args, ctx)
    if (args.query or args.since is not None or args.limit is not None or args.jobs is not None
            or args.progress is not None):
        raise CommandError("--jobs, --query, --since, --limit and --progress go with --all", E_USAGE)
    if not args.target:
        raise CommandError("give a TARGET (quarantine ID, sha256 or file path) or --all", E_USAGE)
    limits = _limits(args, ctx)
    from workbench.quarantine.targets import (
        MESSAGE,
        OBJECT,
        plain_file,
        resolve_target,
    )

    path = plain_file(args.target)
    if path is not None:
        result = _dissect_file(ctx, path, limits)
        _warn_unsandboxed(ctx, result.root.isolation)
        return _show(args, ctx, result)
    from workbench.dissect.cache import DissectCache
    from workbench.dissect.walker import dissect_bytes, dissect_message
    from workbench.quarantine.service import Quarantine

    with Quarantine.open(ctx.workspace) as q:
        target = resolve_target(q, args.target, files=True)   # TargetNotFound: not-found
        if target.kind == MESSAGE:
            result = dissect_message(q, target.sha256, limits=limits, use_cache=not args.no_cache)
        elif target.kind == OBJECT:
            data = q.store.read(target.sha256)
            name = _stored_name(ctx, target.sha256)
            with DissectCache.open(ctx.workspace) as cache:
                result = dissect_bytes(data, name, store=q.store, limits=limits,
                                       cache=None if args.no_cache else cache)
        else:
            result = _dissect_file(ctx, target.path, limits)
    _warn_unsandboxed(ctx, result.root.isolation)
    return _show(args, ctx, result)


def _dissect_file(ctx: Context, path: Path, limits: Limits) -> Dissection:
    from workbench.dissect.walker import dissect_bytes
    from workbench.quarantine.headers import looks_like_mail

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}", E_INPUT) from None
    if len(data) > limits.max_input:
        ctx.warn(f"{path}: {len(data)} bytes, over the input limit; only hashes are computed")
    return dissect_bytes(data, path.name, store=None, limits=limits, as_message=looks_like_mail(data) is None)


def _show(args: argparse.Namespace, ctx: Context, result: Dissection) -> int | Reply:
    from workbench.dissect.render import render_tree

    def text(ctx: Context) -> None:
        ctx.print(render_tree(result))

    return Reply(result, text)


def _dissect_all(args: argparse.Namespace, ctx: Context) -> int | Reply:
    import os
    import time

    from workbench.dissect.catalog import catalog_all, undissected
    from workbench.quarantine.query import parse_query

    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1 or (args.limit is not None and args.limit < 0):
        raise CommandError("--jobs must be 1 or more and --limit 0 or more", E_USAGE)
    query = args.query
    if args.since is not None:
        since = iso_seconds(utc_now() - dt.timedelta(seconds=args.since), zone=False)
        query = f"{query} after:{since}".strip()
    parse_query(query)        # a query error is the user's, before any work starts
    todo = undissected(ctx.workspace, query, limit=args.limit)
    show = args.progress if args.progress is not None else (_is_terminal(ctx.err) and not args.json)
    progress = _progress_line(ctx, terminal=_is_terminal(ctx.err)) if show else None

    from workbench.dissect.worker import default_pool

    limits = _limits(args, ctx)
    # The workers' fork server is found (or started: bubblewrap, then Python's imports) before
    # the clock, so that "seconds" is the dissection's and the start is reported on its own:
    # a shared server outlives the command, and its start is paid once, not per message.
    begun = time.perf_counter()
    isolation = default_pool(limits.sandbox).isolation if todo and limits.isolate else ""
    started = time.perf_counter()
    count = catalog_all(ctx.workspace, progress=progress, jobs=jobs, todo=todo, limits=limits)
    seconds = time.perf_counter() - started
    start = started - begun
    if progress is not None and count and _is_terminal(ctx.err):
        ctx.err.write("\n")                  # end the line the progress kept rewriting
    if count:
        _warn_unsandboxed(ctx, isolation or default_pool(limits.sandbox).isolation)

    def text(ctx: Context) -> None:
        ctx.print(f"dissected {count} message(s) into the catalog with {jobs} job(s) in {seconds:.1f}s"
                  + (f" (and {start:.1f}s starting the workers)" if start >= 0.05 else ""))

    return Reply({"dissected": count, "jobs": jobs, "seconds": round(seconds, 3),
                  "start seconds": round(start, 3)}, text)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _progress_line(ctx: Context, *, terminal: bool) -> Callable[[CatalogProgress], None]:
    """``done/total  rate  ETA`` on stderr: rewritten in place twice a second on a terminal;
    elsewhere (``--progress`` into a log) one whole line every 10 seconds, and the last."""
    import time

    every = 0.5 if terminal else 10.0
    last = float("-inf")                    # the first message is always shown

    def show(p: CatalogProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < every and p.done < p.total:
            return
        last = now
        eta = "ETA " + age(p.eta) if p.eta is not None and p.done < p.total else "done"
        line = f"dissect --all: {p.done:,}/{p.total:,} messages  {p.rate:,.1f} msg/s  {eta}"
        ctx.err.write(f"\r{line}   " if terminal else line + "\n")
        ctx.err.flush()

    return show


def _stored_name(ctx: Context, sha256: str) -> str:
    from workbench.dissect.catalog import find_parents

    parents = find_parents(ctx.workspace, sha256)
    return parents[0].filename if parents else ""


def cmd_strings(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.dissect.strings import extract_strings
    from workbench.quarantine.service import Quarantine

    if args.min_len < 1:
        raise CommandError("--min-len must be at least 1", E_USAGE)
    from workbench.quarantine.targets import resolve_target

    with Quarantine.open(ctx.workspace) as q:
        target = resolve_target(q, args.sha256).sha256
        if args.suggest:
            return _suggest(args, ctx, target)
        data = q.store.read(target)
    found = extract_strings(data, min_len=args.min_len, wide=args.wide, offset=args.offset, limit=args.limit)

    def text(ctx: Context) -> None:
        for s in found:
            ctx.print(f"{s.offset:>10x}  {'W' if s.encoding == 'utf-16le' else 'A'}  {s.text}")

    return Reply({"sha256": target, "min_len": args.min_len, "wide": args.wide, "offset": args.offset,
                  "strings": [{"offset": s.offset, "encoding": s.encoding, "text": s.text} for s in found]}, text)


def _suggest(args: argparse.Namespace, ctx: Context, sha256: str) -> int | Reply:
    try:
        suggest = importlib.import_module("workbench.rules.suggest")
    except ModuleNotFoundError as exc:
        if exc.name in ("workbench.rules.suggest", "workbench.rules"):
            raise CommandError("--suggest needs workbench.rules.suggest, which is not built yet", E_USAGE) from None
        raise
    report = suggest.suggest_for_artifact(ctx.workspace, sha256, min_len=args.min_len, wide=args.wide,
                                          limit=args.limit or 50)

    def text(ctx: Context) -> None:
        ctx.print(table([[f"{c.score:.2f}", c.encoding, f"{c.offset:x}", str(c.goodware_count), c.text,
                          ", ".join(c.reasons)] for c in report.candidates],
                        ["SCORE", "ENC", "OFFSET", "GOODWARE", "STRING", "WHY"], max_width={4: 60, 5: 60}))

    return Reply(report, text)
