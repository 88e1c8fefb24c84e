"""Read the host's actual state for the things a Desired (and the last State)
names. Read-only: never changes the host."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, field
from typing import Any

from phphost import layout, safefs
from phphost.errors import PlanError
from phphost.facts.parse import (
    ProgramStatus,
    parse_apache_modules,
    parse_supervisorctl_status,
)
from phphost.facts.state import State
from phphost.host import cgroups
from phphost.host.files import read_text
from phphost.host.runner import run
from phphost.jail.build import JAILS_DIR
from phphost.plan.cgroups import CgroupHost, pool_cgroup
from phphost.plan.desired import Desired


@dataclass(frozen=True)
class DirFact:
    owner: str
    group: str
    mode: int          # permission bits incl. setgid


@dataclass(frozen=True)
class Facts:
    files: dict[str, str | None] = field(default_factory=dict)
    links: dict[str, str | None] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)       # user -> primary group name
    groups: frozenset[str] = frozenset()
    dirs: dict[str, DirFact | None] = field(default_factory=dict)
    acls: dict[str, frozenset[str]] = field(default_factory=dict)
    modules: frozenset[str] = frozenset()
    programs: dict[str, ProgramStatus] = field(default_factory=dict)
    supervisor_running: bool = False
    apache_running: bool = False
    jails: frozenset[str] = frozenset()    # pools with a jail directory on disk
    unsafe: dict[str, str] = field(default_factory=dict)   # path -> why phphost won't touch it
    cgroups: CgroupHost = field(default_factory=CgroupHost)
    cgroup_files: dict[str, str | None] = field(default_factory=dict)  # limit file -> value
    cgroup_dirs: frozenset[str] = frozenset()      # existing pool cgroup directories
    cgroup_pools: frozenset[str] = frozenset()     # pools with a cgroup on the host


def gather(desired: Desired, state: State) -> Facts:
    paths = {f.path for f in desired.files} | set(state.files)
    users = {u.name for u in desired.users} | set(state.users)
    groups = set(desired.groups) | set(state.groups)
    unsafe: dict[str, str] = {}
    dirs = {d.path: read_dir(d.path, unsafe) for d in desired.dirs}
    acls = {a.path: read_acl(a.path) for a in desired.acls
            if (dirs[a.path] if a.path in dirs else read_dir(a.path, unsafe)) is not None}
    for docroot in (a.path for a in desired.acls if a.recursive):
        check_real_path(docroot, unsafe)
    programs, sup_running = read_programs()
    return Facts(
        files={p: read_text(p) for p in sorted(paths)},
        links={link: read_link(link) for link, _ in desired.links} | _state_links(state),
        users={u: g for u in sorted(users) if (g := primary_group(u)) is not None},
        groups=frozenset(g for g in groups if group_exists(g)),
        dirs=dirs,
        acls=acls,
        modules=read_modules(),
        programs=programs,
        supervisor_running=sup_running,
        apache_running=apache_running(),
        jails=read_jail_dirs(),
        unsafe=unsafe,
        **_cgroup_facts(desired),
    )


def _cgroup_facts(desired: Desired) -> dict[str, Any]:
    host = cgroups.detect()
    values: dict[str, str | None] = {}
    dirs: set[str] = set()
    for pool, lim in desired.limits:
        try:
            cg = pool_cgroup(pool, lim, host)
        except PlanError:
            continue            # the planner refuses it, naming the key
        if cg is not None:
            values.update(cgroups.current(cg))
            dirs.update(d for d in cg.dirs if d not in cgroups.missing_dirs(cg))
    return {"cgroups": host, "cgroup_files": values, "cgroup_dirs": frozenset(dirs),
            "cgroup_pools": cgroups.existing_pools(host)}


def read_jail_dirs() -> frozenset[str]:
    try:
        return frozenset(n for n in os.listdir(JAILS_DIR) if os.path.isdir(f"{JAILS_DIR}/{n}"))
    except FileNotFoundError:
        return frozenset()


def _state_links(state: State) -> dict[str, str | None]:
    return {layout.site_link(s): read_link(layout.site_link(s)) for s in state.sites}


def read_link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except (FileNotFoundError, OSError):
        return None


def primary_group(user: str) -> str | None:
    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _name(lookup: str, ident: int) -> str:
    try:
        return pwd.getpwuid(ident).pw_name if lookup == "user" else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def read_dir(path: str, unsafe: dict[str, str] | None = None) -> DirFact | None:
    """Owner and mode of a directory reached without following any untrusted
    symlink. A symlink or a non-directory there (or above it, in a tenant's tree) is
    recorded in `unsafe` (path -> problem) and reported as DirFact("?", "?", -1)."""
    try:
        st = safefs.dir_state(path)
    except safefs.UnsafePath as e:
        if unsafe is not None:
            unsafe[path] = e.problem
        return DirFact("?", "?", -1)
    if st is None:
        return None
    return DirFact(_name("user", st.uid), _name("group", st.gid), st.mode)


def check_real_path(docroot: str, unsafe: dict[str, str]) -> None:
    """Apache follows no symlink at or above a docroot (render/apache.py), so a
    docroot reached through one, even root's own (/srv -> /data/srv), would answer 403:
    refuse it at plan time, naming the real path to declare instead."""
    if docroot in unsafe or not os.path.lexists(docroot):
        return
    real = os.path.realpath(docroot)
    if real != os.path.normpath(docroot):
        unsafe[docroot] = (f"resolves through a symlink to {real}; Apache follows no symlink at "
                           "or above a docroot, so declare the tenant's home by its real path")


def read_acl(path: str) -> frozenset[str]:
    """Named ACL entries of the directory at path, read from its descriptor."""
    try:
        with safefs.opened_dir(path) as fd:
            return safefs.named_entries(fd)
    except (OSError, safefs.UnsafePath):
        return frozenset()


def read_modules() -> frozenset[str]:
    try:
        names = os.listdir(f"{layout.APACHE_DIR}/mods-enabled")
    except FileNotFoundError:
        return frozenset()
    return parse_apache_modules(names)


def read_programs() -> tuple[dict[str, ProgramStatus], bool]:
    """supervisord's view of its programs; ({}, False) when it is not running."""
    if not os.path.exists(layout.SUPERVISOR_MAIN_CONF):
        return {}, False
    proc = run(["supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF, "status"], check=False)
    if "refused connection" in proc.stdout or "no such file" in proc.stdout.lower():
        return {}, False
    return parse_supervisorctl_status(proc.stdout), True


def fpm_master_pid(launcher_pid: int) -> int | None:
    """Host pid of the FPM master a launcher started (its only child)."""
    text = read_text(f"/proc/{launcher_pid}/task/{launcher_pid}/children")
    pids = (text or "").split()
    return int(pids[0]) if pids else None


def apache_running() -> bool:
    text = read_text("/run/apache2/apache2.pid")
    if not text or not text.strip().isdigit():
        return False
    return os.path.exists(f"/proc/{int(text.strip())}")
