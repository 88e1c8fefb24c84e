"""Read the host's actual state for the things a Desired (plan.desired, as a Wanted)
and the last State name. Read-only: never changes the host."""

from __future__ import annotations

import contextlib
import os
import threading
import xmlrpc.client
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from phphost import layout, safefs
from phphost.errors import PlanError
from phphost.facts import cgroups, nftables
from phphost.facts.accounts import AccountsDb, accounts_db
from phphost.facts.parse import (
    ProgramStatus,
    parse_apache_modules,
    parse_supervisorctl_status,
)
from phphost.facts.state import State
from phphost.facts.supervisorrpc import program_state, program_states, supervisord_pid
from phphost.facts.supervisorrpc import running as supervisor_running
from phphost.files import read_text, sha256_file
from phphost.render.cgroups import CgroupHost, pool_cgroup
from phphost.runner import run
from phphost.spec.limits import Limits


@dataclass(frozen=True)
class DirFact:
    owner: str
    group: str
    mode: int          # permission bits incl. setgid


@dataclass(frozen=True)
class Wanted:
    """What to read: the paths and identities a Desired names (Desired.wanted())."""

    files: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    acls: tuple[tuple[str, bool], ...] = ()     # (path, recursive)
    grants: tuple[tuple[str, tuple[str, ...]], ...] = ()   # recursive grants: (path, entries)
    tls: tuple[tuple[str, str, str, str | None], ...] = ()   # (site, cert, key, chain)
    sockets: tuple[tuple[str, str], ...] = ()   # (pool, socket path)
    limits: tuple[tuple[str, Limits], ...] = ()   # (pool, its resource limits)
    leave: frozenset[str] = frozenset()         # files a tenant-limited plan leaves alone


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
    nft_live: str | None = None      # `nft list table inet phphost` (None: no table)
    nft_loaded: str | None = None    # sha256 of that listing recorded by the last load
    cgroups: CgroupHost = field(default_factory=CgroupHost)
    cgroup_files: dict[str, str | None] = field(default_factory=dict)  # limit file -> value
    cgroup_dirs: frozenset[str] = frozenset()      # existing pool cgroup directories
    cgroup_pools: frozenset[str] = frozenset()     # pools with a cgroup on the host


def _read_file(path: str) -> str | None:
    """A managed file's content; the launcher's source counts as absent while the
    binary apply builds from it is not the one apply built (so the plan writes and
    builds both)."""
    if path == layout.LAUNCHER_SOURCE and not launcher_as_built():
        return None
    return read_text(path)


def launcher_as_built(binary: str = layout.LAUNCHER,
                      record: str = layout.LAUNCHER_DIGEST) -> bool:
    """Is the launcher binary there, with the sha256 apply recorded when it built it?
    A missing or different record (a binary built by hand, or weakened by a test that
    was interrupted) means no: apply rebuilds it from the installed source."""
    try:
        with open(record, encoding="ascii") as fh:
            want = fh.read().strip()
        return bool(want) and sha256_file(binary) == want
    except (OSError, UnicodeDecodeError):
        return False


class ProgramsQuery:
    """What a plan needs of supervisord (which pools' programs run), started now in a
    thread and collected by gather(). Read from /proc (running_launchers): supervisord's
    own listing of every program (getAllProcessInfo, 1 MB at 1,000 pools) costs it 0.5 s
    of CPU, and 5-10 s when the tenants keep both CPUs busy, since supervisord runs at
    an ordinary priority while the plan waits (docs/scale.md). The answer is as of a
    moment earlier; no fact of a plan is taken at one instant anyway."""

    def __init__(self, expect: Collection[str] = ()) -> None:
        """expect: the programs of the plan's pools (running_launchers)."""
        self._expect = tuple(expect)
        self._answer: tuple[dict[str, ProgramStatus], bool] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="supervisord-query",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._answer = running_launchers(self._expect)
        except BaseException as err:     # re-raised where the answer is wanted
            self._error = err

    def result(self) -> tuple[dict[str, ProgramStatus], bool]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer


