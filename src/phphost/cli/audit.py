"""`phphost audit SPEC`: static rules over the spec and the host's facts (no traffic,
no changes). Output only; the rules live in phphost.audit, imported when audit runs
(a tenth of a second every other command would pay: cli/entry.py)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from typing import Any, TextIO

from phphost.audit.findings import SEVERITIES, Finding, Severity, above
from phphost.cli.result import Result
from phphost.exitcodes import ExitCode
from phphost.spec.loader import load_spec


def add_audit_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("audit", help="check the spec and this host against "
                                            "phphost's security and sizing rules")
    p.add_argument("spec", nargs="?", help="spec file (TOML) or directory of *.toml files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--rule", action="append", default=[], metavar="ID",
                   help="run only this rule (repeatable)")
    p.add_argument("--fail-above", choices=SEVERITIES, default="info",
                   help="exit non-zero when a finding is more severe (default: info)")
    p.add_argument("--list", action="store_true", help="list the rules and exit")


def cmd_audit(args: argparse.Namespace) -> int:
    from phphost.audit.facts import gather
    from phphost.audit.rules import RULES, describe, run_rules
    if args.list:
        for rule_id, text in describe():
            print(f"{rule_id}  {text}")
        return ExitCode.OK
    if not args.spec:
        print("phphost audit: a spec file is required", file=sys.stderr)
        return ExitCode.USAGE
    unknown = [r for r in args.rule if r not in RULES]
    if unknown:
        print(f"phphost audit: unknown rule(s) {', '.join(unknown)}; see --list",
              file=sys.stderr)
        return ExitCode.USAGE
    model = load_spec(args.spec)
    findings = run_rules(model, gather(model), tuple(args.rule))
    return AuditResult(findings, args.fail_above).emit(args.json)


@dataclass(frozen=True)
class AuditResult(Result):
    findings: list[Finding]
    threshold: Severity

    def text(self) -> str:
        out = io.StringIO()
        print_findings(self.findings, self.threshold, out)
        return out.getvalue()

    def json(self) -> str:
        return json.dumps(audit_json(self.findings, self.threshold), indent=1) + "\n"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FINDINGS if above(self.findings, self.threshold) else ExitCode.OK


def audit_json(findings: list[Finding], threshold: Severity) -> dict[str, Any]:
    counts = Counter(f.severity for f in findings)
    return {"findings": [f.to_json() for f in findings],
            "counts": {s: counts.get(s, 0) for s in SEVERITIES},
            "fail_above": threshold, "failed": bool(above(findings, threshold))}


def print_findings(findings: list[Finding], threshold: Severity,
                   out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for f in findings:
        out.write(f"{f.rule} {f.severity.upper():<8} {f.where}\n")
        out.write(textwrap.fill(f.problem, 96, initial_indent="    ",
                                subsequent_indent="    ") + "\n")
        out.write(textwrap.fill(f"remedy: {f.remedy}", 96, initial_indent="    ",
                                subsequent_indent="      ") + "\n")
    counts = Counter(f.severity for f in findings)
    shown = ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts[s])
    verdict = "FAIL" if above(findings, threshold) else "ok"
    out.write(f"{len(findings)} finding(s){': ' + shown if shown else ''}; "
              f"{verdict} (fails above {threshold})\n")
