"""facts.jailcache on real jails under a scratch root: a jail a plan found clean is
trusted next time without a walk, and every change the full walk would see (root
adding, removing or chmod'ing something in the jail, a host file its manifest read,
the jail's parents, passwd, the neighbourhood) sends the plan down the full path
again; a forged, foreign or broken cache file is ignored; records of removed pools go."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Iterator

import pytest

from phphost import layout
from phphost.errors import PlanError
from phphost.facts import jailcache as jc
from phphost.facts import jails as jails_mod
from phphost.facts.jails import JailState, PendingJails, gather_jails
from phphost.host.jailbuild import build_jail
from phphost.host.jailstore import Store
from phphost.spec.model import JailSpec, Model, Pool, PoolSettings, Tenant
from tests.jail.helpers import Account


@dataclasses.dataclass
class Host:
    scratch: str
    model: Model
    cache: str
    tool: str

    def plan(self, model: Model | None = None) -> dict[str, JailState]:
        return gather_jails(model or self.model, cache_file=self.cache)

    def build(self) -> None:
        for name, state in self.plan().items():
            assert state.manifest is not None
            build_jail(state.manifest, layout.jail_root(name), layout.STORE_DIR)

    def root(self, pool: str = "pc1") -> str:
        return layout.jail_root(pool)


def _tool(scratch: str) -> str:
    """A root-owned program in a root-only directory: a host file the manifest reads."""
    bindir = os.path.join(scratch, "bin")
    os.makedirs(bindir, mode=0o755, exist_ok=True)
    path = os.path.join(bindir, "tool")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("#!/bin/sh\necho one\n")
    os.chmod(path, 0o755)  # noqa: S103
    return path


def _model(scratch: str, account: Account, tool: str, pools: int = 2,
           tenants: int = 1) -> Model:
    ts, ps = [], []
    for t in range(tenants):
        home = os.path.join(scratch, "home", f"t{t}")
        os.makedirs(home, exist_ok=True)
        ts.append(Tenant(f"t{t}", "root", account.group, home))
    for i in range(1, pools + 1):
        ps.append(Pool(f"pc{i}", "t0", account.user, os.path.join(scratch, f"pc{i}.sock"),
                       PoolSettings(), jail=JailSpec(True, ("base", "shell"), (tool,))))
    return Model(source="test.toml", tenants=tuple(ts), pools=tuple(ps))


@pytest.fixture
def host(scratch: str, account: Account, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    monkeypatch.setattr(layout, "JAILS_DIR", os.path.join(scratch, "jails"))
    monkeypatch.setattr(layout, "STORE_DIR", os.path.join(scratch, "store"))
    # jails built a moment ago: trust them at once (one test checks the default)
    monkeypatch.setattr(jc, "RACY_NS", 0)
    os.makedirs(layout.JAILS_DIR, mode=0o755)
    tool = _tool(scratch)
    h = Host(scratch, _model(scratch, account, tool), os.path.join(scratch, "cache.json"), tool)
    h.build()
    yield h


def trusted(states: dict[str, JailState]) -> set[str]:
    return {p for p, s in states.items() if s.manifest is None}


def test_a_clean_jail_is_trusted_next_time(host: Host) -> None:
    first = host.plan()
    assert trusted(first) == set() and all(not s.changes for s in first.values())
    st = os.stat(host.cache)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    second = host.plan()
    assert trusted(second) == {"pc1", "pc2"}
    assert all(not s.changes for s in second.values())
    assert {p: s.mounts for p, s in second.items()} == {p: s.mounts for p, s in first.items()}
    assert trusted(host.plan()) == {"pc1", "pc2"}


def tamper_with(root: str, tamper: str) -> None:
    """What root (an admin, a package) might do inside a built jail."""
    if tamper == "add":
        with open(f"{root}/etc/extra", "w", encoding="utf-8") as fh:
            fh.write("x\n")
    elif tamper == "remove":
        os.unlink(f"{root}/etc/nsswitch.conf")
    elif tamper == "chmod_file":        # a store object: every jail linking it drifts
        os.chmod(f"{root}/etc/passwd", 0o4755)  # noqa: S103
    elif tamper == "chmod_dir":
        os.chmod(f"{root}/etc", 0o777)  # noqa: S103
    elif tamper == "chmod_dev":
        os.chmod(f"{root}/dev/null", 0o600)
    elif tamper == "replace_dir":
        os.rename(f"{root}/etc", f"{root}/etc-old")
        os.mkdir(f"{root}/etc", 0o755)
    else:
        os.rename(f"{root}/etc/nsswitch.conf", f"{root}/etc/nsswitch.conf2")


@pytest.mark.parametrize("tamper", ["add", "remove", "chmod_file", "chmod_dir", "chmod_dev",
                                    "replace_dir", "rename"])
def test_root_tampering_inside_a_jail_is_seen(host: Host, tamper: str) -> None:
    host.plan()
    root = host.root()
    tamper_with(root, tamper)
    try:
        states = host.plan()
    except PlanError:           # setuid, world-writable: the invariants refuse it
        assert tamper in ("chmod_file", "chmod_dir")
        return
    assert "pc1" not in trusted(states) and states["pc1"].changes


def test_a_changed_host_file_the_manifest_read_rebuilds(host: Host) -> None:
    host.plan()
    with open(host.tool, "a", encoding="utf-8") as fh:
        fh.write("echo two\n")
    states = host.plan()
    assert trusted(states) == set()
    assert any(c.path == host.tool for c in states["pc1"].changes)


def test_unsafe_parents_are_refused_again(host: Host) -> None:
    host.plan()
    os.chmod(layout.JAILS_DIR, 0o777)  # noqa: S103
    try:
        with pytest.raises(PlanError, match="group/world-writable"):
            host.plan()
    finally:
        os.chmod(layout.JAILS_DIR, 0o755)  # noqa: S103


def test_spec_and_passwd_are_part_of_the_key(host: Host, account: Account) -> None:
    host.plan()
    pools = (dataclasses.replace(host.model.pools[0], jail=JailSpec(True, ("base",), ())),
             host.model.pools[1])
    changed = dataclasses.replace(host.model, pools=pools)
    states = host.plan(changed)
    assert trusted(states) == {"pc2"} and states["pc1"].changes
    rec = jc.load(host.cache)
    assert rec is not None
    rec.jails["pc2"].calls[0][2] = "forged:x:0:0::/:/bin/sh"
    jc.save(rec, host.cache)
    assert trusted(host.plan(changed)) == set()


def test_neighbours_are_checked_against_the_recorded_sources(host: Host,
                                                             account: Account) -> None:
    host.plan()
    bigger = _model(host.scratch, account, host.tool, pools=2, tenants=2)
    assert trusted(host.plan(bigger)) == {"pc1", "pc2"}     # a home apart: still trusted
    # a new tenant whose home holds a program both jails copy: refused as without cache
    apart = bigger.tenants[1]
    near = dataclasses.replace(bigger, tenants=(
        bigger.tenants[0], dataclasses.replace(apart, home=os.path.dirname(host.tool))))
    with pytest.raises(PlanError, match="overlaps the home"):
        host.plan(near)


def test_removed_pools_lose_their_record(host: Host, account: Account) -> None:
    host.plan()
    one = _model(host.scratch, account, host.tool, pools=1)
    assert trusted(host.plan(one)) == {"pc1"}
    with open(host.cache, encoding="utf-8") as fh:
        assert set(json.load(fh)["jails"]) == {"pc1"}


@pytest.mark.parametrize("harm", ["garbage", "foreign", "symlink", "writable", "huge"])
def test_a_bad_cache_file_is_ignored(host: Host, account: Account, harm: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    host.plan()
    if harm == "garbage":
        with open(host.cache, "w", encoding="utf-8") as fh:
            fh.write('{"format": 1, "jails": [')
    elif harm == "foreign":
        os.chown(host.cache, account.uid, account.gid)
    elif harm == "symlink":
        real = host.cache + ".real"
        os.rename(host.cache, real)
        os.symlink(real, host.cache)
    elif harm == "writable":
        os.chmod(host.cache, 0o666)  # noqa: S103
    else:
        monkeypatch.setattr(jc, "MAX_BYTES", 100)
    assert trusted(host.plan()) == set()
    assert not os.path.islink(host.cache)     # written anew, never through the link
    assert trusted(host.plan()) == ({"pc1", "pc2"} if harm != "huge" else set())


def test_a_jail_changed_a_moment_ago_is_not_recorded(host: Host,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jc, "RACY_NS", 3_600 * 10**9)
    host.plan()
    assert trusted(host.plan()) == set()


def _orphan() -> None:
    """A store object no jail links to, as the jail of a pool an apply removed leaves."""
    content = b"left behind by a removed jail\n"
    Store(layout.STORE_DIR).put(hashlib.sha256(content).hexdigest(), 0o644, content=content)


def test_objects_the_gc_removed_after_the_scan_are_left_out(host: Host) -> None:
    """apply's scan of the jails it built runs before the store's garbage collection
    (cli/confirm.py), which removes what no jail links to: the objects it removed are
    left out of the recorded store, so the next plan still trusts the jails. Recorded
    as scanned, the store no longer holds and nothing is trusted (the case this is
    for); a scan whose apply did not get that far (None) writes no cache."""
    def collect() -> list[str]:
        return Store(layout.STORE_DIR).gc()

    _orphan()
    gather_jails(host.model, cache_file=host.cache, settle=lambda: [collect()][0] and [])
    assert trusted(host.plan()) == set()        # an object recorded is gone
    _orphan()
    gather_jails(host.model, cache_file=host.cache, settle=collect)
    assert trusted(host.plan()) == {"pc1", "pc2"}
    os.unlink(host.cache)
    gather_jails(host.model, cache_file=host.cache, settle=lambda: None)
    assert not os.path.exists(host.cache)


def test_an_apply_that_only_removed_jails_keeps_the_others_trusted(host: Host) -> None:
    """An apply that removes a pool and builds no jail writes no cache after its
    garbage collection, which removes the objects only that pool's jail linked: the
    cache forgets them (jailcache.forget_objects), and the other jails stay trusted."""
    _orphan()
    host.plan()                                 # the orphan is in the recorded store
    jc.forget_objects(Store(layout.STORE_DIR).gc(), host.cache)
    assert trusted(host.plan()) == {"pc1", "pc2"}
    _orphan()
    host.plan()
    Store(layout.STORE_DIR).gc()                # and not forgotten: nothing is trusted
    assert trusted(host.plan()) == set()


def test_a_gc_before_the_scan_keeps_the_records_it_did_not_look_at(host: Host) -> None:
    """apply's scan of the jails it built may read the store after the garbage
    collection already ran (a small apply): the cache the plan wrote before it is
    judged again without what the collection removed, and the records of the jails
    the scan did not look at are kept."""
    _orphan()
    host.plan()
    removed = Store(layout.STORE_DIR).gc()
    assert removed
    gather_jails(host.model, {"pc1"}, cache_file=host.cache, settle=lambda: removed)
    assert trusted(host.plan()) == {"pc1", "pc2"}


def test_a_name_that_means_another_object_now_is_not_forgotten(host: Host) -> None:
    """The GC's removals are matched by device, inode and name: a recorded object
    whose name root has since given to another file (rm, then a new put) stays in the
    record, and the record no longer holds."""
    _orphan()
    host.plan()
    name = next(n for n in os.listdir(layout.STORE_DIR) if n.startswith(
        hashlib.sha256(b"left behind by a removed jail\n").hexdigest()[:16]))
    old = os.path.join(layout.STORE_DIR, name)
    keep = os.path.join(host.scratch, "kept-inode")     # its inode stays taken
    os.link(old, keep)
    os.unlink(old)
    _orphan()                                   # the same name, another inode
    removed = Store(layout.STORE_DIR).gc()
    assert [n for _dev, _ino, n in removed] == [name]
    assert removed[0][1] != os.stat(keep).st_ino
    jc.forget_objects(removed, host.cache)
    os.unlink(keep)
    assert trusted(host.plan()) == set()


def pending(host: Host, monkeypatch: pytest.MonkeyPatch) -> PendingJails:
    """The plan's way: the trusted jails checked in a forked child (at any count)."""
    monkeypatch.setattr(jails_mod, "FORK_AT", 1)
    return PendingJails(host.model, cache_file=host.cache, also=os.getpid)


