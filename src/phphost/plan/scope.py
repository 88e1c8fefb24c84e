"""What a tenant-limited plan may touch (`--tenant NAME`): the named tenants'
accounts, homes, pools (masters, jails, cgroups, per-pool files) and sites, plus
what all pools share (the Apache global conf, the launcher, the nftables table,
logrotate, the exporter's files, the record of the last apply), rendered from the
whole host. Any other tenant's objects are left exactly as they are, drift
included. Pure."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TypeVar

from phphost import layout
from phphost.facts.gather import Wanted
from phphost.facts.state import State
from phphost.plan import actions as A
from phphost.spec.model import Model, Pool, Site, Tenant
from phphost.spec.snapshot import parts_of

_T = TypeVar("_T", Tenant, Pool, Site)


def pool_files(pool: str) -> tuple[str, ...]:
    return (layout.fpm_conf(pool), layout.supervisor_conf(pool), layout.limits_file(pool),
            layout.mounts_file(pool))


def site_files(site: str) -> tuple[str, ...]:
    return layout.site_conf(site), layout.site_link(site)


@dataclass(frozen=True)
class Scope:
    tenants: frozenset[str]
    pools: frozenset[str]            # the tenants' pools (in the spec or last applied)
    sites: frozenset[str]
    users: frozenset[str]            # their tenant and pool users
    groups: frozenset[str]
    homes: frozenset[str]
    foreign_files: frozenset[str]    # per-pool and per-site files of everyone else
    foreign_homes: frozenset[str]    # homes of every other tenant

    def allows(self, act: A.Action) -> bool:
        pool = _pool_of(act)
        if pool is not None:
            return pool in self.pools
        if isinstance(act, (A.WriteFile, A.RemoveFile)):
            return act.path not in self.foreign_files
        if isinstance(act, A.Symlink):
            return act.link not in self.foreign_files
        if isinstance(act, (A.EnsureUser, A.RemoveUser)):
            return act.name in self.users
        if isinstance(act, (A.EnsureGroup, A.RemoveGroup)):
            return act.name in self.groups or act.name == layout.MAIL_GROUP
        if isinstance(act, (A.EnsureDir, A.SetAcl, A.RemoveTree)):
            return not self.in_foreign_home(act.path)
        return True      # modules, nftables, programs, apache, TLS checks, state: shared

    def in_foreign_home(self, path: str) -> bool:
        """`path` is another tenant's home or below it (a walk up, not a scan)."""
        while True:
            if path in self.foreign_homes:
                return True
            if path in ("/", ""):
                return False
            path = posixpath.dirname(path)

    def narrow(self, wanted: Wanted) -> Wanted:
        """What the plan must read: nothing in other tenants' homes (their docroots'
        ACL walks, unsafe paths), no other pool's cgroup or files; their actions are
        dropped anyway, and a tenant-limited run is not refused for another tenant's
        paths. Every pool's socket directory is still checked: a rolled-back apply
        starts every pool that is not running (host/apply.py resync)."""
        return dataclasses.replace(
            wanted,
            dirs=tuple(d for d in wanted.dirs if not self.in_foreign_home(d)),
            acls=tuple(a for a in wanted.acls if not self.in_foreign_home(a[0])),
            grants=tuple(g for g in wanted.grants if not self.in_foreign_home(g[0])),
            limits=tuple(x for x in wanted.limits if x[0] in self.pools),
            leave=self.foreign_files)


def _pool_of(act: A.Action) -> str | None:
    if isinstance(act, A.SetCgroup):
        return act.cgroup.pool if act.cgroup else None
    if isinstance(act, (A.BuildJail, A.RemoveJail, A.RemoveCgroup, A.SetProcessLimit,
                        A.StartMaster, A.ReloadMaster, A.RestartMaster, A.StopMaster)):
        return act.pool
    return None


def make_scope(tenants: Collection[str], models: Iterable[Model], state: State) -> Scope:
    """`models`: every model that names objects of the host (the spec, the last
    applied one, the one planned); `state` adds pools and sites no model names."""
    models = tuple(models)
    pools: set[str] = set()
    users: set[str] = set()
    groups: set[str] = set()
    homes: set[str] = set()
    mine_sites: set[str] = set()
    all_pools, all_sites = set(state.pools), set(state.sites)
    for m in models:
        for t in m.tenants:
            if t.name in tenants:
                users.add(t.user)
                groups.add(t.group)
            else:
                homes.add(t.home)
        for p in m.pools:
            all_pools.add(p.name)
            if p.tenant in tenants:
                pools.add(p.name)
                users.add(p.user)
        for s in m.sites:
            all_sites.add(s.name)
            if s.tenant in tenants:
                mine_sites.add(s.name)
    foreign = {f for p in all_pools - pools for f in pool_files(p)}
    foreign |= {f for s in all_sites - mine_sites for f in site_files(s)}
    mine_homes = {t.home for m in models for t in m.tenants if t.name in tenants}
    return Scope(frozenset(tenants), frozenset(pools), frozenset(mine_sites), frozenset(users),
                 frozenset(groups), frozenset(mine_homes), frozenset(foreign),
                 frozenset(homes - mine_homes))


def doomed_model(spec: Model, applied: Model | None, tenants: Collection[str]) -> Model:
    """The named tenants with their pools and sites, as the spec says and, for what
    the spec no longer has, as last applied: what `destroy --tenant` removes."""
    def merged(mine: Iterable[_T], old: Iterable[_T]) -> tuple[_T, ...]:
        have = {x.name: x for x in old}
        have.update((x.name, x) for x in mine)
        return tuple(have[n] for n in sorted(have))
    spec_t, spec_p, spec_s = parts_of(spec, tenants)
    old_t, old_p, old_s = parts_of(applied, tenants) if applied else ([], [], [])
    return Model(source=spec.source, tenants=merged(spec_t, old_t),
                 pools=merged(spec_p, old_p), sites=merged(spec_s, old_s),
                 apache=spec.apache, exporter=spec.exporter)


def unknown_tenants(spec: Model, applied: Model | None, tenants: Iterable[str]) -> list[str]:
    known = {t.name for t in spec.tenants} | {t.name for t in (applied.tenants if applied else ())}
    return [t for t in tenants if t not in known]
