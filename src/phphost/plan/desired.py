"""What the host should look like for a model: files, links, identities,
directories, ACLs, modules, masters. Pure."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from phphost import layout
from phphost.facts.gather import Wanted
from phphost.jail.manifest import Manifest
from phphost.jail.mounts import render_mounts_json
from phphost.launcher import program
from phphost.render.apache import (
    conflicting_modules,
    render_apache_global,
    render_site,
    required_modules,
)
from phphost.render.fpm import render_fpm_conf, render_limits_json
from phphost.render.logrotate import render_logrotate
from phphost.render.monitor import monitor_files
from phphost.render.nftables import parse_resolvers, render_nftables
from phphost.render.supervisor import render_supervisor_program
from phphost.spec.limits import Limits, pool_limits
from phphost.spec.model import Model
from phphost.spec.snapshot import dump_model

WEB_ACL_TRAVERSE = f"user:{layout.WEB_USER}:--x"
WEB_ACL_READ = (f"user:{layout.WEB_USER}:r-x", f"default:user:{layout.WEB_USER}:r-x")


@dataclass(frozen=True)
class DesiredFile:
    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class DesiredUser:
    name: str
    group: str
    home: str
    system: bool


@dataclass(frozen=True)
class DesiredDir:
    path: str
    owner: str
    group: str
    mode: int
    enforce: bool = True     # False: create when missing, never change an existing one


@dataclass(frozen=True)
class DesiredAcl:
    path: str
    entries: tuple[str, ...]
    recursive: bool = False


@dataclass(frozen=True)
class DesiredMaster:
    pool: str
    socket: str
    user: str
    group: str


@dataclass(frozen=True)
class DesiredTls:
    site: str
    cert: str
    key: str
    chain: str | None


@dataclass(frozen=True)
class Desired:
    files: tuple[DesiredFile, ...]
    links: tuple[tuple[str, str], ...]
    groups: tuple[str, ...]
    users: tuple[DesiredUser, ...]
    dirs: tuple[DesiredDir, ...]
    acls: tuple[DesiredAcl, ...]
    modules_on: tuple[str, ...]
    modules_off: tuple[str, ...]
    pools: tuple[str, ...]
    sites: tuple[str, ...]
    homes: tuple[str, ...]
    jailed: tuple[str, ...] = ()
    masters: tuple[DesiredMaster, ...] = ()
    tls: tuple[DesiredTls, ...] = ()
    limits: tuple[tuple[str, Limits], ...] = ()     # pool -> its resource limits

    def master(self, pool: str) -> DesiredMaster | None:
        return self._masters_by_pool.get(pool)

    @functools.cached_property
    def _masters_by_pool(self) -> dict[str, DesiredMaster]:
        """masters by pool (the planner asks for each pool's: a scan each was
        quadratic in the pools)."""
        return {m.pool: m for m in reversed(self.masters)}

    def wanted(self) -> Wanted:
        """What facts.gather must read for this Desired."""
        return Wanted(
            files=tuple(f.path for f in self.files),
            links=tuple(link for link, _ in self.links),
            users=tuple(u.name for u in self.users),
            groups=self.groups,
            dirs=tuple(d.path for d in self.dirs),
            acls=tuple((a.path, a.recursive) for a in self.acls),
            grants=tuple((a.path, a.entries) for a in self.acls if a.recursive),
            tls=tuple((t.site, t.cert, t.key, t.chain) for t in self.tls),
            sockets=tuple((m.pool, m.socket) for m in self.masters),
            limits=self.limits,
        )


def desired_state(model: Model, jails: Mapping[str, Manifest | str] | None = None,
                  resolvers: tuple[str, ...] | None = None,
                  foreign: Collection[str] = ()) -> Desired:
    """jails: the manifest of every jailed pool (facts.jails), for its mounts file
    (or that file as rendered, for a jail the plan trusted from its cache).
    resolvers: the nameservers the 'dns' feature may reach (None: the host's
    /etc/resolv.conf, the file the jails copy). foreign: per-pool and per-site files a
    tenant-limited run leaves alone (plan/scope.py): not rendered, nor read from the
    host (at 1,000 tenants, a third of a one-tenant plan)."""
    if resolvers is None:
        resolvers = read_resolvers()
    mail = any("mail" in p.jail.features for p in model.pools)
    return Desired(
        files=_files(model, jails or {}, resolvers, foreign),
        links=_links(model),
        groups=tuple(sorted({t.group for t in model.tenants}
                            | ({layout.MAIL_GROUP} if mail else set()))),
        users=_users(model),
        dirs=_dirs(model),
        acls=_acls(model),
        modules_on=required_modules(model),
        modules_off=conflicting_modules(),
        pools=tuple(p.name for p in model.pools),
        sites=tuple(s.name for s in model.sites),
        homes=tuple(t.home for t in model.tenants),
        jailed=tuple(p.name for p in model.pools if p.jail.enabled),
        masters=tuple(DesiredMaster(p.name, p.socket, p.user, model.tenant(p.tenant).group)
                      for p in model.pools),
        tls=tuple(DesiredTls(s.name, s.tls.cert, s.tls.key, s.tls.chain)
                  for s in model.sites if s.tls is not None),
        limits=tuple((p.name, pool_limits(p)) for p in model.pools),
    )


def launcher_source() -> str:
    """The master launcher's C source (launcher/launch.c), installed beside the binary
    apply builds from it (host/launcher.py)."""
    return program.source_text()


def _mount_files(jails: Mapping[str, Manifest | str]) -> list[DesiredFile]:
    return [DesiredFile(layout.mounts_file(pool),
                        jail if isinstance(jail, str) else render_mounts_json(jail), 0o600)
            for pool, jail in sorted(jails.items())]


def read_resolvers(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return parse_resolvers(fh.read())
    except OSError:
        return ()


def _files(model: Model, jails: Mapping[str, Manifest | str], resolvers: tuple[str, ...],
           foreign: Collection[str]) -> tuple[DesiredFile, ...]:
    files = [DesiredFile(layout.APACHE_GLOBAL_CONF, render_apache_global(model))]
    if model.pools:
        files.append(DesiredFile(layout.LAUNCHER_SOURCE, launcher_source(), 0o644))
        files.append(DesiredFile(layout.LOGROTATE_CONF, render_logrotate(model)))
        files.append(DesiredFile(layout.NFT_CONF, render_nftables(model, resolvers), 0o600))
    for pool in model.pools:
        if layout.fpm_conf(pool.name) in foreign:
            continue
        tenant = model.tenant(pool.tenant)
        files.append(DesiredFile(layout.fpm_conf(pool.name), render_fpm_conf(pool, tenant), 0o640))
        sup = render_supervisor_program(pool)
        files.append(DesiredFile(layout.supervisor_conf(pool.name), sup))
        files.append(DesiredFile(layout.limits_file(pool.name), render_limits_json(pool)))
    for site in model.sites:
        if layout.site_conf(site.name) not in foreign:
            files.append(DesiredFile(layout.site_conf(site.name), render_site(site, model)))
    files += [DesiredFile(*f) for f in monitor_files(model)]   # [exporter] (docs/monitoring.md)
    # what this apply brings about, for later tenant-limited runs (docs/spec.md)
    files.append(DesiredFile(layout.APPLIED_FILE, dump_model(model), 0o600))
    return tuple(files + _mount_files(jails))


def _links(model: Model) -> tuple[tuple[str, str], ...]:
    links = [(layout.APACHE_GLOBAL_LINK, "../conf-available/phphost.conf")]
    for site in model.sites:
        links.append((layout.site_link(site.name), f"../sites-available/phphost-{site.name}.conf"))
    return tuple(links)


def _users(model: Model) -> tuple[DesiredUser, ...]:
    users = [DesiredUser(t.user, t.group, t.home, False) for t in model.tenants]
    for pool in model.pools:
        group = model.tenant(pool.tenant).group
        users.append(DesiredUser(pool.user, group, "/nonexistent", True))
    return tuple(users)


def _between(top: str, path: str) -> list[str]:
    """Directories strictly below top down to and including path (both normalised
    absolute paths, as the spec holds them)."""
    base = top.rstrip("/")
    if path == top or not path.startswith(base + "/"):
        rel = posixpath.relpath(path, top)       # not below top: as relpath says
        if rel == ".":
            return []
        parts = rel.split("/")
        return [posixpath.join(top, *parts[: i + 1]) for i in range(len(parts))]
    out, at = [], len(base)
    while (at := path.find("/", at + 1)) != -1:
        out.append(path[:at])
    return [*out, path]


def _dirs(model: Model) -> tuple[DesiredDir, ...]:
    dirs: dict[str, DesiredDir] = {}
    for path, mode in ((layout.RUN_DIR, 0o755), (layout.LOG_DIR, 0o750), (layout.ETC, 0o755),
                       (layout.FPM_CONF_DIR, 0o755), (layout.STATE_DIR, 0o700)):
        dirs[path] = DesiredDir(path, "root", "root", mode)
    for tenant in model.tenants:
        for parent in _between("/", posixpath.dirname(tenant.home)):
            dirs.setdefault(parent, DesiredDir(parent, "root", "root", 0o755, enforce=False))
        dirs[tenant.home] = DesiredDir(tenant.home, tenant.user, tenant.group, 0o750)
    for site in model.sites:
        if site.tenant is None or site.docroot is None:
            continue
        tenant = model.tenant(site.tenant)
        for path in _between(tenant.home, site.docroot):
            dirs.setdefault(path, DesiredDir(path, tenant.user, tenant.group, 0o750, False))
    for pool in model.pools:
        tenant = model.tenant(pool.tenant)
        for path in pool.writable:
            for parent in _between(tenant.home, posixpath.dirname(path)):
                dirs.setdefault(parent, DesiredDir(parent, tenant.user, tenant.group, 0o750, False))
            dirs[path] = DesiredDir(path, tenant.user, tenant.group, 0o2770)
    return tuple(dirs.values())


def dir_paths(model: Model) -> tuple[list[str], list[str]]:
    """The directories whose owner and mode, and those whose ACL, a Desired of
    `model` names (Desired.wanted()'s dirs and acls), without rendering the rest."""
    return [d.path for d in _dirs(model)], [a.path for a in _acls(model)]


def _acls(model: Model) -> tuple[DesiredAcl, ...]:
    acls: dict[str, DesiredAcl] = {}
    for site in model.sites:
        if site.tenant is None or site.docroot is None:
            continue
        home = model.tenant(site.tenant).home
        for path in [home, *_between(home, site.docroot)[:-1]]:
            acls.setdefault(path, DesiredAcl(path, (WEB_ACL_TRAVERSE,)))
        acls[site.docroot] = DesiredAcl(site.docroot, WEB_ACL_READ, recursive=True)
    return tuple(acls.values())
