"""host/apply.py's phases with a faked host: users and groups, jails, validators and
services are recorded in a World, files, directories and ACLs are real (in a
temporary directory below /root). A failure part-way through each phase leaves
everything as it was, and once services were touched they are re-synced."""

from __future__ import annotations

import os
import shutil
import tempfile
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from phphost import files, layout, safefs
from phphost.errors import HostError, ValidationFailed
from phphost.host import apply as apply_mod
from phphost.host import identities, jails, services, staging
from phphost.host import journal as J
from phphost.host.journal import Journal
from phphost.jail.manifest import Manifest
from phphost.plan import actions as A

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (/root, chown, ACLs)")

GRANT = ("user:www-data:r-x", "default:user:www-data:r-x")


class Boom(HostError):
    pass


class World:
    """The faked part of the host, and where to fail."""

    def __init__(self) -> None:
        self.groups: set[str] = set()
        self.users: dict[str, str] = {}
        self.jails: set[str] = set()
        self.calls: list[str] = []
        self.fail_at = ""
        self.fail_with: type[BaseException] = Boom
        self.already: set[str] = set()      # programs supervisord finds already started

    def hit(self, point: str) -> None:
        self.calls.append(point)
        if point == self.fail_at:
            self.fail_at = ""           # once: rollback's own calls go through
            raise self.fail_with(f"injected failure at {point}")

    def run(self, argv: Sequence[str], check: bool = True, **_: Any) -> None:
        cmd, name = argv[0], argv[-1]
        self.hit(cmd)
        if cmd == "groupadd":
            self.groups.add(name)
        elif cmd == "groupdel":
            self.groups.discard(name)
        elif cmd == "useradd" and "--user-group" in argv:
            assert name not in self.groups
            self.groups.add(name)
            self.users[name] = name
        elif cmd == "useradd":
            assert argv[argv.index("--gid") + 1] in self.groups
            self.users[name] = argv[argv.index("--gid") + 1]
        elif cmd == "userdel" and self.users.pop(name, None) == name:
            self.groups.discard(name)       # USERGROUPS_ENAB: the user's group of its name


@pytest.fixture()
def top() -> Iterator[Path]:
    """Below /root, not /tmp: root writes only in directories only root can write."""
    path = Path(tempfile.mkdtemp(prefix="apply-", dir="/root"))
    yield path
    shutil.rmtree(path)


@pytest.fixture()
def world(monkeypatch: pytest.MonkeyPatch, top: Path) -> World:
    w = World()
    monkeypatch.setattr(identities, "run", w.run)
    monkeypatch.setattr(J, "run", w.run)
    monkeypatch.setattr(apply_mod, "Journal", lambda: Journal(str(top / "journal")))
    monkeypatch.setattr(layout, "STATE_FILE", str(top / "state.json"))
    monkeypatch.setattr(layout, "POOL_UID_FLOOR", str(top / "pool-uid-floor"))
    monkeypatch.setattr(layout, "TENANT_ID_MARK", str(top / "tenant-id-mark"))
    monkeypatch.setattr(apply_mod, "check_files", lambda *a: w.hit("tls"))
    monkeypatch.setattr(staging, "validate_apache", lambda actions: w.hit("validate_apache"))
    monkeypatch.setattr(staging, "validate_fpm", lambda actions: w.hit("validate_fpm"))

    real_set_acl = identities.set_acl

    def set_acl(j: Journal, path: str, entries: tuple[str, ...], recursive: bool) -> None:
        real_set_acl(j, path, entries, recursive)
        w.hit("acl")                    # after the grant: rollback must undo it

    monkeypatch.setattr(identities, "set_acl", set_acl)

    def build(manifest: Manifest, user: str, group: str) -> None:
        w.jails.add(manifest.pool)
        w.hit("jail")

    monkeypatch.setattr(jails, "exists", lambda pool: pool in w.jails)
    monkeypatch.setattr(jails, "build", build)
    monkeypatch.setattr(jails, "remove", lambda pool: w.jails.discard(pool))
    monkeypatch.setattr(jails, "collect_garbage", lambda: w.hit("gc"))

    def symlink(link: str, target: str) -> None:
        w.hit("symlink")
        files.atomic_symlink(link, target)

    monkeypatch.setattr(apply_mod, "files", types.SimpleNamespace(
        atomic_write=files.atomic_write, remove=files.remove, atomic_symlink=symlink,
        read_text=files.read_text))

    def service(name: str) -> Any:
        return lambda *a, **k: w.hit(name)

    def start_programs(names: list[str]) -> set[str]:
        w.hit("start_programs")
        return w.already & set(names)

    monkeypatch.setattr(services, "start_programs", start_programs)
    monkeypatch.setattr(services, "restart_program",
                        lambda name: w.hit(f"restart_program {name}"))
    for name in ("ensure_supervisord", "wait_master", "wake_masters",
                 "reload_master", "apache_configtest", "fpm_test", "stop_programs",
                 "ensure_running"):
        monkeypatch.setattr(services, name, service(name))
    monkeypatch.setattr(services, "update_programs",
                        lambda names: w.hit(f"update_programs {' '.join(names)}"))
    monkeypatch.setattr(services, "apache_reload",
                        lambda restart=False, tested=False: w.hit("apache_reload"))
    return w


