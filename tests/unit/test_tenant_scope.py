"""Tenant-limited runs (--tenant, docs/spec.md): the record of the last apply, the
model a limited run plans for, what its plan may touch, and destroys that keep what
other pools share. Pure: planned from recorded facts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phphost import layout
from phphost.errors import FactError, PlanError
from phphost.facts.gather import DirFact, Facts
from phphost.facts.parse import ProgramStatus
from phphost.facts.state import State, read_applied
from phphost.plan import actions as A
from phphost.plan.desired import Desired, desired_state
from phphost.plan.destroy import make_destroy_plan, with_purge
from phphost.plan.planner import make_plan
from phphost.plan.scope import doomed_model, make_scope, pool_files, site_files, unknown_tenants
from phphost.render.nftables import digest as nft_digest
from phphost.spec.loader import load_spec, parse_spec
from phphost.spec.model import Model
from phphost.spec.snapshot import dump_model, limited_model, load_model, without

REPO = Path(__file__).resolve().parents[2]
DEMO = load_spec(str(REPO / "examples" / "demo.toml"))

TWO = """
[tenants.acme]
home = "/srv/www/acme"

[tenants.beta]
home = "/srv/www/beta"

[pools.app]
tenant = "acme"
max_children = 2

[pools.beta]
tenant = "beta"
max_children = 2
jail = { enabled = false }

[sites.web]
server_name = "acme.example.org"
tenant = "acme"
docroot = "htdocs"
pool = "app"

