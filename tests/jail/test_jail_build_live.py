"""Real jail builds under a scratch root: store sharing, in-place rebuilds, chroot,
and removal that can never reach into a mount."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from phphost.errors import HostError
from phphost.facts.hostview import RealHostView
from phphost.facts.jailscan import gather_facts, scan_jail
from phphost.host.jailbuild import build_jail, prune_hidden, remove_jail
from phphost.host.jailstore import Store
from phphost.jail.diff import diff_jail
from phphost.jail.features import build_manifest
from phphost.jail.invariants import Neighbours, check_invariants, find_violations
from phphost.jail.manifest import Manifest
from phphost.spec.model import JailSpec, Mount, Pool, PoolSettings, Tenant
from tests.jail.helpers import Account, mountinfo, process, wait_for

FEATURES = ("base", "dns", "tls", "iconv", "shell")
HOST = RealHostView()      # cached facts (ldd, digests) shared by every test here
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make(scratch: str, account: Account, name: str = "pj",
         features: tuple[str, ...] = FEATURES, mounts: tuple[Mount, ...] = ()
         ) -> tuple[Manifest, str, str]:
    home = os.path.join(scratch, "home", "t")
    os.makedirs(home, exist_ok=True)
    tenant = Tenant("t", "root", account.group, home)
    pool = Pool(name, "t", account.user, os.path.join(scratch, f"{name}.sock"), PoolSettings(),
                jail=JailSpec(True, features, (), mounts))
    m = build_manifest(pool, tenant, HOST)
    return m, os.path.join(scratch, "jails", name), os.path.join(scratch, "store")


def test_build_chroot_and_rebuild_is_a_no_op(scratch: str, account: Account) -> None:
    m, root, store = make(scratch, account)
    changes = build_jail(m, root, store)
    assert len(changes) == len(m.entries) - 1           # "/" itself is made first
    check_invariants(m, gather_facts(root), Neighbours())
    # tzdata is the launcher's read-only bind: on disk only its empty target
    assert os.listdir(f"{root}/usr/share/zoneinfo") == []
    # /tmp is only the target of the launcher's tmpfs: root's, empty, not the pool's
    assert (os.stat(f"{root}/tmp").st_uid, os.stat(f"{root}/tmp").st_mode & 0o777) == (0, 0o755)
    out = subprocess.run(["chroot", f"--userspec={account.user}:{account.group}", root,
                          "/bin/sh", "-c", "echo ok; echo x > /tmp/mine || echo tmp-ro; "
                          "echo x > /etc/hosts || echo etc-ro"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.stdout.split() == ["ok", "tmp-ro", "etc-ro"], out.stderr
    assert build_jail(m, root, store) == []


def test_store_is_shared_and_read_only(scratch: str, account: Account) -> None:
    m1, root1, store = make(scratch, account, "pj1")
    m2, root2, _ = make(scratch, account, "pj2")
    build_jail(m1, root1, store)
    build_jail(m2, root2, store)
    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    a, b = os.stat(root1 + libc), os.stat(root2 + libc)
    assert (a.st_ino, a.st_uid, a.st_mode & 0o7777) == (b.st_ino, 0, 0o555)
    assert a.st_nlink == 3                               # store + two jails
    assert Store(store).gc() == []
    remove_jail(root2)
    assert os.stat(root1 + libc).st_nlink == 2
    assert Store(store).gc() == []                       # still used by pj1
    remove_jail(root1)
    assert len(Store(store).gc()) > 100 and Store(store).usage() == (0, 0)


def test_in_place_update_keeps_mount_targets(scratch: str, account: Account) -> None:
    m, root, store = make(scratch, account)
    build_jail(m, root, store)
    home_target = root + os.path.join(scratch, "home", "t")
    before = os.stat(home_target).st_ino
    # a changed file (generated nsswitch) and features dropped
    smaller = make(scratch, account, features=("base", "shell"))[0]
    changes = build_jail(smaller, root, store)
    assert {str(c).split(" (")[0] for c in changes if c.action == "update"} == {
        "update file /etc/nsswitch.conf"}
    assert not os.path.exists(f"{root}/usr/lib/x86_64-linux-gnu/gconv")
    assert os.stat(home_target).st_ino == before
    assert diff_jail(smaller, scan_jail(root, Store(store).index())) == []


def test_tampering_is_found_and_repaired(scratch: str, account: Account) -> None:
    m, root, store = make(scratch, account)
    build_jail(m, root, store)
    os.mknod(f"{root}/dev/sda", 0o600 | 0o060000, os.makedev(8, 0))
    os.chmod(f"{root}/etc", 0o777)  # noqa: S103 - tampering on purpose
    with open(f"{root}/usr/bin/evil", "w", encoding="utf-8") as fh:
        fh.write("x")
    os.chmod(f"{root}/usr/bin/evil", 0o4755)  # noqa: S103 - tampering on purpose
    found = [str(v) for v in find_violations(m, gather_facts(root), Neighbours())]
    assert len(found) == 3, found
    changes = build_jail(m, root, store)
    assert {c.path for c in changes} == {"/dev/sda", "/etc", "/usr/bin/evil"}
    assert find_violations(m, gather_facts(root), Neighbours()) == []


def test_symlink_planted_in_pool_dir_is_not_followed(scratch: str, account: Account) -> None:
    """A pool replaces its /tmp content with links to host paths; dropping the
    directory must delete the links, never what they point at."""
    m, root, store = make(scratch, account, features=("base", "sessions"))
    build_jail(m, root, store)
    victim = os.path.join(scratch, "victim")
    os.makedirs(victim)
    with open(f"{victim}/canary", "w", encoding="utf-8") as fh:
        fh.write("alive")
    os.symlink(victim, f"{root}/var/lib/php/sessions/escape")
    os.symlink(f"{victim}/canary", f"{root}/var/lib/php/sessions/file")
    build_jail(make(scratch, account, features=("base",))[0], root, store)
    assert not os.path.lexists(f"{root}/var/lib/php/sessions")
    with open(f"{victim}/canary", encoding="utf-8") as fh:
        assert fh.read() == "alive"


def canary_dir(scratch: str) -> str:
    src = os.path.join(scratch, "data")
    os.makedirs(src, exist_ok=True)
    with open(f"{src}/canary", "w", encoding="utf-8") as fh:
        fh.write("keep me")
    return src


def test_rebuild_and_remove_with_a_mount_in_another_namespace(
        scratch: str, account: Account) -> None:
    """Seed 002's failsafe, made structural: the bind lives in another namespace only,
    so rebuilding and removing the jail on the host never reaches its source."""
    src = canary_dir(scratch)
    m, root, store = make(scratch, account, mounts=(Mount(src, "/srv/data", writable=True),))
    build_jail(m, root, store)
    sleeper = ["unshare", "--mount", "--propagation", "private", "--", "sleep", "120"]
    with process(sleeper) as proc:
        target = f"{root}/srv/data"
        # nsenter before unshare(2) ran would enter (and mount in) the host's namespace:
        # wait until the sleeper has a mount namespace of its own
        mine = os.readlink("/proc/self/ns/mnt")
        wait_for(lambda: os.readlink(f"/proc/{proc.pid}/ns/mnt") != mine,
                 what="the sleeper's own mount namespace")
        subprocess.run(["nsenter", f"--target={proc.pid}", "--mount", "--", "mount",
                        "--bind", src, target], check=True, timeout=30)
        assert target in mountinfo(proc.pid) and target not in mountinfo()
        build_jail(make(scratch, account)[0], root, store)    # the mount is dropped
        assert not os.path.exists(target)
        remove_jail(root)
        assert not os.path.exists(root)
        with open(f"{src}/canary", encoding="utf-8") as fh:
            assert fh.read() == "keep me"
        proc.terminate()


def argv0(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().split(b"\0")[0]


def test_launcher_namespace_holds_the_mount(scratch: str, account: Account,
                                           launcher_binary: str) -> None:
    src = canary_dir(scratch)
    m, root, store = make(scratch, account, mounts=(Mount(src, "/srv/data"),))
    build_jail(m, root, store)
    argv = [launcher_binary, "--pool", "pj", "--jail", root,
            "--mount", f"{src}:/srv/data:ro", "--", "/bin/sleep", "120"]
    with process(argv, cwd=REPO) as proc:
        target = f"{root}/srv/data"
        # exec'd in the same pid; the mount is made before the exec, so wait for the exec
        # (cmdline reads empty while execve swaps the image)
        wait_for(lambda: argv0(proc.pid) == b"/bin/sleep", what="the launcher's exec")
        line = next(x for x in mountinfo(proc.pid).splitlines() if f" {target} " in x)
        assert " ro,nosuid,nodev" in line
        assert target not in mountinfo()
        remove_jail(root)
        with open(f"{src}/canary", encoding="utf-8") as fh:
            assert fh.read() == "keep me"


def test_build_and_remove_refuse_while_mounted_here(scratch: str, account: Account,
                                                    launcher_binary: str) -> None:
    """The launcher binds SRC in its own mount namespace and runs the helper there."""
    src = canary_dir(scratch)
    m, root, store = make(scratch, account, mounts=(Mount(src, "/srv/data"),))
    build_jail(m, root, store)
    out = subprocess.run([launcher_binary, "--pool", "pj", "--jail", root, "--mount",
                          f"{src}:/srv/data:rw", "--", sys.executable, "-m",
                          "tests.jail.ns_helper", root, store], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("build: refused: cannot build the jail"), out
    assert lines[1].startswith("remove: refused: cannot remove the jail"), out
    assert "mounted there in this mount namespace" in lines[1]
    with open(f"{src}/canary", encoding="utf-8") as fh:
        assert fh.read() == "keep me"


def test_missing_mount_source_fails_loudly(scratch: str, account: Account,
                                           launcher_binary: str) -> None:
    m, root, store = make(scratch, account)
    build_jail(m, root, store)
    out = subprocess.run([launcher_binary, "--pool", "pj",
                          "--jail", root, "--mount", f"{scratch}/nope:/srv/x:ro", "--",
                          "/bin/true"], cwd=REPO, capture_output=True, text=True, timeout=30,
                         check=False)
    assert out.returncode == 1
    assert out.stderr.startswith(f"phphost-launch[pj]: mount {scratch}/nope -> /srv/x: source "
                                 f"{scratch}/nope does not exist")
    assert "the FPM master was not started" in out.stderr


def test_symlinked_mount_source_is_refused(scratch: str, account: Account,
                                           launcher_binary: str) -> None:
    """A tenant turning its writable dir into a link to /etc must not get /etc bound."""
    m, root, store = make(scratch, account)
    build_jail(m, root, store)
    os.symlink("/etc", f"{scratch}/home/t/data")
    out = subprocess.run([launcher_binary, "--pool", "pj",
                          "--jail", root, "--mount", f"{scratch}/home/t/data:/srv/x:rw", "--",
                          "/bin/true"], cwd=REPO, capture_output=True, text=True, timeout=30,
                         check=False)
    assert out.returncode == 1 and "'data' is a symlink" in out.stderr, out.stderr


def test_store_on_another_filesystem_is_refused(scratch: str, account: Account) -> None:
    m, root, _ = make(scratch, account)
    with pytest.raises(HostError, match="different filesystems"):
        build_jail(m, root, "/dev/shm/phphost-store-test")
    os.rmdir("/dev/shm/phphost-store-test")


def test_pending_manifest_is_refused(scratch: str, account: Account) -> None:
    m, root, store = make(scratch, account)
    pending = dataclasses.replace(m, entries=tuple(
        dataclasses.replace(e, digest="", content=None) if e.path == "/etc/passwd" else e
        for e in m.entries))
    with pytest.raises(HostError, match="create users first"):
        build_jail(pending, root, store)


def test_stray_file_under_a_mount_target_is_not_deleted(scratch: str, account: Account) -> None:
    src = canary_dir(scratch)
    m, root, store = make(scratch, account, mounts=(Mount(src, "/srv/data"),))
    build_jail(m, root, store)
    with open(f"{root}/srv/data/stray", "w", encoding="utf-8") as fh:
        fh.write("who put this here")
    with pytest.raises(HostError, match=r"lies under the mount target /srv/data"):
        build_jail(m, root, store)
    assert os.path.exists(f"{root}/srv/data/stray")


def test_a_jail_built_with_tzdata_linked_in_is_emptied_for_the_bind(
        scratch: str, account: Account) -> None:
    """Jails built before tzdata was bound hold the tree under what is now the base
    feature's bind target, which their running masters still read: a build leaves it,
    prune_hidden (apply, after the masters have the bind) removes it."""
    m, root, store = make(scratch, account)
    build_jail(m, root, store)
    os.makedirs(f"{root}/usr/share/zoneinfo/Europe")
    with open(f"{root}/usr/share/zoneinfo/Europe/Paris", "wb") as fh:
        fh.write(b"TZif old copy")
    os.symlink("Europe/Paris", f"{root}/usr/share/zoneinfo/CET")
    changes = build_jail(m, root, store)
    assert {c.path for c in changes if c.action == "remove"} == {"/usr/share/zoneinfo/Europe",
                                                                 "/usr/share/zoneinfo/CET"}
    assert sorted(os.listdir(f"{root}/usr/share/zoneinfo")) == ["CET", "Europe"]   # still read
    assert prune_hidden(m, root) == ["/usr/share/zoneinfo/CET", "/usr/share/zoneinfo/Europe"]
    assert os.listdir(f"{root}/usr/share/zoneinfo") == []
    assert build_jail(m, root, store) == [] and prune_hidden(m, root) == []
