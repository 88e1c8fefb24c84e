"""What the audit rules look at, read from the host. Read-only: stat, file reads,
bounded directory walks and a few `-v`/`-M` commands; never a change, never traffic."""

from __future__ import annotations

import contextlib
import glob
import grp
import itertools
import os
import posixpath
import pwd
import re
import stat
from dataclasses import dataclass, field
from datetime import date

from phphost import layout, safefs
from phphost.audit import apacheconf, fpmconf, htaccess_probe
from phphost.audit.apacheconf import Directive
from phphost.audit.fpmconf import FpmPool
from phphost.errors import HostError
from phphost.facts import nftables
from phphost.facts.accounts import AccountFacts, read_model_accounts
from phphost.facts.gather import read_programs
from phphost.facts.parse import ProgramStatus
from phphost.files import read_text
from phphost.plan.desired import desired_state
from phphost.runner import run
from phphost.spec.model import Model

APACHE_ROOT_CONF = f"{layout.APACHE_DIR}/apache2.conf"
MAX_TREE_ENTRIES = 200_000      # per tenant home
MAX_JAIL_ENTRIES = 50_000       # per jail
MAX_LISTED = 200                # offending paths kept per kind
MAX_HTACCESS = 500              # .htaccess files read per tenant home
MAX_HTACCESS_BYTES = 64 * 1024  # of each
_MASTER_TITLE = re.compile(r"php-fpm: master process \((.+)\)")


@dataclass(frozen=True)
class PathStat:
    path: str
    kind: str = "missing"       # socket, dir, file, link, other, missing
    uid: int = -1
    gid: int = -1
    owner: str = ""
    group: str = ""
    mode: int = 0               # permission bits with setuid/setgid/sticky


@dataclass(frozen=True)
class FpmMaster:
    config: str
    managed: bool               # one of phphost's masters
    running: bool
    ini: dict[str, str] = field(default_factory=dict)   # opcache.* it runs with


@dataclass(frozen=True)
class TreeScan:
    tenant: str
    home: PathStat
    world_writable: tuple[str, ...] = ()
    world_readable: tuple[str, ...] = ()
    group_writable: tuple[str, ...] = ()
    entries: int = 0
    truncated: bool = False
    # (path, text) of the .htaccess files in the home (at most MAX_HTACCESS, each cut at
    # MAX_HTACCESS_BYTES), read without following symlinks; PHA027 checks their lines
    htaccess: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class JailScan:
    root: str
    chain: tuple[PathStat, ...] = ()    # "/" down to the jail root
    setid: tuple[str, ...] = ()         # setuid/setgid files inside
    open_dirs: tuple[str, ...] = ()     # group- or world-writable dirs inside
    truncated: bool = False


@dataclass(frozen=True)
class AuditFacts:
    fpm_pools: tuple[FpmPool, ...] = ()
    masters: tuple[FpmMaster, ...] = ()
    paths: dict[str, PathStat] = field(default_factory=dict)    # sockets and their dirs
    trees: tuple[TreeScan, ...] = ()
    jails: tuple[JailScan, ...] = ()
    apache: tuple[Directive, ...] = ()
    apache_modules: frozenset[str] = frozenset()     # "proxy_fcgi_module", ...
    apache_version: str = ""                         # "Apache/2.4.71 (Debian)"
    php_versions: dict[str, str] = field(default_factory=dict)   # binary -> "PHP 8.2.x ..."
    programs: dict[str, ProgramStatus] = field(default_factory=dict)
    supervisor_running: bool = False
    files: dict[str, str | None] = field(default_factory=dict)  # phphost's files
    today: date = field(default_factory=date.today)
    accounts: AccountFacts = field(default_factory=AccountFacts)  # the spec's users/groups
    writable: dict[str, PathStat] = field(default_factory=dict)   # pools' writable dirs
    # every dir from / down to each tenant home, docroot and writable dir (lstat)
    walk: dict[str, PathStat] = field(default_factory=dict)
    # PHA023's behaviour probe of the installed apache2 (audit/htaccess_probe.py):
    # "allowed", "refused", "unknown: ..." or "" (not run: no site reads .htaccess)
    htaccess_probe: str = ""
    nft_checked: bool = False        # False: the network policy was not looked at
    nft_listing: str | None = None   # `nft list table inet phphost` (None: not loaded)


