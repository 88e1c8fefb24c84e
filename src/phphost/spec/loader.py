"""Load a phphost spec (TOML), validate it fully, resolve templates, and return
the frozen `Model`. Every problem raises `SpecError(file, key, problem, remedy)`
with the dotted key path (e.g. ``pools.matomo.max_children``). Checks run in a
fixed order (apache, templates, tenants, pools, sites; names sorted) and stop at
the first error.

Schema
======

Unknown keys are rejected at every level. Names of templates, tenants, pools and
sites match ``^[a-z][a-z0-9_-]{0,30}$``; Unix user and group names match
``^[a-z_][a-z0-9_-]{0,31}$`` and may not be system accounts (root, www-data, ...).
Durations are whole seconds (``30``) or strings ``"30s"``, ``"5m"``, ``"1h"``.

Spec directories: wherever a spec is named (``phphost plan SPEC`` ...), it may be a
directory (``conf.d`` style). Its ``*.toml`` files (not dot-files, not below
subdirectories) are read in sorted order as one spec: e.g. ``00-global.toml`` with
``[apache]``, ``[exporter]`` and ``[templates.*]``, then one file per tenant or
customer with its ``[tenants.*]``, ``[pools.*]`` and ``[sites.*]``. Each of
``[apache]``, ``[exporter]`` and every ``[templates.NAME]``, ``[tenants.NAME]``,
``[pools.NAME]``, ``[sites.NAME]`` is defined in one file only (a second definition
is an error naming both files); references work across files. Every message names
the file that defines the key. A directory without ``*.toml`` files is an error.

``[apache]`` (optional)
    ``http_port`` (80), ``https_port`` (443): 1..65535, different.
    ``threads_per_child`` (25), ``max_request_workers`` (150), ``server_limit`` (6),
    ``proxy_timeout`` (65, seconds): integers >= 1, with
    ``max_request_workers <= server_limit * threads_per_child``.

``[exporter]`` (optional; absent: no exporter runs)
    ``listen`` ("127.0.0.1:9253"): ``HOST:PORT`` or ``[::1]:PORT``, HOST a loopback
    address, PORT not Apache's. ``pool_timeout`` ("2s"): duration 1s..30s, the most
    one pool's FPM status may take in a scrape. ``phphost exporter`` then runs under
    supervisord (program ``phphost-exporter``); see docs/monitoring.md.

``[templates.NAME]``: a named set of pool settings
    ``inherits = "OTHER"``: optional; chains allowed, cycles rejected.
    Setting keys (also allowed directly on a pool, where they override the template):

    ========================== ========================================== =========
    key                        value                                      default
    ========================== ========================================== =========
    pm                         "static" | "dynamic" | "ondemand"          ondemand
    max_children               integer >= 1                               5
    start_servers              dynamic: integer >= 0 (0 = FPM default)    0
    min_spare                  dynamic: integer >= 1                      1
    max_spare                  dynamic: integer >= 1                      3
    idle_timeout               ondemand: duration >= 1s                   10
    max_requests               integer >= 0                               500
    request_terminate_timeout  duration >= 0                              60
    request_slowlog_timeout    duration >= 0 (0: no slow log)             5
    process_control_timeout    duration >= 1s (0 kills requests on reload) 10
    priority                   integer -19..20                            unset
    listen_backlog             integer >= 1                               64
    burst_queue                integer >= 0: requests that wait for a     derived
                               child (per Apache process), not 503
    opcache_memory_mb          integer 8..4096                            64
    tmp_size                   size "1M".."16G" (jailed pools' /tmp)     "64M"
    memory_max                 size "16M".."1024G": cgroup hard limit     derived
    memory_high                size: throttled above (v1: soft limit)     derived
    pids_max                   integer 8..4194304 (also RLIMIT_NPROC)     derived
    cpu_weight                 integer 1..10000                           100
    cpu_max                    CPUs 0.01..1024 (1.5 = 150 % of one CPU)   no quota
    io_weight                  integer 1..10000                           100
    activation                 boolean: ondemand only (socket activation) ondemand
    php_extensions             list of PHP extensions beyond the base     []
                               set, or "all" (Debian's conf.d)
    php_admin_values           table: ini name -> string/number/boolean   {}
    php_values                 table: ini name -> string/number/boolean   {}
    php_ini                    table: master-level ini (-d flags)         {}
    ========================== ========================================== =========

    Sizes are a whole number of bytes or a string with ``K``, ``M`` or ``G``
    (powers of 1024): ``"64M"``. ``tmp_size`` bounds the jail's private ``/tmp``:
    a tmpfs the launcher mounts ``noexec,nosuid,nodev`` (mode 1777) in the master's
    own mount namespace; its pages count against the pool's memory.
    Limits: each master, its launcher and its workers live in the cgroup
    ``phphost/POOL`` (cgroup v2, else the v1 memory/pids/cpu/cpuacct/blkio
    hierarchies). Unset limits are derived (docs/sizing.md): ``memory_max =
    max_children * (memory_limit + 32M) + opcache_memory_mb + tmp_size (jailed) +
    64M`` (none when memory_limit is -1), ``memory_high`` 90 % of it, ``pids_max =
    8 * max_children + 16``; RLIMIT_NPROC of the workers is ``pids_max``. A limit
    set in the spec that the host cannot enforce is a plan error naming the key; a
    derived one is skipped with a note (``plan -v``). ``memory_high <= memory_max``
    and ``pids_max >= max_children + 2`` are checked on the pool.
    ``burst_queue`` (default ``2 * max_children``): each Apache process may have
    ``max_children + burst_queue`` requests (at most ``threads_per_child``) in
    flight to the pool; those beyond max_children wait at FPM for a free child,
    any more get a fast 503. 0 gives a 503 as soon as max_children are busy in a
    process. Every waiting request holds an Apache thread: ``phphost audit``
    (PHA013) counts them (docs/sizing.md).
    ``activation`` (default: on for ``pm = "ondemand"``, refused for the others): the
    pool's launcher binds its socket and starts the FPM master only when a
    connection waits; a master that has had no worker and no waiting connection for
    ``idle_timeout`` is stopped gracefully and the launcher keeps the socket (no
    request is refused while a master starts or stops). ``status`` shows such a pool
    ``asleep`` without waking it (docs/idle.md).
    ``php_extensions``: the pool's master loads OPcache, a base set (ctype, dom,
    exif, fileinfo, iconv, mbstring, mysqli, mysqlnd, pdo, pdo_mysql, posix, shmop,
    simplexml, sysvmsg, sysvsem, sysvshm, tokenizer, xml, xmlreader, xmlwriter) and
    the extensions listed (module names of
    php8.2-* packages, e.g. ``["gd", "intl", "curl", "apcu"]``; the package must be
    installed), with what they need; the lists of the template chain and the
    pool's recipe add up. ``"all"`` loads what Debian enabled for FPM in
    /etc/php/8.2/fpm/conf.d instead. Every extension costs memory in every master
    before any request (docs/idle.md). OPcache's interned strings buffer and file
    table follow ``opcache_memory_mb`` in PHP's own ratio (``/16`` MB, 1..8;
    ``x 10000/128`` files, 1000..10000) unless ``php_ini`` sets them.
    ini names match ``^[a-zA-Z0-9_.]+$``; values may not contain newlines, quotes,
    ``;`` or ``${`` (FPM would put the root master's environment variable there).
    Booleans become ``on``/``off``. The three ini tables merge key by key along the
    chain (the pool wins); every other setting is replaced whole.
    A request running longer than ``request_slowlog_timeout`` gets its PHP stack
    trace in ``/var/log/phphost/POOL.slow.log`` (counted as ``phpfpm_slow_requests``);
    that log and ``POOL.fpm.log`` rotate through ``/etc/logrotate.d/phphost``.

``[tenants.NAME]``: an owner of code
    ``home``: required; absolute, normalised, not ``/``, not under a system
    directory (/etc, /usr, /bin, /sbin, /lib*, /boot, /proc, /sys, /dev, /run,
    /var/run, /var/lib, /var/log/phphost, /root); no home inside another.
    ``user`` (default NAME), ``group`` (default user). Users and groups are unique
    across tenants.
    ``adopt`` (default false): plan refuses (exit 4) a tenant whose user or group
    already exists but was not created by phphost (state.json), or has an id below
    1000 (``mail``, ``ssl-cert``, ``docker``, ``mysql``, ...): its files and group
    rights would become every pool's. ``adopt = true`` says the existing account
    is meant to own the tenant's code; ``phphost audit`` (PHA021) still reports a
    system or privileged one. Pool users are never adopted.

``[pools.NAME]``: one PHP-FPM master and pool
    ``tenant``: required. ``template``: optional. ``user``: runtime user,
    default ``php-NAME``; unique, and never a tenant's user or group.
    ``socket``: absolute, at most 107 bytes, unique; default
    ``/run/phphost/NAME.sock``. Its directory must be root's and writable only by
    root (php-fpm, as root, unlinks and chowns the socket by name): never in a tenant
    home or /tmp-like dir (spec error), checked on the host at plan time.
    ``writable = ["data", { path = "htdocs/uploads", public = true }]``: paths
    relative to the tenant home (or absolute inside it), no ``..``, not the home
    itself; resolved to absolute paths. Each entry is a path or a table with
    ``path`` and ``public`` (default false). A writable dir inside a site's docroot
    is never served unless ``public = true``: Apache answers 403 for everything in
    it (``Require all denied``); a public one serves static files (uploads). PHP
    never runs from either. When the site has ``allow_override``, ``.htaccess``
    there may hold ``Require`` (and ``<IfModule>``) lines only (docs/spec.md).
    ``jail = { enabled = true, features = ["dns", "tls"], programs = ["/usr/bin/x"],
    mounts = [{ source = "/srv/shared", target = "/opt/shared", writable = false }],
    smtp = "127.0.0.1:25" }``: the pool runs chrooted in its jail unless
    ``enabled = false``; features from ``model.JAIL_FEATURES`` ("base" is always
    included); programs and mount paths absolute; a mount source may not
    overlap another tenant's home.
    A program's ``#!`` line is read and ``ldd`` run on it only when root owns it
    and every directory and symlink on its path, none group/world-writable;
    anything else is a plan error naming ``jail.programs[N]``. A program of the
    tenant's (in its home or a same-path mount) is given with its root-owned
    interpreter instead, ``programs = [{ path = "/srv/www/t/bin/tool",
    interpreter = "/usr/bin/php" }]``: the interpreter's closure comes in, the
    program itself is never read and is seen through the mount.
    ``network = { allow = ["127.0.0.1:6379", "[::1]:11211", "10.0.0.0/8:5432"] }``:
    the pool's network policy (docs/network.md). Its processes may open connections
    only to what its jail features declare (``dns``: port 53 of the nameservers in
    /etc/resolv.conf; ``tls``: TCP 443; ``mail``: ``jail.smtp``, for the jail's
    sendmail alone) and to these TCP destinations: ``IP:PORT``, ``[IPv6]:PORT`` or a
    network ``NET/PREFIX:PORT``; ports 25, 465 and 587 are refused (mail goes
    through the sendmail of the ``mail`` feature). Anything else is refused at once.
    The group name ``phphost-mail`` is reserved for the jail's sendmail.
    Any setting key (see templates). Keys that apply only to another pm
    (``start_servers``/``min_spare``/``max_spare`` for dynamic, ``idle_timeout``
    for ondemand) are rejected when set on the pool itself. After resolution:
    dynamic needs ``min_spare <= max_spare <= max_children`` and
    ``start_servers`` 0 or within ``[min_spare, max_spare]``.

``[sites.NAME]``: one Apache vhost
    ``server_name``: required host name; ``aliases``: list of host names. Both are
    stored lowercased and are unique across all sites.
    ``tenant``, ``docroot`` (relative to the tenant home or absolute inside it):
    required unless ``redirect``.
    ``php``: default true (false with ``redirect``). ``pool``: required when php is
    true, forbidden when false; a pool of the same tenant.
    ``routes = { "/chords/" = "pool" }``: URL prefix (starts and ends with ``/``,
    chars ``[A-Za-z0-9._~/-]``, not ``/``) -> pool of the same tenant; needs php.
    Stored longest path first.
    ``tls = { cert = "/abs", key = "/abs", chain = "/abs" }``: existence not checked.
    ``redirect = "https://example.org/"``: the whole site redirects; then tenant,
    docroot, pool, routes, allow_override and front_controller must be absent and
    php false.
    ``front_controller = "/index.php"``: the URL path of the script that answers
    every URL no file or directory matches (WordPress, Laravel, Symfony, Drupal
    pretty URLs), rendered as ``FallbackResource`` on the docroot; needs php; starts
    with ``/``, ends in ``.php``, chars ``[A-Za-z0-9._~/-]``, no empty, ``.`` or
    ``..`` segments; not under a route (unknown URLs under a route stay that route's:
    ``FallbackResource disabled`` there). ``phphost check`` warns when the script is
    not in the docroot.
    ``allow_override``: categories AuthConfig, Indexes, Limit and single directives
    ErrorDocument, Redirect, RedirectMatch, RedirectPermanent, RedirectTemp,
    DirectoryIndex, Header, ExpiresActive, ExpiresByType, ExpiresDefault,
    AddDefaultCharset, Require, AuthType, AuthName, AuthUserFile, AuthGroupFile
    (case-insensitive, stored in this spelling). FileInfo, Options, All and
    handler/env/rewrite/proxy/php_* directives are rejected.
    ``recipe = "NAME"``: an app recipe (wordpress, dokuwiki, mediawiki, adminer,
    phpmyadmin; docs/recipes.md) fills in what the app needs on this site and its
    ``pool`` before validation: site ``allow_override`` and ``front_controller`` when
    the site does not set them; the pool's ``jail.features`` and ``writable`` (dirs
    relative to the docroot, some public) added to its own; PHP settings merged name
    by name under the pool's own. ``recipe_options``: a recipe's opt-in parts, e.g.
    ``["admin-installs"]`` for wordpress. Unknown names are rejected; two sites with
    different recipes cannot share a pool; not with ``redirect``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping

from phphost import layout
from phphost.errors import SpecError
from phphost.spec.exporter import parse_exporter
from phphost.spec.model import ApacheSettings, Model, Tenant
from phphost.spec.pools import parse_pools
from phphost.spec.recipes import apply_recipes
from phphost.spec.settings import parse_templates
from phphost.spec.sites import parse_sites
from phphost.spec.validate import (
    At,
    PathIndex,
    Table,
    abs_path,
    boolean,
    check_keys,
    integer,
    is_inside,
    name,
    required,
    table,
    unix_name,
)

TOP_KEYS = ("apache", "templates", "tenants", "pools", "sites", "exporter")
SINGLE_TABLES = ("apache", "exporter")    # one table each; the others hold named tables
APACHE_KEYS = ("http_port", "https_port", "threads_per_child", "max_request_workers",
               "server_limit", "proxy_timeout")
TENANT_KEYS = ("home", "user", "group", "adopt")
FORBIDDEN_HOME_ROOTS = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/proc", "/sys", "/dev",
                        "/run", "/var/run", "/var/lib", layout.LOG_DIR, "/root")
_WHY_OWN = {"user": "the user owns the tenant's code",
            "group": "pools read their tenant's code through this group"}


def load_spec(path: str) -> Model:
    """Read and validate the spec at `path`: a TOML file, or a directory whose
    ``*.toml`` files are read as one spec (see "Spec directories")."""
    if os.path.isdir(path):
        return _load_dir(path)
    return parse_spec(_read(path), path)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise SpecError(path, "", f"cannot read the spec: {err.strerror or err}",
                        "check the path and its permissions") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(path, "", f"the spec is not UTF-8 text ({err.reason})",
                        "save it as UTF-8") from err


def _toml(text: str, source: str) -> Table:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(source, "", f"invalid TOML: {err}",
                        "fix the syntax at the position shown") from err


def parse_spec(text: str, source: str) -> Model:
    """Validate spec text; `source` names it in messages and in Model.source."""
    return _build(_toml(text, source), At(source))


def spec_files(directory: str) -> list[str]:
    """The files of a spec directory, in the order they are read."""
    try:
        names = os.listdir(directory)
    except OSError as err:
        raise SpecError(directory, "", f"cannot read the spec directory: "
                        f"{err.strerror or err}", "check the path and its permissions") from err
    files = [os.path.join(directory, n) for n in sorted(names)
             if n.endswith(".toml") and not n.startswith(".")]
    if not files:
        raise SpecError(directory, "", "the spec directory holds no *.toml file",
                        "put the spec in files named like 00-global.toml, ncs.toml")
    return files


def _load_dir(directory: str) -> Model:
    """Every ``*.toml`` of `directory`, sorted, merged into one spec. Each table
    ([apache], [exporter], [pools.NAME], ...) comes from exactly one file, and every
    message names the file that defines the key."""
    merged: dict[str, Table] = {}
    origins: dict[str, str] = {}
    for path in spec_files(directory):
        raw = _toml(_read(path), path)
        top = At(path)
        check_keys(top, raw, TOP_KEYS)
        for key in TOP_KEYS:
            if key in raw:
                _merge(top.sub(key), key, table(top.sub(key), raw[key]), merged, origins)
    return _build(dict(merged), At(directory, origins=origins))


def _merge(at: At, key: str, tbl: Table, merged: dict[str, Table],
           origins: dict[str, str]) -> None:
    if key in SINGLE_TABLES:
        if at.key in origins:
            at.fail(f"[{key}] is also defined in {origins[at.key]}",
                    f"define [{key}] in one file of the directory only (e.g. the global one)")
        origins[at.key] = at.src
        merged[key] = tbl
        return
    into = merged.setdefault(key, {})
    for name_, value in tbl.items():
        place = at.sub(name_)
        if place.key in origins:
            place.fail(f"{key[:-1]} {name_!r} is also defined in {origins[place.key]}",
                       f"define each {key[:-1]} in one file of the directory only")
        origins[place.key] = place.src
        into[name_] = value


def _build(raw: Table, top: At) -> Model:
    check_keys(top, raw, TOP_KEYS)
    sections = {key: table(top.sub(key), raw.get(key, {})) for key in TOP_KEYS}
    apache = _apache(top.sub("apache"), sections["apache"])
    templates = parse_templates(top.sub("templates"), sections["templates"])
    tenants = _tenants(top.sub("tenants"), sections["tenants"])
    raw_sites, raw_pools = apply_recipes(top, sections["sites"], sections["pools"],
                                         sections["tenants"])
    pools = parse_pools(top.sub("pools"), raw_pools, tenants, templates)
    sites = parse_sites(top.sub("sites"), raw_sites, tenants, pools)
    return Model(
        source=top.src,
        tenants=tuple(tenants[n] for n in sorted(tenants)),
        pools=tuple(pools[n] for n in sorted(pools)),
        sites=tuple(sites[n] for n in sorted(sites)),
        apache=apache,
        exporter=(parse_exporter(top.sub("exporter"), sections["exporter"], apache)
                  if "exporter" in raw else None),
        origins=tuple(sorted(top.origins.items())),
    )


def _apache(at: At, tbl: Table) -> ApacheSettings:
    check_keys(at, tbl, APACHE_KEYS)
    values = {key: integer(at.sub(key), tbl[key], 1, 65535 if key.endswith("_port") else None)
              for key in APACHE_KEYS if key in tbl}
    apache = ApacheSettings(**values)
    if apache.http_port == apache.https_port:
        at.sub("https_port").fail(f"https_port equals http_port ({apache.http_port})",
                                  "use two different ports")
    capacity = apache.server_limit * apache.threads_per_child
    if apache.max_request_workers > capacity:
        at.sub("max_request_workers").fail(
            f"max_request_workers = {apache.max_request_workers} exceeds server_limit * "
            f"threads_per_child = {apache.server_limit} * {apache.threads_per_child} = "
            f"{capacity}",
            "lower max_request_workers or raise server_limit or threads_per_child")
    return apache


def _tenants(at: At, raw: Table) -> dict[str, Tenant]:
    tenants = {tname: _tenant(at.sub(tname), tname, raw[tname]) for tname in sorted(raw)}
    _check_tenants_apart(at, tenants)
    return tenants


def _tenant(at: At, tname: str, value: object) -> Tenant:
    name(at, tname, "tenant")
    tbl = table(at, value)
    check_keys(at, tbl, TENANT_KEYS)
    home = _home(at.sub("home"), required(at, tbl, "home", f'"/srv/www/{tname}"'))
    user = unix_name(at.sub("user"), tbl.get("user", tname), "Unix user name")
    group = unix_name(at.sub("group"), tbl.get("group", user), "Unix group name")
    adopt = boolean(at.sub("adopt"), tbl["adopt"]) if "adopt" in tbl else False
    return Tenant(name=tname, user=user, group=group, home=home, adopt=adopt)


def _home(at: At, value: object) -> str:
    home = abs_path(at, value)
    if home == "/":
        at.fail("a tenant home cannot be '/'", 'use a dedicated directory like "/srv/www/NAME"')
    first = home.split("/")[1]
    system = next((root for root in FORBIDDEN_HOME_ROOTS if is_inside(home, root)),
                  f"/{first}" if first.startswith("lib") else None)
    if system is not None:
        at.fail(f"home {home!r} is inside the system directory {system}",
                'put tenant homes under a directory of their own, like "/srv/www/NAME"')
    return home


def _check_tenants_apart(at: At, tenants: Mapping[str, Tenant]) -> None:
    """Distinct users, groups, and homes that do not contain one another. Indexed
    (dicts, PathIndex): near-linear in the number of tenants; the first earlier
    tenant a clash is found with is named, as a pairwise scan would."""
    order = {tname: i for i, tname in enumerate(tenants)}
    first: dict[tuple[str, str], str] = {}
    homes = PathIndex((t.home, tname) for tname, t in tenants.items())
    for tname, tenant in tenants.items():
        clash = [first[(key, getattr(tenant, key))] for key in ("user", "group")
                 if (key, getattr(tenant, key)) in first]
        clash += [o for _h, o in homes.overlapping(tenant.home) if order[o] < order[tname]]
        if clash:
            _clash(at.sub(tname), tenant, tenants[min(clash, key=order.__getitem__)])
        for key in ("user", "group"):
            first.setdefault((key, getattr(tenant, key)), tname)


def _clash(at: At, tenant: Tenant, other: Tenant) -> None:
    for key in ("user", "group"):
        if getattr(tenant, key) == getattr(other, key):
            at.sub(key).fail(
                f"{key} {getattr(tenant, key)!r} is also the {key} of tenant "
                f"{other.name!r}",
                f"give every tenant its own {key}: {_WHY_OWN[key]}")
    at.sub("home").fail(
        f"home {tenant.home!r} overlaps the home {other.home!r} of tenant "
        f"{other.name!r}",
        "give every tenant a separate directory; no home inside another")
