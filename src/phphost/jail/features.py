"""Jail features: what PHP (and the programs it runs) opens after chroot.

Extensions and the libraries PHP itself links are loaded before FPM's workers chroot,
so they stay out of the jail. What is opened later goes in: zoneinfo, passwd/group,
NSS modules and resolver files, CA bundle, gconv, locales, /bin/sh, the mailer.
Pure: host facts come through the HostView.
"""

from __future__ import annotations

import bisect
import ipaddress
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, replace

from phphost import layout
from phphost.errors import PlanError
from phphost.jail.closure import (
    Closure,
    HostView,
    UntrustedProgram,
    first_existing,
    parse_ldd,
    resolve_chain,
)
from phphost.jail.manifest import (
    ALLOWED_DEVICES,
    DEVICE_MODE,
    POOL_DIR_MODE,
    Entry,
    Manifest,
    ManifestBuilder,
    generated,
    is_inside,
)
from phphost.launcher import mailer
from phphost.spec.model import JAIL_FEATURES, Pool, Tenant

ZONEINFO = "/usr/share/zoneinfo"
LOCALE_DIR = "/usr/lib/locale"
MYSQL_RUN_DIR = "/run/mysqld"
OPENSSL_CNF = "/etc/ssl/openssl.cnf"
# OpenSSL's compiled-in OPENSSLDIR on Debian: X509_get_default_cert_file() etc.
OPENSSLDIR_LINKS = ("/usr/lib/ssl/cert.pem", "/usr/lib/ssl/openssl.cnf")
SHELL = "/bin/dash"
BIN_SH = "/bin/sh"
NSS_FILES = ("libnss_files.so.2",)
# the jail's sendmail: setgid phphost-mail, the only group whose sockets reach the SMTP
# relay (render/nftables.py); PHP runs it but cannot take over its socket (docs/network.md)
MAILER_MODE = 0o2555
NSS_DNS = ("libnss_dns.so.2", "libnss_files.so.2", "libresolv.so.2")
DNS_FILES = ("/etc/resolv.conf", "/etc/hosts")
DNS_OPTIONAL = ("/etc/host.conf",)
# the system's shared PHP and JavaScript libraries (Debian's php-* and libjs-* packages):
# /usr/share/php (PHP's default include_path), /usr/share/javascript and every
# /usr/share/php-NAME (php-geshi, ...; not PHP's own /usr/share/php8.2-*)
SHARE = "/usr/share"
PHPLIBS_DIRS = ("/usr/share/php", "/usr/share/javascript")
PHPLIBS_PREFIX = "php-"


@dataclass(frozen=True)
class _Closed:
    """What one closure call put into a manifest, and every real path its `skip`
    was asked about (sorted): valid for another pool whose same-path mounts
    contain none of them."""

    entries: tuple[Entry, ...]
    asked: tuple[str, ...]


