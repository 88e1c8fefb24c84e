"""Planning from recorded facts: pure, no host access."""

from __future__ import annotations

import dataclasses

import pytest

from phphost import layout
from phphost.errors import PlanError
from phphost.facts.gather import DirFact, Facts
from phphost.facts.parse import ProgramStatus
from phphost.facts.state import State
from phphost.plan import actions as A
from phphost.plan.desired import Desired, DesiredAcl, DesiredDir, DesiredFile, DesiredUser
from phphost.plan.destroy import make_destroy_plan
from phphost.plan.planner import make_plan
from phphost.render.cgroups import CgroupHost, pool_cgroup
from phphost.spec.limits import Limits

FPM = layout.fpm_conf("app")
SUP = layout.supervisor_conf("app")
SITE = layout.site_conf("web")


def desired() -> Desired:
    return Desired(
        files=(DesiredFile(FPM, "fpm\n", 0o640), DesiredFile(SUP, "sup\n"),
               DesiredFile(SITE, "site\n"), DesiredFile(layout.APACHE_GLOBAL_CONF, "g\n")),
        links=((layout.site_link("web"), "../sites-available/phphost-web.conf"),),
        groups=("acme",),
        users=(DesiredUser("acme", "acme", "/srv/acme", False),
               DesiredUser("php-app", "acme", "/nonexistent", True)),
        dirs=(DesiredDir("/srv/acme", "acme", "acme", 0o750),),
        acls=(DesiredAcl("/srv/acme", ("user:www-data:--x",)),),
        modules_on=("mpm_event", "proxy_fcgi"),
        modules_off=("mpm_prefork",),
        pools=("app",),
        sites=("web",),
        homes=("/srv/acme",),
    )


def converged(**over: object) -> Facts:
    d = desired()
    base = dict(
        files={f.path: f.content for f in d.files},
        links=dict(d.links),
        users={"acme": "acme", "php-app": "acme"},
        groups=frozenset({"acme"}),
        dirs={"/srv/acme": DirFact("acme", "acme", 0o750)},
        acls={"/srv/acme": frozenset({"user:www-data:--x"})},
        modules=frozenset({"mpm_event", "proxy_fcgi"}),
        programs={"phphost-app": ProgramStatus("phphost-app", "RUNNING", 42)},
        supervisor_running=True,
        apache_running=True,
    )
    base.update(over)
    return Facts(**base)  # type: ignore[arg-type]


STATE = State(pools=("app",), sites=("web",), users=("php-app",), pool_users=("php-app",))


def kinds(plan: A.Plan) -> list[str]:
    """The plan's changes but the supervisord bookkeeping (tested on its own below)."""
    return [a.kind for a in plan.changes if not isinstance(a, A.UpdatePrograms)]


def test_converged_host_has_no_changes() -> None:
    plan = make_plan(desired(), converged(), STATE)
    assert not plan.has_changes()
    assert plan.noops


def test_fresh_host_creates_everything_and_starts() -> None:
    plan = make_plan(desired(), Facts(), State())
    k = kinds(plan)
    assert k.count("WriteFile") == 4
    assert "EnsureGroup" in k and k.count("EnsureUser") == 2
    assert "StartMaster" in k
    assert plan.changes[-1] == A.ReloadApache("apache2 is not running", restart=True)


def test_pool_conf_change_reloads_only_that_master() -> None:
    files = {**converged().files, FPM: "old\n"}
    plan = make_plan(desired(), converged(files=files), STATE)
    assert kinds(plan) == ["WriteFile", "ReloadMaster"]
    write = plan.changes[0]
    assert isinstance(write, A.WriteFile) and "-old" in write.diff() and "+fpm" in write.diff()


def test_command_line_change_restarts_master() -> None:
    files = {**converged().files, SUP: "old\n"}
    assert kinds(make_plan(desired(), converged(files=files), STATE)) == [
        "WriteFile", "RestartMaster"]


def test_site_change_reloads_apache_not_masters() -> None:
    files = {**converged().files, SITE: "old\n"}
    assert kinds(make_plan(desired(), converged(files=files), STATE)) == [
        "WriteFile", "ReloadApache"]


def test_prefork_is_switched_off_with_full_restart() -> None:
    plan = make_plan(desired(), converged(modules=frozenset({"mpm_prefork", "proxy_fcgi"})),
                     STATE)
    assert kinds(plan) == ["ApacheModule", "ApacheModule", "ReloadApache"]
    assert plan.changes[-1] == A.ReloadApache(
        "the MPM changes: a graceful reload cannot switch it", True)


def test_wrong_home_mode_is_fixed() -> None:
    plan = make_plan(desired(), converged(dirs={"/srv/acme": DirFact("acme", "acme", 0o755)}),
                     STATE)
    assert kinds(plan) == ["EnsureDir"]
    assert "0755" in plan.changes[0].reason


def test_missing_acl_is_granted() -> None:
    plan = make_plan(desired(), converged(acls={}), STATE)
    assert kinds(plan) == ["SetAcl"]