def test_the_plans_child_checks_the_trusted_jails(host: Host,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    host.plan()
    job = pending(host, monkeypatch)
    assert job.pid is not None and trusted(job.states) == {"pc1", "pc2"}
    child = job.settle()
    assert job.held is True and trusted(job.states) == {"pc1", "pc2"}
    assert isinstance(child, int) and child != os.getpid()     # `also` ran in the child
    assert trusted(host.plan()) == {"pc1", "pc2"}      # the cache was written again


@pytest.mark.parametrize("tamper", ["add", "chmod_dev", "rename"])
def test_a_jail_the_child_finds_changed_is_scanned(host: Host, tamper: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    host.plan()
    root = host.root()
    tamper_with(root, tamper)
    job = pending(host, monkeypatch)
    assert trusted(job.states) == {"pc1", "pc2"}       # taken as recorded, until settled
    job.settle()
    assert job.held is False
    assert trusted(job.states) == {"pc2"} and job.states["pc1"].changes


def test_no_child_while_another_thread_runs(host: Host,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock another thread holds at a fork stays held in the child: the check runs
    here instead, with the same answer."""
    host.plan()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        job = pending(host, monkeypatch)
        assert job.pid is None
        assert job.settle() == os.getpid() and job.held is True
    finally:
        stop.set()
        other.join()


def test_a_failed_child_leaves_the_work_to_the_plan(host: Host,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    host.plan()
    monkeypatch.setattr(jails_mod, "FORK_AT", 1)

    def boom() -> object:
        if os.getpid() != parent:
            raise RuntimeError("the child's bug")
        return "read here"

    parent = os.getpid()
    job = PendingJails(host.model, cache_file=host.cache, also=boom)
    assert job.pid is not None
    assert job.settle() == "read here" and job.held is True
