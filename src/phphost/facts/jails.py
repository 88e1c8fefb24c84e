"""Jail facts for planning: each jailed pool's manifest (from the host's files,
ldd, passwd), what building it would change, and the safety invariants.
Read-only."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass

from phphost import layout
from phphost.facts.hostview import RealHostView
from phphost.facts.jailscan import ScanCache, gather_facts, store_index
from phphost.jail.diff import Change, diff_jail
from phphost.jail.features import ClosureCache, build_manifest
from phphost.jail.invariants import Neighbours, check_invariants, neighbourhood
from phphost.jail.manifest import Manifest
from phphost.spec.model import Model, Pool


@dataclass(frozen=True)
class JailState:
    pool: str
    root: str
    manifest: Manifest
    changes: tuple[Change, ...]


def manifest_for(model: Model, pool: Pool, host: RealHostView | None = None,
                 cache: ClosureCache | None = None) -> Manifest:
    return build_manifest(pool, model.tenant(pool.tenant), host or RealHostView(), cache=cache)


def _store_index() -> dict[tuple[int, int], str]:
    return store_index(layout.STORE_DIR) if os.path.isdir(layout.STORE_DIR) else {}


def jail_state(model: Model, pool: Pool, host: RealHostView, index: dict[tuple[int, int], str],
               everyone: Neighbours, cache: ClosureCache | None = None,
               scans: ScanCache | None = None) -> JailState:
    """PlanError when the jail on disk (or its parents) breaks an invariant."""
    root = layout.jail_root(pool.name)
    manifest = manifest_for(model, pool, host, cache)
    facts = gather_facts(root, index, scans)      # one scan: invariants and diff alike
    check_invariants(manifest, facts, everyone.excluding(pool.tenant, pool.name))
    on_disk = facts.entries if os.path.isdir(root) else {}
    return JailState(pool.name, root, manifest, tuple(diff_jail(manifest, on_disk)))


def gather_jails(model: Model, only: Collection[str] | None = None) -> dict[str, JailState]:
    """only: these pools' jails (a tenant-limited plan leaves the others as they are)."""
    host = RealHostView()
    index = _store_index()
    everyone = neighbourhood(model, layout.jail_root)
    cache, scans = ClosureCache(), ScanCache(symlink_owners=False)
    return {p.name: jail_state(model, p, host, index, everyone, cache, scans)
            for p in model.pools
            if p.jail.enabled and (only is None or p.name in only)}