def test_removed_pool_is_stopped_and_its_user_removed() -> None:
    state = State(pools=("app", "old"), sites=("web",), users=("php-app", "php-old"),
                  pool_users=("php-app", "php-old"),
                  files=(layout.fpm_conf("old"), layout.supervisor_conf("old")))
    facts = converged(files={**converged().files, layout.fpm_conf("old"): "x",
                             layout.supervisor_conf("old"): "y"},
                      users={"acme": "acme", "php-app": "acme", "php-old": "acme"})
    plan = make_plan(desired(), facts, state)
    assert kinds(plan) == ["RemoveFile", "RemoveFile", "StopMaster", "RemoveUser"]
    programs = plan.one(A.UpdatePrograms)
    assert programs is not None and programs.remove == (layout.program_name("old"),)
    assert programs.update == ()
    # a rollback after the stop brings the removed pool's master back too
    assert programs.resync == (layout.program_name("app"), layout.program_name("old"))


def test_own_program_file_alone_updates_that_program() -> None:
    """phphost's other supervisord programs (the exporter) are updated like masters:
    written, changed or removed, with no master touched."""
    exporter = f"{layout.SUPERVISOR_CONF_DIR}/phphost_exporter.conf"
    d = desired()
    wanted = Desired(**{**d.__dict__, "files": (*d.files, DesiredFile(exporter, "x\n"))})
    programs = make_plan(wanted, converged(), STATE).one(A.UpdatePrograms)
    assert programs is not None and programs.update == ("phphost_exporter",)
    state = State(**{**STATE.__dict__, "files": (exporter,)})
    gone = make_plan(d, converged(files={**converged().files, exporter: "x\n"}), state)
    programs = gone.one(A.UpdatePrograms)
    assert programs is not None and programs.update == ("phphost_exporter",)
    assert "RemoveFile" in kinds(gone) and "StopMaster" not in kinds(gone)


def test_saved_plan_fingerprint_follows_every_byte() -> None:
    plan = make_plan(desired(), converged(files={}), STATE)
    again = make_plan(desired(), converged(files={}), STATE)
    assert plan.fingerprint() == again.fingerprint()
    other = converged(files={f.path: f.content + "x" for f in desired().files})
    assert make_plan(desired(), other, STATE).fingerprint() != plan.fingerprint()


def test_tenant_users_are_never_removed_by_apply() -> None:
    state = State(users=("acme", "gone-tenant", "php-app"), pool_users=("php-app",))
    facts = converged(users={"acme": "acme", "php-app": "acme", "gone-tenant": "x"})
    assert "RemoveUser" not in kinds(make_plan(desired(), facts, state))


def test_foreign_pool_user_is_refused() -> None:
    with pytest.raises(PlanError, match="php-app"):
        make_plan(desired(), converged(), State(pools=("app",)))


def test_destroy_keeps_tenant_data_without_purge() -> None:
    plan = make_destroy_plan(desired(), converged(), STATE, purge=False)
    k = kinds(plan)
    assert "RemoveTree" not in k and "StopMaster" in k and "RemoveUser" in k
    assert all(a.name != "acme" for a in plan.changes if isinstance(a, A.RemoveUser))


def test_destroy_purge_removes_home() -> None:
    state = State(pools=("app",), users=("php-app", "acme"), groups=("acme",))
    plan = make_destroy_plan(desired(), converged(), state, purge=True)
    assert A.RemoveTree("--purge", "/srv/acme") in plan.changes


def test_created_users_stay_recorded_when_another_spec_is_applied() -> None:
    """A tenant user phphost created is still phphost's after a spec without it."""
    other = Desired(files=(), links=(), groups=(), users=(), dirs=(), acls=(), modules_on=(),
                    modules_off=(), pools=(), sites=(), homes=())
    state = State(users=("acme", "php-app"), pool_users=("php-app",), groups=("acme",))
    facts = converged()
    plan = make_plan(other, facts, state)
    saved = next(a for a in plan.actions if isinstance(a, A.SaveState)).state
    assert saved["users"] == ["acme"] and saved["groups"] == ["acme"]
    assert A.RemoveUser("its pool left the spec", "php-app") in plan.changes


def test_socket_setting_change_restarts_instead_of_reload() -> None:
    old = "listen = /run/phphost/app.sock\nlisten.mode = 0666\n"
    d = desired()
    new_fpm = DesiredFile(FPM, "listen = /run/phphost/app.sock\nlisten.mode = 0660\n", 0o640)
    d = Desired(**{**d.__dict__, "files": (new_fpm, *d.files[1:])})
    facts = converged(files={**converged().files, FPM: old})
    assert kinds(make_plan(d, facts, STATE)) == ["WriteFile", "RestartMaster"]


