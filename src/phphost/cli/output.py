"""Printing plans, progress and reports. Only output here, no decisions."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from phphost import layout
from phphost.plan import actions as A


def print_plan(plan: A.Plan, out: TextIO = sys.stdout, verbose: bool = False) -> None:
    changes = plan.changes
    if not changes:
        out.write("No changes: the host already matches the spec.\n")
    for action in changes:
        out.write(f"* {action.describe()}\n    because: {action.reason}\n")
        if isinstance(action, A.WriteFile) and action.path == layout.APPLIED_FILE and not verbose:
            out.write("    (the model this apply brings about, for --tenant runs; -v: its diff)\n")
        elif isinstance(action, A.WriteFile):
            out.write(_indent(action.diff()))
    if verbose:
        for noop in plan.noops:
            out.write(f"  = {noop}\n")
    if changes:
        out.write(f"\n{len(changes)} change(s).\n")


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def plan_json(plan: A.Plan) -> str:
    return json.dumps({"changes": [a.to_json() for a in plan.changes],
                       "noops": list(plan.noops), "fingerprint": plan.fingerprint()}, indent=1)


class Progress:
    """A bar on a terminal, plain lines otherwise. Writes to stderr."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.quiet = quiet

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.quiet:
            return
        if not self.tty:
            self.stream.write(f"[{done}/{total}] {what}\n")
            return
        width = 24
        filled = width * done // max(total, 1)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r\x1b[K[{bar}] {done}/{total} {what[:60]}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