def gather(wanted: Wanted, state: State, query: ProgramsQuery | None = None,
           early: Callable[[], dict[str, Any]] | None = None) -> Facts:
    """query: supervisord's answer asked for earlier (ProgramsQuery). early:
    read_early(wanted.limits) as read elsewhere meanwhile (the plan's child process),
    asked for once the files, links and programs are read (the checks of directories,
    TLS files and sockets follow it); its "dir_facts" (DirFacts), when they cover the
    directories wanted, stand for gather's own read_dirs."""
    # the launcher binary is built from LAUNCHER_SOURCE, never read as a file
    paths = (set(wanted.files) | set(state.files)) - {layout.LAUNCHER} - wanted.leave
    users = set(wanted.users) | set(state.users)
    groups = set(wanted.groups) | set(state.groups)
    files = {p: _read_file(p) for p in sorted(paths)}
    links = {link: read_link(link) for link in wanted.links} | _state_links(state)
    programs, sup_running = query.result() if query is not None else read_programs()
    got = dict(read_early(wanted.limits) if early is None else early())
    pre = got.pop("dir_facts", None)
    unsafe: dict[str, str] = {}
    dirs, acls = _dirs_and_acls(wanted, pre if isinstance(pre, DirFacts) else None, unsafe)
    for docroot in (a for a, recursive in wanted.acls if recursive):
        check_real_path(docroot, unsafe)
    for path, entries in wanted.grants:
        if path in acls and path not in unsafe and not set(entries) <= acls[path]:
            check_hard_links(path, unsafe)     # the grant apply will make walks it
    for site, cert, key, chain in wanted.tls:
        check_tls(site, (cert, key, chain), unsafe)
    trusted: set[str] = set()          # socket directories found root-only (most share one)
    for pool, sock in wanted.sockets:
        if os.path.dirname(sock) not in trusted and check_socket_dir(pool, sock, unsafe):
            trusted.add(os.path.dirname(sock))
    return Facts(
        files=files,
        links=links,
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
        nft_loaded=nftables.loaded_digest(),
        **got,
    )


@dataclass(frozen=True)
class DirFacts:
    """read_dirs of some directories, read elsewhere meanwhile (the plan's child,
    cli/main.py): at 1,000 tenants a walk to 2,000 homes and docroots, a tenth of a
    one-pool change. `read`: the paths read for owner and mode; `acl_read`: those read
    for their ACL."""

    dirs: dict[str, DirFact | None]
    acls: dict[str, frozenset[str]]
    unsafe: dict[str, str]
    read: frozenset[str]
    acl_read: frozenset[str]


def read_dir_facts(paths: Iterable[str], acl_paths: Iterable[str]) -> DirFacts:
    paths, acl_paths = list(paths), list(acl_paths)
    unsafe: dict[str, str] = {}
    dirs, acls = read_dirs(paths, acl_paths, unsafe)
    return DirFacts(dirs, acls, unsafe, frozenset(paths), frozenset(acl_paths))


def _dirs_and_acls(wanted: Wanted, pre: DirFacts | None, unsafe: dict[str, str]
                   ) -> tuple[dict[str, DirFact | None], dict[str, frozenset[str]]]:
    """What read_dirs gives for the wanted directories: taken from `pre` when it read
    every one of them (and the ACL of each whose ACL is wanted), else read now."""
    acl_paths = [a for a, _ in wanted.acls]
    if pre is None or not (set(wanted.dirs) <= pre.read and set(acl_paths) <= pre.acl_read):
        return read_dirs(wanted.dirs, acl_paths, unsafe)
    want = set(wanted.dirs) | set(acl_paths)
    unsafe.update((p, why) for p, why in pre.unsafe.items() if p in want)
    return ({p: pre.dirs.get(p) for p in wanted.dirs},
            {a: pre.acls[a] for a in acl_paths if a in pre.acls})