def plan(top: Path) -> A.Plan:
    etc = top / "etc"
    return A.Plan((
        A.CheckTls("tls", site="blog", cert="/c", key="/k"),
        A.EnsureGroup("new", name="t1"),
        A.EnsureGroup("new", name="t2"),
        A.EnsureUser("new", name="t2", group="t2", home="/srv/t2", system=False),
        A.EnsureUser("new", name="p1", group="t1"),
        A.EnsureDir("new", path=str(top / "made"), owner="root", group="root", mode=0o750),
        A.SetAcl("web", path=str(top / "home"), entries=GRANT, recursive=True),
        A.BuildJail("new", pool="p1", manifest=Manifest("p1", None, None, ()),
                    user="p1", group="t1"),
        A.WriteFile("new", path=str(etc / "new.conf"), content="new\n"),
        A.WriteFile("changed", path=str(etc / "old.conf"), content="after\n"),
        A.Symlink("new", link=str(etc / "link.conf"), target="new.conf"),
        A.StartMaster("new", pool="p1", socket="/run/p1.sock"),
        A.ReloadApache("new site"),
        A.StopMaster("gone", pool="p0"),
        A.UpdatePrograms("programs", update=("phphost-p1",), remove=("phphost-p0",),
                         resync=("phphost-p1",)),
        A.SaveState("state", state={"pools": ["p1"]}),
    ))


def host_as_it_was(top: Path) -> dict[str, object]:
    """What the test's real files look like (the fixture's starting point)."""
    home = top / "home"
    out: dict[str, object] = {}
    for path in (home, home / "index.php"):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            out[str(path)] = safefs.acl_blobs(fd)
        finally:
            os.close(fd)
    out["etc"] = sorted(os.listdir(top / "etc"))
    out["old.conf"] = (top / "etc" / "old.conf").read_text()
    out["made"] = (top / "made").exists()
    out["state"] = (top / "state.json").exists()
    out["journal"] = (top / "journal").exists()
    return out


@pytest.fixture()
def before(top: Path) -> dict[str, object]:
    (top / "etc").mkdir(mode=0o755)
    (top / "etc" / "old.conf").write_text("before\n")
    (top / "home").mkdir(mode=0o750)
    (top / "home" / "index.php").write_text("<?php\n")
    with safefs.opened_dir(str(top / "home")) as fd:
        safefs.grant(fd, ("user:nobody:r-x",))      # an ACL of its own, restored exactly
    return host_as_it_was(top)


def test_the_whole_plan_applies(world: World, top: Path, before: dict[str, object]) -> None:
    done = apply_mod.execute(plan(top), lambda *a: None)
    assert len(done) == 14       # UpdatePrograms and SaveState are no steps
    assert world.groups == {"t1", "t2"} and world.jails == {"p1"}
    assert world.users == {"p1": "t1", "t2": "t2"}
    # t2's group is made just before its user, with a gid above every tenant gid given
    assert world.calls.count("groupadd") == 2
    assert os.readlink(top / "etc" / "link.conf") == "new.conf"
    assert (top / "etc" / "old.conf").read_text() == "after\n"
    assert (top / "made").is_dir() and (top / "state.json").exists()
    assert not (top / "journal").exists()
    assert host_as_it_was(top)[str(top / "home")] != before[str(top / "home")]


# (fail point, phase): each phase of _Runner.stage, services and the commit
FAILURES = [
    ("validate_apache", "staged Apache"),
    ("tls", "TLS files"),
    ("useradd", "identities, after a group was created"),
    ("acl", "identities, after an ACL grant"),
    ("jail", "jails"),
    ("validate_fpm", "php-fpm -t on staged pool configs"),
    ("symlink", "live files, after two writes"),
    ("apache_configtest", "the last configtest"),
    ("fpm_test", "php-fpm -t of unstaged masters"),
    ("start_programs", "services: starting the masters"),
    ("apache_reload", "services: reloading apache2"),
    ("stop_programs", "services: stopping removed masters"),
    ("update_programs phphost-p0", "services: removing programs"),
]
SERVICES = {"start_programs", "apache_reload", "stop_programs", "update_programs phphost-p0"}


