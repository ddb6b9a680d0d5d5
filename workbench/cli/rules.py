"""``workbench rule ...``: draft, lint, fmt, the check catalog and the goodware database."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from workbench.cli.context import CommandError, Context, Reply, add_json_flag, table
from workbench.exitcodes import E_FINDINGS, E_INPUT, E_NOT_FOUND, E_OK, E_USAGE
from workbench.rules.findings import Baseline, LintReport
from workbench.rules.fmt import format_paths
from workbench.rules.lint import YARAX_MEMO, YaraxAhead, check_catalog, lint_externals
from workbench.rules.parse import iter_rule_paths, read_rule_text
from workbench.rules.parse_cache import FULL_PARSES, ParseCache
from workbench.rules.policy import Policy
from workbench.rules.sarif import to_sarif
from workbench.rules.vendor import VendorSet, lint_by_source, source_summary

BASELINE_FILE = "lint-baseline.json"


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rule", help="YARA rules: draft, lint, format")
    rs = r.add_subparsers(dest="rule_command", metavar="ACTION", required=True)

    p = rs.add_parser("draft", help="draft a rule from quarantined samples and chosen strings")
    p.add_argument("--from", dest="samples", action="append", default=[], metavar="SHA256",
                   help="a sample in the quarantine store (repeat for several samples of one family)")
    p.add_argument("--campaign", metavar="ID",
                   help="draft for every member of a campaign instead (see workbench campaigns draft)")
    p.add_argument("--string", dest="strings", action="append", default=[], metavar="TEXT",
                   help="a supporting string ($s*; half of them must match)")
    p.add_argument("--strong", action="append", default=[], metavar="TEXT",
                   help="a string strong enough alone ($x*)")
    p.add_argument("--hex", dest="hexes", action="append", default=[], metavar="HEX",
                   help="a supporting byte pattern, e.g. '4D 5A ?? 00' or 4d5a9000")
    p.add_argument("--name", help="rule name (default <CATEGORY>_<Family>_<Detail>)")
    p.add_argument("--category", default="MAL", help="category (default MAL)")
    p.add_argument("--family", default="Unknown", help="malware or campaign family")
    p.add_argument("--detail", help="last part of the name (default: the file type, e.g. Doc)")
    p.add_argument("--description")
    p.add_argument("--author", help="default: $WORKBENCH_ACTOR or the login name")
    p.add_argument("--source", metavar="SHA256", help="the quarantine message (default: found from the sample)")
    p.add_argument("--out", type=Path, metavar="PATH", help="append the rule to this file (created if missing)")
    add_json_flag(p)
    p.set_defaults(func=cmd_draft)

    from workbench.cli import emergency

    emergency.register(rs)

    p = rs.add_parser("lint", help="check rules with both engines and the house policy")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="rule files or folders (default: the signature repository)")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    p.add_argument("--policy", type=Path, metavar="FILE", help="policy file (default: SIGNATURES/workbench.toml)")
    p.add_argument("--baseline", type=Path, metavar="FILE",
                   help=f"accepted findings (default: SIGNATURES/{BASELINE_FILE} when present)")
    p.add_argument("--no-baseline", action="store_true", help="report every finding")
    p.add_argument("--write-baseline", "--update-baseline", type=Path, metavar="FILE",
                   help="accept every current warning and info into FILE (errors are never accepted)")
    p.add_argument("--strict", action="store_true", help="warnings fail the lint too")
    p.set_defaults(func=cmd_lint)

    p = rs.add_parser("fmt", help="format rule files canonically (YARA-X formatter)")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="rule files or folders (default: the signature repository)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 listing files that would change")
    p.add_argument("--update-meta", action="store_true",
                   help="refresh stale fingerprints (and set modified, raise version)")
    add_json_flag(p)
    p.set_defaults(func=cmd_fmt)

    p = rs.add_parser("import", help="import a public ruleset beside the house rules, byte-for-byte as upstream")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="a folder, or a git repository path or URL (with --update: default where it came from)")
    p.add_argument("--name", help="the source's name under signatures/vendor/ (default from SOURCE)")
    p.add_argument("--commit", metavar="REV", help="the git revision to import (default: the newest)")
    p.add_argument("--update", action="store_true",
                   help="fetch the source --name again and show which rules changed, were added or removed")
    p.add_argument("--threads", type=int, help="threads for the clean-corpus check")
    add_json_flag(p)
    p.set_defaults(func=cmd_import)

    p = rs.add_parser("sources", help="imported vendor sources: origin, licence, attribution, what ships")
    add_json_flag(p)
    p.set_defaults(func=cmd_sources)

    p = rs.add_parser("checks", help="list every lint check with its id, severity and hint")
    add_json_flag(p)
    p.set_defaults(func=cmd_checks)

    p = rs.add_parser("goodware", help="the goodware string database behind string suggestions")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="clean files or folders to add")
    add_json_flag(p)
    p.set_defaults(func=cmd_goodware)


def _policy(ctx: Context, path: Path | None) -> Policy:
    return Policy.load(path if path is not None else ctx.workspace.signatures)


def _targets(ctx: Context, paths: list[Path]) -> list[Path]:
    if not paths:
        if not ctx.workspace.signatures.is_dir():
            raise CommandError(f"no paths given and no signature repository at {ctx.workspace.signatures}",
                               E_NOT_FOUND)
        return [ctx.workspace.signatures]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise CommandError(f"not found: {', '.join(missing)}", E_NOT_FOUND)
    return paths


def _display(file: str) -> str:
    if not file:
        return "<text>"
    rel = os.path.relpath(file) if os.path.isabs(file) else file
    return rel if len(rel) <= len(file) else file


# -- lint ---------------------------------------------------------------------------------------


def cmd_lint(args: argparse.Namespace, ctx: Context) -> int:
    policy = _policy(ctx, args.policy)
    targets = _targets(ctx, args.paths)
    baseline = None
    if not args.no_baseline and args.write_baseline is None:
        path = args.baseline or (ctx.workspace.signatures / BASELINE_FILE)
        if args.baseline is not None or path.exists():
            baseline = Baseline.load(path)
    memo = ctx.workspace.state / YARAX_MEMO
    try:
        paths = list(iter_rule_paths(targets))
        texts = [read_rule_text(p) for p in paths]
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}", E_INPUT) from exc
    if not paths:
        raise CommandError("no *.yar or *.yara files found", E_NOT_FOUND)
    # YARA-X starts on the texts in a helper process while this one parses and checks them
    ahead = YaraxAhead([(text, str(p)) for p, (text, _) in zip(paths, texts, strict=True)],
                       lint_externals(policy, None), memo)
    try:
        parses = ParseCache(ctx.workspace.state / FULL_PARSES)
        files = [parses.parse(p, read=read) for p, read in zip(paths, texts, strict=True)]
        vendors = VendorSet.load(ctx.workspace.signatures) if args.policy is None else None
        report = lint_by_source(files, policy, vendors, baseline=baseline, memo=memo, ahead=ahead)
    finally:
        ahead.close()
    if args.write_baseline is not None:
        accepted = Baseline.from_findings(report.findings)
        accepted.save(args.write_baseline)
        ctx.err.write(f"accepted {len(accepted.entries)} finding(s) into {args.write_baseline}\n")
        baseline = accepted
        accepted.apply(report)
    if args.format == "json":
        ctx.json(report)
    elif args.format == "sarif":
        ctx.print(json.dumps(to_sarif(report), indent=2, ensure_ascii=False))
    else:
        ctx.print(render_lint(report))
    failed = report.errors > 0 or (args.strict and report.warnings > 0)
    return E_FINDINGS if failed else E_OK


def render_lint(report: LintReport) -> str:
    lines = []
    shown: dict[str, str] = {}         # thousands of findings in a few hundred files
    for f in report.findings:
        where = shown.get(f.file)
        if where is None:
            where = shown[f.file] = _display(f.file)
        if f.line:
            where += f":{f.line}" + (f":{f.column}" if f.column else "")
        rule = f" [{f.rule}]" if f.rule else ""
        lines.append(f"{where}: {f.severity} {f.id}: {f.message}{rule}")
        if f.hint:
            lines.append(f"    hint: {f.hint}")
    summary = (f"{len(report.files)} file(s), {report.rules} rule(s): {report.errors} error(s), "
               f"{report.warnings} warning(s), {report.count('info')} info")
    if report.accepted:
        summary += f"; {len(report.accepted)} accepted by the baseline"
    lines.append(summary)
    return "\n".join(lines)


# -- fmt ----------------------------------------------------------------------------------------


def cmd_fmt(args: argparse.Namespace, ctx: Context) -> int | Reply:
    targets = _targets(ctx, args.paths)
    policy = _policy(ctx, None) if args.update_meta else None
    vendors = VendorSet.load(ctx.workspace.signatures)
    from workbench.release.released import released_rules

    signatures = ctx.workspace.signatures
    report = format_paths(targets, check=args.check, meta=args.update_meta, policy=policy,
                          vendor=lambda path: vendors.source_of(path) is not None,
                          released=lambda path: released_rules(signatures, path))

    def text(ctx: Context) -> None:
        verb = "would reformat" if args.check else "reformatted"
        for path in report.changed:
            ctx.print(f"{verb} {_display(path)}")
        for path, why in report.errors.items():
            ctx.error(f"{_display(path)}: left unchanged: {why}")
        ctx.print(f"{report.checked} file(s) checked, {len(report.changed)} {verb}"
                  + (f", {len(report.errors)} with errors" if report.errors else "")
                  + (f"; {len(report.vendor)} vendor file(s) left as upstream" if report.vendor else ""))

    code = E_INPUT if report.errors else E_FINDINGS if args.check and report.changed else E_OK
    return Reply(report, text, code)


# -- vendor sources -----------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, ctx: Context) -> int | Reply:
    if args.update and not args.name:
        raise CommandError("--update needs --name (see `workbench rule sources`)", E_USAGE)
    if not args.update and not args.source:
        raise CommandError("name the SOURCE to import: a folder, or a git repository path or URL", E_USAGE)
    # imported here: git, the scanner and release settings would slow every `rule lint` start
    from workbench.release.importing import import_source

    signatures = ctx.workspace.signatures
    if not signatures.is_dir():
        raise CommandError(f"no signature repository at {signatures}", E_NOT_FOUND)
    report = import_source(signatures, args.source, name=args.name, commit=args.commit, update=args.update,
                           threads=args.threads)

    def text(ctx: Context) -> None:
        origin = f"{report.origin}" + (f" at {report.commit[:12]}" if report.commit else "")
        ctx.print(f"{'updated' if report.update else 'imported'} {report.name} from {origin}: "
                  f"{report.files} files, {report.rules} rules, {report.shipping} ship")
        ctx.print(f"licence: {report.licence or 'unknown'}"
                  + (f" ({report.licence_file})" if report.licence_file else "")
                  + (f"; {report.attribution}" if report.attribution else ""))
        if report.update:
            ctx.print(f"upstream: {len(report.changed)} changed, {len(report.added)} added, "
                      f"{len(report.removed)} removed, {report.unchanged} unchanged")
            for label, names in (("changed", report.changed), ("added", report.added), ("removed", report.removed)):
                for name in names:
                    ctx.print(f"  {label:8} {name}")
        if report.held_files:
            ctx.print(f"held back (not compiled, not shipped): {len(report.held_files)} file(s)")
            for h in report.held_files:
                ctx.print(f"  {h.file}: {h.reason}")
        if report.held_rules:
            ctx.print(f"held back (match the clean corpora): {len(report.held_rules)} rule(s)")
            for r in report.held_rules:
                ctx.print(f"  {r.rule} ({r.file}): {', '.join(r.evidence[:3])}"
                          + (f" and {len(r.evidence) - 3} more" if len(r.evidence) > 3 else ""))
        for note in report.notes:
            ctx.warn(note)

    return Reply(report, text)


def cmd_sources(args: argparse.Namespace, ctx: Context) -> int | Reply:
    vendors = VendorSet.load(ctx.workspace.signatures)
    rows = [source_summary(s) for s in vendors]

    def text(ctx: Context) -> None:
        if not rows:
            ctx.print("no vendor sources (import one with `workbench rule import SOURCE`)")
            return
        ctx.print(table([[r["name"], r["origin"] + (f"@{r['commit'][:12]}" if r["commit"] else ""),
                          r["licence"] or "?", str(r["rules"]), str(r["shipping"]), str(r["held"])] for r in rows],
                        ["NAME", "ORIGIN", "LICENCE", "RULES", "SHIP", "HELD"]))
        for r in rows:
            if r["attribution"]:
                ctx.print(f"{r['name']}: {r['attribution']}")

    return Reply({"sources": rows}, text)


# -- draft --------------------------------------------------------------------------------------


def cmd_draft(args: argparse.Namespace, ctx: Context) -> int | Reply:
    if args.campaign:
        if args.samples or args.strings or args.strong or args.hexes:
            raise CommandError("--campaign chooses its own samples and strings: "
                               "drop --from/--string/--strong/--hex", E_USAGE)
        from workbench.cli.campaigns import run_campaign_draft

        args.corpus, args.no_dissect = None, False
        return run_campaign_draft(args, ctx, args.campaign)
    if not args.samples:
        raise CommandError("give --from SHA256 (a sample) or --campaign ID", E_USAGE)
    policy = _policy(ctx, None)
    from workbench.rules.draft import draft, load_samples
    from workbench.rules.goodware import GoodwareDB

    samples = load_samples(ctx.workspace, args.samples, source=args.source)
    gw = GoodwareDB.open_for(ctx.workspace, readonly=True)
    try:
        result = draft(samples, strings=args.strings, hexes=args.hexes, strong=args.strong, name=args.name,
                       category=args.category, family=args.family, detail=args.detail,
                       description=args.description, author=args.author, policy=policy, goodware=gw)
    finally:
        if gw is not None:
            gw.close()
    if args.out is not None:
        append_to_file(args.out, result.text)

    def text(ctx: Context) -> None:
        if args.out is None:
            ctx.out.write(result.text)
        else:
            ctx.print(f"wrote {result.name} to {args.out}")
        for note in result.notes:
            ctx.warn(note)
        for f in result.findings:
            ctx.warn(f"lint {f.severity} {f.id}: {f.message}")

    return Reply(result, text)


def append_to_file(path: Path, text: str) -> None:
    """``rule draft --out`` and ``campaigns draft --out``: ``rulefile.append_rule``, refusals as E_INPUT."""
    from workbench.rules.rulefile import RuleFileError, append_rule

    try:
        append_rule(path, text)
    except RuleFileError as exc:
        hint = ": pass --name" if exc.taken else ""
        raise CommandError(f"{exc}{hint}", E_INPUT) from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}", E_INPUT) from None


# -- checks and goodware ---------------------------------------------------------------------------


def cmd_checks(args: argparse.Namespace, ctx: Context) -> int | Reply:
    catalog = check_catalog()

    def text(ctx: Context) -> None:
        ctx.print(table([[c["id"], c["severity"], c["title"], c["hint"]] for c in catalog],
                        ["ID", "SEVERITY", "CHECK", "FIX"], max_width={3: 70}))

    return Reply(catalog, text)


def _clean_files(ctx: Context, paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    for target in _targets(ctx, paths):
        found = sorted(q for q in target.rglob("*") if q.is_file()) if target.is_dir() else [target]
        for f in found:
            try:
                data = f.read_bytes()
            except OSError as exc:
                ctx.warn(f"skipped {f}: {exc.strerror}")
                continue
            yield hashlib.sha256(data).hexdigest(), data


def cmd_goodware(args: argparse.Namespace, ctx: Context) -> int | Reply:
    ctx.workspace.ensure()
    from workbench.rules.goodware import GoodwareDB, goodware_path

    with GoodwareDB(goodware_path(ctx.workspace)) as gw:
        added = gw.add_files(_clean_files(ctx, args.paths)) if args.paths else 0
        stats = gw.stats()

    def text(ctx: Context) -> None:
        if args.paths:
            ctx.print(f"added {added} new clean file(s)")
        ctx.print(f"{stats.path}: {stats.files} clean file(s), {stats.strings} distinct string(s)")

    return Reply({"added": added, **stats.__dict__}, text)
