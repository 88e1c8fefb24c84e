"""cgroups on this host: create a pool's cgroup and write its limits (journaled:
rollback writes the old values back and removes the directories it made), remove it.
Reading them is facts/cgroups.py's.

Only root-owned pseudo-filesystems are touched (no tenant can plant anything there),
at paths phphost computes: <mount>/phphost/<pool>."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

from phphost.errors import HostError
from phphost.facts.cgroups import read_file as _read
from phphost.render.cgroups import (
    CgroupHost,
    PoolCgroup,
    all_pool_dirs,
    normalise,
    to_write,
)


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


def remove_when_empty(paths: list[str], timeout: float = 10.0) -> None:
    """Cgroup dirs an apply made whose rollback found a process still in them (a master
    it started, stopped only by the re-sync after the rollback): removed as soon as
    they empty, children before parents, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    for path in sorted(paths, key=lambda p: -p.count("/")):
        while os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)


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