@pytest.mark.parametrize(("point", "phase"), FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failure_part_way_through_rolls_everything_back(
        world: World, top: Path, before: dict[str, object], point: str, phase: str) -> None:
    world.fail_at = point
    with pytest.raises(Boom, match=f"injected failure at {point}"):
        apply_mod.execute(plan(top), lambda *a: None)
    assert point in world.calls, phase
    assert host_as_it_was(top) == before, phase
    assert world.groups == set() and world.users == {} and world.jails == set(), phase
    resynced = "update_programs phphost-p1" in world.calls[world.calls.index(point) + 1:]
    assert resynced == (point in SERVICES), phase


def test_saving_the_state_fails_after_services(world: World, top: Path,
                                               before: dict[str, object],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply_mod, "_save_state", lambda p: world.hit("save_state"))
    world.fail_at = "save_state"
    with pytest.raises(Boom):
        apply_mod.execute(plan(top), lambda *a: None)
    assert host_as_it_was(top) == before and world.jails == set()
    assert world.calls[-3:] == ["update_programs phphost-p1", "ensure_running",
                                "apache_reload"]


def test_an_unexpected_exception_is_rolled_back_and_names_the_action(
        world: World, top: Path, before: dict[str, object]) -> None:
    world.fail_at, world.fail_with = "jail", RuntimeError
    with pytest.raises(HostError, match="build jail of pool p1 .*failed unexpectedly "
                       r"\(RuntimeError: injected failure at jail\)"):
        apply_mod.execute(plan(top), lambda *a: None)
    assert host_as_it_was(top) == before and world.groups == set() and world.jails == set()


def test_an_interrupt_is_rolled_back_and_goes_on(world: World, top: Path,
                                                 before: dict[str, object]) -> None:
    world.fail_at, world.fail_with = "symlink", KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        apply_mod.execute(plan(top), lambda *a: None)
    assert host_as_it_was(top) == before and world.users == {}


def test_a_validator_rejection_keeps_its_own_error(world: World, top: Path,
                                                   before: dict[str, object]) -> None:
    world.fail_at, world.fail_with = "validate_fpm", ValidationFailed
    with pytest.raises(ValidationFailed):
        apply_mod.execute(plan(top), lambda *a: None)
    assert host_as_it_was(top) == before


def test_a_tenant_group_comes_with_its_user_only_when_nothing_needs_it_first() -> None:
    acts: list[A.Action] = [
        A.EnsureGroup("new", name="a"), A.EnsureGroup("new", name="b"),
        A.EnsureGroup("new", name="c"),
        A.EnsureUser("new", name="x", group="b", system=False),     # needs b before b's user
        A.EnsureUser("new", name="a", group="a", system=False),
        A.EnsureUser("new", name="b", group="b", system=False),
        A.EnsureUser("new", name="php-a", group="a"),               # a pool user: --gid
        A.EnsureUser("new", name="d", group="d", system=False),     # d exists already
        A.EnsureDir("new", path="/srv/c", owner="root", group="c", mode=0o755),
        A.EnsureUser("new", name="c", group="c", system=False),     # after a dir needs c
    ]
    assert apply_mod._user_groups(acts) == {"a"}


@pytest.mark.parametrize("updated", [True, False])
def test_a_master_already_started_when_apply_starts_it_is_restarted(
        world: World, top: Path, before: dict[str, object], updated: bool) -> None:
    """The plan saw p1 stopped; by the time apply asks supervisord to start it, it runs
    (supervisord restarted it by itself, maybe before apply wrote p1's files): apply
    restarts it so it reads them. Unless supervisord's update just started it, after
    the files were written."""
    world.already = {"phphost-p1"}
    acts = tuple(a if not isinstance(a, A.UpdatePrograms) else
                 A.UpdatePrograms("programs", update=("phphost-p1",) if updated else (),
                                  remove=("phphost-p0",), resync=("phphost-p1",))
                 for a in plan(top).actions)
    apply_mod.execute(A.Plan(acts), lambda *a: None)
    restarted = [c for c in world.calls if c.startswith("restart_program")]
    assert restarted == ([] if updated else ["restart_program phphost-p1"])


def test_no_live_configtest_when_the_staged_test_read_the_staged_tree_alone(
        world: World, top: Path, before: dict[str, object],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """staging.read_as_staged: a test of the live tree would parse the same files."""
    monkeypatch.setattr(staging, "validate_apache",
                        lambda actions: world.hit("validate_apache") is None)
    apply_mod.execute(plan(top), lambda *a: None)
    assert "validate_apache" in world.calls and "apache_reload" in world.calls
    assert "apache_configtest" not in world.calls
