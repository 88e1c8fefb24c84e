"""cgroups on this host: find the hierarchies, read a pool's current limits, create
its cgroup and write them (journaled: rollback writes the old values back and removes
the directories it made), remove it, read its usage for `phphost status`.

Only root-owned pseudo-filesystems are touched (no tenant can plant anything there),
at paths phphost computes: <mount>/phphost/<pool>."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from phphost.errors import HostError
from phphost.jail.ondisk import read_mountinfo
from phphost.plan.cgroups import (
    GROUP,
    V1_CONTROLLERS,
    CgroupHost,
    PoolCgroup,
    all_pool_dirs,
    normalise,
    to_write,
)


def parse_cgroup_mounts(mountinfo: str) -> tuple[list[str], dict[str, str]]:
    """Pure: (cgroup2 mount points, v1 controller -> mount point) from mountinfo."""
    v2: list[str] = []
    v1: dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(" "), right.split(" ")
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        if tail[0] == "cgroup2":
            v2.append(point)
        elif tail[0] == "cgroup":
            for opt in tail[2].split(","):
                if opt in V1_CONTROLLERS and opt not in v1:
                    v1[opt] = point
    return v2, v1


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def detect(mountinfo: str | None = None,
           read: Callable[[str], str | None] = _read,
           exists: Callable[[str], bool] = os.path.exists) -> CgroupHost:
    """The host's cgroup layout. cgroup v2 when a cgroup2 mount offers memory and pids;
    else the v1 hierarchies that are mounted; else none (a container without cgroups)."""
    try:
        text = read_mountinfo() if mountinfo is None else mountinfo
    except OSError:
        return CgroupHost()
    v2_points, v1 = parse_cgroup_mounts(text)
    for point in sorted(v2_points, key=lambda p: (p != "/sys/fs/cgroup", p)):
        ctls = frozenset((read(f"{point}/cgroup.controllers") or "").split())
        if {"memory", "pids"} <= ctls:
            return CgroupHost(v2=point, v2_controllers=ctls,
                              v2_io_weight=exists(f"{point}/io.cost.qos"))
    blkio = v1.get("blkio")
    return CgroupHost(v1=v1, v1_blkio_weight=blkio is not None
                      and exists(f"{blkio}/blkio.weight"))


def current(cg: PoolCgroup) -> dict[str, str | None]:
    """What each file the plan would write holds now (None: missing)."""
    return {path: normalise(path, _read(path)) for path, _ in cg.writes}


def missing_dirs(cg: PoolCgroup) -> tuple[str, ...]:
    return tuple(d for d in cg.dirs if not os.path.isdir(d))


def apply(cg: PoolCgroup, record: Callable[[dict[str, object]], None]) -> None:
    """Create the pool's cgroup and write its limits; every step is recorded before it
    is made so a rollback can undo it."""
    for path, flag in cg.enable:
        ctl = flag.lstrip("+")
        if ctl not in (_read(path) or "").split():
            _write(path, flag)      # enabling a controller below the root is not undone
    for d in cg.dirs:
        parent = os.path.dirname(d)
        for top in (parent, d):
            if not os.path.isdir(top):
                record({"k": "cgroupdir", "path": top})
                try:
                    os.mkdir(top, 0o755)
                except OSError as err:
                    raise HostError(f"cannot create cgroup {top}: {err.strerror}") from err
    for path, value in cg.writes:
        old = normalise(path, _read(path))
        if old != value:
            record({"k": "cgroupfile", "path": path, "old": old})
            _write(path, to_write(path, value))


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise HostError(f"cannot open {path}: {err.strerror}") from err
    try:
        os.write(fd, value.encode())
    except OSError as err:
        raise HostError(f"cannot write {value!r} to {path}: {err.strerror} (does the "
                        "host allow this limit?)") from err
    finally:
        os.close(fd)


def undo_file(path: str, old: str | None) -> None:
    if old is not None and os.path.exists(path):
        with contextlib.suppress(OSError, HostError):
            _write(path, to_write(path, old))


def undo_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)      # a cgroup dir: rmdir works only when no process is in it


def remove(host: CgroupHost, pool: str) -> list[str]:
    """Remove the pool's cgroup in every hierarchy (its master must be stopped), then
    phphost's own group when it is empty. Returns what was removed."""
    removed = []
    for d in all_pool_dirs(host, pool):
        if os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError as err:
                raise HostError(f"cannot remove cgroup {d}: {err.strerror} (a process of "
                                f"pool {pool} is still in it?)") from err
            removed.append(d)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(d))
    return removed


def existing_pools(host: CgroupHost) -> frozenset[str]:
    """Pools that have a cgroup directory in any hierarchy."""
    tops = [f"{host.v2}/{GROUP}"] if host.v2 is not None else \
        [f"{m}/{GROUP}" for m in host.v1.values()]
    found: set[str] = set()
    for top in tops:
        with contextlib.suppress(OSError):
            found.update(n for n in os.listdir(top) if os.path.isdir(f"{top}/{n}"))
    return frozenset(found)


def usage(host: CgroupHost, pool: str) -> dict[str, int | None]:
    """memory (bytes), pids and CPU time (microseconds) of the pool's cgroup."""
    def num(path: str | None) -> int | None:
        text = _read(path) if path is not None else None
        return int(text.strip()) if text is not None and text.strip().isdigit() else None

    if host.v2 is not None:
        d = f"{host.v2}/{GROUP}/{pool}"
        stat = _read(f"{d}/cpu.stat") or ""
        cpu = next((int(line.split()[1]) for line in stat.splitlines()
                    if line.startswith("usage_usec ")), None)
        return {"memory": num(f"{d}/memory.current"), "pids": num(f"{d}/pids.current"),
                "cpu_usec": cpu}

    def v1(ctl: str, name: str) -> str | None:
        return f"{host.v1[ctl]}/{GROUP}/{pool}/{name}" if ctl in host.v1 else None

    ns = num(v1("cpuacct", "cpuacct.usage"))
    return {"memory": num(v1("memory", "memory.usage_in_bytes")),
            "pids": num(v1("pids", "pids.current")),
            "cpu_usec": ns // 1000 if ns is not None else None}


def oom_kills(host: CgroupHost, pool: str) -> int | None:
    """How many processes the kernel's OOM killer has killed in the pool's cgroup."""
    if host.v2 is not None:
        path = f"{host.v2}/{GROUP}/{pool}/memory.events"
    elif "memory" in host.v1:
        path = f"{host.v1['memory']}/{GROUP}/{pool}/memory.oom_control"
    else:
        return None
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None
