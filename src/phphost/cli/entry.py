"""The `phphost` command. A command that plans (plan, apply, destroy) moves ahead of
the tenants' PHP (host/priority.py) before the rest of phphost is imported: on two
cores the tenants keep busy, importing it took 0.8 s at the niceness and cgroup the
shell gave (docs/scale.md), a third of a one-pool change. Only this module and
host/priority.py's few imports run before."""

from __future__ import annotations

import contextlib
import sys

from phphost.host import priority


def main() -> int:
    argv = sys.argv[1:]
    early = bool(argv) and argv[0] in priority.AHEAD      # options before the command: not early
    with priority.planning() if early else contextlib.nullcontext():
        from phphost.cli.main import main as run  # after priority: imported ahead
        return run(argv)     # its own priority.planning() is then a no-op
