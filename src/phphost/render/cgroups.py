"""Which cgroup files a pool's limits become on this host, and what the host cannot
enforce. Pure: the host's cgroup layout comes in as `CgroupHost` (host/cgroups.py).

cgroup v2 (Debian 12): one directory ROOT/phphost/POOL with memory.max, memory.high,
memory.oom.group (an OOM kills the whole pool; supervisord starts it again), pids.max,
cpu.weight, cpu.max and io.weight. cgroup v1 (hosts with only the legacy hierarchies):
phphost/POOL in each of the memory, pids, cpu, cpuacct (usage for `phphost status`) and
blkio hierarchies, with memory.limit_in_bytes, memory.soft_limit_in_bytes (v1 has no
throttling "high": the soft limit is where reclaim starts under host pressure),
pids.max, cpu.shares, cpu.cfs_quota_us/cpu.cfs_period_us and blkio.weight.

A limit the spec sets that the host cannot enforce is a plan error naming the key; a
derived one is skipped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phphost.errors import PlanError
from phphost.spec.limits import Limits

GROUP = "phphost"
CFS_PERIOD = 100_000
UNLIMITED = "max"
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "blkio")
V2_CONTROLLERS = ("memory", "pids", "cpu", "io")
# spec key -> the controller that enforces it
KEY_CONTROLLER = {"memory_max": "memory", "memory_high": "memory", "pids_max": "pids",
                  "cpu_weight": "cpu", "cpu_max": "cpu", "io_weight": "io"}


@dataclass(frozen=True)
class CgroupHost:
    """The host's cgroup layout (facts). v2: the cgroup2 mount point when it has the
    controllers phphost uses, else None. v1: controller -> its hierarchy's mount point."""

    v2: str | None = None
    v2_controllers: frozenset[str] = frozenset()
    v2_io_weight: bool = False          # io.weight exists (blk-iocost or BFQ)
    v1: dict[str, str] = field(default_factory=dict)
    v1_blkio_weight: bool = False       # blkio.weight exists (CFQ/BFQ)

    @property
    def version(self) -> str:
        if self.v2 is not None:
            return "v2"
        return "v1" if self.v1 else "none"

    def enforces(self, controller: str) -> bool:
        if self.v2 is not None:
            if controller == "io":
                return "io" in self.v2_controllers and self.v2_io_weight
            return controller in self.v2_controllers
        if controller == "io":
            return "blkio" in self.v1 and self.v1_blkio_weight
        return controller in self.v1


@dataclass(frozen=True)
class PoolCgroup:
    """The pool's cgroup directories and the values to write, in order."""

    pool: str
    version: str
    dirs: tuple[str, ...]
    writes: tuple[tuple[str, str], ...]     # (file path, value)
    enable: tuple[tuple[str, str], ...] = ()  # v2: (cgroup.subtree_control path, "+ctl")
    notes: tuple[str, ...] = ()


def pool_dir(host: CgroupHost, pool: str, controller: str = "") -> str | None:
    if host.v2 is not None:
        return f"{host.v2}/{GROUP}/{pool}"
    mount = host.v1.get(controller)
    return f"{mount}/{GROUP}/{pool}" if mount is not None else None


def all_pool_dirs(host: CgroupHost, pool: str) -> tuple[str, ...]:
    """Every directory this pool's cgroup has on the host (removal, status)."""
    if host.v2 is not None:
        return (f"{host.v2}/{GROUP}/{pool}",)
    return tuple(f"{host.v1[c]}/{GROUP}/{pool}" for c in V1_CONTROLLERS if c in host.v1)


def _refuse_or_note(pool: str, lim: Limits, host: CgroupHost) -> list[str]:
    notes = []
    for key, controller in KEY_CONTROLLER.items():
        if key == "cpu_max" and lim.cpu_max is None:
            continue
        if host.enforces(controller):
            continue
        what = {"none": "no cgroup hierarchy is mounted",
                "v1": f"cgroup v1 has no usable {controller} hierarchy"
                + (" (blkio.weight needs the CFQ or BFQ I/O scheduler)"
                   if controller == "io" else ""),
                "v2": f"the cgroup2 root does not offer the {controller} controller"
                + (" with io.weight (needs blk-iocost or BFQ)" if controller == "io" else "")
                }[host.version]
        if key in lim.explicit:
            raise PlanError(f"pools.{pool}.{key}: this host cannot enforce it: {what}. "
                            f"Remove {key} from the spec (or mount the {controller} "
                            "controller) and plan again")
        notes.append(f"{key}: {what}; not enforced")
    return notes


