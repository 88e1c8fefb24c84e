"""apply's own work runs ahead of the tenants' PHP while it plans and validates, and
nothing long-lived it starts inherits that.

On two cores that the tenants keep busy, a one-pool apply's plan took three to four
times as long as on a quiet machine (docs/scale.md). Niceness alone helps little: the
kernel shares the CPU between cgroups (every pool has its own, docs/sizing.md) and
between sessions (autogroups) before it looks at niceness. So for planning the process
also moves into a cpu cgroup of its own, `phphost-control`, weighted ten times a pool's
default, beside the pools' `phphost` group. The daemons apply starts itself (supervisord,
apache2) are started through normal(): back in the cgroup it came from and at its own
niceness for the fork, so they never inherit planning's. Both are best effort: a host or
container that refuses either plans at normal speed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# the commands that plan, ahead of the tenants' PHP until they start a service
AHEAD = frozenset({"plan", "apply", "destroy"})
PLANNING_NICENESS = -10
CONTROL = "phphost-control"
CONTROL_V1_SHARES = "10240"     # cpu.shares: a pool's default is 1024
CONTROL_V2_WEIGHT = "1000"      # cpu.weight: a pool's default is 100
# "nice": the niceness phphost started with; "ahead": planning now; "cgroup": (the
# cgroup.procs to go back to, the control cgroup) while in the control cgroup
_STATE: dict[str, object] = {}


def _cpu_hierarchy() -> tuple[str, str, str, str] | None:
    """(mount point, this process's cgroup in it, weight file, weight) of the hierarchy
    that holds the cpu controller; None when there is none. facts.cgroups (and what it
    imports) is imported here, once the niceness is set: the `phphost` command imports
    this module before it is ahead (cli/entry.py)."""
    from phphost.facts.cgroups import detect
    host = detect()
    if host.v2 is not None and "cpu" in host.v2_controllers:
        mount, weight = host.v2, ("cpu.weight", CONTROL_V2_WEIGHT)
    elif "cpu" in host.v1:
        mount, weight = host.v1["cpu"], ("cpu.shares", CONTROL_V1_SHARES)
    else:
        return None
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _id, ctls, path = line.rstrip("\n").split(":", 2)
            if (host.v2 is not None and ctls == "") or "cpu" in ctls.split(","):
                return mount, path, *weight
    return None


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _enter_control() -> None:
    found = _cpu_hierarchy()
    if found is None:
        return
    mount, mine, weight_file, weight = found
    back = f"{mount}{mine.rstrip('/')}/cgroup.procs"
    with open(back, encoding="ascii") as fh:     # the way back must be known to work
        if str(os.getpid()) not in fh.read().split():
            return
    control = f"{mount}/{CONTROL}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(control, 0o755)
    _write(f"{control}/{weight_file}", weight)
    _write(f"{control}/cgroup.procs", str(os.getpid()))
    _STATE["cgroup"] = (back, control)


def _ahead() -> None:
    with contextlib.suppress(OSError):
        _STATE.setdefault("nice", os.getpriority(os.PRIO_PROCESS, 0))
        os.setpriority(os.PRIO_PROCESS, 0, PLANNING_NICENESS)
    with contextlib.suppress(OSError, ValueError):
        _enter_control()
    _STATE["ahead"] = True


def _behind() -> None:
    """Back to the cgroup and niceness phphost started with; the control cgroup is
    removed when no other phphost run is in it."""
    saved = _STATE.pop("cgroup", None)
    if isinstance(saved, tuple):
        procs, control = saved
        with contextlib.suppress(OSError):
            _write(procs, str(os.getpid()))
        with contextlib.suppress(OSError):
            os.rmdir(control)
    nice = _STATE.get("nice")
    if isinstance(nice, int):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    _STATE["ahead"] = False


@contextlib.contextmanager
def planning() -> Iterator[None]:
    """Within it, this process plans ahead of the tenants' PHP (the threads and
    short-lived commands it starts too: php-fpm -t, apache2ctl -t, useradd); back at
    the end. Start anything long-lived inside it within normal()."""
    outer = not _STATE.get("ahead")
    if outer:
        _ahead()
    try:
        yield
    finally:
        if outer:
            _behind()


@contextlib.contextmanager
def normal() -> Iterator[None]:
    """Within it, this process is at the cgroup and niceness it started with, so a
    daemon started here (supervisord, apache2) inherits those, never planning's;
    ahead again after it when it was planning."""
    was = bool(_STATE.get("ahead"))
    if was:
        _behind()
    try:
        yield
    finally:
        if was:
            _ahead()
