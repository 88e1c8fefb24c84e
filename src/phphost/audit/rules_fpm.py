"""Audit rules over PHP-FPM pools, masters and their supervision. Pure:
(model, facts) -> findings."""

from __future__ import annotations

import posixpath
import stat

from phphost import layout
from phphost.audit.facts import AuditFacts, FpmMaster, PathStat
from phphost.audit.findings import Finding, Severity
from phphost.audit.fpmconf import FpmPool, ini_on, is_loopback, listen_of
from phphost.spec.model import Model

WORLD_RW = stat.S_IROTH | stat.S_IWOTH
WEB_NAMES = (layout.WEB_USER, layout.WEB_GROUP)


def master_of(pool: FpmPool, facts: AuditFacts) -> FpmMaster | None:
    return next((m for m in facts.masters if m.config == pool.master), None)


def is_running(pool: FpmPool, facts: AuditFacts) -> bool:
    master = master_of(pool, facts)
    return master is not None and master.running


def _mode(text: str, default: int) -> int:
    try:
        return int(text, 8) if text else default
    except ValueError:
        return default


# --- PHA001 -------------------------------------------------------------------------------


def socket_permissions(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA001: who can connect to a pool's socket can run PHP as the pool's user
    (FastCGI lets the client set PHP_VALUE, e.g. auto_prepend_file)."""
    out: list[Finding] = []
    for pool in facts.fpm_pools:
        path = listen_of(pool.get("listen")).path
        if path:
            out += _socket_config(pool) + _socket_on_disk(pool, facts.paths.get(path), model)
            out += _socket_dir(pool, facts.paths.get(posixpath.dirname(path)))
    return out


def _socket_config(pool: FpmPool) -> list[Finding]:
    out = []
    mode = _mode(pool.get("listen.mode"), 0o660)
    if mode & WORLD_RW:
        out.append(Finding("PHA001", "critical", pool.where("listen.mode"),
                           f"pool {pool.name}: listen.mode {mode:04o} lets every local user "
                           "connect to the socket and run PHP as the pool's user",
                           "set listen.mode = 0660 with listen.group = www-data"))
    acl = {x.strip() for k in ("listen.acl_users", "listen.acl_groups")
           for x in pool.get(k).split(",") if x.strip()}
    if acl - set(WEB_NAMES):
        out.append(Finding("PHA001", "high", pool.where("listen.acl_users"),
                           f"pool {pool.name}: socket ACLs grant {', '.join(sorted(acl))}; "
                           "ACLs replace listen.owner/group/mode",
                           "grant only www-data, or drop listen.acl_* and use listen.group"))
    return out


def _socket_on_disk(pool: FpmPool, st: PathStat | None, model: Model) -> list[Finding]:
    if st is None or st.kind == "missing":
        if any(p.socket == pool.get("listen") for p in model.pools):
            return [Finding("PHA001", "medium", pool.get("listen"),
                            f"pool {pool.name}: the socket does not exist (master not running?)",
                            "run `phphost status`; `phphost apply` starts missing masters")]
        return []
    if st.mode & WORLD_RW:
        return [Finding("PHA001", "critical", st.path,
                        f"pool {pool.name}: socket mode {st.mode:04o} ({st.owner}:{st.group}) "
                        "lets every local user run PHP as the pool's user",
                        "chmod 0660 it and fix listen.mode in the pool's config")]
    if layout.WEB_GROUP not in (st.group, st.owner):
        return [Finding("PHA001", "high", st.path,
                        f"pool {pool.name}: socket is {st.owner}:{st.group} {st.mode:04o}; "
                        f"group {st.group} can run PHP as the pool's user, and Apache "
                        f"({layout.WEB_USER}) may not connect",
                        "listen.owner = root, listen.group = www-data, listen.mode = 0660")]
    if st.owner not in ("root", layout.WEB_USER):
        return [Finding("PHA001", "low", st.path,
                        f"pool {pool.name}: socket owned by {st.owner}, who can chmod it open",
                        "listen.owner = root")]
    return []


def _socket_dir(pool: FpmPool, st: PathStat | None) -> list[Finding]:
    if st is None or st.kind != "dir":
        return []
    if st.mode & stat.S_IWOTH or (st.mode & stat.S_IWGRP and st.group != "root"):
        return [Finding("PHA001", "high", st.path,
                        f"pool {pool.name}: the socket's directory is writable by "
                        f"{'everyone' if st.mode & stat.S_IWOTH else 'group ' + st.group} "
                        f"({st.mode:04o}): the socket can be replaced by another listener",
                        "make the directory root-owned, mode 0755")]
    return []


# --- PHA002 -------------------------------------------------------------------------------


def tcp_listeners(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA002: an FPM pool on TCP answers anyone who can reach the port (no Unix
    permissions); without listen.allowed_clients, any address."""
    del model
    out = []
    for pool in facts.fpm_pools:
        listen = listen_of(pool.get("listen"))
        if listen.kind != "tcp":
            continue
        where, shown = pool.where("listen"), pool.get("listen")
        allowed = pool.get("listen.allowed_clients")
        state = "" if is_running(pool, facts) else " (its master is not running: the file " \
            "takes effect at its next start)"
        if not allowed:
            severity: Severity = "high" if is_loopback(listen.host) else "critical"
            reach = "every local user" if severity == "high" else "every host that can reach it"
            out.append(Finding("PHA002", severity, where,
                               f"pool {pool.name} listens on TCP {shown} without "
                               f"listen.allowed_clients: {reach} can run PHP as "
                               f"{pool.get('user') or 'its user'}{state}",
                               "listen on a Unix socket (listen.owner root, listen.group "
                               "www-data, mode 0660), or remove the file if it is unused"))
        else:
            out.append(Finding("PHA002", "low", where,
                               f"pool {pool.name} listens on TCP {shown}, allowed clients "
                               f"{allowed}: every local user shares those addresses{state}",
                               "prefer a Unix socket with listen.group www-data, mode 0660"))
    return out


# --- PHA010 -------------------------------------------------------------------------------

_OPCACHE_NEEDED = (("opcache.validate_permission", "1"), ("opcache.validate_root", "1"))


def shared_opcache(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA010: pools of one master share one opcache segment: without
    validate_permission/validate_root one pool runs another's cached code."""
    del model
    out = []
    for master in facts.masters:
        pools = [p for p in facts.fpm_pools if p.master == master.config]
        if len(pools) < 2 or not ini_on(master.ini.get("opcache.enable"), True):
            continue
        names = ", ".join(p.name for p in pools)
        missing = [k for k, _ in _OPCACHE_NEEDED if not ini_on(master.ini.get(k), False)]
        if not master.ini.get("opcache.restrict_api"):
            missing.append("opcache.restrict_api")
        if missing:
            out.append(Finding("PHA010", "high", master.config,
                               f"master {master.config} runs pools {names} with one opcache "
                               f"and without {', '.join(missing)}: one pool can read or "
                               "replace another's cached scripts",
                               "one master per pool (phphost's default), or set "
                               "opcache.validate_permission=1, opcache.validate_root=1 and "
                               "opcache.restrict_api for this master"))
        elif len({p.get("user") for p in pools}) > 1:
            out.append(Finding("PHA010", "low", master.config,
                               f"master {master.config} runs pools {names} of different users "
                               "in one opcache; validate_root hashes only the inode of / and "
                               "does not separate jails",
                               "one master per pool"))
    return out


# --- PHA018 -------------------------------------------------------------------------------


def supervision(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA018: every pool's master runs under supervisord (a crash comes back)."""
    if not model.pools:
        return []
    if not facts.supervisor_running:
        return [Finding("PHA018", "high", layout.SUPERVISOR_MAIN_CONF,
                        "supervisord is not running: no pool master is supervised",
                        "start supervisord, then `phphost apply`")]
    out = []
    for pool in model.pools:
        name = layout.program_name(pool.name)
        prog = facts.programs.get(name)
        if prog is None or prog.state != "RUNNING":
            state = prog.state if prog else "not known to supervisord"
            # STARTING: within startsecs of a (re)start; a crash loop shows BACKOFF/FATAL
            out.append(Finding("PHA018", "info" if state == "STARTING" else "medium",
                               f"pools.{pool.name}",
                               f"master of pool {pool.name} ({name}) is {state}",
                               f"see {layout.LOG_DIR}/{pool.name}.supervisor.log; "
                               "`phphost apply` starts it"))
    return out


# --- PHA019 -------------------------------------------------------------------------------


def pool_identity(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA019: a pool's workers must not run as root, as the web server, or as a code
    owner (a tenant user can rewrite its own code from PHP)."""
    owners = {t.user for t in model.tenants}
    out = []
    for pool in facts.fpm_pools:
        user, group = pool.get("user"), pool.get("group") or pool.get("user")
        running = is_running(pool, facts)
        state = "" if running else " (its master is not running)"
        if user == "root":
            out.append(Finding("PHA019", "critical" if running else "medium", pool.where("user"),
                               f"pool {pool.name} runs PHP as root{state}",
                               "give the pool its own unprivileged user"))
        elif user in WEB_NAMES or group in WEB_NAMES:
            out.append(Finding("PHA019", "high" if running else "info", pool.where("user"),
                               f"pool {pool.name} runs PHP as {user}:{group}, the web server's "
                               f"identity, which reads every tenant's docroot{state}",
                               "give the pool its own user (as phphost pools have), or "
                               "remove the pool file if it is unused"))
        elif user in owners:
            out.append(Finding("PHA019", "medium", pool.where("user"),
                               f"pool {pool.name} runs as code owner {user}: PHP can rewrite "
                               f"the tenant's code{state}",
                               "run the pool as a separate user in the tenant's group"))
    return out
