"""`phphost jail show SPEC POOL`: every file, device and mount in a pool's jail
with the feature or program that brought it in."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from dataclasses import dataclass

from phphost.cli.result import Result
from phphost.errors import SpecError
from phphost.exitcodes import ExitCode
from phphost.facts.jails import manifest_for
from phphost.jail.diff import ListingRow, jail_listing
from phphost.spec.loader import load_spec


def add_jail_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jail = sub.add_parser("jail", help="inspect pools' jails")
    jsub = jail.add_subparsers(dest="jail_command", required=True)
    show = jsub.add_parser("show", help="list everything in a pool's jail and why it is there")
    show.add_argument("spec")
    show.add_argument("pool")
    show.add_argument("--json", action="store_true")


def format_rows(rows: list[ListingRow]) -> str:
    """Pure: the listing as a table, then a count per reason."""
    width = max((len(r.path) for r in rows), default=4)
    lines = [f"{'path':<{width}}  {'kind':<7} {'mode':<5} {'owner':<5} why / source"]
    for r in rows:
        lines.append(f"{r.path:<{width}}  {r.kind:<7} {r.mode:<5} {r.owner:<5} "
                     f"{r.why}: {r.detail}")
    counts = Counter(r.why.split(" (")[0] for r in rows)
    lines.append("")
    lines.append("  ".join(f"{why}: {n}" for why, n in sorted(counts.items())))
    return "\n".join(lines)


def cmd_jail(args: argparse.Namespace) -> int:
    model = load_spec(args.spec)
    pool = next((p for p in model.pools if p.name == args.pool), None)
    if pool is None:
        raise SpecError(args.spec, f"pools.{args.pool}", "no such pool",
                        f"use one of: {', '.join(p.name for p in model.pools)}")
    if not pool.jail.enabled:
        return NotJailed(pool.name).emit(args.json)
    return JailResult(jail_listing(manifest_for(model, pool))).emit(args.json)


@dataclass(frozen=True)
class JailResult(Result):
    rows: list[ListingRow]

    def text(self) -> str:
        return format_rows(self.rows) + "\n"

    def json(self) -> str:
        return json.dumps([dataclasses.asdict(r) for r in self.rows], indent=1) + "\n"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK


@dataclass(frozen=True)
class NotJailed(Result):
    """Said in words even with --json, as it always was."""

    pool: str

    def text(self) -> str:
        return f"pool {self.pool} is not jailed (jail.enabled = false)\n"

    def json(self) -> str:
        return self.text()

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK
