"""[pools.NAME] for the spec loader: identity, socket, writable paths, jail and
resolved settings of each pool, plus the checks across pools. Pure."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping

from phphost import layout
from phphost.spec.limits import limit_problems
from phphost.spec.model import JAIL_FEATURES, JailSpec, Mount, NetworkSpec, Pool, Tenant
from phphost.spec.settings import (
    SETTING_KEYS,
    Layer,
    Template,
    chain,
    check_pm,
    parse_settings,
    resolve,
    template_ref,
)
from phphost.spec.validate import (
    At,
    PathIndex,
    Table,
    abs_path,
    array,
    boolean,
    check_keys,
    dedupe,
    is_inside,
    name,
    path_in_home,
    reference,
    required,
    string,
    string_list,
    table,
    unix_name,
)

POOL_KEYS = ("tenant", "template", "user", "socket", "writable", "jail", "network",
             *SETTING_KEYS)
JAIL_KEYS = ("enabled", "features", "programs", "mounts", "smtp")
MOUNT_KEYS = ("source", "target", "writable")
PROGRAM_KEYS = ("path", "interpreter")
WRITABLE_KEYS = ("path", "public")
NETWORK_KEYS = ("allow",)
# submission and SMTP ports: mail leaves a pool only through its jail's sendmail
MAIL_PORTS = (25, 465, 587)
_ALLOW_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?\]|[0-9.]+(?:/[0-9]{1,2})?)"
                       r":([0-9]{1,5})$")
_SMTP_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def parse_pools(
    at: At, raw: Table, tenants: Mapping[str, Tenant], templates: Mapping[str, Template]
) -> dict[str, Pool]:
    pools = {pname: _pool(at.sub(pname), pname, raw[pname], tenants, templates)
             for pname in sorted(raw)}
    _check_unique(at, pools, tenants)
    return pools


def _pool(
    at: At, pname: str, value: object,
    tenants: Mapping[str, Tenant], templates: Mapping[str, Template],
) -> Pool:
    name(at, pname, "pool")
    tbl = table(at, value)
    check_keys(at, tbl, POOL_KEYS)
    tenant = reference(at.sub("tenant"), required(at, tbl, "tenant", '"TENANT"'), tenants,
                       "tenant")
    template = template_ref(at.sub("template"), tbl["template"], templates) \
        if "template" in tbl else None
    own = parse_settings(at, tbl)
    resolved = resolve([*chain(template, templates), Layer("the pool", own)])
    check_pm(at, resolved, own)
    home = tenants[tenant].home
    writable, public = _writable(at.sub("writable"), tbl.get("writable", []), home)
    pool = Pool(
        name=pname,
        tenant=tenant,
        user=_runtime_user(at.sub("user"), tbl.get("user"), pname),
        socket=_socket(at.sub("socket"), tbl.get("socket"), pname),
        settings=resolved.settings,
        writable=writable,
        public=public,
        jail=_jail(at.sub("jail"), tbl["jail"], tenants, tenant) if "jail" in tbl else JailSpec(),
        network=_network(at.sub("network"), tbl["network"]) if "network" in tbl
        else NetworkSpec(),
    )
    for key, problem, remedy in limit_problems(pool):
        at.sub(key).fail(problem + (f" ({resolved.show(key)})" if key in resolved.origin
                                    else ""), remedy)
    return pool


def _runtime_user(at: At, value: object, pname: str) -> str:
    if value is not None:
        return unix_name(at, value, "runtime user name")
    default = f"php-{pname}"
    if len(default) > 32:
        at.fail(f"the default runtime user {default!r} is longer than 32 characters",
                'set user = "..." to a shorter name for this pool')
    return unix_name(at, default, "runtime user name")


_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")


def _socket(at: At, value: object, pname: str) -> str:
    path = layout.default_socket(pname) if value is None else abs_path(at, value)
    size = len(path.encode())
    if size > layout.UNIX_SOCKET_MAX:
        at.fail(f"socket path {path!r} is {size} bytes long; FPM silently truncates Unix "
                f"socket paths longer than {layout.UNIX_SOCKET_MAX} bytes",
                f"use a path of at most {layout.UNIX_SOCKET_MAX} bytes, e.g. under "
                f"{layout.RUN_DIR}")
    if posixpath.dirname(path) in _SHARED_TMP:
        at.fail(f"socket {path!r} is not in a root-only directory: php-fpm, as root, "
                "unlinks, chowns and chmods the socket by name, so whoever can write its "
                "directory can point that at any file",
                f"leave `socket` out (default {layout.default_socket(pname)}) or use a "
                "normalised path in a directory owned by root that only root can write")
    return path


def _writable(at: At, value: object, home: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every writable path, those declared public). Each entry is a path or a table
    { path = "htdocs/uploads", public = true }."""
    paths: list[str] = []
    public: list[str] = []
    for i, item in enumerate(array(at, value)):
        where = at.sub(i)
        raw: object = item
        shown = False
        if isinstance(item, dict):
            check_keys(where, item, WRITABLE_KEYS)
            raw = required(where, item, "path", '"htdocs/uploads"')
            where = where.sub("path")
            shown = boolean(at.sub(i).sub("public"), item["public"]) if "public" in item \
                else False
        path = path_in_home(where, raw, home, "writable path")
        if path == home:
            where.fail(f"writable path {raw!r} is the tenant home {home} itself",
                       "name a subdirectory such as \"data\": PHP must not be able to "
                       "rewrite the tenant's code")
        if path in paths and (path in public) != shown:
            where.fail(f"writable path {path!r} is listed twice, once public and once not",
                       "list each writable dir once")
        paths.append(path)
        if shown:
            public.append(path)
    return dedupe(paths), dedupe(public)


def _jail(at: At, value: object, tenants: Mapping[str, Tenant], tenant: str) -> JailSpec:
    tbl = table(at, value)
    check_keys(at, tbl, JAIL_KEYS)
    default = JailSpec()
    programs = _programs(at.sub("programs"), tbl.get("programs", []))
    return JailSpec(
        enabled=boolean(at.sub("enabled"), tbl["enabled"]) if "enabled" in tbl
        else default.enabled,
        features=_features(at.sub("features"), tbl.get("features", [])),
        programs=dedupe(path for path, _interpreter in programs),
        mounts=_mounts(at.sub("mounts"), tbl.get("mounts", []), tenants, tenant),
        smtp=_smtp(at.sub("smtp"), tbl["smtp"]) if "smtp" in tbl else default.smtp,
        interpreters=tuple(sorted({(path, interp) for path, interp in programs
                                   if interp is not None})),
    )


def _programs(at: At, value: object) -> list[tuple[str, str | None]]:
    """Each entry: "/abs/path", or { path = "/abs", interpreter = "/abs" } for a
    program root does not own (its interpreter comes into the jail; it is never read)."""
    out: list[tuple[str, str | None]] = []
    seen: dict[str, str | None] = {}
    for i, item in enumerate(array(at, value)):
        where = at.sub(i)
        if isinstance(item, dict):
            check_keys(where, item, PROGRAM_KEYS)
            path = abs_path(where.sub("path"), required(where, item, "path", '"/srv/www/t/bin/x"'))
            interp: str | None = abs_path(where.sub("interpreter"), required(
                where, item, "interpreter", '"/usr/bin/php"'))
        else:
            path, interp = abs_path(where, item), None
        if path in seen and seen[path] != interp:
            where.fail(f"program {path!r} is listed twice with different interpreters",
                       "list each program once")
        seen[path] = interp
        out.append((path, interp))
    return out


def _features(at: At, value: object) -> tuple[str, ...]:
    features = string_list(at, value)
    for i, feature in enumerate(features):
        if feature not in JAIL_FEATURES:
            at.sub(i).fail(f"unknown jail feature {feature!r}",
                           f"use one of: {', '.join(JAIL_FEATURES)}")
    return dedupe(features if "base" in features else ["base", *features])


def _mounts(
    at: At, value: object, tenants: Mapping[str, Tenant], tenant: str
) -> tuple[Mount, ...]:
    mounts: list[Mount] = []
    for i, item in enumerate(array(at, value)):
        where = at.sub(i)
        tbl = table(where, item)
        check_keys(where, tbl, MOUNT_KEYS)
        mount = Mount(
            source=abs_path(where.sub("source"), required(where, tbl, "source", '"/srv/..."')),
            target=abs_path(where.sub("target"), required(where, tbl, "target", '"/usr/..."')),
            writable=boolean(where.sub("writable"), tbl["writable"]) if "writable" in tbl
            else False,
        )
        _check_mount(where, mount, mounts, tenants, tenant)
        mounts.append(mount)
    return tuple(mounts)


def _check_mount(
    at: At, mount: Mount, earlier: list[Mount], tenants: Mapping[str, Tenant], tenant: str
) -> None:
    for key in ("source", "target"):
        if getattr(mount, key) == "/":
            at.sub(key).fail(f"mount {key} is '/'", "mount a specific directory, not the root")
    if any(m.target == mount.target for m in earlier):
        at.sub("target").fail(f"two mounts share the target {mount.target!r}",
                              "give each mount its own target inside the jail")
    for other in sorted(tenants):
        home = tenants[other].home
        if other != tenant and (is_inside(mount.source, home) or is_inside(home, mount.source)):
            at.sub("source").fail(
                f"mount source {mount.source!r} overlaps the home {home} of tenant {other!r}",
                "a jail may only mount its own tenant's files or shared, tenant-neutral paths")


def _smtp(at: At, value: object) -> str:
    text = string(at, value)
    match = _SMTP_RE.match(text)
    if not match or not 1 <= int(match[2]) <= 65535:
        at.fail(f"{text!r} is not a host:port address", 'write it like "127.0.0.1:25"')
    return text


def _network(at: At, value: object) -> NetworkSpec:
    tbl = table(at, value)
    check_keys(at, tbl, NETWORK_KEYS)
    where = at.sub("allow")
    allow = [_destination(where.sub(i), item)
             for i, item in enumerate(string_list(where, tbl.get("allow", [])))]
    return NetworkSpec(allow=dedupe(allow))


def _destination(at: At, text: str) -> str:
    """"IP:PORT", "[IPv6]:PORT", "NET/PREFIX:PORT" or "[NET6/PREFIX]:PORT", normalised."""
    match = _ALLOW_RE.match(text)
    example = '"127.0.0.1:6379", "[::1]:11211" or "10.0.0.0/8:5432"'
    if not match:
        at.fail(f"{text!r} is not an IP address (or network) and a port",
                f"write it like {example}")
    port = int(match[2])
    if not 1 <= port <= 65535:
        at.fail(f"{text!r}: port {port} is not in 1..65535", f"write it like {example}")
    if port in MAIL_PORTS:
        at.fail(f"{text!r}: port {port} is for mail, which a pool never reaches directly",
                "add the 'mail' jail feature and set jail.smtp: mail goes through the jail's "
                "sendmail, the only program that may reach the relay")
    try:
        net = ipaddress.ip_network(match[1].strip("[]"), strict=True)
    except ValueError as err:
        at.fail(f"{text!r}: {err}", f"write it like {example}")
    addr = str(net.network_address) if net.num_addresses == 1 else str(net)
    return f"[{addr}]:{port}" if net.version == 6 else f"{addr}:{port}"


def _check_unique(at: At, pools: Mapping[str, Pool], tenants: Mapping[str, Tenant]) -> None:
    sockets: dict[str, str] = {}
    users: dict[str, str] = {}
    owners = {**{t.group: f"group of tenant {t.name!r}" for t in tenants.values()},
              **{t.user: f"user of tenant {t.name!r}" for t in tenants.values()}}
    homes = PathIndex((t.home, t) for t in tenants.values())
    order = {name: i for i, name in enumerate(tenants)}
    for pname, pool in pools.items():
        if pool.socket in sockets:
            at.sub(pname).sub("socket").fail(
                f"socket {pool.socket!r} is also used by pool {sockets[pool.socket]!r}",
                "give every pool its own socket")
        if pool.user in users:
            at.sub(pname).sub("user").fail(
                f"runtime user {pool.user!r} is also used by pool {users[pool.user]!r}",
                "give every pool its own runtime user: pools sharing a user can read "
                "and signal each other")
        if pool.user in owners:
            at.sub(pname).sub("user").fail(
                f"runtime user {pool.user!r} is the {owners[pool.user]}",
                "use a dedicated runtime user: PHP workers must not own or share an "
                "identity with tenant code")
        for t in _homes_holding(homes, order, pool.socket)[:1]:
            at.sub(pname).sub("socket").fail(
                f"socket {pool.socket!r} is inside the home of tenant {t.name!r}: "
                "php-fpm, as root, unlinks, chowns and chmods it by name, and the tenant "
                "can swap a directory on the way for a symlink",
                f"leave `socket` out (default {layout.default_socket(pname)}) or use a "
                "directory owned by root that only root can write")
        sockets[pool.socket] = pname
        users[pool.user] = pname


def _homes_holding(homes: PathIndex[Tenant], order: Mapping[str, int],
                   path: str) -> list[Tenant]:
    """The tenants whose home `path` lies strictly below, in the spec's order (one
    walk up the path instead of a comparison with every tenant)."""
    inside = [t for home, t in homes.containing(path) if home != (path.rstrip("/") or "/")]
    return sorted(inside, key=lambda t: order[t.name])