class ClosureCache:
    """The entries feature closures produced, shared by every pool planned in one run:
    1,000 pools with the base feature walk zoneinfo once, not 1,000 times. Only
    valid for one HostView (the host's files do not change during a plan)."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, ...], _Closed] = {}


class Context:
    def __init__(self, pool: Pool, tenant: Tenant, host: HostView,
                 sendmail: str | None = None, cache: ClosureCache | None = None) -> None:
        self.cache = cache
        self.pool = pool
        self.sendmail = sendmail or layout.SENDMAIL_BINARY
        self.tenant = tenant
        self.host = host
        self.out = ManifestBuilder(pool.name, host)
        self.features = pool.jail.features
        self.same_path_mounts = _same_path_mounts(pool, tenant)
        if _real_dir(host, ZONEINFO):       # base binds it (feature_base)
            self.same_path_mounts.append(ZONEINFO)
        if "phplibs" in self.features:
            self.same_path_mounts += phplibs_dirs(host)
        self._libdir: str | None = None

    def closure(self) -> Closure:
        return Closure(self.host, skip=self.provided_by_mount)

    def provided_by_mount(self, real: str) -> bool:
        """A host path inside a mount whose target is its own path is seen through
        the mount: it must not be copied into the jail."""
        return any(is_inside(real, top) for top in self.same_path_mounts)

    def _closed(self, key: tuple[str, ...], fill: Callable[[Closure], None]) -> None:
        """Run a closure walk (or reuse another pool's identical one) and put it."""
        why = key[1]
        hit = self.cache.found.get(key) if self.cache is not None else None
        if hit is not None and not self._mounted_any(hit.asked):
            for entry in hit.entries:
                self.out.put(entry)
            return
        asked: list[str] = []

        def skip(real: str) -> bool:
            asked.append(real)
            return self.provided_by_mount(real)

        closure = Closure(self.host, skip=skip)
        fill(closure)
        entries = self.out.closure_entries(closure, why)
        for entry in entries:
            self.out.put(entry)
        if self.cache is not None and not any(self.provided_by_mount(p) for p in asked):
            self.cache.found[key] = _Closed(tuple(entries), tuple(sorted(asked)))

    def _mounted_any(self, asked: tuple[str, ...]) -> bool:
        """Does a same-path mount of this pool contain any of these real paths?"""
        for top in self.same_path_mounts:
            at = bisect.bisect_left(asked, top)
            if at < len(asked) and is_inside(asked[at], top):
                return True
            prefix = top.rstrip("/") + "/"
            at = bisect.bisect_left(asked, prefix)
            if at < len(asked) and asked[at].startswith(prefix):
                return True
        return False

    def add_paths(self, why: str, *paths: str) -> None:
        def fill(closure: Closure) -> None:
            for path in paths:
                closure.add_path(path)
        self._closed(("paths", why, *paths), fill)

    def add_programs(self, why: str, *paths: str) -> None:
        def fill(closure: Closure) -> None:
            for path in paths:
                closure.add_program(path)
        self._closed(("programs", why, *paths), fill)

    def add_tree(self, why: str, top: str) -> None:
        self._closed(("tree", why, top), lambda closure: closure.add_tree(top))

    def libdir(self) -> str:
        """Where this host's libc lives (e.g. /lib/x86_64-linux-gnu): late-loaded
        libraries (NSS modules, libresolv) sit beside it."""
        if self._libdir is None:
            shell = resolve_chain(SHELL, self.host.readlink).real
            libs = parse_ldd(self.host.ldd(shell), shell)
            libc = next((p for p in libs if posixpath.basename(p).startswith("libc.so")), None)
            if libc is None:
                raise PlanError(f"cannot find libc in `ldd {shell}`; is this a glibc host?")
            self._libdir = posixpath.dirname(libc)
        return self._libdir

    def add_libs(self, why: str, names: tuple[str, ...]) -> None:
        self.add_programs(why, *(posixpath.join(self.libdir(), n) for n in names))

    def bin_sh_dir(self, why: str) -> str:
        """The real directory /bin/sh lives in (/usr/bin on a merged-/usr host)."""
        self.add_paths(why, posixpath.dirname(BIN_SH))
        return resolve_chain(posixpath.dirname(BIN_SH), self.host.readlink).real


def _real_dir(host: HostView, path: str) -> bool:
    """path is a directory reached through no symlink (the launcher binds nothing
    else: a symlinked /usr or /usr/share would stop every master)."""
    chain = resolve_chain(path, host.readlink)
    return not chain.links and chain.real == path and host.kind(path) == "dir"


def _same_path_mounts(pool: Pool, tenant: Tenant) -> list[str]:
    tops = [tenant.home, *pool.writable]
    tops += [m.source for m in pool.jail.mounts if m.source == m.target]
    if "mysql" in pool.jail.features:
        tops.append(MYSQL_RUN_DIR)
    return tops


def phplibs_dirs(host: HostView) -> tuple[str, ...]:
    """The shared library directories this host has (real directories only, not
    symlinks): what the phplibs feature binds."""
    named = [posixpath.join(SHARE, n) for n in host.listdir(SHARE)
             if n.startswith(PHPLIBS_PREFIX)] if host.kind(SHARE) == "dir" else []
    return tuple(p for p in (*PHPLIBS_DIRS, *named) if _real_dir(host, p))


# ---------------------------------------------------------------- features


def feature_base(ctx: Context) -> None:
    ctx.out.put(Entry("/", "dir", why="base"))
    # a private tmpfs (noexec, nosuid, nodev) the launcher mounts in the master's
    # namespace: bounded by tmp_size, gone with the master, no program runs from it
    ctx.out.put(Entry("/tmp", "mount", "tmpfs", why="base", writable=True, fstype="tmpfs",
                      size=ctx.pool.settings.tmp_size))
    for path, devnum in ALLOWED_DEVICES.items():
        ctx.out.put(Entry(path, "device", devnum, DEVICE_MODE, why="base"))
    # tzdata bound read-only at its own path, not linked in: it is 1,300 of a base
    # jail's 1,350 entries (35 s of 1,000 jail builds, most of every jail scan), and
    # a tzdata update reaches the jails at once
    if ZONEINFO in ctx.same_path_mounts:
        ctx.out.put(Entry(ZONEINFO, "mount", ZONEINFO, why="base"))
    else:           # not a real directory here: its files linked in, as any other tree
        ctx.add_tree("base", ZONEINFO)
    if ctx.host.kind("/etc/localtime") is not None:
        ctx.add_paths("base", "/etc/localtime")
    ctx.add_libs("base", NSS_FILES)
    ctx.out.put(generated("/etc/passwd", passwd_text(ctx.host, ctx.pool.user), "base"))
    ctx.out.put(generated("/etc/group", group_text(ctx.host, ctx.tenant.group), "base"))
    hosts = "files dns" if "dns" in ctx.features else "files"
    ctx.out.put(generated("/etc/nsswitch.conf",
                          f"passwd: files\ngroup: files\nhosts: {hosts}\n", "base"))


def passwd_text(host: HostView, user: str) -> str | None:
    """The jail's /etc/passwd: root and the pool user (None while it does not exist)."""
    pool_line = host.passwd_entry(user)
    if pool_line is None:
        return None
    root = host.passwd_entry("root") or "root:x:0:0:root:/root:/usr/sbin/nologin"
    return f"{root}\n{pool_line}\n"


def group_text(host: HostView, group: str) -> str:
    """The jail's /etc/group: root's and the tenant's group, without members."""
    lines = []
    for name in ("root", group):
        line = host.group_entry(name)
        if line is not None:
            # without members: the list would name users of other pools and tenants
            lines.append(":".join(line.split(":")[:3]) + ":")
    return "".join(f"{line}\n" for line in dict.fromkeys(lines))


def complete_identities(manifest: Manifest, host: HostView, user: str,
                        group: str) -> Manifest:
    """A manifest planned before its pool user (or tenant group) existed, completed
    now that they do: the user's ids and the jail's passwd and group files."""
    uid, gid = _ids(host.passwd_entry(user))
    texts = {"/etc/passwd": passwd_text(host, user), "/etc/group": group_text(host, group)}
    entries = tuple(generated(e.path, texts[e.path], e.why) if e.path in texts else e
                    for e in manifest.entries)
    mail_gid = mail_group_id(host)
    return replace(manifest, uid=uid, gid=gid, entries=entries, mail_gid=mail_gid)


def mail_group_id(host: HostView) -> int | None:
    """The gid of phphost-mail (None while it does not exist)."""
    line = host.group_entry(layout.MAIL_GROUP)
    fields = line.split(":") if line else []
    if len(fields) < 3 or not fields[2].isdigit():
        return None
    return int(fields[2])


def feature_dns(ctx: Context) -> None:
    ctx.add_paths("dns", *DNS_FILES)
    optional = [p for p in DNS_OPTIONAL if ctx.host.kind(p) is not None]
    if optional:
        ctx.add_paths("dns", *optional)
    ctx.add_libs("dns", NSS_DNS)


def feature_tls(ctx: Context) -> None:
    ctx.add_paths("tls", layout.CA_BUNDLE, OPENSSL_CNF)
    links = [p for p in OPENSSLDIR_LINKS if first_existing(ctx.host, [p])]
    if links:
        ctx.add_paths("tls", *links)


def feature_mail(ctx: Context) -> None:
    host_part = mailer.split_server(ctx.pool.jail.smtp)[0]
    if not _is_ip(host_part) and "dns" not in ctx.features:
        raise PlanError(f"pool {ctx.pool.name!r}: jail.smtp names the host {host_part!r}, "
                        "which needs name resolution in the jail; add the 'dns' feature or "
                        "give an IP address such as 127.0.0.1:25")
    binary_path = ctx.sendmail
    if ctx.host.kind(binary_path) is None:
        raise PlanError(f"pool {ctx.pool.name!r} uses the 'mail' feature but "
                        f"{binary_path} is missing; build it: "
                        f"{' '.join(mailer.build_argv(binary_path))}")
    closure = ctx.closure()
    real = closure.add_path(binary_path)
    closure.add_program(binary_path)
    closure.needs.pop(real, None)  # placed at the standard path instead
    ctx.out.put_closure(closure, "mail")
    binary = Entry(mailer.JAIL_SENDMAIL, "file", real, MAILER_MODE, owner="mail", why="mail",
                   digest=ctx.host.digest(real))
    ctx.out.put(binary)
    hostname = ctx.host.hostname()
    conf = mailer.render_sendmail_conf(ctx.pool.jail.smtp, f"{ctx.pool.user}@{hostname}",
                                       hostname)
    ctx.out.put(generated(mailer.JAIL_CONF, conf, "mail"))
    if "shell" not in ctx.features:
        # PHP's mail() runs sendmail_path through `/bin/sh -c`. Without the shell
        # feature /bin/sh is the mailer itself, which runs only the mailer.
        sh = posixpath.join(ctx.bin_sh_dir("mail"), "sh")
        ctx.out.put(Entry(sh, "file", real, MAILER_MODE, owner="mail",
                          why="mail (mail-only /bin/sh)", digest=binary.digest))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def feature_sessions(ctx: Context) -> None:
    ctx.out.put(Entry(layout.PHP_SESSION_DIR, "dir", None, POOL_DIR_MODE, owner="pool",
                      why="sessions"))


def feature_iconv(ctx: Context) -> None:
    libdir = ctx.libdir()
    top = first_existing(ctx.host, [posixpath.join(libdir, "gconv"), "/usr/lib64/gconv",
                                    "/usr/lib/gconv"])
    if top is None:
        raise PlanError(f"pool {ctx.pool.name!r}: feature 'iconv' needs glibc's gconv "
                        f"modules ({libdir}/gconv), which this host lacks; install libc6")
    ctx.add_tree("iconv", top)


def feature_locale(ctx: Context) -> None:
    if ctx.host.kind(LOCALE_DIR) is None:
        raise PlanError(f"pool {ctx.pool.name!r}: feature 'locale' needs {LOCALE_DIR} "
                        "(C.utf8, locale-archive); install the locales package")
    ctx.add_tree("locale", LOCALE_DIR)


def feature_proc(ctx: Context) -> None:
    ctx.out.put(Entry("/proc", "mount", "proc", 0o555, why="proc", fstype="proc"))


def feature_mysql(ctx: Context) -> None:
    # the directory, not the socket: mysqld re-creates its socket on every restart
    ctx.out.put(Entry(MYSQL_RUN_DIR, "mount", MYSQL_RUN_DIR, why="mysql"))


def feature_phplibs(ctx: Context) -> None:
    # bound read-only at their own paths, not copied: /usr/share/javascript alone is
    # hundreds of MB, and a bind costs a jail nothing; packages installed later appear
    # at the next apply (a new /usr/share/php-NAME is a mount change: master restart)
    for path in phplibs_dirs(ctx.host):
        ctx.out.put(Entry(path, "mount", path, why="phplibs"))


def feature_shell(ctx: Context) -> None:
    ctx.add_programs("shell", SHELL)
    sh = posixpath.join(ctx.bin_sh_dir("shell"), "sh")
    ctx.out.put(Entry(sh, "symlink", posixpath.basename(SHELL), 0o777, why="shell"))


FEATURES: dict[str, Callable[[Context], None]] = {
    "base": feature_base,
    "dns": feature_dns,
    "tls": feature_tls,
    "mail": feature_mail,
    "sessions": feature_sessions,
    "iconv": feature_iconv,
    "locale": feature_locale,
    "proc": feature_proc,
    "mysql": feature_mysql,
    "shell": feature_shell,
    "phplibs": feature_phplibs,
}
if set(FEATURES) != set(JAIL_FEATURES):  # keeps the model and this module in step
    raise ImportError(f"jail features {sorted(FEATURES)} != model {sorted(JAIL_FEATURES)}")


# ---------------------------------------------------------------- mounts and programs


def add_mounts(ctx: Context) -> None:
    """The tenant home read-only at its own path (so SCRIPT_FILENAME needs no rewrite),
    the pool's writable paths read-write over it, then the spec's mounts."""
    ctx.out.put(Entry(ctx.tenant.home, "mount", ctx.tenant.home, why="home"))
    for path in ctx.pool.writable:
        ctx.out.put(Entry(path, "mount", path, why="writable", writable=True))
    for mount in ctx.pool.jail.mounts:
        ctx.out.put(Entry(mount.target, "mount", mount.source, why="mount",
                          writable=mount.writable))


def add_programs(ctx: Context) -> None:
    """`jail.programs`: each with its closure. A program someone other than root can
    change is refused (its `#!` line and `ldd` would let its owner make root copy
    any file into the jail), unless the spec declares its interpreter."""
    interpreters = dict(ctx.pool.jail.interpreters)
    for i, program in enumerate(ctx.pool.jail.programs):
        closure = ctx.closure()
        try:
            if program in interpreters:
                closure.add_interpreted(program, interpreters[program])
            else:
                closure.add_program(program)
        except UntrustedProgram as err:
            raise PlanError(_untrusted_message(ctx, i, program, err)) from err
        ctx.out.put_closure(closure, f"program {program}")


def _untrusted_message(ctx: Context, index: int, program: str, err: UntrustedProgram) -> str:
    key = f"pools.{ctx.pool.name}.jail.programs[{index}]"
    if program in dict(ctx.pool.jail.interpreters):
        fix = ("make the interpreter a root-owned program (e.g. /usr/bin/php), and keep the "
               "program in the tenant home or a same-path mount")
    else:
        fix = ("install it root-owned outside any tenant's reach (e.g. /usr/local/bin), or "
               f'declare its interpreter: {{ path = "{program}", interpreter = '
               '"/usr/bin/php" } (the program must then lie in the tenant home)')
    return f"{key} = {program!r}: {err}. {fix[0].upper()}{fix[1:]}"


def build(pool: Pool, tenant: Tenant, host: HostView, sendmail: str | None = None,
          cache: ClosureCache | None = None) -> Manifest:
    if pool.tenant != tenant.name:
        raise ValueError(f"pool {pool.name!r} belongs to tenant {pool.tenant!r}")
    ctx = Context(pool, tenant, host, sendmail, cache)
    add_mounts(ctx)
    features = ("base", *(f for f in pool.jail.features if f != "base"))
    for feature in features:
        FEATURES[feature](ctx)
    add_programs(ctx)
    uid, gid = _ids(host.passwd_entry(pool.user))
    return ctx.out.finish(uid, gid, mail_group_id(host))


def _ids(line: str | None) -> tuple[int | None, int | None]:
    if line is None:
        return None, None
    fields = line.split(":")
    if len(fields) < 4 or not fields[2].isdigit() or not fields[3].isdigit():
        raise PlanError(f"cannot read uid/gid from passwd line {line!r}")
    return int(fields[2]), int(fields[3])


def build_manifest(pool: Pool, tenant: Tenant, probe: HostView, *,
                   sendmail: str | None = None, cache: ClosureCache | None = None) -> Manifest:
    """The manifest of `pool`'s jail: its features, programs and mounts (the tenant
    home read-only at its own path, `writable` paths read-write over it).
    `sendmail`: the built mailer on the host (default layout.SENDMAIL_BINARY).
    `cache`: shared by the pools of one plan, so that identical closure walks
    (zoneinfo, libraries) run once."""
    return build(pool, tenant, probe, sendmail, cache)
