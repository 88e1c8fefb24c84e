"""`phphost check SPEC`: run a probe inside every pool (as its user, in its jail,
through its own socket) that exercises each jail feature, and print a table per pool.
Exit status: 0 every declared feature works and every undeclared one is absent,
30 otherwise (a FAIL, a PRESENT or an ERROR row)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

from phphost.check.frontctl import front_controller_warnings
from phphost.check.result import Report, exit_status, report_json
from phphost.check.runner import Options, run_check
from phphost.check.smtp import loopback_address
from phphost.check.table import render_report
from phphost.cli.result import Result
from phphost.exitcodes import ExitCode
from phphost.spec.loader import load_spec
from phphost.verify.errors import VerifyError


def add_check_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check", help="exercise every pool's jail features from inside the pool")
    p.add_argument("spec", help="spec (file or directory) the host was applied from")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--pool", action="append", default=[], metavar="POOL",
                   help="check only this pool (repeatable)")
    p.add_argument("--dns-name", metavar="NAME",
                   help="resolve NAME in each pool; the answer must equal the host's "
                        "(default: only 'localhost' through /etc/hosts)")
    p.add_argument("--https-url", metavar="URL",
                   help="fetch URL with certificate verification on, with PHP streams and "
                        "curl (default: only read the CA bundle)")
    p.add_argument("--smtp-sink", metavar="HOST:PORT",
                   help="listen on this loopback address during the check and capture what "
                        "pools whose jail.smtp is this address send with mail()")
    p.add_argument("--mail-to", metavar="ADDRESS",
                   help="really send one message per mail pool to ADDRESS through its "
                        "jail.smtp (pools not sending to --smtp-sink)")
    return p


def cmd_check(args: argparse.Namespace) -> int:
    model = load_spec(args.spec)
    if os.geteuid() != 0:
        raise VerifyError("check must run as root: it places a probe in every pool's jail "
                          "and talks to every pool's socket. Run it with sudo")
    unknown = sorted(set(args.pool) - {p.name for p in model.pools})
    if unknown:
        raise VerifyError(f"--pool {', '.join(unknown)}: no such pool in {args.spec}")
    if args.smtp_sink:
        try:
            loopback_address(args.smtp_sink)
        except ValueError as err:
            raise VerifyError(str(err)) from err
    opts = Options(args.dns_name, args.https_url, args.smtp_sink, args.mail_to,
                   tuple(args.pool))
    try:
        report, problems = run_check(model, opts)
    except OSError as err:
        raise VerifyError(f"check could not run: {err}") from err
    code = CheckResult(report).emit(args.json)
    for problem in problems:
        print(f"phphost: warning: could not remove {problem}", file=sys.stderr)
    for warning in front_controller_warnings(model, tuple(args.pool)):
        print(f"phphost: warning: {warning}", file=sys.stderr)
    return code


@dataclass(frozen=True)
class CheckResult(Result):
    report: Report

    def text(self) -> str:
        return render_report(self.report)

    def json(self) -> str:
        return report_json(self.report)

    @property
    def exit_code(self) -> ExitCode:
        return exit_status(self.report)