def pool_cgroup(pool: str, lim: Limits, host: CgroupHost) -> PoolCgroup | None:
    """Pure: what apply writes for this pool; None when the host has no cgroups at all
    (then only RLIMIT_NPROC bounds the pool). PlanError for an explicit limit the host
    cannot enforce."""
    notes = _refuse_or_note(pool, lim, host)
    if host.version == "none":
        return None
    if host.v2 is not None:
        return _v2(pool, lim, host, tuple(dict.fromkeys(notes)))
    return _v1(pool, lim, host, tuple(dict.fromkeys(notes)))


def _quota(cpus: float | None) -> int | None:
    return None if cpus is None else max(1000, round(cpus * CFS_PERIOD))


def _v2(pool: str, lim: Limits, host: CgroupHost, notes: tuple[str, ...]) -> PoolCgroup:
    root = f"{host.v2}/{GROUP}"
    d = f"{root}/{pool}"
    writes: list[tuple[str, str]] = []
    ctls = [c for c in V2_CONTROLLERS if host.enforces(c)]
    if "memory" in ctls:
        # high before max: lowering max below the old high is fine either way, but a
        # high above max is refused by nothing and throttles nothing
        writes += [(f"{d}/memory.high", _v(lim.memory_high)), (f"{d}/memory.max",
                                                               _v(lim.memory_max)),
                   (f"{d}/memory.oom.group", "1")]
    if "pids" in ctls:
        writes.append((f"{d}/pids.max", str(lim.pids_max)))
    if "cpu" in ctls:
        quota = _quota(lim.cpu_max)
        writes += [(f"{d}/cpu.weight", str(lim.cpu_weight)),
                   (f"{d}/cpu.max", f"{quota if quota is not None else UNLIMITED} {CFS_PERIOD}")]
    if "io" in ctls:
        writes.append((f"{d}/io.weight", f"default {lim.io_weight}"))
    enable = tuple((f"{parent}/cgroup.subtree_control", f"+{c}")
                   for parent in (host.v2, root) for c in ctls)
    return PoolCgroup(pool, "v2", (d,), tuple(writes), enable, notes)


def _v1(pool: str, lim: Limits, host: CgroupHost, notes: tuple[str, ...]) -> PoolCgroup:
    writes: list[tuple[str, str]] = []
    dirs = []
    for c in V1_CONTROLLERS:
        if c not in host.v1 or (c == "blkio" and not host.v1_blkio_weight):
            continue
        d = f"{host.v1[c]}/{GROUP}/{pool}"
        dirs.append(d)
        if c == "memory":
            writes += [(f"{d}/memory.limit_in_bytes", _v(lim.memory_max)),
                       (f"{d}/memory.soft_limit_in_bytes", _v(lim.memory_high))]
        elif c == "pids":
            writes.append((f"{d}/pids.max", str(lim.pids_max)))
        elif c == "cpu":
            quota = _quota(lim.cpu_max)
            writes += [(f"{d}/cpu.shares", str(max(2, lim.cpu_weight * 1024 // 100))),
                       (f"{d}/cpu.cfs_period_us", str(CFS_PERIOD)),
                       (f"{d}/cpu.cfs_quota_us", str(quota) if quota is not None else "-1")]
        elif c == "blkio":
            writes.append((f"{d}/blkio.weight", str(min(1000, max(10, lim.io_weight // 10)))))
    return PoolCgroup(pool, "v1", tuple(dirs), tuple(writes), (), notes)


def _v(n: int | None) -> str:
    return UNLIMITED if n is None else str(n)


V1_UNLIMITED = 1 << 62


def normalise(path: str, text: str | None) -> str | None:
    """Pure: a cgroup file's content as `pool_cgroup` writes it ("max" for v1's huge
    unlimited numbers, io.weight's default line only)."""
    if text is None:
        return None
    value = text.strip()
    name = path.rsplit("/", 1)[-1]
    if name.startswith("memory.") and value.isdigit() and int(value) >= V1_UNLIMITED:
        return UNLIMITED
    if name == "io.weight":
        return next((line for line in value.splitlines() if line.startswith("default ")),
                    value)
    return value


def to_write(path: str, value: str) -> str:
    """Pure: what to write for `value` (v1 takes -1 for unlimited memory)."""
    name = path.rsplit("/", 1)[-1]
    if value == UNLIMITED and name in ("memory.limit_in_bytes", "memory.soft_limit_in_bytes"):
        return "-1"
    return value
