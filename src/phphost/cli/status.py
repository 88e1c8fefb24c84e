"""`phphost status`: master state from supervisord, numbers from FPM's own status
page over each pool's socket. A socket-activated pool asleep (no master) is shown
`asleep` and an ondemand master without workers as 0 processes, both read from /proc:
status never wakes a pool nor starts a worker to say so."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from phphost import layout
from phphost.cli.result import Result, dumps
from phphost.errors import FastCGIError
from phphost.exitcodes import ExitCode
from phphost.facts import cgroups
from phphost.facts.gather import child_count, fpm_master_pid, read_programs
from phphost.fastcgi.status import fpm_status
from phphost.files import read_text

_LISTEN = re.compile(r"^listen\s*=\s*(\S+)\s*$", re.M)
_PM = re.compile(r"^pm\s*=\s*(\S+)\s*$", re.M)


def pool_socket(pool: str) -> str:
    match = _LISTEN.search(read_text(layout.fpm_conf(pool)) or "")
    return match.group(1) if match else layout.default_socket(pool)


def pool_pm(pool: str) -> str | None:
    match = _PM.search(read_text(layout.fpm_conf(pool)) or "")
    return match.group(1) if match else None


def pool_statuses(pools: tuple[str, ...]) -> list[dict[str, Any]]:
    programs, _ = read_programs()
    host = cgroups.detect()
    rows = []
    for pool in pools:
        prog = programs.get(layout.program_name(pool))
        running = bool(prog and prog.state == "RUNNING")
        master = fpm_master_pid(prog.pid) if prog and prog.pid else None
        row: dict[str, Any] = {"pool": pool, "running": running,
                               "state": prog.state if prog else "ABSENT",
                               "pid": prog.pid if prog else None, "master_pid": master,
                               "asleep": running and master is None}
        _fpm_numbers(row, pool, master)
        use = cgroups.usage(host, pool)
        row.update(memory=use["memory"], pids=use["pids"], cpu_usec=use["cpu_usec"])
        rows.append(row)
    return rows


def _fpm_numbers(row: dict[str, Any], pool: str, master: int | None) -> None:
    """FPM's own numbers, asked over the socket only when that starts nothing: an
    asleep pool has none, an ondemand master without children has 0 processes."""
    if row["asleep"]:
        row.update(state="ASLEEP", pm=pool_pm(pool) or "-", active=0, idle=0, total=0)
        return
    pm = pool_pm(pool)
    if pm == "ondemand" and master is not None and child_count(master) == 0:
        row.update(pm=pm, active=0, idle=0, total=0)
        return
    try:
        st = fpm_status(pool_socket(pool))
        row.update(pm=st.process_manager, active=st.active_processes,
                   idle=st.idle_processes, total=st.total_processes,
                   accepted=st.accepted_conn, max_children_reached=st.max_children_reached)
    except FastCGIError as err:
        row.update(error=str(err), running=False)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):.1f}M"


def _secs(usec: int | None) -> str:
    return "-" if usec is None else f"{usec / 1e6:.2f}s"


def format_statuses(rows: list[dict[str, Any]]) -> str:
    head = f"{'pool':<16} {'state':<9} {'master':>7} {'pm':<9} {'active':>6} {'idle':>5} " \
           f"{'total':>5} {'accepted':>9} {'memory':>8} {'pids':>5} {'cpu':>9}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['pool']:<16} {r['state']:<9} {r['master_pid'] or '-':>7} "
                     f"{r.get('pm', '-'):<9} {r.get('active', '-'):>6} {r.get('idle', '-'):>5} "
                     f"{r.get('total', '-'):>5} {r.get('accepted', '-'):>9} "
                     f"{_mib(r.get('memory')):>8} "
                     f"{r.get('pids') if r.get('pids') is not None else '-':>5} "
                     f"{_secs(r.get('cpu_usec')):>9}")
        if "error" in r:
            lines.append(f"  ! {r['error']}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StatusResult(Result):
    rows: list[dict[str, Any]]

    def text(self) -> str:
        return format_statuses(self.rows)

    def json(self) -> str:
        return dumps(self.rows)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if all(r["running"] for r in self.rows) else ExitCode.NOT_RUNNING
