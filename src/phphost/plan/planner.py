"""plan(desired, facts, state) -> ordered actions, each with its reason. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from phphost import layout
from phphost.errors import PlanError
from phphost.facts.gather import Facts
from phphost.facts.jails import JailState
from phphost.facts.state import State, StateBuilder
from phphost.plan import actions as A
from phphost.plan.desired import Desired
from phphost.plan.scope import Scope
from phphost.render.cgroups import pool_cgroup
from phphost.render.nftables import digest as nft_digest
from phphost.spec.limits import describe as describe_limits


def make_plan(desired: Desired, facts: Facts, state: State,
              jails: Mapping[str, JailState] | None = None, scope: Scope | None = None) -> A.Plan:
    """scope: a tenant-limited plan (`--tenant`) leaves every object outside it as it
    is, even where it differs from `desired` (plan/scope.py)."""
    _check_foreign_users(desired, facts, state)
    check_unsafe_paths(facts)
    noops: list[str] = []
    acts: list[A.Action] = []
    acts += _file_actions(desired, facts, state, noops)
    acts += _module_actions(desired, facts)
    acts += _identity_actions(desired, facts, noops)
    acts += _jail_actions(desired, facts, jails or {}, noops)
    acts += _network_actions(desired, facts, acts, noops)
    acts += _cgroup_actions(desired, facts, noops)
    acts += _master_actions(desired, facts, state, acts)
    acts += _nproc_actions(desired, acts)
    if scope is not None:
        acts = [a for a in acts if scope.allows(a)]
    acts += _program_actions(desired, acts)
    apache = _apache_actions(desired, facts, acts)
    acts += _tls_actions(desired) if apache else []
    acts += apache
    removed = [a for a in _removed_users(desired, state, facts) if scope is None or scope.allows(a)]
    acts += removed
    acts.append(A.SaveState("record what phphost manages",
                            _next_state(desired, facts, state, removed, scope)))
    return A.Plan(tuple(acts), tuple(noops))


def _check_foreign_users(desired: Desired, facts: Facts, state: State) -> None:
    """A pool's runtime user must be phphost's own: adopting e.g. www-data would
    hand a tenant's PHP the web server's identity."""
    for user in desired.users:
        if user.system and user.name in facts.users and user.name not in state.pool_users:
            raise PlanError(
                f"pool runtime user {user.name!r} already exists and was not created by phphost. "
                "Choose another `user` for that pool in the spec, or remove the existing user"
            )


def check_unsafe_paths(facts: Facts) -> None:
    """A managed directory that a tenant swapped for a symlink (or a file, FIFO,
    device), a hard link to a foreign file in a tree root would grant ACLs on, a TLS
    file root would read from a tenant's reach: nothing is touched, the whole plan
    (apply's and destroy's alike) is refused up front, naming every such path."""
    if not facts.unsafe:
        return
    lines = [f"  {path}: {problem}" for path, problem in sorted(facts.unsafe.items())]
    raise PlanError(
        "phphost will not act through these paths (a tenant can swap or link them); "
        "nothing was changed:\n"
        + "\n".join(lines)
        + "\nRemove or rename each as its owner (phphost never follows a tenant's symlink), "
        "or fix the spec if the path is wrong, then run phphost again")


def _file_actions(desired: Desired, facts: Facts, state: State, noops: list[str]) -> list[A.Action]:
    acts: list[A.Action] = []
    wanted = {f.path for f in desired.files}
    for f in desired.files:
        old = facts.files.get(f.path)
        if old == f.content:
            noops.append(f"{f.path}: content already as rendered")
            continue
        reason = "not present" if old is None else "content differs from the spec's rendering"
        acts.append(A.WriteFile(reason, f.path, f.content, old, f.mode))
    for path in sorted(set(state.files) - wanted):
        if facts.files.get(path) is not None:
            acts.append(A.RemoveFile("no longer in the spec", path, facts.files.get(path)))
    for link, target in desired.links:
        if facts.links.get(link) != target:
            acts.append(A.Symlink("enable it the Debian way", link, target))
    gone_sites = set(state.sites) - set(desired.sites)
    for site in sorted(gone_sites):
        if facts.links.get(layout.site_link(site)) is not None:
            acts.append(A.RemoveFile("site no longer in the spec", layout.site_link(site)))
    return acts


def _module_actions(desired: Desired, facts: Facts) -> list[A.Action]:
    acts: list[A.Action] = []
    for mod in desired.modules_off:
        if mod in facts.modules:
            acts.append(A.ApacheModule("conflicts with event MPM + FPM (DESIGN.md)", mod, False))
    for mod in desired.modules_on:
        if mod not in facts.modules:
            acts.append(A.ApacheModule("needed by the rendered config", mod, True))
    return acts


def _identity_actions(desired: Desired, facts: Facts, noops: list[str]) -> list[A.Action]:
    acts: list[A.Action] = []
    for group in desired.groups:
        if group not in facts.groups:
            why = ("the jail's sendmail is setgid to it (docs/network.md)"
                   if group == layout.MAIL_GROUP else "tenant group missing")
            acts.append(A.EnsureGroup(why, group))
    for user in desired.users:
        have = facts.users.get(user.name)
        if have is None:
            acts.append(A.EnsureUser("user missing", user.name, user.group, user.home, user.system))
        elif have != user.group:
            acts.append(A.EnsureUser(f"primary group is {have}", user.name, user.group,
                                     user.home, user.system, exists=True))
    for d in desired.dirs:
        fact = facts.dirs.get(d.path)
        if fact is None:
            acts.append(A.EnsureDir("missing", d.path, d.owner, d.group, d.mode))
        elif d.enforce and (fact.owner, fact.group, fact.mode) != (d.owner, d.group, d.mode):
            why = f"is {fact.owner}:{fact.group} {fact.mode:04o}"
            acts.append(A.EnsureDir(why, d.path, d.owner, d.group, d.mode, exists=True))
        else:
            noops.append(f"{d.path}: directory already as required")
    for acl in desired.acls:
        if not set(acl.entries) <= facts.acls.get(acl.path, frozenset()):
            acts.append(A.SetAcl("apache reads docroots only through ACLs", acl.path,
                                 acl.entries, acl.recursive))
    return acts


def _jail_actions(desired: Desired, facts: Facts, jails: Mapping[str, JailState],
                  noops: list[str]) -> list[A.Action]:
    acts: list[A.Action] = []
    for pool in desired.jailed:
        jail = jails.get(pool)
        changes = tuple(str(c) for c in jail.changes) if jail else ("not built yet",)
        if changes:
            master = desired.master(pool)
            acts.append(A.BuildJail("jail differs from its manifest", pool, changes,
                                    jail.manifest if jail else None,
                                    master.user if master else "",
                                    master.group if master else ""))
        else:
            noops.append(f"jail of pool {pool}: as its manifest says")
    for pool in sorted(set(facts.jails) - set(desired.jailed)):
        acts.append(A.RemoveJail("pool no longer jailed or gone", pool))
    return acts


def _network_actions(desired: Desired, facts: Facts, acts: list[A.Action],
                     noops: list[str]) -> list[A.Action]:
    """The pools' nftables table (docs/network.md): loaded when its file changes or the
    live table is not what the last load left (flushed, deleted, edited by hand)."""
    wanted = next((f for f in desired.files if f.path == layout.NFT_CONF), None)
    table = " ".join(layout.NFT_TABLE)
    if wanted is None:
        return [A.UnloadNftables("no pool left", table)] if facts.nft_live is not None else []
    if _Changes(acts).file(layout.NFT_CONF):
        why = "its file changes"
    elif facts.nft_live is None:
        why = f"table {table} is not loaded"
    elif nft_digest(facts.nft_live) != facts.nft_loaded:
        why = f"live table {table} differs from what phphost loaded"
    else:
        noops.append(f"nftables table {table}: as last loaded")
        return []
    return [A.LoadNftables(why, layout.NFT_CONF, wanted.content)]


def _cgroup_actions(desired: Desired, facts: Facts, noops: list[str]) -> list[A.Action]:
    """Each pool's cgroup and limits (PlanError: a limit the spec sets that this host
    cannot enforce); cgroups of pools no longer in the spec are removed."""
    out: list[A.Action] = []
    for pool, lim in desired.limits:
        cg = pool_cgroup(pool, lim, facts.cgroups)
        shown = describe_limits(lim)
        if cg is None:
            noops.append(f"limits of pool {pool}: no cgroup hierarchy on this host; only "
                         f"RLIMIT_NPROC {lim.nproc} applies (wanted: {shown})")
            continue
        noops += [f"limits of pool {pool}: {note}" for note in cg.notes]
        skipped = [note.split(":", 1)[0] for note in cg.notes]
        shown += f" (not enforced here: {', '.join(skipped)})" if skipped else ""
        create = tuple(d for d in cg.dirs if d not in facts.cgroup_dirs)
        stale = [path for path, value in cg.writes if facts.cgroup_files.get(path) != value]
        if create or stale:
            why = "the pool has no cgroup yet" if create else \
                f"{len(stale)} limit(s) differ: {', '.join(p.rsplit('/', 1)[-1] for p in stale)}"
            out.append(A.SetCgroup(why, cg, shown, create))
        else:
            noops.append(f"limits of pool {pool} (cgroup {cg.version}): {shown}")
    for pool in sorted(facts.cgroup_pools - set(desired.pools)):
        out.append(A.RemoveCgroup("pool no longer in the spec", pool))
    return out


def _nproc_actions(desired: Desired, acts: list[A.Action]) -> list[A.Action]:
    """A changed RLIMIT_NPROC reaches a master that keeps running live (prlimit); one
    that starts or restarts reads it from its limits file."""
    fresh = {a.pool for a in acts if isinstance(a, (A.StartMaster, A.RestartMaster))}
    written = _Changes(acts)
    return [A.SetProcessLimit("process limit changed: set live, no restart", pool, lim.nproc)
            for pool, lim in desired.limits
            if pool not in fresh and written.file(layout.limits_file(pool))]


class _Changes:
    """What the file, cgroup and jail actions so far change, indexed once: asked per
    pool, a scan of every action for each pool was quadratic (2 s of a 1,000-pool
    `apply --tenant`, whose action list holds every pool's files until the scope
    filters them)."""

    def __init__(self, acts: list[A.Action]) -> None:
        self.files = {a.path: a for a in acts if isinstance(a, (A.WriteFile, A.RemoveFile))}
        self.new_cgroups = {a.cgroup.pool for a in acts if isinstance(a, A.SetCgroup)
                            and a.create and a.cgroup is not None}
        self.jails = {a.pool for a in acts if isinstance(a, A.BuildJail)}

    def file(self, path: str) -> bool:
        return path in self.files

    def socket(self, path: str) -> bool:
        """A SIGUSR2 reload re-uses the listening socket: owner, mode and backlog
        changes only take effect when the master restarts."""
        a = self.files.get(path)
        return isinstance(a, A.WriteFile) and a.old is not None \
            and _listen_lines(a.old) != _listen_lines(a.content)


def _listen_lines(text: str | None) -> list[str]:
    return [ln for ln in (text or "").splitlines() if ln.startswith("listen")]


def _master_actions(desired: Desired, facts: Facts, state: State,
                    acts: list[A.Action]) -> list[A.Action]:
    out: list[A.Action] = []
    changed = _Changes(acts)
    for pool in desired.pools:
        master = desired.master(pool)
        sock = master.socket if master else layout.default_socket(pool)
        prog = facts.programs.get(layout.program_name(pool))
        running = prog is not None and prog.state in ("RUNNING", "STARTING")
        if not running:
            out.append(A.StartMaster("master not running", pool, sock))
        elif changed.file(layout.supervisor_conf(pool)):
            out.append(A.RestartMaster("master command line changed", pool, sock))
        elif changed.file(layout.mounts_file(pool)):
            out.append(A.RestartMaster("jail mounts changed: only a new master sees them", pool,
                                       sock))
        elif pool in changed.new_cgroups:
            out.append(A.RestartMaster("a new cgroup: only a new master joins it", pool, sock))
        elif changed.socket(layout.fpm_conf(pool)):
            out.append(A.RestartMaster("socket settings changed: FPM keeps its socket on reload",
                                       pool, sock))
        elif changed.file(layout.fpm_conf(pool)):
            out.append(A.ReloadMaster("pool config changed", pool, sock))
        elif pool in changed.jails:
            # running workers keep what they loaded from the old jail (gconv modules,
            # locales): a dropped feature would go on working in them
            out.append(A.ReloadMaster("jail changed: new workers see only the new jail", pool,
                                      sock))
    for pool in sorted(set(state.pools) - set(desired.pools)):
        out.append(A.StopMaster("pool no longer in the spec", pool))
    return out


def _program_actions(desired: Desired, acts: list[A.Action]) -> list[A.Action]:
    """Which supervisord programs apply updates (their config file was written or
    removed: pools' masters and phphost's own, like the exporter) and removes (masters
    stopped for good), whenever masters or program files change at all."""
    masters = [a for a in acts if isinstance(a, (A.StartMaster, A.RestartMaster,
                                                 A.ReloadMaster, A.StopMaster))]
    remove = tuple(sorted(layout.program_name(a.pool) for a in acts
                          if isinstance(a, A.StopMaster)))
    changed = tuple(p for p in _changed_programs(acts) if p not in remove)
    if not masters and not changed:
        return []
    # a rollback re-syncs these: the masters apply stops (remove) run again after it
    resync = tuple(sorted({*(layout.program_name(p) for p in desired.pools), *changed,
                           *remove}))
    return [A.UpdatePrograms("supervisord runs one program per master", changed, remove,
                             resync)]


def _changed_programs(acts: list[A.Action]) -> tuple[str, ...]:
    """Programs whose file in supervisord's conf.d changes (file NAME.conf holds
    [program:NAME], as phphost renders every one)."""
    prefix = layout.SUPERVISOR_CONF_DIR + "/"
    return tuple(sorted(
        a.path[len(prefix):-len(".conf")] for a in acts
        if isinstance(a, (A.WriteFile, A.RemoveFile)) and a.path.startswith(prefix)
        and a.path.endswith(".conf") and "/" not in a.path[len(prefix):]))


def _tls_actions(desired: Desired) -> list[A.Action]:
    return [A.CheckTls("configtest does not load certificates; apache2 exits on a bad one",
                       t.site, t.cert, t.key, t.chain) for t in desired.tls]


def _apache_actions(desired: Desired, facts: Facts, acts: list[A.Action]) -> list[A.Action]:
    mpm_switch = any(isinstance(a, A.ApacheModule) and a.module.startswith("mpm_") for a in acts)
    touched = any(isinstance(a, (A.WriteFile, A.RemoveFile, A.Symlink, A.ApacheModule))
                  and (not hasattr(a, "path") or a.path.startswith(layout.APACHE_DIR))
                  for a in acts)
    if not facts.apache_running:
        return [A.ReloadApache("apache2 is not running", restart=True)]
    if mpm_switch:
        return [A.ReloadApache("the MPM changes: a graceful reload cannot switch it", True)]
    if touched:
        return [A.ReloadApache("apache configuration changed")]
    return []


def _removed_users(desired: Desired, state: State, facts: Facts) -> list[A.RemoveUser]:
    """Pool runtime users of pools that left the spec. Tenant users stay (they own data)."""
    wanted = {u.name for u in desired.users}
    gone = (set(state.pool_users) & set(state.users)) - wanted
    return [A.RemoveUser("its pool left the spec", u) for u in sorted(gone) if u in facts.users]


def _next_state(desired: Desired, facts: Facts, state: State, removed: list[A.RemoveUser],
                scope: Scope | None) -> dict[str, list[str]]:
    nxt = StateBuilder()
    nxt.pools.update(desired.pools)
    nxt.sites.update(desired.sites)
    nxt.homes.update(desired.homes)
    nxt.files.update(f.path for f in desired.files)
    wanted_users = {u.name for u in desired.users}
    gone_pool_users = {a.name for a in removed}
    nxt.users.update(u for u in state.users if u in facts.users and u not in gone_pool_users)
    nxt.users.update(u for u in wanted_users if u not in facts.users)
    nxt.pool_users.update(u.name for u in desired.users if u.system)
    if scope is not None:       # what is outside the scope stays recorded as it is
        nxt.pools.update(p for p in state.pools if p not in scope.pools)
        nxt.sites.update(s for s in state.sites if s not in scope.sites)
        nxt.homes.update(h for h in state.homes if h not in scope.homes)
        nxt.files.update(f for f in state.files if f in scope.foreign_files)
        nxt.pool_users.update(u for u in state.pool_users if u not in scope.users)
    nxt.groups.update(g for g in state.groups if g in facts.groups)
    nxt.groups.update(g for g in desired.groups if g not in facts.groups)
    return nxt.build().to_json()