def read_early(limits: Iterable[tuple[str, Limits]]) -> dict[str, Any]:
    """The Facts fields that need nothing of the Desired state but the pools'
    limits (the plan reads them in a child process: cli/main.py _plan)."""
    return {**read_cgroups(limits), "nft_live": nftables.live()}


def read_cgroups(limits: Iterable[tuple[str, Limits]]) -> dict[str, Any]:
    """The Facts fields of the pools' cgroups: the host's layout, what each limit
    file holds now, which cgroup directories exist, which pools have a cgroup."""
    host = cgroups.detect()
    values: dict[str, str | None] = {}
    dirs: set[str] = set()
    for pool, lim in limits:
        try:
            cg = pool_cgroup(pool, lim, host)
        except PlanError:
            continue            # the planner refuses it, naming the key
        if cg is not None:
            values.update(cgroups.current(cg))
            dirs.update(set(cg.dirs) - set(cgroups.missing_dirs(cg)))
    return {"cgroups": host, "cgroup_files": values, "cgroup_dirs": frozenset(dirs),
            "cgroup_pools": cgroups.existing_pools(host)}


def read_jail_dirs() -> frozenset[str]:
    try:
        return frozenset(n for n in os.listdir(layout.JAILS_DIR)
                         if os.path.isdir(layout.jail_root(n)))
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
    db = accounts_db()
    pw = db.users.get(user)
    if pw is None:
        return None
    gr = db.by_gid.get(pw.pw_gid)
    return gr.gr_name if gr is not None else str(pw.pw_gid)


def group_exists(name: str) -> bool:
    return name in accounts_db().groups


def _name(lookup: str, ident: int, db: AccountsDb | None = None) -> str:
    """The user's or group's name (its number where it has none). db: one read of
    the account files for many lookups (each accounts_db() stats both files)."""
    db = db or accounts_db()
    if lookup == "user":
        pw = db.by_uid.get(ident)
        return pw.pw_name if pw is not None else str(ident)
    gr = db.by_gid.get(ident)
    return gr.gr_name if gr is not None else str(ident)


def read_dirs(paths: Iterable[str], acl_paths: Iterable[str], unsafe: dict[str, str]
              ) -> tuple[dict[str, DirFact | None], dict[str, frozenset[str]]]:
    """read_dir of each of paths, and read_acl of each of acl_paths that exists (a
    directory in both is walked to once)."""
    paths, acl_paths = list(paths), list(acl_paths)
    want_acl = set(acl_paths)
    read: dict[str, tuple[DirFact | None, frozenset[str] | None]] = {}
    db = accounts_db()
    with safefs.DirOpener() as opener:      # the homes share their root-owned parents
        for path in sorted(set(paths) | want_acl):
            read[path] = _read_dir_acl(opener, path, path in want_acl, unsafe, db)
    acls = {a: acl for a in acl_paths if (acl := read[a][1]) is not None
            and read[a][0] is not None}
    return {p: read[p][0] for p in paths}, acls


def _read_dir_acl(opener: safefs.DirOpener, path: str, acl: bool, unsafe: dict[str, str],
                  db: AccountsDb) -> tuple[DirFact | None, frozenset[str] | None]:
    """read_dir and (acl: True) read_acl of one directory, through one descriptor."""
    try:
        fd = opener.open_dir(path)
    except FileNotFoundError:
        return None, None
    except safefs.UnsafePath as e:
        unsafe[path] = e.problem
        return DirFact("?", "?", -1), frozenset() if acl else None
    try:
        st = safefs.dir_state_of(fd)
        entries = _named_entries(fd, db) if acl else None
    finally:
        os.close(fd)
    return DirFact(_name("user", st.uid, db), _name("group", st.gid, db), st.mode), entries


def _named_entries(fd: int, db: AccountsDb) -> frozenset[str]:
    try:
        return safefs.named_entries(fd, lambda kind, ident: _name(kind, ident, db))
    except OSError:
        return frozenset()


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


