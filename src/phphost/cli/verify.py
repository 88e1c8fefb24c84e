"""`phphost verify SPEC`: run real attacks against the live host and print the
matrix (attack x attacking tenant). Exit status: 0 all blocked, 20 something got
through (BREACHED), 21 nothing got through but some attacks could not run."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from phphost.cli.result import Result
from phphost.errors import PhphostError
from phphost.exitcodes import ExitCode
from phphost.spec.loader import load_spec
from phphost.verify import catalog
from phphost.verify.errors import VerifyError
from phphost.verify.matrix import exit_status, render_matrix, report_json
from phphost.verify.result import Report
from phphost.verify.runner import run_attacks


def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify", help="attack the live host as its tenants would; print what got through")
    p.add_argument("spec", help="spec (file or directory) the host was applied from")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="details of every cell, not only the breached ones")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="attack ids or families to run (glob, repeatable): "
                        f"e.g. --only 'files.*' --only fpm; families: "
                        f"{', '.join(catalog.FAMILIES)}")
    return p


def cmd_verify(args: argparse.Namespace) -> int:
    model = load_spec(args.spec)
    if os.geteuid() != 0:
        raise VerifyError("verify must run as root: it places files as each tenant and "
                          "probes every pool's socket. Run it with sudo")
    attacks = catalog.select(args.only)
    if not attacks:
        raise VerifyError(f"--only {args.only} matches no attack; see `phphost verify -h`")
    report, problems = run_attacks(model, attacks)
    code = VerifyResult(report, args.verbose).emit(args.json)
    for problem in problems:
        print(f"phphost: warning: could not remove {problem}", file=sys.stderr)
    return code


@dataclass(frozen=True)
class VerifyResult(Result):
    report: Report
    verbose: bool = False

    def text(self) -> str:
        return render_matrix(self.report, self.verbose)

    def json(self) -> str:
        return report_json(self.report)

    @property
    def exit_code(self) -> ExitCode:
        return exit_status(self.report)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m phphost.cli.verify SPEC ...` (the same as `phphost verify`)."""
    parser = argparse.ArgumentParser(prog="phphost")
    add_verify_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_verify(args)
    except PhphostError as err:
        print(f"phphost: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
