"""[sites.NAME] for the spec loader: names, docroot, PHP pool and routes, TLS,
redirects and the .htaccess allow-list, plus the checks across sites. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping

from phphost.spec.model import TLS, Pool, Route, Site, Tenant
from phphost.spec.validate import (
    At,
    Table,
    abs_path,
    boolean,
    check_keys,
    dedupe,
    hostname,
    name,
    path_in_home,
    reference,
    required,
    string,
    string_list,
    table,
)

SITE_KEYS = ("server_name", "aliases", "tenant", "docroot", "php", "pool", "routes", "tls",
             "redirect", "allow_override", "front_controller", "recipe", "recipe_options")
TLS_KEYS = ("cert", "key", "chain")
NOT_WITH_REDIRECT = ("tenant", "docroot", "pool", "routes", "allow_override",
                     "front_controller", "recipe")

OVERRIDE_CATEGORIES = ("AuthConfig", "Indexes", "Limit")
OVERRIDE_DIRECTIVES = (
    "ErrorDocument", "Redirect", "RedirectMatch", "RedirectPermanent", "RedirectTemp",
    "DirectoryIndex", "Header", "ExpiresActive", "ExpiresByType", "ExpiresDefault",
    "AddDefaultCharset", "Require", "AuthType", "AuthName", "AuthUserFile", "AuthGroupFile",
)
_DANGEROUS_OVERRIDES = re.compile(
    r"^(FileInfo|Options|All|SetHandler|AddHandler|SetEnv.*|Rewrite.*|ProxyFCGI.*|php_.*"
    r"|Action|ForceType|AddType)$", re.IGNORECASE)
_ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~/-]*/$")
_URL_RE = re.compile(r"^https?://[^\s\"'<>\\{}|^`]+$")


def parse_sites(
    at: At, raw: Table, tenants: Mapping[str, Tenant], pools: Mapping[str, Pool]
) -> dict[str, Site]:
    sites = {sname: _site(at.sub(sname), sname, raw[sname], tenants, pools)
             for sname in sorted(raw)}
    _check_names_unique(at, sites)
    return sites


def _site(
    at: At, sname: str, value: object, tenants: Mapping[str, Tenant], pools: Mapping[str, Pool]
) -> Site:
    name(at, sname, "site")
    tbl = table(at, value)
    check_keys(at, tbl, SITE_KEYS)
    server_name = hostname(at.sub("server_name"),
                           required(at, tbl, "server_name", '"www.example.org"'))
    aliases = tuple(hostname(at.sub("aliases").sub(i), alias) for i, alias in
                    enumerate(string_list(at.sub("aliases"), tbl.get("aliases", []))))
    tls = _tls(at.sub("tls"), tbl["tls"]) if "tls" in tbl else None
    if "redirect" in tbl:
        return _redirect_site(at, sname, tbl, server_name, aliases, tls)
    tenant = reference(at.sub("tenant"), required(at, tbl, "tenant", '"TENANT"'), tenants,
                       "tenant")
    home = tenants[tenant].home
    docroot = path_in_home(at.sub("docroot"), required(at, tbl, "docroot", '"htdocs"'),
                           home, "docroot")
    php = boolean(at.sub("php"), tbl["php"]) if "php" in tbl else True
    pool = _site_pool(at, tbl, php, tenant, pools)
    routes = _routes(at, tbl, php, tenant, pools)
    return Site(
        name=sname, server_name=server_name, aliases=aliases, tenant=tenant, docroot=docroot,
        php=php, pool=pool, routes=routes, tls=tls,
        allow_override=_allow_override(at.sub("allow_override"), tbl.get("allow_override", [])),
        front_controller=_front_controller(at.sub("front_controller"), tbl["front_controller"],
                                           php, routes) if "front_controller" in tbl else None,
        recipe=string(at.sub("recipe"), tbl["recipe"]) if "recipe" in tbl else None,
    )


def _redirect_site(
    at: At, sname: str, tbl: Table, server_name: str, aliases: tuple[str, ...], tls: TLS | None
) -> Site:
    where = at.sub("redirect")
    url = string(where, tbl["redirect"])
    if not _URL_RE.match(url):
        where.fail(f"{url!r} is not an http(s) URL",
                   'write a full URL like "https://example.org/" (no spaces or quotes)')
    for key in NOT_WITH_REDIRECT:
        if key in tbl:
            at.sub(key).fail(f"{key!r} cannot be combined with redirect",
                             f"remove {key}, or remove redirect to serve content")
    if "php" in tbl and boolean(at.sub("php"), tbl["php"]):
        at.sub("php").fail("php = true cannot be combined with redirect",
                           "remove php (a redirecting site runs no PHP)")
    return Site(name=sname, server_name=server_name, aliases=aliases, php=False, tls=tls,
                redirect=url)


def _site_pool(
    at: At, tbl: Table, php: bool, tenant: str, pools: Mapping[str, Pool]
) -> str | None:
    where = at.sub("pool")
    if not php:
        if "pool" in tbl:
            where.fail("pool is set but php = false",
                       "remove pool, or set php = true to run PHP on this site")
        return None
    return _own_pool(where, required(at, tbl, "pool", '"POOL"'), tenant, pools)


def _own_pool(at: At, value: object, tenant: str, pools: Mapping[str, Pool]) -> str:
    pool = reference(at, value, pools, "pool")
    if pools[pool].tenant != tenant:
        own = sorted(p.name for p in pools.values() if p.tenant == tenant)
        at.fail(f"pool {pool!r} belongs to tenant {pools[pool].tenant!r}, not {tenant!r}",
                "a site may only use pools of its own tenant"
                + (f": {', '.join(own)}" if own else f"; define a pool with tenant = {tenant!r}"))
    return pool


def _routes(
    at: At, tbl: Table, php: bool, tenant: str, pools: Mapping[str, Pool]
) -> tuple[Route, ...]:
    if "routes" not in tbl:
        return ()
    where = at.sub("routes")
    if not php:
        where.fail("routes need PHP but php = false", "remove routes, or set php = true")
    routes: list[Route] = []
    for path, value in sorted(table(where, tbl["routes"]).items()):
        route_at = where.sub(path)
        if not _ROUTE_RE.match(path) or {"", ".", ".."} & set(path[1:-1].split("/")):
            route_at.fail(f"{path!r} is not a valid route path",
                          "start and end it with '/', use only A-Z a-z 0-9 . _ ~ - /, no empty, "
                          "'.' or '..' segments; '/' itself is served by the site's pool")
        routes.append(Route(path, _own_pool(route_at, value, tenant, pools)))
    return tuple(sorted(routes, key=lambda r: (-len(r.path), r.path)))


_FRONT_RE = re.compile(r"^/[A-Za-z0-9._~/-]*\.php$")


def _front_controller(at: At, value: object, php: bool, routes: tuple[Route, ...]) -> str:
    """The URL path unknown URLs go to (FallbackResource): a .php script of the site's
    own pool, so not under a route (its pool would then answer every URL of the site)."""
    path = string(at, value)
    if not php:
        at.fail("front_controller needs PHP but php = false",
                "remove front_controller, or set php = true and a pool")
    if not _FRONT_RE.match(path) or {"", ".", ".."} & set(path[1:].split("/")):
        at.fail(f"{path!r} is not a URL path of a PHP script in the site",
                'write it like "/index.php": starting with \'/\', ending in .php, only '
                "A-Z a-z 0-9 . _ ~ - /, no empty, '.' or '..' segments")
    for route in routes:
        if path.startswith(route.path):
            at.fail(f"{path!r} is under the route {route.path!r} (pool {route.pool!r}): that "
                    "pool would answer every unknown URL of the whole site",
                    "use a script the site's own pool runs (outside every route); unknown "
                    "URLs under a route are never sent to the site's front controller")
    return path


def _tls(at: At, value: object) -> TLS:
    tbl = table(at, value)
    check_keys(at, tbl, TLS_KEYS)
    return TLS(
        cert=abs_path(at.sub("cert"), required(at, tbl, "cert", '"/etc/ssl/certs/x.pem"')),
        key=abs_path(at.sub("key"), required(at, tbl, "key", '"/etc/ssl/private/x.key"')),
        chain=abs_path(at.sub("chain"), tbl["chain"]) if "chain" in tbl else None,
    )


def _allow_override(at: At, value: object) -> tuple[str, ...]:
    allowed = {n.lower(): n for n in (*OVERRIDE_CATEGORIES, *OVERRIDE_DIRECTIVES)}
    out: list[str] = []
    for i, entry in enumerate(string_list(at, value)):
        if _DANGEROUS_OVERRIDES.match(entry):
            at.sub(i).fail(
                f"{entry!r} must not be allowed in .htaccess",
                "remove it: with it a tenant's .htaccess could point PHP at another tenant's "
                "FPM socket or inject PHP_ADMIN_VALUE and override admin settings; allowed "
                f"are: {', '.join(allowed.values())}")
        if entry.lower() not in allowed:
            at.sub(i).fail(f"{entry!r} is not an allowed override",
                           f"use categories or directives from: {', '.join(allowed.values())}")
        out.append(allowed[entry.lower()])
    return dedupe(out)


def _check_names_unique(at: At, sites: Mapping[str, Site]) -> None:
    """Server names and aliases (already lowercased) belong to one site, once."""
    seen: dict[str, str] = {}
    for sname, site in sites.items():
        for i, host in enumerate((site.server_name, *site.aliases)):
            where = at.sub(sname).sub("server_name") if i == 0 \
                else at.sub(sname).sub("aliases").sub(i - 1)
            if host in seen:
                other = seen[host]
                where.fail(f"host name {host!r} is listed twice in site {sname!r}"
                           if other == sname else
                           f"host name {host!r} is already used by site {other!r}",
                           "every server name and alias must belong to exactly one site, "
                           "once (names compare case-insensitively)")
            seen[host] = sname