[sites.beta]
server_name = "beta.example.org"
tenant = "beta"
docroot = "htdocs"
pool = "beta"
"""


def two(text: str = TWO) -> Model:
    return parse_spec(text, "two.toml")


def desired(model: Model) -> Desired:
    return desired_state(model, {}, resolvers=())


def converged(d: Desired, **over: object) -> Facts:
    """The host exactly as `d` wants it, every master running."""
    base: dict[str, object] = dict(
        files={f.path: f.content for f in d.files}, links=dict(d.links),
        users={u.name: u.group for u in d.users}, groups=frozenset(d.groups),
        dirs={x.path: DirFact(x.owner, x.group, x.mode) for x in d.dirs},
        acls={a.path: frozenset(a.entries) for a in d.acls},
        modules=frozenset(d.modules_on),
        programs={layout.program_name(p): ProgramStatus(layout.program_name(p), "RUNNING", 7)
                  for p in d.pools},
        supervisor_running=True, apache_running=True, jails=frozenset(d.jailed),
        nft_live="table", nft_loaded=nft_digest("table"))
    base.update(over)
    return Facts(**base)  # type: ignore[arg-type]


def state_of(d: Desired) -> State:
    pool_users = tuple(u.name for u in d.users if u.system)
    return State(pools=d.pools, sites=d.sites, users=tuple(u.name for u in d.users),
                 pool_users=pool_users, groups=d.groups, homes=d.homes,
                 files=tuple(f.path for f in d.files))


def paths(plan: A.Plan) -> set[str]:
    return {getattr(a, "path", "") for a in plan.changes} - {""}


# --- the record of the last apply ---------------------------------------------------------


@pytest.mark.parametrize("spec", [REPO / "examples" / "demo.toml",
                                  REPO / "tests" / "unit" / "specs" / "full.toml"])
def test_record_round_trips_every_key(spec: Path) -> None:
    model = load_spec(str(spec))
    again = load_model(dump_model(model), "rec.json")
    assert again == dataclasses.replace(model, source="rec.json")


def test_record_leaves_out_where_the_spec_came_from(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "all.toml").write_text(TWO)
    assert dump_model(load_spec(str(d))) == dump_model(two())


def test_record_is_in_every_desired_state() -> None:
    files = {f.path: f for f in desired(two()).files}
    assert files[layout.APPLIED_FILE].mode == 0o600
    assert load_model(files[layout.APPLIED_FILE].content, "x").pools == two().pools


@pytest.mark.parametrize("text", ["[", "[]", '{"pools": [{"name": 3}]}',
                                  '{"apache": {"http_port": "80"}}'])
def test_a_broken_record_is_a_fact_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "applied.json"
    path.write_text(text)
    with pytest.raises(FactError, match="phphost apply SPEC"):
        read_applied(str(path))


@pytest.mark.parametrize("text", ['{"tenants": [{"name": "x"}]}', '{"pools": [{}]}'])
def test_a_record_missing_fields_is_a_fact_error_not_a_traceback(tmp_path: Path,
                                                                  text: str) -> None:
    record = tmp_path / "applied.json"
    record.write_text(text)
    with pytest.raises(FactError, match=r"applied.json: cannot read .*: no "):
        read_applied(str(record))


def test_no_record() -> None:
    assert read_applied("/nonexistent/applied.json") is None


# --- the model of a limited run -----------------------------------------------------------


def test_limited_model_takes_only_the_named_tenants_from_the_spec() -> None:
    applied = two()
    spec = two(TWO.replace("max_children = 2\njail", "max_children = 5\njail")
               .replace('[pools.app]\ntenant = "acme"\nmax_children = 2',
                        '[pools.app]\ntenant = "acme"\nmax_children = 4')
               + "\n[apache]\nproxy_timeout = 9\n")
    limited = limited_model(spec, applied, {"beta"})
    assert limited.pool("beta").settings.max_children == 5
    assert limited.pool("app").settings.max_children == 2          # as applied
    assert limited.apache == applied.apache                         # global: as applied


def test_limited_model_needs_no_other_tenant_in_the_spec() -> None:
    new = parse_spec('[tenants.newt]\nhome = "/srv/www/newt"\n[pools.newt]\ntenant = "newt"\n',
                     "new.toml")
    limited = limited_model(new, two(), {"newt"})
    assert [p.name for p in limited.pools] == ["app", "beta", "newt"]
    assert [t.name for t in limited.tenants] == ["acme", "beta", "newt"]


@pytest.mark.parametrize("text,key,words", [
    ('[tenants.newt]\nhome = "/srv/www/newt"\n[pools.app]\ntenant = "newt"\n',
     "pools.app", "pool app belongs to tenant acme"),
    ('[tenants.newt]\nhome = "/srv/www/newt"\nuser = "acme"\n', "tenants.newt",
     "user acme belongs to tenant acme"),
    ('[tenants.newt]\nhome = "/srv/www/acme/newt"\n', "tenants.newt", "overlaps"),
    ('[tenants.newt]\nhome = "/srv/www/newt"\n[pools.x]\ntenant = "newt"\n'
     'socket = "/run/phphost/app.sock"\n', "pools.x", "socket /run/phphost/app.sock"),
    ('[tenants.newt]\nhome = "/srv/www/newt"\n[pools.x]\ntenant = "newt"\n[sites.x]\n'
     'server_name = "ACME.example.org"\ntenant = "newt"\ndocroot = "h"\npool = "x"\n',
     "sites.x", "host name acme.example.org"),
])
def test_limited_model_refuses_names_another_tenant_holds(text: str, key: str,
                                                          words: str) -> None:
    with pytest.raises(PlanError) as info:
        limited_model(parse_spec(text, "new.toml"), two(), {"newt"})
    assert str(info.value).startswith(f"new.toml: {key}: ")
    assert words in str(info.value) and "nothing was changed" in str(info.value)


@pytest.mark.parametrize("pool,words", [
    ('jail = { mounts = [{ source = "/srv/www/beta", target = "/opt/b", writable = true }] }',
     "jail.mounts[0]: mount source /srv/www/beta overlaps the home /srv/www/beta of tenant beta"),
    ('jail = { mounts = [{ source = "/srv/www/beta/htdocs/up", target = "/opt/b" }] }',
     "overlaps the home /srv/www/beta"),
    ('jail = { mounts = [{ source = "/srv/www", target = "/opt/all" }] }',
     "mount source /srv/www overlaps the home /srv/www/acme of tenant acme"),
    ('socket = "/srv/www/beta/run/x.sock"', "socket /srv/www/beta/run/x.sock is inside the home"),
])
def test_limited_model_refuses_a_pool_reaching_into_another_home(pool: str, words: str) -> None:
    """Attacker review: a spec naming only acme cannot see beta's home, so the loader's
    "a mount source may not overlap another tenant's home" never fired; apply --tenant
    acme mounted beta's home (writable) into acme's jail."""
    text = (f'[tenants.newt]\nhome = "/srv/www/newt"\n[pools.x]\ntenant = "newt"\n{pool}\n')
    with pytest.raises(PlanError) as info:
        limited_model(parse_spec(text, "new.toml"), two(), {"newt"})
    assert str(info.value).startswith("new.toml: pools.x: ")
    assert words in str(info.value) and "nothing was changed" in str(info.value)


def test_limited_model_refuses_a_home_under_another_pools_mount() -> None:
    applied = two(TWO.replace(
        'max_children = 2\njail = { enabled = false }',
        'max_children = 2\njail = { mounts = [{ source = "/srv/shared", target = "/opt/s" }] }'))
    text = '[tenants.newt]\nhome = "/srv/shared/newt"\n'
    with pytest.raises(PlanError, match=r"tenants\.newt: home /srv/shared/newt overlaps the "
                                        r"jail mount source /srv/shared of pool beta"):
        limited_model(parse_spec(text, "new.toml"), applied, {"newt"})


def test_limited_model_allows_mounts_of_shared_paths() -> None:
    text = ('[tenants.newt]\nhome = "/srv/www/newt"\n[pools.x]\ntenant = "newt"\n'
            'jail = { mounts = [{ source = "/srv/shared", target = "/opt/s" },'
            ' { source = "/srv/www/newt/lib", target = "/opt/l" }] }\n')
    limited = limited_model(parse_spec(text, "new.toml"), two(), {"newt"})
    assert [m.source for m in limited.pool("x").jail.mounts] == ["/srv/shared", "/srv/www/newt/lib"]


def test_without_and_doomed_and_unknown() -> None:
    rest = without(two(), {"acme"})
    assert [p.name for p in rest.pools] == ["beta"] and [s.name for s in rest.sites] == ["beta"]
    spec = two().__class__(source="s", tenants=two().tenants[:1], pools=(two().pool("app"),))
    doomed = doomed_model(spec, two(), {"acme"})
    assert [s.name for s in doomed.sites] == ["web"]       # as last applied
    assert unknown_tenants(spec, two(), ["beta", "zed"]) == ["zed"]
    assert unknown_tenants(spec, None, ["beta"]) == ["beta"]


# --- what a limited plan touches ----------------------------------------------------------


def scoped_plan(spec: Model, applied: Model, tenants: set[str],
                facts: Facts | None = None) -> A.Plan:
    limited = limited_model(spec, applied, tenants)
    d, state = desired(limited), state_of(desired(applied))
    return make_plan(d, facts or converged(desired(applied)), state, None,
                     make_scope(tenants, (spec, applied, limited), state))


def test_limited_plan_changes_only_the_named_tenant() -> None:
    spec = two(TWO.replace('tenant = "beta"\nmax_children = 2', 'tenant = "beta"\n'
                           'max_children = 3').replace('tenant = "acme"\nmax_children = 2',
                                                       'tenant = "acme"\nmax_children = 4'))
    plan = scoped_plan(spec, two(), {"beta"})
    assert layout.fpm_conf("beta") in paths(plan)
    assert layout.fpm_conf("app") not in paths(plan)
    assert {a.pool for a in plan.changes if isinstance(a, A.ReloadMaster)} == {"beta"}
    glob = next(a for a in plan.changes if isinstance(a, A.WriteFile)
                and a.path == layout.APACHE_GLOBAL_CONF)
    # max = max_children + burst_queue (default 2 x max_children)
    assert "fcgi://app/\">\n    ProxySet max=6 " in glob.content       # acme's as applied
    assert "fcgi://beta/\">\n    ProxySet max=9 " in glob.content


def test_limited_plan_leaves_other_tenants_drift_alone() -> None:
    d = desired(two())
    facts = converged(d, files={**converged(d).files, layout.fpm_conf("app"): "edited\n"},
                      programs={"phphost-beta": ProgramStatus("phphost-beta", "RUNNING", 8)})
    plan = scoped_plan(two(), two(), {"beta"}, facts)
    assert not plan.has_changes(), [a.describe() for a in plan.changes]
    full = make_plan(d, facts, state_of(d))
    assert {"StartMaster", "WriteFile"} <= {a.kind for a in full.changes}


def test_limited_plan_removes_only_the_named_tenants_pools() -> None:
    spec = two(TWO.split("[pools.beta]")[0] + "[sites.web]" + TWO.split("[sites.web]")[1]
               .split("[sites.beta]")[0])          # beta has no pool and no site left
    plan = scoped_plan(spec, two(), {"beta"})
    assert {a.pool for a in plan.changes if isinstance(a, A.StopMaster)} == {"beta"}
    assert {a.name for a in plan.changes if isinstance(a, A.RemoveUser)} == {"php-beta"}
    # acme's master still uses the launcher
    assert not {layout.LAUNCHER, layout.LAUNCHER_SOURCE} & paths(plan)
    saved = plan.one(A.SaveState)
    assert saved is not None and saved.state["pools"] == ["app"]


def test_a_new_tenant_spec_does_not_remove_the_others() -> None:
    new = parse_spec('[tenants.newt]\nhome = "/srv/www/newt"\n[pools.newt]\ntenant = "newt"\n',
                     "new.toml")
    plan = scoped_plan(new, two(), {"newt"})
    assert not [a for a in plan.changes if isinstance(a, (A.StopMaster, A.RemoveUser,
                                                          A.RemoveFile))]
    assert {a.pool for a in plan.changes if isinstance(a, A.StartMaster)} == {"newt"}


def test_out_of_scope_state_stays_recorded() -> None:
    d = desired(two())
    state = dataclasses.replace(state_of(d), pools=(*d.pools, "legacy"))
    limited = limited_model(two(), two(), {"beta"})
    plan = make_plan(desired(limited), converged(d), state, None,
                     make_scope({"beta"}, (two(), limited), state))
    assert not [a for a in plan.changes if getattr(a, "pool", "") == "legacy"]
    saved = plan.one(A.SaveState)
    assert saved is not None and "legacy" in saved.state["pools"]


# --- destroy keeps what others share ------------------------------------------------------


def test_destroy_fallback_keeps_shared_files_while_other_pools_run() -> None:
    """Without a record: destroying one spec while other pools stay keeps the
    launcher, the nftables table and the other shared files."""
    acme = two(TWO.split("[tenants.beta]")[0] + "[pools.app]" + TWO.split("[pools.app]")[1]
               .split("[pools.beta]")[0] + "[sites.web]" + TWO.split("[sites.web]")[1]
               .split("[sites.beta]")[0])
    d = desired(acme)
    state = state_of(desired(two()))
    plan = make_destroy_plan(d, converged(d), state, purge=False)
    removed = {a.path for a in plan.changes if isinstance(a, A.RemoveFile)}
    assert layout.fpm_conf("app") in removed and layout.site_link("web") in removed
    assert not removed & {layout.LAUNCHER_SOURCE, layout.NFT_CONF, layout.APACHE_GLOBAL_CONF,
                          layout.LOGROTATE_CONF}
    assert not plan.one(A.UnloadNftables)
    saved = plan.one(A.SaveState)
    assert saved is not None and layout.LAUNCHER_SOURCE in saved.state["files"]
    alone = make_destroy_plan(d, converged(d), state_of(d), purge=False)
    assert layout.LAUNCHER_SOURCE in paths(alone) and alone.one(A.UnloadNftables)


def test_purge_of_a_tenant_forgets_only_its_accounts() -> None:
    d = desired(two())
    plan = scoped_plan(without(two(), {"acme"}), two(), {"acme"})
    doomed = desired(doomed_model(two(), two(), {"acme"}))
    purged = with_purge(plan, doomed, converged(d), state_of(d))
    trees = [a.path for a in purged.changes if isinstance(a, A.RemoveTree)]
    assert trees == ["/srv/www/acme"]
    assert isinstance(purged.actions[-1], A.SaveState)
    assert "acme" not in purged.actions[-1].state["users"]
    assert "beta" in purged.actions[-1].state["users"]


def test_limited_plan_reads_nothing_in_other_homes() -> None:
    limited = limited_model(two(), two(), {"beta"})
    d = desired(limited)
    scope = make_scope({"beta"}, (two(), limited), state_of(d))
    wanted = scope.narrow(d.wanted())
    assert not [p for p in wanted.dirs if p.startswith("/srv/www/acme")]
    assert not [a for a, _ in wanted.acls if a.startswith("/srv/www/acme")]
    assert "/srv/www/beta/htdocs" in [a for a, _ in wanted.acls]
    assert [p for p, _ in wanted.limits] == ["beta"]
    assert scope.in_foreign_home("/srv/www/acme") and scope.in_foreign_home("/srv/www/acme/x/y")
    assert not scope.in_foreign_home("/srv/www/acme2") and not scope.in_foreign_home("/srv/www")


def test_scope_knows_every_file_of_a_pool_and_a_site() -> None:
    """A tripwire: a new per-pool or per-site file must be added to plan/scope.py's
    pool_files/site_files, or a tenant-limited run would treat it as shared and
    rewrite or remove another tenant's."""
    whole = {f.path for f in desired(DEMO).files}
    rest = {f.path for f in desired(without(DEMO, {"ncs"})).files}
    own = {f for p in DEMO.pools_of("ncs") for f in pool_files(p.name)}
    own |= {f for s in DEMO.sites if s.tenant == "ncs" for f in site_files(s.name)}
    assert whole - rest <= own, sorted(whole - rest - own)
    assert {link for link, _ in desired(DEMO).links} - {
        link for link, _ in desired(without(DEMO, {"ncs"})).links} <= own