def check_hard_links(top: str, unsafe: dict[str, str]) -> None:
    """The recursive ACL grant refuses a hard link to a file someone outside the
    tree owns (it would change that file's ACL): find it at plan time, by the same
    descriptor walk, so the refusal comes before anything changes."""
    try:
        for _rel, _fd in safefs.walk_tree(top):
            pass
    except safefs.UnsafePath as e:
        unsafe[e.path] = e.problem
    except OSError as e:
        unsafe[top] = f"cannot be walked ({e.strerror})"


def check_tls(site: str, paths: tuple[str | None, ...], unsafe: dict[str, str]) -> None:
    """apache2 (root) opens TLS files by name at every reload: each must be root's,
    in directories only root can write. A missing file is left to apply's TLS check
    (which also parses the PEMs)."""
    for path in paths:
        if path is None:
            continue
        try:
            safefs.read_file(path, root_only=True)
        except FileNotFoundError:
            continue
        except safefs.UnsafePath as e:
            unsafe[path] = (f"(TLS file of site {site}) {e.problem}; keep TLS files in a "
                            "root-only place such as /etc/ssl/private or /etc/letsencrypt")
        except OSError as e:
            unsafe[path] = f"(TLS file of site {site}) cannot be read ({e.strerror})"


def check_socket_dir(pool: str, socket: str, unsafe: dict[str, str]) -> bool:
    """php-fpm's master (root) unlinks, chowns and chmods its listen socket by name:
    the socket's directory must be root's and writable only by root, reached without
    an untrusted symlink. phphost's own socket dir is made by apply (root 0755).
    True: the directory is trusted (another socket in it needs no second look)."""
    directory = os.path.dirname(socket)
    if directory == layout.RUN_DIR and safefs.lstat(directory) is None:
        return False
    try:
        safefs.require_trusted_dir(directory)
        return True
    except FileNotFoundError:
        unsafe[socket] = (f"(socket of pool {pool}) its directory {directory} does not exist; "
                          "create it owned by root, mode 0755, or leave `socket` out")
    except safefs.UnsafePath as e:
        unsafe[socket] = (f"(socket of pool {pool}) {e.path} {e.problem}: php-fpm, as root, "
                          "unlinks and chowns the socket by name. Leave `socket` out (default "
                          f"{layout.default_socket(pool)}) or use a root-only directory")
    return False


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
    try:
        return program_states(), True
    except OSError:         # no socket, refused: supervisord is not running
        return {}, False
    except xmlrpc.client.Error:
        pass                # let supervisorctl say what it makes of it
    proc = run(["supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF, "status"], check=False)
    if "refused connection" in proc.stdout or "no such file" in proc.stdout.lower():
        return {}, False
    return parse_supervisorctl_status(proc.stdout), True


CONFIRM_LIMIT = 16      # more programs seen down than this: one listing, not one ask each


def running_launchers(expect: Collection[str] = (), proc: str = "/proc"
                      ) -> tuple[dict[str, ProgramStatus], bool]:
    """The pools' programs that run now, as read_programs() shows them RUNNING or
    STARTING (a plan takes both as running), and whether supervisord runs.
    supervisord is asked only for its pid; its children are read from /proc: a child
    running phphost's launcher (every pool's program, render/fpm.py) with `--pool NAME`
    is program NAME's. A tenant cannot make a process supervisord's child.

    /proc can miss a child (a `children` file read while a sibling exits skips the next
    entry; a program between supervisord's fork and exec), and a pool seen down gets a
    start, not the reload its changed files need. So each program of `expect` (the
    plan's pools) not seen is asked of supervisord by name (none when every pool runs),
    or, past CONFIRM_LIMIT of them, in one listing."""
    if not os.path.exists(layout.SUPERVISOR_MAIN_CONF):
        return {}, False
    try:
        pid = supervisord_pid()
    except OSError:         # no socket, refused: supervisord is not running
        return {}, False
    except xmlrpc.client.Error:
        programs, up = read_programs()
        return {n: p for n, p in programs.items() if p.state in RUNNING_STATES}, up
    found: dict[str, ProgramStatus] = {}
    for child in _all_children(pid, proc):
        pool = launcher_pool(child, pid, proc)
        if pool is not None:
            name = layout.program_name(pool)
            found[name] = ProgramStatus(name, "RUNNING", child)
    return found | _confirmed([n for n in expect if n not in found]), True


RUNNING_STATES = ("RUNNING", "STARTING")


def _confirmed(missing: list[str]) -> dict[str, ProgramStatus]:
    """Those of `missing` that supervisord says run after all."""
    if len(missing) > CONFIRM_LIMIT:
        listed = read_programs()[0]
        answers = [listed.get(n) for n in missing]
    else:
        answers = [read_program(n) for n in missing]
    return {st.name: st for st in answers if st is not None and st.state in RUNNING_STATES}


def _all_children(pid: int, proc: str) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"{proc}/{pid}/task"):
            text = read_text(f"{proc}/{pid}/task/{task}/children") or ""
            out += [int(x) for x in text.split() if x.isdigit()]
    return out


def launcher_pool(pid: int, parent: int, proc: str = "/proc") -> str | None:
    """The pool a process runs phphost's launcher for (its `--pool NAME`), None when
    it runs something else, is not `parent`'s child or is gone. Its executable, command
    line and parent are read through one descriptor of its /proc directory, so all
    three are of the same process even if its pid is reused meanwhile."""
    try:
        fd = os.open(f"{proc}/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        exe = os.readlink("exe", dir_fd=fd).removesuffix(" (deleted)")    # apply rebuilt it
        argv = _read_at(fd, "cmdline").split(b"\0")
        ppid = _read_at(fd, "stat").rpartition(b")")[2].split()[1:2]
    except (OSError, IndexError):
        return None
    finally:
        os.close(fd)
    if exe != layout.LAUNCHER or ppid != [str(parent).encode()] or len(argv) < 3 \
            or argv[1] != b"--pool":
        return None
    return argv[2].decode("utf-8", "replace")


def _read_at(dir_fd: int, name: str, limit: int = 4096) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_program(name: str) -> ProgramStatus | None:
    """supervisord's view of one program (None: supervisord has no such program or
    is not running): one small request, where read_programs lists every program."""
    if not os.path.exists(layout.SUPERVISOR_MAIN_CONF):
        return None
    try:
        return program_state(name)
    except OSError:
        return None
    except xmlrpc.client.Error:
        return read_programs()[0].get(name)


def supervisord_running() -> bool:
    return os.path.exists(layout.SUPERVISOR_MAIN_CONF) and supervisor_running()


def fpm_master_pid(launcher_pid: int) -> int | None:
    """Host pid of the FPM master a launcher started (its only child)."""
    text = read_text(f"/proc/{launcher_pid}/task/{launcher_pid}/children")
    pids = (text or "").split()
    return int(pids[0]) if pids else None


def child_count(pid: int) -> int | None:
    """How many children pid has (a master: its workers); None when it is gone."""
    text = read_text(f"/proc/{pid}/task/{pid}/children")
    return None if text is None else len(text.split())


def pool_asleep(launcher_pid: int | None) -> bool:
    """A running launcher without a master: a socket-activated pool asleep (its
    socket bound, no FPM process). Read from /proc: nothing is asked of the pool."""
    return launcher_pid is not None and os.path.exists(f"/proc/{launcher_pid}") \
        and fpm_master_pid(launcher_pid) is None


def apache_running() -> bool:
    text = read_text(layout.APACHE_PID_FILE)
    if not text or not text.strip().isdigit():
        return False
    return os.path.exists(f"/proc/{int(text.strip())}")


def apache_parent() -> int | None:
    """The pid of apache2's parent from its pid file, when that process runs
    layout.APACHE_BINARY (a stale pid file whose pid another program got: None)."""
    text = read_text(layout.APACHE_PID_FILE)
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return pid if exe == layout.APACHE_BINARY else None