def gather(model: Model) -> AuditFacts:
    pools, masters = read_fpm()
    programs, sup_running = read_programs()
    return AuditFacts(
        fpm_pools=tuple(pools), masters=tuple(masters),
        paths=read_socket_paths(pools, model),
        trees=tuple(scan_tree(t.name, t.home) for t in model.tenants),
        jails=tuple(scan_jail(root) for root in jail_roots(model)),
        apache=tuple(apacheconf.load(APACHE_ROOT_CONF, read_text, glob.glob, layout.APACHE_DIR)),
        apache_modules=read_apache_modules(),
        apache_version=first_line(["apache2", "-v"]),
        php_versions={b: first_line([b, "-v"])
                      for b in sorted(glob.glob(layout.FPM_BINARIES_GLOB))},
        programs=programs, supervisor_running=sup_running,
        files={f.path: read_text(f.path) for f in desired_state(model).files},
        accounts=read_model_accounts(model),
        writable={w: path_stat(w) for p in model.pools for w in p.writable},
        walk=walk_stats(model),
        htaccess_probe=(htaccess_probe.probe() if any(s.allow_override for s in model.sites)
                        else ""),
        nft_checked=True,
        nft_listing=nftables.live(),
    )


# --- stat ---------------------------------------------------------------------------------


def _name(kind: str, ident: int) -> str:
    try:
        return pwd.getpwuid(ident).pw_name if kind == "user" else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"),
                       (stat.S_ISLNK, "link")):
        if test(mode):
            return name
    return "other"


def path_stat(path: str) -> PathStat:
    try:
        st = os.lstat(path)
    except OSError:
        return PathStat(path)
    return PathStat(path, _kind(st.st_mode), st.st_uid, st.st_gid, _name("user", st.st_uid),
                    _name("group", st.st_gid), stat.S_IMODE(st.st_mode))


def parents(path: str) -> list[str]:
    """'/', '/a', '/a/b' for '/a/b'."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def walk_paths(model: Model) -> list[str]:
    """Pure: every dir from / down to each tenant home, site docroot and writable dir."""
    ends = {t.home for t in model.tenants} | {w for p in model.pools for w in p.writable}
    ends |= {s.docroot for s in model.sites if s.docroot is not None}
    return sorted({q for end in ends for q in parents(end)})


def walk_stats(model: Model) -> dict[str, PathStat]:
    """lstat of walk_paths: a symlink anywhere on the way shows as kind "link"."""
    return {p: path_stat(p) for p in walk_paths(model)}


def read_socket_paths(pools: list[FpmPool], model: Model) -> dict[str, PathStat]:
    sockets = {p.socket for p in model.pools}
    sockets |= {lst.path for p in pools if (lst := fpmconf.listen_of(p.get("listen"))).path}
    paths = sockets | {posixpath.dirname(s) for s in sockets}
    return {p: path_stat(p) for p in sorted(paths)}


# --- FPM ----------------------------------------------------------------------------------


def read_fpm() -> tuple[list[FpmPool], list[FpmMaster]]:
    """Pools and masters: phphost's (one master per file) and the distribution's
    (/etc/php/V/fpm/php-fpm.conf with its pool.d)."""
    running = running_masters()
    pools: list[FpmPool] = []
    masters: list[FpmMaster] = []
    supervised = supervised_flags()
    for conf in sorted(glob.glob(f"{layout.FPM_CONF_DIR}/*.conf")):
        pools += fpmconf.parse_fpm(conf, read_text(conf) or "", conf)
        masters.append(FpmMaster(conf, True, conf in running, supervised.get(conf, {})))
    for base in sorted(glob.glob(layout.DEBIAN_FPM_GLOB)):
        master = f"{base}/php-fpm.conf"
        for conf in [master, *sorted(glob.glob(f"{base}/pool.d/*.conf"))]:
            pools += fpmconf.parse_fpm(conf, read_text(conf) or "", master)
        masters.append(FpmMaster(master, False, master in running, debian_opcache(base)))
    return pools, masters


def supervised_flags() -> dict[str, dict[str, str]]:
    """FPM config -> -d flags of the supervisord program that runs it."""
    out: dict[str, dict[str, str]] = {}
    for conf in sorted(glob.glob(f"{layout.SUPERVISOR_CONF_DIR}/*.conf")):
        command = fpmconf.supervisor_command(read_text(conf) or "")
        argv = command.split()
        for flag, arg in itertools.pairwise(argv):
            if flag in ("--fpm-config", "-y"):
                out[arg] = fpmconf.d_flags(command)
    return out


def debian_opcache(base: str) -> dict[str, str]:
    """opcache.* from the distribution master's php.ini and conf.d."""
    ini: dict[str, str] = {}
    for path in [f"{base}/php.ini", *sorted(glob.glob(f"{base}/conf.d/*.ini"))]:
        ini.update(fpmconf.ini_values(read_text(path) or "", "opcache."))
    return ini


def running_masters() -> set[str]:
    """Config files of running FPM masters, from their process titles."""
    found: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                title = fh.read(4096).replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        match = _MASTER_TITLE.search(title)
        if match:
            found.add(match.group(1))
    return found


