"""destroy(desired, facts, state, purge) -> Plan. Pure. Tenant data goes only
with purge=True."""

from __future__ import annotations

from phphost import layout
from phphost.facts.gather import Facts
from phphost.facts.state import State
from phphost.plan import actions as A
from phphost.plan.desired import Desired
from phphost.plan.planner import check_unsafe_paths
from phphost.plan.scope import pool_files, site_files


def make_destroy_plan(desired: Desired, facts: Facts, state: State, purge: bool) -> A.Plan:
    """Refused up front (before any service stops or user goes) when a managed path
    is unsafe: --purge would otherwise find a symlinked home only after the rest of
    the tenant was already gone."""
    check_unsafe_paths(facts)
    acts: list[A.Action] = []
    rest = _remaining(desired, state, purge)
    shared = {layout.APACHE_GLOBAL_CONF, layout.APACHE_GLOBAL_LINK} if rest["sites"] else set()
    if rest["pools"]:       # still used by other masters: the launcher, their nftables
        shared |= _shared_files(desired)   # chains, logrotate, the exporter's files
    rest["files"] = sorted(set(rest["files"]) | (shared & set(state.files)))
    for path in sorted({f.path for f in desired.files} - shared):
        if facts.files.get(path) is not None:
            acts.append(A.RemoveFile("phphost wrote it for this spec", path, facts.files[path]))
    for link, _ in desired.links:
        if link not in shared and facts.links.get(link) is not None:
            acts.append(A.RemoveFile("disable it the Debian way", link))
    if facts.apache_running and acts:
        acts.append(A.ReloadApache("its sites are gone"))
    stops = [A.StopMaster("pool is destroyed", p) for p in desired.pools
             if layout.program_name(p) in facts.programs]
    acts += stops
    if stops:
        gone = tuple(sorted(layout.program_name(p) for p in desired.pools
                            if facts.files.get(layout.supervisor_conf(p)) is not None))
        acts.append(A.UpdatePrograms("supervisord forgets the destroyed masters", gone,
                                     tuple(sorted(layout.program_name(a.pool) for a in stops)),
                                     gone))
    if (facts.nft_live is not None and layout.NFT_CONF not in shared
            and any(f.path == layout.NFT_CONF for f in desired.files)):
        acts.append(A.UnloadNftables("its pools are destroyed", " ".join(layout.NFT_TABLE)))
    acts += [A.RemoveJail("pool is destroyed", p) for p in desired.pools if p in facts.jails]
    acts += [A.RemoveCgroup("pool is destroyed", p) for p in desired.pools
             if p in facts.cgroup_pools]
    created = set(state.users)
    acts += [A.RemoveUser("pool runtime user phphost created", u.name) for u in desired.users
             if u.system and u.name in created and u.name in facts.users]
    if purge:
        acts += _purge_actions(desired, facts, state)
    acts.append(A.SaveState("forget what was destroyed", rest))
    return A.Plan(tuple(acts))


def _shared_files(desired: Desired) -> set[str]:
    """The files of `desired` that are not one pool's or one site's own."""
    own = {f for p in desired.pools for f in pool_files(p)}
    own |= {f for s in desired.sites for f in site_files(s)}
    own.add(layout.APPLIED_FILE)    # it would name what is destroyed: a full apply writes it
    return {f.path for f in desired.files if f.path not in own} | {layout.APACHE_GLOBAL_LINK}


def with_purge(plan: A.Plan, desired: Desired, facts: Facts, state: State) -> A.Plan:
    """A destroy planned as an apply of what remains (cli: `destroy` while other
    tenants stay) plus --purge of `desired`'s tenants: their homes, users and groups
    go after everything else, and the saved state forgets them. Refused up front,
    as make_destroy_plan, when a path of theirs is unsafe."""
    check_unsafe_paths(facts)
    purge = _purge_actions(desired, facts, state)
    gone = {a.name for a in purge if isinstance(a, (A.RemoveUser, A.RemoveGroup))}
    acts = [a for a in plan.actions if not isinstance(a, A.SaveState)]
    saved = plan.one(A.SaveState)
    kept = {k: [x for x in v if not (k in ("users", "groups") and x in gone)]
            for k, v in (saved.state if saved else {}).items()}
    return A.Plan((*acts, *purge, A.SaveState("forget what was destroyed", kept)), plan.noops)


def _purge_actions(desired: Desired, facts: Facts, state: State) -> list[A.Action]:
    acts: list[A.Action] = [A.RemoveTree("--purge", home) for home in desired.homes
                            if facts.dirs.get(home) is not None]
    acts += [A.RemoveUser("tenant user phphost created (--purge)", u.name) for u in desired.users
             if not u.system and u.name in state.users and u.name in facts.users]
    acts += [A.RemoveGroup("tenant group phphost created (--purge)", g) for g in desired.groups
             if g in state.groups and g in facts.groups]
    return acts


def _remaining(desired: Desired, state: State, purge: bool) -> dict[str, list[str]]:
    gone_users = {u.name for u in desired.users if u.system or purge}
    rest = State(
        pools=tuple(p for p in state.pools if p not in desired.pools),
        sites=tuple(s for s in state.sites if s not in desired.sites),
        users=tuple(u for u in state.users if u not in gone_users),
        pool_users=tuple(u for u in state.pool_users if u not in gone_users),
        groups=tuple(g for g in state.groups if not purge or g not in desired.groups),
        homes=tuple(h for h in state.homes if h not in desired.homes),
        files=tuple(f for f in state.files if f not in {d.path for d in desired.files}),
    )
    return rest.to_json()
