"""``workbench doctor``: libraries, YARA engines and the dissect sandbox, with a hostile probe."""

from __future__ import annotations

import argparse

from workbench.cli.context import Context, Reply, add_json_flag
from workbench.exitcodes import E_FINDINGS, E_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check libmagic, libarchive, YARA and the dissect sandbox (hostile probe)")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the hostile probe (which starts a sandboxed worker and tries to escape)")
    p.add_argument("--sandbox", choices=("auto", "require", "off"), default="auto",
                   help="the sandbox mode to check (off: see what a worker without it can reach)")
    add_json_flag(p)
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, ctx: Context) -> int | Reply:
    from workbench.doctor import run_doctor

    report = run_doctor(ctx.workspace, probe=not args.no_probe, sandbox_mode=args.sandbox)

    def text(ctx: Context) -> None:
        for check in report.checks:
            mark = "ok  " if check.ok else "FAIL"
            ctx.print(f"{mark}  {check.name:<16} {check.version:<10} {check.detail}")
        ctx.print(f"dissect workers run in: {report.isolation}")
        if report.probe is not None:
            ctx.print("hostile probe, inside a real worker:")
            for attempt in report.probe.attempts:
                verdict = "denied " if attempt.denied else "ESCAPED"
                ctx.print(f"  {verdict}  {attempt.name:<26} {attempt.detail}")
        if report.ok:
            ctx.print("all checks passed: a compromised parser reaches only its own input and output")
        else:
            ctx.print("PROBLEMS: see FAIL / ESCAPED above (dissection without the sandbox runs with limits only)")

    return Reply({"ok": report.ok, "checks": report.checks, "isolation": report.isolation,
                  "probe": report.probe}, text, E_OK if report.ok else E_FINDINGS)
