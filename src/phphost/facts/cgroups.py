"""cgroups on this host, read-only: find the hierarchies, read what a pool's limit
files hold now, which pools have a cgroup, a pool's usage for `phphost status` and its
OOM kills. host/cgroups.py creates, writes and removes them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from phphost.files import read_mountinfo
from phphost.render.cgroups import (
    GROUP,
    V1_CONTROLLERS,
    CgroupHost,
    PoolCgroup,
    normalise,
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


def read_file(path: str) -> str | None:
    """A cgroup file's text (None: missing or unreadable). One open, read and close
    (limit files are a few bytes; a plan reads thousands of them at 1,000 pools)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)


def detect(mountinfo: str | None = None,
           read: Callable[[str], str | None] = read_file,
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
    return {path: normalise(path, read_file(path)) for path, _ in cg.writes}


def missing_dirs(cg: PoolCgroup) -> tuple[str, ...]:
    return tuple(d for d in cg.dirs if not os.path.isdir(d))


def existing_pools(host: CgroupHost) -> frozenset[str]:
    """Pools that have a cgroup directory in any hierarchy."""
    tops = [f"{host.v2}/{GROUP}"] if host.v2 is not None else \
        [f"{m}/{GROUP}" for m in host.v1.values()]
    found: set[str] = set()
    for top in tops:
        with contextlib.suppress(OSError), os.scandir(top) as entries:
            found.update(e.name for e in entries if e.is_dir(follow_symlinks=False))
    return frozenset(found)


def usage(host: CgroupHost, pool: str) -> dict[str, int | None]:
    """memory (bytes), pids and CPU time (microseconds) of the pool's cgroup."""
    def num(path: str | None) -> int | None:
        text = read_file(path) if path is not None else None
        return int(text.strip()) if text is not None and text.strip().isdigit() else None

    if host.v2 is not None:
        d = f"{host.v2}/{GROUP}/{pool}"
        stat = read_file(f"{d}/cpu.stat") or ""
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
    for line in (read_file(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None
