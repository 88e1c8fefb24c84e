from __future__ import annotations

import pytest

from phphost.errors import PlanError
from phphost.jail.diff import DiskEntry, PathStat
from phphost.jail.features import build_manifest
from phphost.jail.invariants import (
    JailFacts,
    Neighbours,
    check_invariants,
    find_violations,
    neighbours_of,
)
from phphost.spec.model import Model, Mount
from tests.unit.test_jail_fakes import OTHER, TENANT, debian_host, pool

ROOT = "/var/lib/phphost/jails/blog"
GOOD_PARENTS = (PathStat(ROOT, 0, 0o755), PathStat("/var/lib/phphost/jails", 0, 0o755),
                PathStat("/var/lib/phphost", 0, 0o755), PathStat("/var/lib", 0, 0o755),
                PathStat("/var", 0, 0o755), PathStat("/", 0, 0o755))
NEIGHBOURS = Neighbours(tenant_homes={"other": OTHER.home},
                        jail_roots={"shop": "/var/lib/phphost/jails/shop"})


def facts(entries: dict[str, DiskEntry] | None = None,
          parents: tuple[PathStat, ...] = GOOD_PARENTS) -> JailFacts:
    base = {"/": DiskEntry("dir", 0o755, 0, 0), "/tmp": DiskEntry("dir", 0o755, 0, 0),
            "/dev/null": DiskEntry("device", 0o666, 0, 0, rdev=(1, 3)),
            "/etc/passwd": DiskEntry("file", 0o444, 0, 0)}
    return JailFacts(ROOT, parents, {**base, **(entries or {})})


def problems(mounts: tuple[Mount, ...] = (), **kw: object) -> list[str]:
    m = build_manifest(pool(mounts=mounts), TENANT, debian_host())
    return [str(v) for v in find_violations(m, facts(**kw), NEIGHBOURS)]  # type: ignore[arg-type]


def test_clean_jail() -> None:
    assert problems() == []


def test_parent_not_root_or_writable() -> None:
    parents = (GOOD_PARENTS[0], PathStat("/var/lib/phphost/jails", 1000, 0o775),
               *GOOD_PARENTS[2:])
    found = problems(parents=parents)
    assert found == [
        "pool 'blog': /var/lib/phphost/jails: owned by uid 1000. chown root:root "
        "/var/lib/phphost/jails: the jail root and its parents must be root's, or their "
        "owner can swap the jail",
        "pool 'blog': /var/lib/phphost/jails: group/world-writable (mode 0775). chmod go-w "
        "/var/lib/phphost/jails: whoever can write it can rename the jail away and put "
        "another tree in its place",
    ]


def test_sticky_world_writable_parent_is_refused() -> None:
    parents = (PathStat("/var/tmp/j", 0, 0o755), PathStat("/var/tmp", 0, 0o1777))
    assert any("chmod go-w /var/tmp" in p for p in problems(parents=parents))


def test_setuid_and_devices() -> None:
    found = problems(entries={
        "/usr/bin/su": DiskEntry("file", 0o4755, 0, 0),
        "/dev/sda": DiskEntry("device", 0o660, 0, 6, rdev=(8, 0), char=False),
        "/dev/mem": DiskEntry("device", 0o640, 0, 15, rdev=(1, 1)),
        "/dev/zero": DiskEntry("device", 0o666, 0, 0, rdev=(1, 3)),   # wrong minor
    })
    assert any("/usr/bin/su: setuid/setgid (mode 4755)" in p for p in found)
    assert any("/dev/sda: unexpected block device (8, 0)" in p for p in found)
    assert any("/dev/mem: unexpected character device (1, 1)" in p for p in found)
    assert any("/dev/zero: unexpected character device (1, 3)" in p for p in found)


def test_foreign_owner_or_writable_system_file() -> None:
    found = problems(entries={"/etc/hosts": DiskEntry("file", 0o444, 990, 0),
                              "/etc/ssl": DiskEntry("dir", 0o777, 0, 0)})
    assert any("/etc/hosts: owned by uid 990" in p for p in found)
    assert any("/etc/ssl: group/world-writable (mode 0777)" in p for p in found)