# --- trees --------------------------------------------------------------------------------


Walked = list[tuple[str, os.stat_result]]


def _walk(top: str, limit: int, texts: list[tuple[str, str]] | None = None,
          ) -> tuple[Walked, bool]:
    """(path, lstat) of everything below top, at most limit entries. Walked by
    directory descriptor (safefs.fwalk), never through a symlink or into a FIFO a
    tenant swapped in.
    With `texts`, the .htaccess files met on the way are read into it."""
    out: Walked = []
    for dirpath, dirnames, filenames, dfd in safefs.fwalk(top):
        for name in [*dirnames, *filenames]:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            out.append((os.path.join(dirpath, name), st))
            if texts is not None and name == ".htaccess" and stat.S_ISREG(st.st_mode) \
                    and len(texts) < MAX_HTACCESS:
                text = read_htaccess(dfd, name)
                if text is not None:
                    texts.append((os.path.join(dirpath, name), text))
            if len(out) >= limit:
                return out, True
    return out, False


def read_htaccess(dir_fd: int, name: str) -> str | None:
    """A tenant's file in an open directory, as text: opened with O_NOFOLLOW and
    O_NONBLOCK (a FIFO swapped in does not hang the audit), only a regular file,
    at most MAX_HTACCESS_BYTES. None when it cannot be read."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, MAX_HTACCESS_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def scan_tree(tenant: str, home: str, limit: int = MAX_TREE_ENTRIES) -> TreeScan:
    texts: list[tuple[str, str]] = []
    entries, truncated = _walk(home, limit, texts)
    ww: list[str] = []
    wr: list[str] = []
    gw: list[str] = []
    for path, st in entries:
        if stat.S_ISLNK(st.st_mode):
            continue
        for bit, bucket in ((stat.S_IWOTH, ww), (stat.S_IROTH, wr), (stat.S_IWGRP, gw)):
            if st.st_mode & bit and len(bucket) < MAX_LISTED:
                bucket.append(path)
    return TreeScan(tenant, path_stat(home), tuple(ww), tuple(wr), tuple(gw), len(entries),
                    truncated, tuple(texts))


def jail_roots(model: Model) -> list[str]:
    roots = {layout.jail_root(p.name) for p in model.pools if p.jail.enabled}
    with contextlib.suppress(OSError):
        roots |= {layout.jail_root(n) for n in os.listdir(layout.JAILS_DIR)}
    return sorted(roots)


def _gid(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _jail_mailer(st: os.stat_result, mail_gid: int | None) -> bool:
    """The setgid sendmail of the 'mail' feature (docs/network.md): root's, setgid to
    phphost-mail and nothing more, not setuid."""
    return (mail_gid is not None and mail_gid != 0 and st.st_uid == 0
            and st.st_gid == mail_gid and not st.st_mode & stat.S_ISUID
            and not st.st_mode & 0o222)


def scan_jail(root: str, limit: int = MAX_JAIL_ENTRIES) -> JailScan:
    entries, truncated = _walk(root, limit)
    mail_gid = _gid(layout.MAIL_GROUP)
    setid = [p for p, st in entries if stat.S_ISREG(st.st_mode)
             and st.st_mode & (stat.S_ISUID | stat.S_ISGID)
             and not _jail_mailer(st, mail_gid)]
    open_dirs = [p for p, st in entries if stat.S_ISDIR(st.st_mode) and (
        st.st_mode & stat.S_IWGRP or (st.st_mode & stat.S_IWOTH
                                      and not st.st_mode & stat.S_ISVTX))]
    chain = tuple(path_stat(p) for p in parents(root))
    return JailScan(root, chain, tuple(setid[:MAX_LISTED]), tuple(open_dirs[:MAX_LISTED]),
                    truncated)


# --- commands -----------------------------------------------------------------------------


def first_line(argv: list[str]) -> str:
    """First line a version command prints ('' when it cannot run)."""
    try:
        proc = run(argv, check=False, timeout=30)
    except HostError:
        return ""
    text = proc.stdout.strip() or proc.stderr.strip()
    return text.splitlines()[0] if proc.returncode == 0 and text else ""


def read_apache_modules() -> frozenset[str]:
    """Loaded modules from `apache2ctl -M` (' proxy_module (shared)')."""
    try:
        proc = run(["apache2ctl", "-M"], check=False, timeout=60)
    except HostError:
        return frozenset()
    return parse_modules(proc.stdout)


def parse_modules(text: str) -> frozenset[str]:
    return frozenset(m.group(1) for m in re.finditer(r"^\s+(\w+_module) \(", text, re.M))
