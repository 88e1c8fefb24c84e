"""A pool's resource limits: the spec's keys, or defaults derived from the pool's
other settings. Pure.

Derivation (docs/sizing.md, "Resource limits"):

    memory_max  = max_children * (memory_limit + 32M) + opcache_memory_mb
                  + tmp_size (jailed pools: the tmpfs counts) + 64M (master, launcher)
                  none when memory_limit is -1 (unbounded PHP: set memory_max yourself)
    memory_high = memory_max * 9 / 10
    pids_max    = 8 * max_children + 16
    nproc       = pids_max (RLIMIT_NPROC of the pool user: a second line if cgroups fail)
    cpu_weight  = 100, io_weight = 100 (every pool equal); cpu_max: no quota

memory_limit is the pool's php_admin_values (else php_values) memory_limit, PHP's
128M when neither sets it. Sizes are rounded down to whole 4 KiB pages (what the
kernel stores), so apply twice compares equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phphost.spec.model import Pool

MIB = 1024 * 1024
PAGE = 4096
PHP_DEFAULT_MEMORY_LIMIT = 128 * MIB
PER_CHILD_OVERHEAD = 32 * MIB
MASTER_OVERHEAD = 64 * MIB
PIDS_PER_CHILD = 8
PIDS_BASE = 16
DEFAULT_WEIGHT = 100
LIMIT_KEYS = ("memory_max", "memory_high", "pids_max", "cpu_weight", "cpu_max", "io_weight")
_PHP_SIZE = re.compile(r"^\s*(-?[0-9]+)\s*([kKmMgG]?)\s*$")
_PHP_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}


@dataclass(frozen=True)
class Limits:
    memory_max: int | None      # bytes; None: no memory limit
    memory_high: int | None
    pids_max: int
    nproc: int
    cpu_weight: int
    cpu_max: float | None       # CPUs; None: no quota
    io_weight: int
    explicit: frozenset[str]    # keys the spec set (a host that cannot enforce one: refused)


def php_bytes(text: str) -> int | None:
    """Pure: PHP's shorthand size ("128M", "1G", "-1") in bytes; None for -1 or junk."""
    m = _PHP_SIZE.match(text)
    if m is None or int(m.group(1)) < 0:
        return None
    return int(m.group(1)) * _PHP_UNITS[m.group(2).lower()]


def memory_limit(pool: Pool) -> int | None:
    """The pool's PHP memory_limit in bytes (None: unlimited)."""
    values = dict(pool.settings.php_values)
    values.update(pool.settings.php_admin_values)
    text = values.get("memory_limit")
    return PHP_DEFAULT_MEMORY_LIMIT if text is None else php_bytes(text)


def pages(n: int) -> int:
    return n // PAGE * PAGE


def pool_limits(pool: Pool) -> Limits:
    s = pool.settings
    explicit = frozenset(k for k in LIMIT_KEYS if getattr(s, k) is not None)
    mem = s.memory_max
    if mem is None:
        per_child = memory_limit(pool)
        if per_child is not None:
            mem = (s.max_children * (per_child + PER_CHILD_OVERHEAD)
                   + s.opcache_memory_mb * MIB + MASTER_OVERHEAD
                   + (s.tmp_size if pool.jail.enabled else 0))
    high = s.memory_high if s.memory_high is not None else \
        (mem * 9 // 10 if mem is not None else None)
    pids = s.pids_max if s.pids_max is not None else PIDS_PER_CHILD * s.max_children + PIDS_BASE
    return Limits(
        memory_max=pages(mem) if mem is not None else None,
        memory_high=pages(high) if high is not None else None,
        pids_max=pids, nproc=pids,
        cpu_weight=s.cpu_weight if s.cpu_weight is not None else DEFAULT_WEIGHT,
        cpu_max=s.cpu_max,
        io_weight=s.io_weight if s.io_weight is not None else DEFAULT_WEIGHT,
        explicit=explicit)


def limit_problems(pool: Pool) -> list[tuple[str, str, str]]:
    """Pure: (key, problem, remedy) for limits that cannot work with the pool's other
    settings."""
    lim, s = pool_limits(pool), pool.settings
    out = []
    if lim.memory_high is not None and lim.memory_max is not None \
            and lim.memory_high > lim.memory_max:
        out.append(("memory_high", f"memory_high ({lim.memory_high // MIB}M) is above "
                    f"memory_max ({lim.memory_max // MIB}M)",
                    "set memory_high at or below memory_max"))
    if lim.memory_high is not None and lim.memory_max is None:
        out.append(("memory_high", "memory_high needs a memory_max (memory_limit is -1, so "
                    "none is derived)", "set memory_max too"))
    if lim.pids_max < s.max_children + 2:
        out.append(("pids_max", f"pids_max = {lim.pids_max} leaves no room for "
                    f"max_children = {s.max_children} workers plus the master and launcher",
                    f"set pids_max to at least {s.max_children + 2}"))
    return out


def describe(lim: Limits) -> str:
    """Pure: one line for plan and docs: `memory 672M (high 604M), pids 40, ...`."""
    def mib(n: int | None) -> str:
        return "unlimited" if n is None else f"{n // MIB}M"
    cpu = f"cpu weight {lim.cpu_weight}" + (f", quota {lim.cpu_max:g} CPUs"
                                            if lim.cpu_max is not None else "")
    return (f"memory {mib(lim.memory_max)} (high {mib(lim.memory_high)}), pids {lim.pids_max}"
            f" (RLIMIT_NPROC {lim.nproc}), {cpu}, io weight {lim.io_weight}")
