"""Apache 2.4 config: the global conf (conf-available/phphost.conf) and one file per
site (sites-available/phphost-SITE.conf). Pure.

Hard rules (DESIGN.md, Apache): PHP runs only through
`<FilesMatch "\\.php$">` + `<If "-f %{REQUEST_FILENAME}">` + `SetHandler "proxy:unix:..."`,
nothing is ever wrapped in <IfModule> (a missing module must fail closed, never serve
source), no AddHandler, no connection reuse to FPM, AllowOverride None by default, no
symlink followed at or above a docroot (owner-match symlinks only inside it)."""

from __future__ import annotations

from phphost import layout
from phphost.render.common import HEADER, check_value
from phphost.spec.model import TLS, Model, Pool, Site
from phphost.spec.validate import is_inside

BASE_MODULES = (
    "mpm_event", "proxy", "proxy_fcgi", "setenvif", "alias", "dir", "mime",
    "authz_core", "authz_host", "headers",
)
CONFLICTING_MODULES = ("php8.2", "mpm_prefork", "mpm_worker")

# Files that must never run or be served: PHP-like files where PHP is off or in
# writable (upload) dirs, any letter case.
PHP_LIKE = r"(?i)\.(php\d?|phtml|phar|phps)$"
# On PHP sites only lowercase ".php" runs; other PHP-like names (x.phtml, x.php7, x.PHP)
# would otherwise be sent as source text.
PHP_LIKE_NOT_RUN = r"\.(?i:php\d?|phtml|phar|phps)(?<!\.php)$"
# Host-wide: .ht* and .user.ini files, and backup or editor copies of PHP files
# (x.php~, x.php.bak, .x.php.swp, #x.php#), which would be sent as source text.
PRIVATE_FILES = (
    r"(^\.ht|^\.user\.ini$"
    r"|\.(php\d?|phtml|phar|inc)(~|\.(bak|old|orig|save|sav|swp|swo|tmp|dist|copy))$"
    r"|\.inc$"
    r"|^#.*#$)"
)
OVERRIDE_CATEGORIES = ("AuthConfig", "Indexes", "Limit")
_INDENT = "    "


def required_modules(model: Model) -> tuple[str, ...]:
    """Modules a2enmod must enable (sorted)."""
    tls = any(site.tls is not None for site in model.sites)
    return tuple(sorted((*BASE_MODULES, "socache_shmcb", "ssl") if tls else BASE_MODULES))


def conflicting_modules() -> tuple[str, ...]:
    """Modules a2dismod must disable: mod_php and the other MPMs."""
    return CONFLICTING_MODULES


# --- helpers ------------------------------------------------------------------------------


def _q(value: str, what: str, forbidden: str = "") -> str:
    """`value` as a double-quoted Apache argument; ValueError when it cannot be one."""
    check_value(value, what, forbidden='"\\' + forbidden)
    if "${" in value:
        raise ValueError(f"{what}: {value!r} contains '${{', which Apache would expand "
                         "as a variable")
    return f'"{value}"'


def _path(value: str, what: str) -> str:
    """A quoted path for DocumentRoot or <Directory> (where * ? [ are wildcards)."""
    return _q(value, what, forbidden="*?[]")


def _block(open_tag: str, body: list[str], close_tag: str) -> list[str]:
    return [open_tag, *(_INDENT + line for line in body), close_tag]


def _deny(pattern: str) -> list[str]:
    return _block(f'<FilesMatch "{pattern}">', ["Require all denied"], "</FilesMatch>")


def regex_literal(text: str) -> str:
    """`text` as a PCRE literal that is also safe inside an ap_expr `m#...#` regex
    (which has no escape for its delimiter) in a double-quoted Apache argument."""
    out: list[str] = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch in "_/-"):
            out.append(ch)
        elif ch == ".":
            out.append(r"\.")
        else:
            out.extend(f"\\x{byte:02x}" for byte in ch.encode())
    return "".join(out)


# --- global -------------------------------------------------------------------------------

# URL paths that would reach a pool's status or ping page (prefix match)
# Apache's own status pages list every vhost's requests (query strings included);
# Debian allows them to `Require local`, which every pool is.
APACHE_PAGES = "^/(server-status|server-info|balancer-manager)"
FPM_PAGES = "^(" + "|".join(regex_literal(p) for p in (layout.STATUS_PATH, layout.PING_PATH)) + ")"


def render_apache_global(model: Model) -> str:
    a = model.apache
    lines = [
        f"# {HEADER}",
        "",
        "ProxyRequests Off",
        f"ProxyTimeout {a.proxy_timeout}",
        "# httpoxy: a client's Proxy header must never become HTTP_PROXY for PHP",
        "RequestHeader unset Proxy early",
        "",
        "# every in-flight PHP request holds one of these threads, also while queued at FPM",
        f"ServerLimit {a.server_limit}",
        f"ThreadsPerChild {a.threads_per_child}",
        f"MaxRequestWorkers {a.max_request_workers}",
        "# every process stays: an idle one retiring while a new one starts would let a",
        "# pool's requests spread over one process more than its bound counts on",
        f"StartServers {processes(model)}",
        f"MinSpareThreads {a.threads_per_child}",
        f"MaxSpareThreads {a.max_request_workers}",
        "",
        "# per-request costs nginx does not pay (scripts/bench_vs_nginx.py, docs/sizing.md):",
        "# a new connection every 100 requests, the scoreboard's per-request timestamps",
        "# (the request line no one reads: server-status is denied), read()+write() of files",
        "MaxKeepAliveRequests 1000",
        "ExtendedStatus Off",
        "EnableSendfile On",
        "",
    ]
    listen = _listen_lines(model)
    if listen:
        lines += [*listen, ""]
    bounds = _pool_bound_lines(model)
    if bounds:
        lines += [*bounds, ""]
    lines += [
        "# FPM status and ping pages are for phphost over the socket only",
        *_block(f'<LocationMatch "{FPM_PAGES}">', ["Require all denied"], "</LocationMatch>"),
        "# Apache's status pages show all tenants' requests; local PHP would reach them",
        *_block(f'<LocationMatch "{APACHE_PAGES}">', ["Require all denied"], "</LocationMatch>"),
        "",
        "# .ht* and .user.ini files, .inc includes, backup and editor copies of PHP files",
        *_deny(PRIVATE_FILES),
    ]
    return "\n".join(lines) + "\n"