def test_purge_of_a_tenant_is_refused_for_an_unsafe_home() -> None:
    d = desired(two())
    plan = scoped_plan(without(two(), {"acme"}), two(), {"acme"})
    doomed = desired(doomed_model(two(), two(), {"acme"}))
    facts = converged(d, unsafe={"/srv/www/acme": "a symlink"})
    with pytest.raises(PlanError, match="/srv/www/acme: a symlink"):
        with_purge(plan, doomed, facts, state_of(d))


# --- a spec never hands another tenant's objects to the tenants a run is limited to -----


@pytest.mark.parametrize("change", [
    ('[tenants.acme]\nhome = "/srv/www/acme"', '[tenants.acme]\nhome = "/srv/www/beta"'),
    ('[tenants.acme]\nhome = "/srv/www/acme"',
     '[tenants.acme]\nhome = "/srv/www/acme"\nuser = "beta"\ngroup = "beta"'),
])
def test_destroy_refuses_a_spec_that_gives_a_tenant_anothers_objects(
        change: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`destroy acme.toml --tenant acme [--purge]` with a spec whose acme has beta's home
    or accounts (a typo, a copied file) must not stop, remove or purge anything of
    beta's: it is refused before any plan, naming the key."""
    from phphost.cli import main as cli_main

    applied = two()
    spec_text = TWO.split("[tenants.beta]")[0] + "[pools.app]" + \
        TWO.split("[pools.app]")[1].split("[pools.beta]")[0] + "[sites.web]" + \
        TWO.split("[sites.web]")[1].split("[sites.beta]")[0]
    spec = two(spec_text.replace(*change))
    monkeypatch.setattr(cli_main, "read_state", lambda: state_of(desired(applied)))
    monkeypatch.setattr(cli_main, "read_applied", lambda: applied)
    for tenants in (["acme"], None):
        for purge in (False, True):
            with pytest.raises(PlanError, match=r"tenants\.acme.*beta.*nothing was changed"):
                cli_main._destroy_plan(spec, tenants, purge)
