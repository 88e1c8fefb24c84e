"""`phphost migrate SPEC --to STAGE`: seed 002's staged move from mod_php to phphost
(docs/migrate.md, section 2). Output only; the work is in phphost.importer.migrate."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from phphost import layout
from phphost.cli.result import Result, dumps
from phphost.exitcodes import ExitCode
from phphost.importer.migrate.run import Options, Outcome, migrate
from phphost.importer.migrate.stages import STAGES, name, parse_stage
from phphost.importer.migrate.takeover import Phphost


def add_migrate_parser(subparsers: Any) -> None:
    stages = ", ".join(f"{i} {n}" for i, n in enumerate(STAGES))
    p = subparsers.add_parser("migrate", help="move a mod_php Apache to the spec `phphost "
                                              "import` wrote, one reversible stage at a time")
    p.add_argument("spec", help="the spec phphost import wrote for this Apache")
    p.add_argument("--to", required=True, metavar="STAGE",
                   help=f"the stage to go to, forward or back, by number or name ({stages})")
    p.add_argument("--apache-root", default=layout.APACHE_DIR, metavar="DIR",
                   help=f"the old Apache's ServerRoot (default {layout.APACHE_DIR})")
    p.add_argument("--sites", metavar="GLOB",
                   help="stage 3: move only the PHP sites whose name or server name matches")
    p.add_argument("--urls", metavar="FILE",
                   help="the URLs to compare, one absolute URL a line (default: / of every "
                        "name and alias of every site)")
    p.add_argument("--ignore", action="append", default=[], metavar="REGEX",
                   help="cut what matches out of every body before comparing (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print what each stage would do")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_migrate(args: argparse.Namespace, hooks: Phphost | None = None) -> int:
    """hooks: phphost's own plan, apply and destroy, for stages 6-7 (cli/main.py)."""
    opts = Options(args.spec, parse_stage(args.to), args.apache_root, args.sites, args.urls,
                   tuple(args.ignore), args.dry_run, phphost=hooks)
    verbose = not args.json
    outcome = migrate(opts, (lambda line: print(line, file=sys.stderr)) if verbose
                      else (lambda _: None))
    return MigrateReport(outcome).emit(args.json)


@dataclass(frozen=True)
class MigrateReport(Result):
    outcome: Outcome

    def text(self) -> str:
        o = self.outcome
        lines = list(o.log)
        for d in o.differences:
            lines.append(f"  {d.line()}")
        lines.append(f"migrate: stage {name(o.start)} -> {name(o.stage)}")
        return "\n".join(lines) + "\n"

    def json(self) -> str:
        o = self.outcome
        return dumps({"from": o.start, "stage": o.stage, "stage_name": STAGES[o.stage],
                      "log": o.log, "failed_stage": o.failed_stage,
                      "differences": [{"url": str(d.url), "before": d.before.short(d.start()),
                                       "after": d.after.short(d.start())}
                                      for d in o.differences]})

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.DIFFERS if self.outcome.differences else ExitCode.OK
