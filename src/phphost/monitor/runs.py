"""The last run of each phphost command that judges the host (apply, check,
verify, audit): when it finished, how long it took, its exit status. Written to
/var/lib/phphost/runs.json by the CLI after the command; read by the exporter
(phphost_last_run_*). Recording never changes a command's outcome."""

from __future__ import annotations

import contextlib
import json
import os
import time

from phphost import layout
from phphost.errors import PhphostError
from phphost.files import atomic_write
from phphost.monitor.collect import parse_runs

RECORDED = ("apply", "check", "verify", "audit")


def record_run(command: str, exit_code: int, started: float, path: str = layout.RUNS_FILE) -> None:
    """Record `command`'s run; does nothing unless phphost's state dir exists and we
    are root (it is root's), and swallows any failure to write."""
    if command not in RECORDED or os.geteuid() != 0 or not os.path.isdir(layout.STATE_DIR):
        return
    with contextlib.suppress(OSError, PhphostError, ValueError):
        try:
            with open(path, encoding="utf-8") as fh:
                old = fh.read(1 << 20)
        except FileNotFoundError:
            old = ""
        runs = {cmd: {"finished": r.finished, "seconds": r.seconds, "exit_code": r.exit_code}
                for cmd, r in parse_runs(old).items() if cmd in RECORDED}
        now = time.time()
        runs[command] = {"finished": round(now, 3), "seconds": round(now - started, 3),
                         "exit_code": exit_code}
        atomic_write(path, json.dumps(runs, indent=1, sort_keys=True) + "\n", 0o644)
