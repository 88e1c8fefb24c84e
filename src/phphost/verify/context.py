"""What an attack's run(ctx) gets: the run-wide tools and one attacker/target pair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phphost.spec.model import Model, Pool, Site, Tenant
from phphost.verify.errors import VerifyError
from phphost.verify.fixtures import Fixtures
from phphost.verify.probes import Probes
from phphost.verify.scratch import Scratch
from phphost.verify.web import Web


@dataclass(frozen=True)
class Pair:
    """Who attacks (a pool or a site of `tenant`) and whom (a tenant, a pool or nobody)."""

    tenant: str
    pool: str | None = None
    site: str | None = None
    target_tenant: str | None = None
    target_pool: str | None = None

    @property
    def attacker(self) -> str:
        return f"pool:{self.pool}" if self.pool is not None else f"site:{self.site}"

    @property
    def target(self) -> str | None:
        if self.target_pool is not None:
            return f"pool:{self.target_pool}"
        return f"tenant:{self.target_tenant}" if self.target_tenant is not None else None


@dataclass
class Run:
    model: Model
    run_id: str
    scratch: Scratch
    probes: Probes
    web: Web
    fixtures: Fixtures
    memo: dict[tuple[str, ...], Any] = field(default_factory=dict)  # shared probe answers

    @classmethod
    def create(cls, model: Model, run_id: str) -> Run:
        scratch = Scratch(run_id)
        probes = Probes(model, run_id)
        return cls(model, run_id, scratch, probes, Web(model),
                   Fixtures(model, scratch, probes))

    def cleanup(self) -> list[str]:
        return self.scratch.cleanup() + self.probes.cleanup()


@dataclass(frozen=True)
class Ctx:
    run: Run
    pair: Pair

    @property
    def model(self) -> Model:
        return self.run.model

    @property
    def tenant(self) -> Tenant:
        """The attacking tenant."""
        return self.model.tenant(self.pair.tenant)

    @property
    def pool(self) -> Pool:
        """The attacking pool (pool scopes)."""
        if self.pair.pool is None:
            raise VerifyError("attack needs an attacking pool")
        return self.model.pool(self.pair.pool)

    @property
    def site(self) -> Site:
        """The attacking site (site scopes): it has a tenant and a docroot."""
        site = next((s for s in self.model.sites if s.name == self.pair.site), None)
        if site is None or site.docroot is None:
            raise VerifyError("attack needs an attacking site with a docroot")
        return site

    @property
    def docroot(self) -> str:
        return self.site.docroot or ""

    @property
    def target_tenant(self) -> Tenant:
        if self.pair.target_tenant is None:
            raise VerifyError("attack needs a target tenant")
        return self.model.tenant(self.pair.target_tenant)

    @property
    def target_pool(self) -> Pool:
        if self.pair.target_pool is None:
            raise VerifyError("attack needs a target pool")
        return self.model.pool(self.pair.target_pool)

    def probe(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a probe in the attacking pool."""
        return self.run.probes.run(self.pool, name, args)

    def name(self, stem: str) -> str:
        return self.run.scratch.name(stem)
