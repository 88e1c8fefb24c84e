"""Processes: from inside one pool, see another pool's processes in /proc, read their
command lines and environment, signal them. Only signal 0 is ever sent: it proves
the capability without doing anything."""

from __future__ import annotations

import os
import pwd
from typing import Any

from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.errors import VerifyError
from phphost.verify.result import Result, judged

FAMILY = "processes"


def status_euid(status: str) -> int | None:
    """Pure: the effective uid from a /proc/PID/status text."""
    for line in status.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return None


def host_pids(uid: int) -> list[int]:
    """Pids of processes running as `uid`, as root on the host sees them (from status:
    the owner of /proc/PID is root for FPM workers, which are not dumpable)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status", encoding="utf-8") as fh:
                    if status_euid(fh.read()) == uid:
                        pids.append(int(name))
            except OSError:
                continue
    return sorted(pids)


def _scan(ctx: Ctx) -> tuple[dict[str, Any], int, list[int]]:
    """(what the attacking pool sees of the target's processes, target uid, the target's
    pids as root sees them). One probe run per pair, shared by this family's attacks."""
    target = ctx.target_pool
    key = ("procs", ctx.pool.name, target.name)
    if key not in ctx.run.memo:
        ctx.run.probes.run(target, "whoami.php")   # an ondemand pool needs a live worker
        uid = pwd.getpwnam(target.user).pw_uid
        seen = ctx.probe("procs.php", {"uids": [uid], "own_pool": ctx.pool.name})
        if not seen.get("self_kill0"):
            raise VerifyError(f"control failed: pool {ctx.pool.name} cannot signal itself")
        live = host_pids(uid)
        if not live:
            raise VerifyError(f"pool {target.name} has no running worker to aim at")
        ctx.run.memo[key] = (seen, uid, live)
    seen, uid, live = ctx.run.memo[key]
    return seen, uid, live


def _procs(seen: dict[str, Any]) -> list[dict[str, Any]]:
    procs = seen.get("processes")
    return [dict(p) for p in procs] if isinstance(procs, list) else []


def _tried(ctx: Ctx, uid: int, what: str) -> str:
    return (f"PHP in pool {ctx.pool.name} (user {ctx.pool.user}): {what} of uid {uid} "
            f"({ctx.target_pool.user})")


def _blocked(ctx: Ctx, live: list[int], why: str) -> str:
    shown = ", ".join(map(str, live[:8]))
    return f"pool {ctx.target_pool.name} runs pids {shown}; {why}"


def listing(ctx: Ctx) -> Result:
    seen, uid, live = _scan(ctx)
    procs = _procs(seen)
    hits = [f"/proc shows {len(procs)} process(es) of {ctx.target_pool.user}: pids "
            + ", ".join(str(p["pid"]) for p in procs[:8])] if procs else []
    return judged(hits, _tried(ctx, uid, "scan /proc for processes"),
                  _blocked(ctx, live, f"none visible among {seen.get('visible')} in /proc"))


def cmdline(ctx: Ctx) -> Result:
    seen, uid, live = _scan(ctx)
    hits = [f"pid {p['pid']}: {p['cmdline']!r}" for p in _procs(seen) if p.get("cmdline")]
    return judged(hits, _tried(ctx, uid, "read /proc/PID/cmdline"),
                  _blocked(ctx, live, "no command line readable"))


def environ(ctx: Ctx) -> Result:
    seen, uid, live = _scan(ctx)
    hits = [f"pid {p['pid']}: environ readable ({p['environ']} bytes)"
            for p in _procs(seen) if p.get("environ") is not None]
    return judged(hits, _tried(ctx, uid, "read /proc/PID/environ"),
                  _blocked(ctx, live, "no environment readable"))


def signal(ctx: Ctx) -> Result:
    seen, uid, live = _scan(ctx)
    procs = _procs(seen)
    hits = [f"posix_kill({p['ns_number']}, 0) reached pid {p['pid']}"
            for p in procs if p.get("kill0")]
    tried = sum(1 for p in procs if p.get("ns_number") is not None)
    why = (f"signal 0 refused for all {tried} addressable pid(s)" if tried else
           "none of them has a pid in the attacker's pid namespace")
    return judged(hits, _tried(ctx, uid, "posix_kill(pid, 0) of the processes"),
                  _blocked(ctx, live, why))


ATTACKS = (
    Attack("processes.list", FAMILY, "see another pool's processes in /proc", "pool>pool",
           listing),
    Attack("processes.cmdline", FAMILY, "read another pool's process command lines",
           "pool>pool", cmdline),
    Attack("processes.environ", FAMILY, "read another pool's process environment",
           "pool>pool", environ),
    Attack("processes.signal", FAMILY, "signal another pool's processes (signal 0 only)",
           "pool>pool", signal),
)
