"""``workbench corpus ...``, ``workbench test`` and ``workbench retrohunt``."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from workbench.cli.context import CommandError, Context, Reply, add_json_flag, table
from workbench.corpus.cluster_address import scans_on
from workbench.corpus.corpus_registry import LABELS, CorpusRegistry
from workbench.corpus.rule_testing import (
    FileMatch,
    RuleResult,
    RuleTestReport,
    default_rule_paths,
    run_rule_tests,
)
from workbench.corpus.scanner import DEFAULT_TIMEOUT, ScanProgress
from workbench.exitcodes import E_CONFLICT, E_FINDINGS, E_INPUT, E_NOT_FOUND, E_OK, E_USAGE
from workbench.humanize import shown
from workbench.humanize import size as _size

if TYPE_CHECKING:    # `workbench test` imports neither the gram index (numpy) nor the quarantine
    from workbench.corpus.retrohunt import RetrohuntReport


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("corpus", help="labelled corpora of files to test rules against")
    cs = c.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    p = cs.add_parser("add", help="register a folder (or file) as a corpus; re-adding picks up new files")
    p.add_argument("name", metavar="NAME")
    p.add_argument("path", type=Path, metavar="PATH")
    p.add_argument("--label", required=True, choices=LABELS)
    add_json_flag(p)
    p.set_defaults(func=cmd_add)

    p = cs.add_parser("list", help="the corpora: files, bytes, label")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = cs.add_parser("show", help="one corpus and its files")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--limit", type=int, default=50, help="files to list (default 50; 0 for all)")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = cs.add_parser("index", help="build the n-gram index that lets re-tests skip files "
                                    "(done by 'corpus add' and when first needed)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="corpora to index (default: all, the quarantine's artifacts and messages)")
    p.add_argument("--rebuild", action="store_true", help="empty the index first")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="indexing threads (default: one per CPU)")
    add_json_flag(p)
    p.set_defaults(func=cmd_index)

    p = cs.add_parser("remove", help="forget a corpus (its files stay in the store)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("test", help="test rules against the corpora: true/false positives, false negatives")
    p.add_argument("rules", nargs="*", type=Path, metavar="RULES",
                   help="rule files or folders (default: the signature repository's rules/)")
    _scan_options(p)
    p.add_argument("--corpus", action="append", default=None, metavar="NAME",
                   help="corpus to scan (repeatable; default: all, the quarantine included)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="list every match, not only false positives and negatives")
    add_json_flag(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("retrohunt", help="which quarantined messages would these rules have caught?")
    p.add_argument("rules", nargs="+", type=Path, metavar="RULES")
    _scan_options(p)
    p.add_argument("--tag", metavar="TAG", help="tag every message hit")
    p.add_argument("--no-dissect", action="store_true",
                   help="do not dissect the messages never opened first (their attachments stay unscanned)")
    add_json_flag(p)
    p.set_defaults(func=cmd_retrohunt)


def _scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="scanning threads (default: one per CPU)")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"per-file scan timeout (default {DEFAULT_TIMEOUT})")
    p.add_argument("--no-cache", action="store_true",
                   help="scan everything again instead of using state/scan-cache.sqlite")
    p.add_argument("--no-index", action="store_true",
                   help="read every file instead of skipping the ones the n-gram index rules out")
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="scan on a Dask cluster, e.g. tcp://host:8786, or local (default: "
                        "$WORKBENCH_CLUSTER, else cluster in the workspace's settings.toml, else here); "
                        "workers need the store at the same path")


# -- corpus ---------------------------------------------------------------------------


def cmd_add(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with CorpusRegistry(ctx.workspace.ensure()) as registry:
        try:
            report = registry.add(args.name, args.path, args.label)
        except FileNotFoundError as exc:
            raise CommandError(str(exc), E_NOT_FOUND) from None

    def text(ctx: Context) -> None:
        ctx.print(f"{report.name} ({report.label}): {report.added} added "
                  f"({report.new_objects} new to the store, {_size(report.bytes_added)} new to the corpus), "
                  f"{report.unchanged} unchanged, {len(report.errors)} skipped; "
                  f"now {report.files_total} files, {_size(report.bytes_total)}")
        for err in report.errors:
            ctx.print(f"  skipped {err.path}: {err.reason}")
        for note in report.notes:
            ctx.print(f"  note: {note}")

    return Reply(report, text, E_INPUT if report.errors and not (report.added or report.unchanged) else E_OK)


def cmd_list(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with CorpusRegistry(ctx.workspace) as registry:
        infos = registry.list()

    def text(ctx: Context) -> None:
        ctx.print(table([[i.name, i.label, str(i.files), _size(i.bytes), shown(i.updated)
                          or ("built-in" if i.builtin else "")] for i in infos],
                        ["NAME", "LABEL", "FILES", "SIZE", "UPDATED"]))

    return Reply({"corpora": infos}, text)


def cmd_show(args: argparse.Namespace, ctx: Context) -> int | Reply:
    with CorpusRegistry(ctx.workspace) as registry:
        info = registry.info(args.name)
        files = registry.files(args.name)
    shown = files if args.limit <= 0 else files[:args.limit]

    def text(ctx: Context) -> None:
        for label, value in [("name", info.name), ("label", info.label), ("files", str(info.files)),
                             ("size", _size(info.bytes)), ("sources", ", ".join(info.sources)),
                             ("created", info.created or "-"), ("updated", info.updated or "-")]:
            ctx.print(f"{label:>8}: {value}")
        ctx.print()
        ctx.print(table([[f.sha256[:16], str(f.size), f.original_name] for f in shown],
                        ["SHA256", "SIZE", "NAME"], max_width={2: 80}))
        if len(shown) < len(files):
            ctx.print(f"{len(shown)} of {len(files)} files (--limit 0 for all)")

    return Reply({"corpus": info, "files": shown, "total": len(files)}, text)


def cmd_index(args: argparse.Namespace, ctx: Context) -> int | Reply:
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1", E_USAGE)
    from workbench.corpus.prefilter import index_corpora

    try:
        report = index_corpora(ctx.workspace.ensure(), args.names, rebuild=args.rebuild,
                               threads=args.threads, progress=_index_progress(ctx.err))
    except OSError as exc:
        raise CommandError(f"cannot write the n-gram index: {exc}", E_CONFLICT) from None
    b, st = report.build, report.stats

    def text(ctx: Context) -> None:
        ctx.print(f"indexed {b.indexed} of {report.files} files ({_size(b.bytes)}) in {b.seconds:.2f} s"
                  f"; {report.files - b.indexed - len(b.errors)} were indexed already")
        for sha, reason in sorted(b.errors.items()):
            ctx.print(f"  could not read {sha[:16]}: {reason}")
        share = f", {100 * st.index_bytes / st.bytes_covered:.0f}% of what it covers" \
            if st.bytes_covered else ""
        ctx.print(f"index: {st.files} files ({_size(st.bytes_covered)}), {_size(st.index_bytes)} in "
                  f"{st.blocks} blocks{share}; {st.saturated} always scanned (too large or too varied)")

    # the same exit code in both views (under --json it was 0 even when files could not be read)
    return Reply(report, text, E_OK if not b.errors else E_INPUT)


def _index_progress(err: TextIO) -> Callable[[int, int], None] | None:
    if not (err is sys.stderr and err.isatty()):
        return None

    def show(done: int, total: int) -> None:
        err.write("\r\033[K" if done >= total else f"\r\033[Kindexing: {done}/{total} files")
        err.flush()
    return show


def cmd_remove(args: argparse.Namespace, ctx: Context) -> int:
    with CorpusRegistry(ctx.workspace) as registry:
        count = registry.remove(args.name)
    ctx.print(f"removed corpus {args.name} ({count} files; stored objects are kept)")
    return E_OK


# -- test -----------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace, ctx: Context) -> int | Reply:
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1", E_USAGE)
    from workbench.cli import replay

    paths = args.rules or default_rule_paths(ctx.workspace)   # vendor sources only when no rules are named
    # this command line's text is kept for a re-test with nothing changed (cli/replay.py)
    found = replay.take_pending()
    found = found if not args.json and not args.no_cache else None
    inputs: list[str] | None = [] if found is not None else None
    wall = time.time()
    try:
        with scans_on(ctx.workspace, args.cluster):
            report = run_rule_tests(ctx.workspace, paths, args.corpus, threads=args.threads,
                                progress=_progress_line(ctx.err), use_cache=not args.no_cache,
                                use_index=not args.no_index, timeout=args.timeout, inputs=inputs)
    except FileNotFoundError as exc:
        raise CommandError(str(exc), E_NOT_FOUND) from None
    code = E_OK if report.passed else E_FINDINGS
    kept = _keep_text(found, inputs, report, ctx, verbose=args.verbose, code=code, started=wall) \
        if found is not None and inputs else None

    def text(ctx: Context) -> None:
        if kept is not None:          # rendered once, for both
            ctx.out.write(kept.replace(replay.SECONDS, f"{report.stats.seconds:.2f}", 1))
        else:
            render_test(report, ctx, verbose=args.verbose)

    return Reply(report, text, code)


_SENTINEL_SECONDS = 987654.321


def _keep_text(found: tuple[str, tuple[str, ...]], inputs: list[str], report: RuleTestReport,
               ctx: Context, *, verbose: bool, code: int, started: float) -> str | None:
    """Keep the text of a remembered run's report for ``replay`` to print again; that text,
    :data:`replay.SECONDS` where its time goes."""
    from workbench.cli import replay
    from workbench.corpus.stamps import folders_under
    from workbench.rules.policy import POLICY_FILE

    signatures = ctx.workspace.signatures
    vendor = str(signatures / "vendor")
    inputs = [*inputs, str(signatures / POLICY_FILE), *folders_under(vendor),
              *(os.path.join(vendor, d, "source.json") for d in _folder_names(vendor))]
    again = copy.copy(report)            # a remembered run's report: only its time changes
    again.stats = dataclasses.replace(report.stats, seconds=_SENTINEL_SECONDS)
    buffer = io.StringIO()
    render_test(again, Context(ctx.workspace, buffer, io.StringIO()), verbose=verbose)
    text = buffer.getvalue()
    figure = f"{_SENTINEL_SECONDS:.2f}"
    at = text.rfind(f"{figure} s")
    if at < 0:
        return None
    text = text[:at] + replay.SECONDS + text[at + len(figure):]
    try:
        replay.save(found, inputs, text, code, started=started)
    except OSError:
        pass           # only a speed-up
    return text


def _folder_names(path: str) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir())
    except OSError:
        return []


def render_test(report: RuleTestReport, ctx: Context, *, verbose: bool = False) -> None:
    rows = []
    for r in report.rules:
        if r.private:
            continue
        verdict = "ok" if r.passed else "FAIL"
        rows.append([r.rule, str(r.tp_count), str(len(r.false_negatives)), str(r.fp_count),
                     str(r.other_count), verdict, "; ".join(r.warnings)])
    ctx.print(table(rows, ["RULE", "TP", "FN", "FP", "QUARANTINE", "", "NOTES"],
                    max_width={0: 48, 6: 60}))
    for r in report.rules:
        if r.passed and not verbose:
            continue
        _render_rule(r, ctx, verbose)
    for p in report.timeouts:
        ctx.print(f"TIMEOUT {p.name or p.sha256[:16]} ({', '.join(p.corpora)}): "
                  f"rules {', '.join(p.rules)}")
    for p in report.errors:
        ctx.print(f"ERROR   {p.name or p.sha256[:16]}: {p.reason}")
    s = report.stats
    corpora = ", ".join(f"{c.name} ({c.label}, {c.files})" for c in report.corpora)
    ctx.print(f"\n{s.rules} rules, {s.files} files ({_size(s.bytes)}) in {corpora or 'no corpora'}")
    skipped = f", {s.files_skipped} ruled out by the index" if s.files_skipped else ""
    indexed = f"; indexed {s.files_indexed} new files" if s.files_indexed else ""
    ctx.print(f"scanned {s.files_scanned} files ({_size(s.bytes_scanned)}) with {s.rules_compiled} "
              f"rules on {s.threads} threads{skipped}; {s.pairs_cached} results from the cache"
              f"{indexed}; {s.seconds:.2f} s")
    ctx.print(f"{report.true_positives} true positives, {report.false_positives} false positives, "
              f"{report.false_negatives} false negatives: {'PASS' if report.passed else 'FAIL'}")


def _render_rule(r: RuleResult, ctx: Context, verbose: bool) -> None:
    ctx.print(f"\n{r.rule}  ({r.file}:{r.line})")
    for fn in r.false_negatives:
        where = f"{fn.name} in {', '.join(fn.corpora)}" if fn.corpora else fn.detail
        ctx.print(f"  FN {fn.reason:<8} {fn.hash}  {where}")
    for fm in r.false_positives:
        _render_file("FP", fm, ctx)
    if verbose:
        for fm in r.true_positives:
            _render_file("TP", fm, ctx)
        for fm in r.other_hits:
            _render_file("Q ", fm, ctx)
    listed = len(r.false_positives) + (len(r.true_positives) + len(r.other_hits) if verbose else 0)
    total = r.fp_count + (r.tp_count + r.other_count if verbose else 0)
    if listed < total:
        ctx.print(f"  ... {total - listed} more files (see --json)")


def _render_file(kind: str, fm: FileMatch, ctx: Context) -> None:
    ctx.print(f"  {kind} {fm.name}  [{', '.join(fm.corpora)}]  sha256 {fm.sha256[:16]}  "
              f"{fm.matches_total} match(es)")
    for m in fm.strings:
        ctx.print(f"     {m.identifier} at 0x{m.offset:x} ({m.length} bytes): "
                  f"{_printable(m.data)}")
        ctx.print(f"        {m.before.hex(' ')} [{m.data[:64].hex(' ')}] {m.after.hex(' ')}")


def _printable(data: bytes, limit: int = 64) -> str:
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data[:limit])
    return repr(text) + ("..." if len(data) > limit else "")


# -- retrohunt ------------------------------------------------------------------------


def cmd_retrohunt(args: argparse.Namespace, ctx: Context) -> int | Reply:
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1", E_USAGE)
    from workbench.corpus.retrohunt import retrohunt

    try:
        with scans_on(ctx.workspace, args.cluster):
            report = retrohunt(ctx.workspace, args.rules, threads=args.threads,
                               progress=_progress_line(ctx.err), use_cache=not args.no_cache,
                               use_index=not args.no_index, timeout=args.timeout, tag=args.tag,
                               dissect_missing=not args.no_dissect)
    except FileNotFoundError as exc:
        raise CommandError(str(exc), E_NOT_FOUND) from None

    def text(ctx: Context) -> None:
        render_retrohunt(report, ctx)

    return Reply(report, text)


def render_retrohunt(report: RetrohuntReport, ctx: Context) -> None:
    ctx.print(table([[m.sha256[:12], shown(m.first_seen), m.tower, m.status,
                      m.subject, ", ".join(sorted({x.rule for x in m.matches})),
                      ", ".join(sorted({x.artifact_name or "(message)" for x in m.matches}))]
                     for m in report.messages],
                    ["ID", "RECEIVED", "TOWER", "STATUS", "SUBJECT", "RULES", "VIA"],
                    max_width={4: 40, 5: 40, 6: 40}))
    for r in report.rules:
        ctx.print(f"{r.rule}: {r.messages} message(s), {r.artifacts} artifact(s)")
    for sha in report.timeouts:
        ctx.print(f"TIMEOUT {sha}")
    for sha in report.errors:
        ctx.print(f"ERROR   {sha}: could not be scanned")
    ctx.print(f"{len(report.messages)} of {report.messages_scanned} messages hit "
              f"({report.artifacts_scanned} artifacts scanned) in {report.seconds:.2f} s")
    if report.tag:
        ctx.print(f"tagged {len(report.tagged)} message(s) '{report.tag}'")


# -- shared ---------------------------------------------------------------------------


def _progress_line(err: TextIO) -> Callable[[ScanProgress], None] | None:
    """A one-line progress display on a terminal; nothing when stderr is not one."""
    if not (err is sys.stderr and err.isatty()):
        return None

    def show(p: ScanProgress) -> None:
        if p.phase == "done":
            err.write("\r\033[K")
        else:
            err.write(f"\r\033[K{p.phase}: {p.files_done}/{p.files_total} files, "
                      f"{_size(p.bytes_done)}/{_size(p.bytes_total)}, {p.matches} matches, "
                      f"{p.elapsed:.1f} s")
        err.flush()
    return show