def test_jail_change_reloads_that_master() -> None:
    """Running workers keep gconv modules and locales they loaded from the old jail:
    after a build (a feature dropped, say) the master is reloaded."""
    from dataclasses import replace

    from phphost.facts.jails import JailState
    from phphost.jail.diff import Change
    from phphost.jail.manifest import Manifest

    want = replace(desired(), jailed=("app",))
    state = JailState("app", "/var/lib/phphost/jails/app", Manifest("app", 990, 990, ()),
                      (Change("remove", "/usr/lib/locale", "dir"),))
    plan = make_plan(want, converged(jails=frozenset({"app"})), STATE, {"app": state})
    assert kinds(plan) == ["BuildJail", "ReloadMaster"]
    same = replace(state, changes=())
    assert not make_plan(want, converged(jails=frozenset({"app"})), STATE,
                         {"app": same}).has_changes()


def test_destroy_refuses_unsafe_paths_up_front() -> None:
    """A symlinked home is refused before any service stops or user goes."""
    facts = Facts(**{**converged().__dict__,
                     "unsafe": {"/srv/acme": "is a symlink where phphost expects a directory"}})
    for purge in (False, True):
        with pytest.raises(PlanError) as err:
            make_destroy_plan(desired(), facts, STATE, purge=purge)
        assert "/srv/acme: is a symlink" in str(err.value)
        assert "nothing was changed" in str(err.value)


# --- resource limits --------------------------------------------------------------------

V1 = CgroupHost(v1={"memory": "/c/memory", "pids": "/c/pids", "cpu": "/c/cpu"})
LIMITS = Limits(memory_max=256 << 20, memory_high=230 << 20, pids_max=40, nproc=40,
                cpu_weight=100, cpu_max=None, io_weight=100, explicit=frozenset())


def limited(limits: Limits = LIMITS) -> Desired:
    d = desired()
    return dataclasses.replace(d, files=(*d.files, DesiredFile(layout.limits_file("app"),
                                                               "nproc\n")),
                               limits=(("app", limits),))


def limited_facts(**over: object) -> Facts:
    cg = pool_cgroup("app", LIMITS, V1)
    assert cg is not None
    d = limited()
    base: dict[str, object] = dict(files={f.path: f.content for f in d.files}, cgroups=V1,
                                   cgroup_files=dict(cg.writes), cgroup_dirs=frozenset(cg.dirs),
                                   cgroup_pools=frozenset({"app"}))
    base.update(over)
    return converged(**base)


def test_limits_in_place_are_a_noop_shown_in_noops() -> None:
    plan = make_plan(limited(), limited_facts(), STATE)
    assert not plan.has_changes()
    assert any(n.startswith("limits of pool app (cgroup v1): memory 256M") for n in plan.noops)


def test_a_new_cgroup_restarts_the_running_master_once() -> None:
    plan = make_plan(limited(), limited_facts(cgroup_dirs=frozenset(), cgroup_files={}), STATE)
    sets = [a for a in plan.actions if isinstance(a, A.SetCgroup)]
    assert len(sets) == 1 and sets[0].create == ("/c/memory/phphost/app", "/c/pids/phphost/app",
                                                  "/c/cpu/phphost/app")
    assert "create cgroup and set limits of pool app (cgroup v1): memory 256M" in \
        sets[0].describe()
    assert plan.one(A.RestartMaster) is not None


def test_changed_limits_and_nproc_apply_live() -> None:
    changed = dataclasses.replace(LIMITS, pids_max=30, nproc=30)
    facts = limited_facts()
    d = limited(changed)
    files = tuple(f if f.path != layout.limits_file("app") else
                  DesiredFile(f.path, "nproc 30\n") for f in d.files)
    plan = make_plan(dataclasses.replace(d, files=files), facts, STATE)
    kinds = [a.kind for a in plan.changes]
    assert "SetCgroup" in kinds and "SetProcessLimit" in kinds
    assert "RestartMaster" not in kinds and "ReloadMaster" not in kinds
    assert "1 limit(s) differ: pids.max" in next(a.reason for a in plan.changes
                                                 if isinstance(a, A.SetCgroup))


def test_cgroups_of_dropped_pools_are_removed_and_destroy_removes_all() -> None:
    facts = limited_facts(cgroup_pools=frozenset({"app", "old"}))
    plan = make_plan(limited(), facts, STATE)
    assert [a.pool for a in plan.actions if isinstance(a, A.RemoveCgroup)] == ["old"]
    gone = make_destroy_plan(limited(), facts, STATE, purge=False)
    assert [a.pool for a in gone.actions if isinstance(a, A.RemoveCgroup)] == ["app"]


def test_explicit_limit_the_host_cannot_enforce_is_refused() -> None:
    explicit = dataclasses.replace(LIMITS, explicit=frozenset({"memory_max"}))
    with pytest.raises(PlanError, match=r"pools\.app\.memory_max: this host cannot enforce"):
        make_plan(limited(explicit), limited_facts(cgroups=CgroupHost()), STATE)
    plan = make_plan(limited(), limited_facts(cgroups=CgroupHost()), STATE)
    assert any("no cgroup hierarchy on this host; only RLIMIT_NPROC 40" in n for n in plan.noops)
