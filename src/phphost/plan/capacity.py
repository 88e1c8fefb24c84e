"""Capacity report: the memory each pool commits at its worst (every child busy)
against the machine's memory, and the refusal of a spec whose worst case cannot fit.
Pure: the measurements come in from facts/capacity.py.

    committed(pool) = max_children x worker + master + opcache_memory_mb

worker and master are measured (PSS) on the running pool, else DEFAULT_WORKER and
DEFAULT_MASTER (docs/sizing.md says why these figures)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from phphost.errors import PlanError
from phphost.facts.capacity import PoolMemory
from phphost.spec.model import Model

MIB = 1024 * 1024
DEFAULT_WORKER = 40 * MIB     # a PHP 8.2 worker after a framework request (docs/sizing.md)
DEFAULT_MASTER = 10 * MIB     # an FPM master with opcache (issue 12 measured 8.1 MB PSS)


@dataclass(frozen=True)
class PoolCapacity:
    pool: str
    max_children: int
    worker: int             # bytes per worker
    worker_measured: bool
    master: int
    master_measured: bool
    opcache: int

    @property
    def committed(self) -> int:
        return self.max_children * self.worker + self.master + self.opcache

    def line(self) -> str:
        worker = "measured" if self.worker_measured else "default"
        master = "measured" if self.master_measured else "default"
        return (f"{self.pool}: {self.max_children} x {mib(self.worker)} ({worker}) + master "
                f"{mib(self.master)} ({master}) + opcache {mib(self.opcache)} = "
                f"{mib(self.committed)}")


@dataclass(frozen=True)
class Capacity:
    pools: tuple[PoolCapacity, ...]
    machine: int            # bytes of RAM (0: unknown)

    @property
    def committed(self) -> int:
        return sum(p.committed for p in self.pools)

    @property
    def fits(self) -> bool:
        return self.machine <= 0 or self.committed <= self.machine

    def summary(self) -> str:
        if self.machine <= 0:
            return f"capacity: {mib(self.committed)} committed; machine memory unknown"
        share = 100 * self.committed / self.machine
        return (f"capacity: {mib(self.committed)} committed at worst by {len(self.pools)} "
                f"pool(s), {share:.0f} % of this machine's {mib(self.machine)}")

    def lines(self, verbose: bool) -> list[str]:
        """The summary, and per pool (all with `verbose`, else the three largest)."""
        ordered = sorted(self.pools, key=lambda p: (-p.committed, p.pool))
        shown = ordered if verbose else ordered[:3]
        more = len(ordered) - len(shown)
        return [self.summary(), *(f"  {p.line()}" for p in shown),
                *([f"  ... {more} more (plan -v lists every pool)"] if more else [])]

    def to_json(self) -> dict[str, object]:
        return {"machine_bytes": self.machine, "committed_bytes": self.committed,
                "fits": self.fits,
                "pools": [dict(asdict(p), committed=p.committed) for p in self.pools]}


def mib(n: int) -> str:
    return f"{n / 1024 / MIB:.1f}G" if n >= 10 * 1024 * MIB else f"{n / MIB:.0f}M"


def capacity(model: Model, measured: Mapping[str, PoolMemory], machine: int) -> Capacity:
    rows = []
    for pool in sorted(model.pools, key=lambda p: p.name):
        m = measured.get(pool.name, PoolMemory())
        rows.append(PoolCapacity(
            pool.name, pool.settings.max_children,
            m.worker_bytes if m.worker_bytes is not None else DEFAULT_WORKER,
            m.worker_bytes is not None,
            m.master_bytes if m.master_bytes is not None else DEFAULT_MASTER,
            m.master_bytes is not None,
            pool.settings.opcache_memory_mb * MIB))
    return Capacity(tuple(rows), machine)


def refuse_unless_fits(cap: Capacity, spec: str, force: bool) -> None:
    """PlanError naming the spec, the figures and what to do when the worst case does
    not fit in the machine's memory, unless `force`."""
    if cap.fits or force:
        return
    top = sorted(cap.pools, key=lambda p: (-p.committed, p.pool))[:3]
    raise PlanError(
        f"{spec}: the pools' worst case does not fit in this machine's memory: "
        f"{mib(cap.committed)} committed with every child busy, against "
        f"{mib(cap.machine)} (largest: {'; '.join(p.line() for p in top)}). Nothing was "
        "changed. Lower max_children or opcache_memory_mb of the largest pools, or pass "
        "--force to plan and apply it anyway")
