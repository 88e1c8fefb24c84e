"""Resource limits: derivation from the pool's settings, the cgroup files they become
on v1, v2 and a host without cgroups, refusals, the launcher's options."""

from __future__ import annotations

import dataclasses

import pytest

from phphost.errors import PlanError
from phphost.facts.cgroups import detect, parse_cgroup_mounts
from phphost.render.cgroups import CgroupHost, normalise, pool_cgroup, to_write
from phphost.spec.limits import MIB, describe, limit_problems, php_bytes, pool_limits
from phphost.spec.model import JailSpec, Pool, PoolSettings

MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio
36 30 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
37 30 0:33 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
"""
V1 = CgroupHost(v1={"cpu": "/c/cpu", "cpuacct": "/c/cpuacct", "memory": "/c/memory",
                    "pids": "/c/pids", "blkio": "/c/blkio"})
V2 = CgroupHost(v2="/sys/fs/cgroup", v2_controllers=frozenset({"memory", "pids", "cpu", "io"}))


def pool(jailed: bool = True, **settings: object) -> Pool:
    s = dataclasses.replace(PoolSettings(), **settings)  # type: ignore[arg-type]
    return Pool("blog", "blog", "php-blog", "/run/phphost/blog.sock", s,
                jail=JailSpec(enabled=jailed))


def test_derived_defaults() -> None:
    lim = pool_limits(pool(max_children=3, php_admin_values=(("memory_limit", "128M"),)))
    # 3 * (128M + 32M) + 64M opcache + 64M master + 64M tmpfs
    assert lim.memory_max == 672 * MIB and lim.memory_high == 672 * MIB * 9 // 10 // 4096 * 4096
    assert (lim.pids_max, lim.nproc, lim.cpu_weight, lim.io_weight) == (40, 40, 100, 100)
    assert lim.cpu_max is None and lim.explicit == frozenset()
    assert pool_limits(pool(jailed=False, max_children=3)).memory_max == 608 * MIB
    assert pool_limits(pool(php_values=(("memory_limit", "-1"),))).memory_max is None
    assert describe(lim).startswith("memory 672M (high 604M), pids 40 (RLIMIT_NPROC 40)")


def test_explicit_limits_and_problems() -> None:
    lim = pool_limits(pool(memory_max=256 * MIB, pids_max=20, cpu_max=0.5))
    assert (lim.memory_max, lim.pids_max) == (256 * MIB, 20)
    assert lim.memory_high == 256 * MIB * 9 // 10 // 4096 * 4096
    assert lim.explicit == {"memory_max", "pids_max", "cpu_max"}
    assert [k for k, _, _ in limit_problems(pool(memory_max=64 * MIB,
                                                 memory_high=128 * MIB))] == ["memory_high"]
    assert [k for k, _, _ in limit_problems(pool(max_children=10, pids_max=11))] == ["pids_max"]
    assert php_bytes("1g") == 1 << 30 and php_bytes("-1") is None and php_bytes("x") is None


def test_v1_files() -> None:
    cg = pool_cgroup("blog", pool_limits(pool(max_children=3, cpu_max=1.5)), V1)
    assert cg is not None and cg.version == "v1"
    assert cg.dirs == ("/c/memory/phphost/blog", "/c/pids/phphost/blog", "/c/cpu/phphost/blog",
                       "/c/cpuacct/phphost/blog")
    writes = dict(cg.writes)
    assert writes["/c/memory/phphost/blog/memory.limit_in_bytes"] == str(672 * MIB)
    assert writes["/c/pids/phphost/blog/pids.max"] == "40"
    assert writes["/c/cpu/phphost/blog/cpu.shares"] == "1024"
    assert writes["/c/cpu/phphost/blog/cpu.cfs_quota_us"] == "150000"
    assert cg.notes == ("io_weight: cgroup v1 has no usable io hierarchy (blkio.weight needs "
                        "the CFQ or BFQ I/O scheduler); not enforced",)


def test_v2_files() -> None:
    cg = pool_cgroup("blog", pool_limits(pool(max_children=3, io_weight=200)),
                     dataclasses.replace(V2, v2_io_weight=True))
    assert cg is not None and cg.dirs == ("/sys/fs/cgroup/phphost/blog",)
    writes = dict(cg.writes)
    assert writes["/sys/fs/cgroup/phphost/blog/memory.max"] == str(672 * MIB)
    assert writes["/sys/fs/cgroup/phphost/blog/memory.oom.group"] == "1"
    assert writes["/sys/fs/cgroup/phphost/blog/cpu.max"] == "max 100000"
    assert writes["/sys/fs/cgroup/phphost/blog/io.weight"] == "default 200"
    assert ("/sys/fs/cgroup/phphost/cgroup.subtree_control", "+pids") in cg.enable


def test_unenforceable_limits_refused_derived_ones_noted() -> None:
    with pytest.raises(PlanError, match=r"pools\.blog\.io_weight: this host cannot enforce"):
        pool_cgroup("blog", pool_limits(pool(io_weight=300)), V1)
    with pytest.raises(PlanError, match=r"pools\.blog\.memory_max: .*no cgroup hierarchy"):
        pool_cgroup("blog", pool_limits(pool(memory_max=256 * MIB)), CgroupHost())
    assert pool_cgroup("blog", pool_limits(pool()), CgroupHost()) is None
    with pytest.raises(PlanError, match=r"pools\.blog\.io_weight: .*cgroup2 root"):
        pool_cgroup("blog", pool_limits(pool(io_weight=300)), V2)


def test_normalise_and_write_forms() -> None:
    assert normalise("/m/memory.limit_in_bytes", "9223372036854771712\n") == "max"
    assert normalise("/x/io.weight", "default 100\n8:0 50\n") == "default 100"
    assert normalise("/x/pids.max", None) is None
    assert to_write("/m/memory.soft_limit_in_bytes", "max") == "-1"
    assert to_write("/x/memory.max", "max") == "max"


def test_detect_this_kind_of_host() -> None:
    v2, v1 = parse_cgroup_mounts(MOUNTINFO)
    assert v2 == ["/sys/fs/cgroup/unified"]
    assert v1["memory"] == "/sys/fs/cgroup/memory" and "systemd" not in v1
    host = detect(MOUNTINFO, read=lambda p: "hugetlb\n", exists=lambda p: False)
    assert host.version == "v1" and not host.v1_blkio_weight
    v2host = detect("9 1 0:5 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                    read=lambda p: "cpu io memory pids\n", exists=lambda p: True)
    assert v2host.version == "v2" and v2host.enforces("io")
    assert detect("", read=lambda p: None).version == "none"


