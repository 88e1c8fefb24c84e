"""The indexes that keep planning near-linear in the number of pools (issue 12):
PathIndex answers as the all-pairs `is_inside` did, the shared closure cache gives
the same manifests as building each alone, and is not reused where a pool's own
same-path mount would change the walk."""

from __future__ import annotations

import random
from dataclasses import replace

from phphost.jail.features import ClosureCache, build_manifest
from phphost.jail.invariants import Neighbours, neighbourhood
from phphost.spec.model import JailSpec, Model, Mount
from phphost.spec.validate import PathIndex, is_inside
from tests.unit.test_jail_fakes import OTHER, TENANT, debian_host, pool

PARTS = ("a", "b", "ab", "a-b", "c")


def _paths(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        depth = rng.randint(0, 4)
        out.append("/" + "/".join(rng.choice(PARTS) for _ in range(depth)))
    return out


def test_path_index_matches_all_pairs() -> None:
    rng = random.Random(12)  # noqa: S311 (test data, not secrets)
    indexed = _paths(rng, 60)
    index = PathIndex((p, i) for i, p in enumerate(indexed))
    for probe in _paths(rng, 300):
        want = sorted((p, i) for i, p in enumerate(indexed)
                      if is_inside(probe, p) or is_inside(p, probe))
        assert sorted(index.overlapping(probe)) == want, probe
        assert sorted(index.containing(probe)) == sorted(
            (p, i) for i, p in enumerate(indexed) if is_inside(probe, p))


def test_neighbours_leave_out_the_own_tenant_and_pool() -> None:
    everyone = Neighbours({"ncs": "/srv/www/ncs", "other": "/srv/www/other"},
                          {"blog": "/j/blog", "shop": "/j/shop"})
    mine = everyone.excluding("ncs", "blog")
    assert mine.homes_overlapping("/srv/www") == [("other", "/srv/www/other")]
    assert mine.homes_overlapping("/srv/www/ncs/x") == []
    assert mine.roots_overlapping("/j") == [("shop", "/j/shop")]
    assert mine == Neighbours({"other": "/srv/www/other"}, {"shop": "/j/shop"})


def test_neighbourhood_is_built_once_for_the_model() -> None:
    shop = replace(pool(), name="shop", tenant="other", user="php-shop",
                   socket="/run/phphost/shop.sock")
    model = Model("spec.toml", tenants=(TENANT, OTHER), pools=(pool(), shop))
    everyone = neighbourhood(model, lambda p: f"/j/{p}")
    assert everyone.excluding("other", "shop") == Neighbours({"ncs": "/srv/www/ncs"},
                                                             {"blog": "/j/blog"})


def test_closure_cache_gives_the_same_manifests() -> None:
    host = debian_host()
    cache = ClosureCache()
    features = ("dns", "tls", "iconv", "locale", "shell")
    alone = build_manifest(pool(features), TENANT, host)
    first = build_manifest(pool(features), TENANT, host, cache=cache)
    again = build_manifest(pool(features), TENANT, host, cache=cache)
    assert cache.found
    assert alone == first == again


def test_closure_cache_not_reused_over_a_same_path_mount() -> None:
    """A pool whose same-path mount covers part of a cached tree sees that part
    through its mount: the tree is walked again for it, not copied from the cache."""
    host = debian_host()
    cache = ClosureCache()
    build_manifest(pool(("tls",)), TENANT, host, cache=cache)
    ssl = Mount("/etc/ssl", "/etc/ssl", False)
    mounted = replace(pool(("tls",)), jail=replace(pool(("tls",)).jail, mounts=(ssl,)))
    assert isinstance(mounted.jail, JailSpec)
    cached = build_manifest(mounted, TENANT, host, cache=cache)
    alone = build_manifest(mounted, TENANT, host)
    assert cached == alone
    assert cached.by_path()["/etc/ssl"].kind == "mount"
    assert "/etc/ssl/certs/ca-certificates.crt" not in cached.by_path()
    assert "/etc/ssl/certs/ca-certificates.crt" in build_manifest(
        pool(("tls",)), TENANT, host, cache=cache).by_path()
