"""An attack and the cells it runs in. Which attacker/target pairs an attack's scope
expands to is pure (model in, pairs out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from phphost.spec.model import Model, Site
from phphost.verify.context import Ctx, Pair
from phphost.verify.result import AttackInfo, Result

# pool: PHP in each pool; site: files and HTTP requests on each site with a docroot.
# ">tenant" / ">pool": once per other tenant / other pool as the target.
Scope = Literal["pool", "pool>tenant", "pool>pool", "site", "site>tenant", "site>pool"]


@dataclass(frozen=True)
class Attack:
    id: str
    family: str
    description: str
    scope: Scope
    run: Callable[[Ctx], Result]

    @property
    def info(self) -> AttackInfo:
        return AttackInfo(self.id, self.family, self.description)


def attack_sites(model: Model) -> list[Site]:
    """Sites with files of a tenant (redirect-only sites have none)."""
    return [s for s in model.sites if s.tenant is not None and s.docroot is not None]


def site_pools(site: Site) -> set[str]:
    names = {route.pool for route in site.routes}
    if site.pool is not None:
        names.add(site.pool)
    return names


def _pool_pairs(model: Model, scope: Scope) -> list[Pair]:
    pairs: list[Pair] = []
    for pool in sorted(model.pools, key=lambda p: p.name):
        base = Pair(tenant=pool.tenant, pool=pool.name)
        if scope == "pool":
            pairs.append(base)
        elif scope == "pool>tenant":
            pairs += [Pair(pool.tenant, pool.name, target_tenant=t.name)
                      for t in sorted(model.tenants, key=lambda t: t.name)
                      if t.name != pool.tenant]
        else:
            pairs += [Pair(pool.tenant, pool.name, target_tenant=p.tenant, target_pool=p.name)
                      for p in sorted(model.pools, key=lambda p: p.name) if p.name != pool.name]
    return pairs


def _site_pairs(model: Model, scope: Scope) -> list[Pair]:
    pairs: list[Pair] = []
    for site in sorted(attack_sites(model), key=lambda s: s.name):
        tenant = site.tenant or ""
        if scope == "site":
            pairs.append(Pair(tenant, site=site.name))
        elif scope == "site>tenant":
            pairs += [Pair(tenant, site=site.name, target_tenant=t.name)
                      for t in sorted(model.tenants, key=lambda t: t.name) if t.name != tenant]
        else:
            own = site_pools(site)
            pairs += [Pair(tenant, site=site.name, target_tenant=p.tenant, target_pool=p.name)
                      for p in sorted(model.pools, key=lambda p: p.name) if p.name not in own]
    return pairs


def pairs_for(model: Model, scope: Scope) -> list[Pair]:
    """Every attacker/target pair an attack of this scope runs for. Pure."""
    if scope.startswith("pool"):
        return _pool_pairs(model, scope)
    return _site_pairs(model, scope)
