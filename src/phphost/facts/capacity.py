"""The machine's memory and what each running pool's processes use, for the capacity
report of `phphost plan` (plan/capacity.py). Reads /proc only, never changes anything.

A pool's workers are the php-fpm processes whose real uid is the pool user (the master
runs as root); the master is their parent. Sizes are PSS (`/proc/PID/smaps_rollup`):
a page shared by N processes counts 1/N in each, so the OPcache segment and the
master's copy-on-write pages are not counted max_children times. One pass over /proc
for all pools."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from phphost.facts.accounts import accounts_db
from phphost.layout import PROC


@dataclass(frozen=True)
class PoolMemory:
    """What a running pool uses now; None where nothing of it runs."""

    workers: int = 0
    worker_bytes: int | None = None    # the largest worker's PSS
    master_bytes: int | None = None    # the master's PSS


def parse_meminfo_total(text: str) -> int:
    """Pure: MemTotal of /proc/meminfo in bytes (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else 0
    return 0


def parse_pss(text: str) -> int | None:
    """Pure: the Pss line of smaps_rollup in bytes."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return None


def parse_status(text: str) -> tuple[str, int, int] | None:
    """Pure: (Name, real uid, PPid) of /proc/PID/status (three lines looked up, not
    every line split: a plan reads the status of every process on the host)."""
    name = _status_field(text, "Name")
    uid = _status_field(text, "Uid").split()
    ppid = _status_field(text, "PPid").split()
    if not uid or not uid[0].isdigit():
        return None
    return name.strip(), int(uid[0]), int(ppid[0]) if ppid and ppid[0].isdigit() else -1


def _status_field(text: str, key: str) -> str:
    """The value of the line `key:` (the first line, or one after a newline)."""
    at = 0 if text.startswith(f"{key}:") else text.find(f"\n{key}:") + 1
    if at == 0 and not text.startswith(f"{key}:"):
        return ""
    start = at + len(key) + 1
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:         # the process ended meanwhile, or no such file
        return None


def machine_memory(proc: str = PROC) -> int:
    """Bytes of RAM this machine (or container) has: MemTotal."""
    return parse_meminfo_total(_read(f"{proc}/meminfo") or "")


def _uids(users: Mapping[str, str]) -> dict[int, str]:
    """uid -> pool, for the pool users that exist."""
    db = accounts_db()
    return {pw.pw_uid: pool for pool, user in users.items()
            if (pw := db.users.get(user)) is not None}


def pool_memory(users: Mapping[str, str], proc: str = PROC) -> dict[str, PoolMemory]:
    """pool -> PoolMemory for every pool in `users` (pool -> its Unix user)."""
    by_uid = _uids(users)
    workers: dict[str, list[int]] = {}
    parents: dict[str, set[int]] = {}
    try:
        pids = [int(x) for x in os.listdir(proc) if x.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        status = parse_status(_read(f"{proc}/{pid}/status") or "")
        if status is None or status[1] not in by_uid or not status[0].startswith("php-fpm"):
            continue
        pool = by_uid[status[1]]
        pss = parse_pss(_read(f"{proc}/{pid}/smaps_rollup") or "")
        if pss is not None:
            workers.setdefault(pool, []).append(pss)
            parents.setdefault(pool, set()).add(status[2])
    out = {pool: PoolMemory() for pool in users}
    for pool, sizes in workers.items():
        masters = [m for ppid in parents.get(pool, set())
                   if (m := parse_pss(_read(f"{proc}/{ppid}/smaps_rollup") or "")) is not None]
        out[pool] = PoolMemory(len(sizes), max(sizes), max(masters) if masters else None)
    return out