@pytest.mark.parametrize(("source", "expect"), [
    ("/srv/www/other/uploads", "overlaps the home /srv/www/other of tenant 'other'"),
    ("/srv/www", "overlaps the home /srv/www/other of tenant 'other'"),
    ("/var/lib/phphost/jails/shop/tmp", "overlaps the jail of pool 'shop'"),
    ("/var/lib/phphost", "overlaps this jail itself"),
])
def test_mount_sources_from_others(source: str, expect: str) -> None:
    found = problems(mounts=(Mount(source, "/opt/x"),))
    assert any(expect in p and "/opt/x" in p for p in found), found


def test_own_home_mount_is_fine_and_shared_paths_are_fine() -> None:
    assert problems(mounts=(Mount("/srv/shared/fonts", "/opt/fonts"),)) == []


def test_check_invariants_raises_with_every_problem() -> None:
    m = build_manifest(pool(), TENANT, debian_host())
    bad = facts(entries={"/usr/bin/su": DiskEntry("file", 0o4755, 0, 0),
                         "/dev/sda": DiskEntry("device", 0o660, 0, 6, rdev=(8, 0), char=False)})
    with pytest.raises(PlanError, match=r"(?s)unsafe \(2 problems\):\n  - pool 'blog': /dev/sda"):
        check_invariants(m, bad, NEIGHBOURS)


def test_neighbours_of_model() -> None:
    shop = pool().__class__("shop", "other", "php-shop", "/run/phphost/shop.sock",
                            pool().settings)
    model = Model("spec.toml", tenants=(TENANT, OTHER), pools=(pool(), shop))
    n = neighbours_of(model, "blog", lambda p: f"/j/{p}")
    assert n == Neighbours({"other": "/srv/www/other"}, {"shop": "/j/shop"})


def test_a_dropped_pool_dir_does_not_block_the_rebuild_that_removes_it() -> None:
    """The 'sessions' feature dropped: the pool's old session dir is still on disk
    (owned by the pool) until the build removes it; other owners still count."""
    old_sessions = {"/var/lib/php/sessions": DiskEntry("dir", 0o700, 990, 1001)}
    assert problems(entries=old_sessions) == []
    foreign = {"/var/lib/php/sessions": DiskEntry("dir", 0o700, 991, 1001)}
    assert any("owned by uid 991" in p for p in problems(entries=foreign))
    stray_file = {"/var/lib/php/x": DiskEntry("file", 0o600, 990, 1001)}
    assert any("owned by uid 990" in p for p in problems(entries=stray_file))


def test_only_the_mailer_may_be_setgid_and_only_to_phphost_mail() -> None:
    """The jail's sendmail is setgid phphost-mail (docs/network.md); nothing else is,
    and never setuid, writable or to another group."""
    from dataclasses import replace

    m = replace(build_manifest(pool(), TENANT, debian_host()), mail_gid=995)

    def found(entry: DiskEntry) -> list[str]:
        return [str(v) for v in find_violations(m, facts({"/usr/sbin/sendmail": entry}),
                                                NEIGHBOURS)]
    assert found(DiskEntry("file", 0o2555, 0, 995)) == []
    for bad in (DiskEntry("file", 0o2555, 0, 0), DiskEntry("file", 0o6555, 0, 995),
                DiskEntry("file", 0o2755, 0, 995), DiskEntry("file", 0o2555, 1000, 995)):
        assert any("setuid/setgid" in p for p in found(bad)), bad
    none = replace(m, mail_gid=None)
    assert find_violations(none, facts({"/x": DiskEntry("file", 0o2555, 0, 995)}), NEIGHBOURS)


def test_store_names_setgid_objects_apart() -> None:
    from phphost.jail.diff import object_name

    assert object_name("ab", 0o555) == "ab.x"
    assert object_name("ab", 0o444) == "ab"
    assert object_name("ab", 0o2555, 995) == "ab.2555.995"


def test_the_pool_owned_tmp_of_an_older_jail_does_not_block_the_tmpfs_rebuild() -> None:
    """/tmp was a pool-owned dir before it became a tmpfs target: it and the pool's
    own files in it go away with the build; anything setuid or foreign still counts."""
    old_tmp = {"/tmp": DiskEntry("dir", 0o700, 990, 1001),
               "/tmp/sess": DiskEntry("file", 0o600, 990, 1001)}
    assert problems(entries=old_tmp) == []
    suid = {**old_tmp, "/tmp/x": DiskEntry("file", 0o4755, 990, 1001)}
    assert any("setuid" in p for p in problems(entries=suid))
    foreign = {**old_tmp, "/tmp/y": DiskEntry("file", 0o644, 991, 1001)}
    assert any("owned by uid 991" in p for p in problems(entries=foreign))