def processes(model: Model) -> int:
    """Apache processes serving requests: MaxRequestWorkers / ThreadsPerChild."""
    return max(1, model.apache.max_request_workers // model.apache.threads_per_child)


def burst_queue(pool: Pool) -> int:
    """Requests per Apache process that may wait for a child of `pool` beyond its
    max_children (the spec's burst_queue, else 2 x max_children)."""
    queue = pool.settings.burst_queue
    return 2 * pool.settings.max_children if queue is None else queue


def pool_bound(pool: Pool, model: Model) -> int:
    """`max` of the pool's worker: requests one Apache process may have in flight to
    the pool (running or waiting for a child), at most ThreadsPerChild."""
    return min(pool.settings.max_children + burst_queue(pool), model.apache.threads_per_child)


def _pool_bound_lines(model: Model) -> list[str]:
    """One explicit worker per pool that bounds, in each Apache process, the requests
    in flight to the pool to max_children + burst_queue: those beyond max_children
    wait at FPM (in its listen queue, or in a blocking connect() once that is full),
    the next one gets a 503 after 1 ms. A bounded count, not a timeout: threads
    waiting in `acquire` are not bounded, so a flood would take them all
    (docs/sizing.md). No reuse (disablereuse), retry=0 (no 60 s lockout)."""
    lines: list[str] = []
    if model.pools:
        lines.append("# per pool and Apache process: max_children + burst_queue in flight, "
                     "then a fast 503")
    for pool in sorted(model.pools, key=lambda p: p.name):
        socket = check_value(pool.socket, f"pool {pool.name}: socket", forbidden="| ")
        worker = _q(f"unix:{socket}|fcgi://{pool.name}/", f"pool {pool.name}: socket")
        lines += _block(f"<Proxy {worker}>",
                        [f"ProxySet max={pool_bound(pool, model)} acquire=1 retry=0 "
                         "disablereuse=On"], "</Proxy>")
    return lines


def _listen_lines(model: Model) -> list[str]:
    """Listen for ports Debian's ports.conf does not already open (80, 443)."""
    a = model.apache
    wanted = [(a.http_port, "")]
    if any(site.tls is not None for site in model.sites):
        wanted.append((a.https_port, " https"))
    lines: list[str] = []
    for port, proto in wanted:
        line = f"Listen {port}{proto}"
        if port not in (80, 443) and line not in lines:
            lines.append(line)
    return lines


# --- sites --------------------------------------------------------------------------------


def render_site(site: Site, model: Model) -> str:
    a = model.apache
    if site.redirect is not None:
        # straight to the target from both ports: one hop, no detour over https
        away = [f"Redirect permanent / {_q(site.redirect, f'site {site.name}: redirect')}"]
        vhosts = [_vhost(a.http_port, site, away, None)]
        if site.tls is not None:
            vhosts.append(_vhost(a.https_port, site, away, site.tls))
    elif site.tls is not None:
        port = "" if a.https_port == 443 else f":{a.https_port}"
        to_https = _q(f"https://{site.server_name}{port}/", f"site {site.name}: server_name")
        vhosts = [
            _vhost(a.http_port, site, [f"Redirect permanent / {to_https}"], None),
            _vhost(a.https_port, site, _content_lines(site, model), site.tls),
        ]
    else:
        vhosts = [_vhost(a.http_port, site, _content_lines(site, model), None)]
    lines = [f"# {HEADER}"]
    for vhost in vhosts:
        lines += ["", *vhost]
    return "\n".join(lines) + "\n"


def _vhost(port: int, site: Site, content: list[str], tls: TLS | None) -> list[str]:
    body = [f"ServerName {check_value(site.server_name, 'server_name', ' ')}"]
    if site.aliases:
        aliases = [check_value(x, "aliases", " ") for x in sorted(site.aliases)]
        body.append(f"ServerAlias {' '.join(aliases)}")
    if tls is not None:
        body += _tls_lines(site, tls)
    body += content
    body += _log_lines(site)
    return _block(f"<VirtualHost *:{port}>", body, "</VirtualHost>")


def _tls_lines(site: Site, tls: TLS) -> list[str]:
    where = f"site {site.name}: tls"
    lines = [
        "SSLEngine on",
        f"SSLCertificateFile {_q(tls.cert, f'{where}.cert')}",
        f"SSLCertificateKeyFile {_q(tls.key, f'{where}.key')}",
    ]
    if tls.chain is not None:
        lines.append(f"SSLCertificateChainFile {_q(tls.chain, f'{where}.chain')}")
    return lines


def _log_lines(site: Site) -> list[str]:
    base = "${APACHE_LOG_DIR}/phphost-" + site.name
    return [f"ErrorLog {base}-error.log", f"CustomLog {base}-access.log combined"]


def _content_lines(site: Site, model: Model) -> list[str]:
    if site.docroot is None:
        raise ValueError(f"site {site.name}: no docroot and no redirect")
    docroot = _path(site.docroot, f"site {site.name}: docroot")
    lines = [
        f"DocumentRoot {docroot}",
        *_above_docroot_lines(site),
        *_block(f"<Directory {docroot}>", _docroot_lines(site), "</Directory>"),
        *_route_fallback_lines(site),
        "DirectoryIndex index.php index.html" if site.php else "DirectoryIndex index.html",
    ]
    writable = _writable_in_docroot(site, model)
    for path, public in writable:
        lines += _block(f"<Directory {_path(path, f'site {site.name}: writable dir')}>",
                        _writable_lines(site, path, public, writable), "</Directory>")
    if not site.php:
        return [*lines, *_deny(PHP_LIKE)]
    lines += _handler_lines(site, model)
    lines += _deny(PHP_LIKE_NOT_RUN)
    lines += _jail_env_lines(site, model)
    return lines


# Above a docroot (from / through the tenant home to the docroot's parent) no symlink
# is followed. Apache checks a symlinked path component against the Options of the
# directory that contains it, and Debian's <Directory /> has FollowSymLinks: without
# these sections a tenant could replace its docroot (or a dir above it) by a symlink
# into another tenant's tree and Apache would serve that tree as its own.
NO_SYMLINKS = "Options -FollowSymLinks -SymLinksIfOwnerMatch"


def ancestors(path: str) -> list[str]:
    """Pure: every directory above `path`, from "/" down: "/", "/a", "/a/b" for "/a/b/c"."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def _above_docroot_lines(site: Site) -> list[str]:
    """One <Directory> per directory above the docroot: no symlinks followed into the
    next component, no .htaccess read there (the tenant home and the dirs leading to
    the docroot are the tenant's, but are not served)."""
    lines: list[str] = []
    for directory in ancestors(site.docroot or "/"):
        path = _path(directory, f"site {site.name}: docroot")
        lines += _block(f"<Directory {path}>",
                        [NO_SYMLINKS, "AllowOverride None", "AllowOverrideList None"],
                        "</Directory>")
    return lines


def _docroot_lines(site: Site) -> list[str]:
    lines = ["Options -Indexes +SymLinksIfOwnerMatch"]
    categories = sorted(x for x in site.allow_override if x in OVERRIDE_CATEGORIES)
    directives = sorted(x for x in site.allow_override if x not in OVERRIDE_CATEGORIES)
    lines.append(f"AllowOverride {' '.join(categories) if categories else 'None'}")
    if directives:
        for directive in directives:
            if not directive.isascii() or not directive.isalnum():
                raise ValueError(f"site {site.name}: allow_override {directive!r} is not "
                                 "a directive name")
        lines.append(f"AllowOverrideList {' '.join(directives)}")
    if site.php:
        lines.append("CGIPassAuth On")    # apps see Authorization (PHP_AUTH_USER etc.)
    if site.front_controller is not None:
        # unknown URLs run the front controller (an internal redirect: the -f guarded
        # handler then sends it to the site's pool); pretty URLs without mod_rewrite
        where = f"site {site.name}: front_controller"
        lines.append(f"FallbackResource {_q(site.front_controller, where)}")
    lines.append("Require all granted")
    return lines


def _route_fallback_lines(site: Site) -> list[str]:
    """Unknown URLs under a route belong to the route's app (its own 404s), never to
    the site's front controller."""
    if site.front_controller is None or site.docroot is None:
        return []
    lines: list[str] = []
    for route in sorted(site.routes, key=lambda r: r.path):
        path = site.docroot.rstrip("/") + route.path.rstrip("/")
        lines += _block(f"<Directory {_path(path, f'site {site.name}: routes')}>",
                        ["FallbackResource disabled"], "</Directory>")
    return lines


def _writable_in_docroot(site: Site, model: Model) -> list[tuple[str, bool]]:
    """(dir, public) for every writable dir of the site tenant's pools inside the
    docroot (any of them can write there, whichever site it serves), parents first.
    A dir is public only when every pool that lists it says so."""
    docroot = site.docroot or ""
    dirs: dict[str, bool] = {}
    for pool in model.pools_of(site.tenant or ""):
        for path in pool.writable:
            if is_inside(path, docroot):
                dirs[path] = dirs.get(path, True) and path in pool.public
    return sorted(dirs.items())


# What an .htaccess in a writable dir may hold when the site reads .htaccess at all:
# access rules only. The pool can write that file, but Require can only open or close
# the pool's own files, which its PHP can print anyway; <IfModule> only tests modules
# (apps wrap their Require in it). Not <Files>/<FilesMatch>: their sections come after
# the <FilesMatch> deny below and could open PHP files to the handler again.
WRITABLE_OVERRIDES = "Require <IfModule"


def _writable_lines(site: Site, path: str, public: bool,
                    writable: list[tuple[str, bool]]) -> list[str]:
    """A writable dir in a docroot: never PHP; static files only when public (a public
    dir inside a private one must open again; else it inherits the docroot's rules)."""
    lines = ["AllowOverride None",
             f"AllowOverrideList {WRITABLE_OVERRIDES if site.allow_override else 'None'}"]
    if not public:
        lines.append("Require all denied")
    elif any(is_inside(path, other) and other != path and not open_
             for other, open_ in writable):
        lines.append("Require all granted")
    return [*lines, *_deny(PHP_LIKE)]


def _handler_lines(site: Site, model: Model) -> list[str]:
    """Routes first (longest path first), then the site's own pool."""
    if site.pool is None or site.docroot is None:
        raise ValueError(f"site {site.name}: PHP is on but the site has no pool or docroot")
    exists = "-f %{REQUEST_FILENAME}"
    body: list[str] = []
    keyword = "If"
    for route in sorted(site.routes, key=lambda r: (-len(r.path), r.path)):
        prefix = regex_literal(site.docroot.rstrip("/") + route.path)
        condition = f"{exists} && %{{REQUEST_FILENAME}} =~ m#^{prefix}#"
        body += _branch(keyword, condition, model.pool(route.pool))
        keyword = "ElseIf"
    body += _branch(keyword, exists, model.pool(site.pool))
    return _block('<FilesMatch "\\.php$">', body, "</FilesMatch>")


def _branch(keyword: str, condition: str, pool: Pool) -> list[str]:
    # '|' ends the socket path in mod_proxy's "unix:PATH|URL" syntax
    socket = check_value(pool.socket, f"pool {pool.name}: socket", forbidden="| ")
    handler = _q(f"proxy:unix:{socket}|fcgi://{pool.name}/", f"pool {pool.name}: socket")
    return _block(f'<{keyword} "{condition}">', [f"SetHandler {handler}"], f"</{keyword}>")


def _jail_env_lines(site: Site, model: Model) -> list[str]:
    """ProxyFCGISetEnvIf lines that rewrite SCRIPT_FILENAME / DOCUMENT_ROOT for pools
    of this site that run chrooted.

    Empty for now: a jailed pool sees the tenant home bind-mounted at the same path
    under its jail root, so SCRIPT_FILENAME needs no rewriting. If jails ever place
    the home elsewhere, emit `ProxyFCGISetEnvIf "true" SCRIPT_FILENAME "..."` here
    (otherwise FPM answers "Primary script unknown")."""
    del site, model
    return []
