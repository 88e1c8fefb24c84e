"""Audit rules over capacity: connection reuse against pools' children, and
MaxRequestWorkers against what one tenant's pools can hold (docs/sizing.md). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from phphost.audit.apacheview import (
    Mpm,
    Worker,
    handler_backends,
    mpm,
    pools_of,
    worker_limit,
    workers,
)
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding
from phphost.audit.fpmconf import FpmPool, listen_of
from phphost.spec.model import Model

SLOW_ACQUIRE_MS = 100


def acquire_ms(worker: Worker) -> int | None:
    """The worker's acquire timeout in ms (httpd's default unit), None when unset."""
    match = re.fullmatch(r"(\d+)(ms|s|mi|h)?", worker.params.get("acquire", "").lower())
    if not match:
        return None
    factor = {"ms": 1, "s": 1000, "mi": 60_000, "h": 3_600_000}[match.group(2) or "ms"]
    return int(match.group(1)) * factor


# --- PHA012 -------------------------------------------------------------------------------


def connection_reuse(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA012: a reused connection pins an FPM child; more kept connections than
    children and requests wait behind idle connections (seed 002)."""
    del model
    directives = list(facts.apache)
    limits, handlers = mpm(directives), handler_backends(directives)
    out = []
    for w in [w for w in workers(directives) if w.reuses]:
        per_process = worker_limit(w, limits) or limits.threads_per_child
        kept = per_process * limits.processes
        pools = pools_of(w.backend, list(facts.fpm_pools), handlers)
        if not pools:
            out.append(Finding("PHA012", "low", w.where,
                               f"{w.url} reuses connections to a backend whose FPM pool is "
                               f"not on this host: up to {kept} kept connections",
                               "keep max x Apache processes at or below the pool's children"))
        for pool in pools:
            children = pool.number("pm.max_children", 5)
            if kept > children:
                out.append(Finding(
                    "PHA012", "high", w.where,
                    f"{w.url} keeps up to {per_process} connections per Apache process x "
                    f"{limits.processes} processes = {kept}, more than pool {pool.name}'s "
                    f"pm.max_children {children}: idle kept connections pin its children",
                    "drop enablereuse (FastCGI reuse is off by default), or set max so that "
                    "max x (MaxRequestWorkers / ThreadsPerChild) <= pm.max_children"))
    return out


# --- PHA013 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolBound:
    pool: FpmPool
    threads: int          # Apache threads the pool's requests can hold at once
    worker: Worker | None


def reachable(facts: AuditFacts) -> list[FpmPool]:
    """FPM pools some Apache handler sends requests to."""
    handlers = handler_backends(list(facts.apache))
    sockets = {b.socket for _, b in handlers if b.socket}
    ports = {b.port for _, b in handlers if b.port and not b.socket}
    out = []
    for pool in facts.fpm_pools:
        listen = listen_of(pool.get("listen"))
        if listen.path in sockets or (listen.kind == "tcp" and listen.port in ports):
            out.append(pool)
    return out


def pool_bounds(facts: AuditFacts, limits: Mpm) -> list[PoolBound]:
    """Per reachable pool: the threads its requests can hold. Bounded only by an
    explicit worker with `max` and `acquire` (a full FPM backlog refuses nothing:
    httpd's connect() to a Unix socket blocks); otherwise every thread."""
    directives = list(facts.apache)
    handlers, explicit = handler_backends(directives), workers(directives)
    out = []
    for pool in reachable(facts):
        bounded = [(limit * limits.processes, w) for w in explicit
                   if pool in pools_of(w.backend, list(facts.fpm_pools), handlers)
                   and (limit := worker_limit(w, limits)) and acquire_ms(w) is not None]
        threads, worker = min(bounded, key=lambda x: x[0]) if bounded else \
            (limits.max_request_workers, None)
        out.append(PoolBound(pool, min(threads, limits.max_request_workers), worker))
    return out


def _owner(pool: FpmPool, model: Model) -> str:
    """Spec tenant of a pool (by socket), else its Unix group."""
    listen = listen_of(pool.get("listen"))
    spec_pool = next((p for p in model.pools if p.socket == listen.path), None)
    return f"tenant {spec_pool.tenant}" if spec_pool else f"group {pool.get('group') or '?'}"


def worker_sizing(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA013: one tenant's saturated pools must not be able to hold every Apache
    worker thread (MaxRequestWorkers), or every other site waits behind them."""
    limits = mpm(list(facts.apache))
    bounds = pool_bounds(facts, limits)
    mrw = limits.max_request_workers
    by_owner: dict[str, list[PoolBound]] = {}
    for b in bounds:
        by_owner.setdefault(_owner(b.pool, model), []).append(b)
    out = [f for owner, group in sorted(by_owner.items())
           if (f := _owner_finding(owner, group, mrw)) is not None]
    total = sum(b.threads for b in bounds)
    if len(by_owner) > 1 and total >= mrw:
        out.append(Finding("PHA013", "low", "apache.max_request_workers",
                           f"all pools saturated together can hold {total} threads, "
                           f">= MaxRequestWorkers {mrw}: static files would wait too",
                           "raise max_request_workers or lower pools' max_children or burst_queue "
                           "(docs/sizing.md)"))
    out += _slow_acquire(bounds)
    return out


def _owner_finding(owner: str, group: list[PoolBound], mrw: int) -> Finding | None:
    held = min(mrw, sum(b.threads for b in group))
    names = ", ".join(sorted(b.pool.name for b in group))
    unbounded = [b.pool.name for b in group if b.worker is None]
    why = (f"pool(s) {', '.join(sorted(unbounded))} have no Apache-side bound (a <Proxy> "
           "worker with max= and acquire=); a full FPM backlog does not refuse connections"
           if unbounded else "the per-process max x Apache processes is that large")
    where = f"tenants.{owner.split(' ', 1)[1]}" if owner.startswith("tenant ") else \
        group[0].pool.where("pm.max_children")
    if held >= mrw:
        return Finding("PHA013", "high", where,
                       f"{owner}: pools {names} can hold all {mrw} worker threads when slow; "
                       f"{why}", "run `phphost apply` (it renders one bounded worker per "
                       "pool) and keep each tenant's max_children x processes well below "
                       "MaxRequestWorkers (docs/sizing.md)")
    if held * 2 > mrw:
        return Finding("PHA013", "medium", where,
                       f"{owner}: pools {names} can hold {held} of {mrw} worker threads "
                       "(more than half) when slow",
                       "lower their max_children or burst_queue, or raise max_request_workers "
                       "(docs/sizing.md)")
    return None


def _slow_acquire(bounds: list[PoolBound]) -> list[Finding]:
    out = []
    for b in bounds:
        ms = acquire_ms(b.worker) if b.worker else None
        if b.worker is not None and ms is not None and ms > SLOW_ACQUIRE_MS:
            out.append(Finding("PHA013", "low", b.worker.where,
                               f"pool {b.pool.name}: acquire={ms} ms: each request beyond "
                               "the bound holds a thread that long before its 503",
                               "acquire=1 (phphost's value)"))
    return out
