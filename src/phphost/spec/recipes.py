"""App recipes: what a known application needs from its site and pool, so a site says
``recipe = "wordpress"`` instead of spelling it out (docs/recipes.md).

A recipe is applied to the raw TOML before validation, so everything it brings is
checked like keys the user wrote. Precedence (docs/spec.md):

- site keys (``allow_override``, ``front_controller``): the site's own value, if it
  sets the key, replaces the recipe's;
- pool ``jail.features``: the recipe's features are added to the pool's;
- pool ``writable``: the recipe's dirs (relative to the site's docroot) are added; a
  pool entry for the same path wins (e.g. to make it non-public);
- pool ``php_admin_values`` / ``php_values`` / ``php_ini``: merged name by name into the
  pool's own tables, the pool's own value winning; a template's value for the same
  name loses to both (the recipe counts as the pool's own settings);
- pool ``php_extensions``: the recipe's extensions are added to the pool's (unless
  the pool says ``"all"``).

Pure.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phphost.spec.validate import At, Table, string, string_list, table

SITE_RECIPE_KEYS = ("recipe", "recipe_options")


@dataclass(frozen=True)
class Writable:
    path: str            # relative to the site's docroot
    public: bool = False  # its files are served as static files (uploads)


@dataclass(frozen=True)
class Option:
    """An opt-in part of a recipe (`recipe_options`)."""

    what: str
    features: tuple[str, ...] = ()
    writable: tuple[Writable, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    what: str
    features: tuple[str, ...] = ()
    writable: tuple[Writable, ...] = ()
    allow_override: tuple[str, ...] = ()
    front_controller: str | None = None
    php_admin_values: tuple[tuple[str, str], ...] = ()
    php_values: tuple[tuple[str, str], ...] = ()
    # PHP extensions beyond the base set (spec/extensions.py): what Debian's package
    # of the application depends on or recommends, where installed
    extensions: tuple[str, ...] = ()
    options: Mapping[str, Option] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        "wordpress", "WordPress (Debian's wordpress package or wordpress.org's zip)",
        features=("mysql", "mail", "dns", "tls", "phplibs"),
        writable=(Writable("wp-content/uploads", public=True),),
        # plugins' own .htaccess (Akismet: <IfModule> + Require all denied on its PHP)
        allow_override=("AuthConfig",),
        front_controller="/index.php",
        php_admin_values=(("upload_max_filesize", "32M"), ("post_max_size", "33M")),
        # Debian's Depends: php-gd (image resizing); Suggests: php-curl (its HTTP API)
        extensions=("curl", "gd"),
        options={"admin-installs": Option(
            "plugins, themes and translations installed and updated from the admin "
            "(needs define('FS_METHOD', 'direct') in wp-config.php); makes the code in "
            "them writable by PHP",
            writable=(Writable("wp-content/plugins", public=True),
                      Writable("wp-content/themes", public=True),
                      Writable("wp-content/languages"),
                      Writable("wp-content/upgrade")))},
    ),
    Recipe(
        "dokuwiki", "DokuWiki (Debian's dokuwiki package or the upstream tarball)",
        features=("phplibs", "sessions", "mail"),
        writable=(Writable("data"), Writable("conf")),
        # its top .htaccess: <IfModule> + <Files> with Require (AuthConfig; <IfModule>
        # needs a category, a directive list alone refuses it), RedirectMatch 404 /.git
        allow_override=("AuthConfig", "RedirectMatch"),
        extensions=("gd",),           # Recommends: php-gd (image resizing)
        options={"extensions": Option(
            "the extension manager installs plugins and templates; makes the code in "
            "them writable by PHP",
            writable=(Writable("lib/plugins", public=True),
                      Writable("lib/tpl", public=True)))},
    ),
    Recipe(
        "mediawiki", "MediaWiki (Debian's mediawiki package), code in the docroot",
        features=("mysql", "iconv", "locale", "phplibs"),
        writable=(Writable("images", public=True), Writable("cache")),
        php_admin_values=(("upload_max_filesize", "32M"), ("post_max_size", "33M")),
        # its composer.json requires calendar and intl (the rest of what it requires is
        # in the base set); Debian Recommends: php-apcu (CACHE_ACCEL), php-curl, php-gd
        extensions=("calendar", "intl", "apcu", "curl", "gd"),
    ),
    Recipe(
        "adminer", "Adminer (Debian's adminer package), a one-file database manager",
        features=("mysql", "sessions"),
    ),
    Recipe(
        "phpmyadmin", "phpMyAdmin (Debian's phpmyadmin package)",
        features=("mysql", "sessions", "phplibs"),
        writable=(Writable("tmp"),),
        php_admin_values=(("upload_max_filesize", "32M"), ("post_max_size", "33M")),
        extensions=("curl", "gd"),    # Recommends: php-curl, php-gd
    ),
)}


def recipe_of(at: At, value: object) -> Recipe:
    name = string(at, value)
    if name not in RECIPES:
        at.fail(f"unknown recipe {name!r}", f"use one of: {', '.join(sorted(RECIPES))} "
                "(docs/recipes.md), or leave recipe out and set the keys yourself")
    return RECIPES[name]


def _options(at: At, recipe: Recipe, value: object) -> list[Option]:
    out = []
    for i, name in enumerate(string_list(at, value)):
        if name not in recipe.options:
            have = ", ".join(sorted(recipe.options)) or "none"
            at.sub(i).fail(f"recipe {recipe.name!r} has no option {name!r}",
                           f"options of {recipe.name}: {have} (docs/recipes.md)")
        out.append(recipe.options[name])
    return out


def apply_recipes(at: At, sites: Table, pools: Table, tenants: Table) -> tuple[Table, Table]:
    """The raw [sites] and [pools] tables with every site's recipe applied (new
    tables; the input is not changed: a site with a recipe and its pool are copied
    before they change, the others are shared). `at` is the spec's top level."""
    sites, pools = dict(sites), dict(pools)
    by_pool: dict[str, tuple[str, str]] = {}     # pool -> (site, recipe)
    for sname in sorted(sites):
        site = sites[sname]
        if not isinstance(site, dict) or "recipe" not in site:
            if isinstance(site, dict) and "recipe_options" in site:
                at.sub("sites").sub(sname).sub("recipe_options").fail(
                    "recipe_options without a recipe", "add recipe = \"NAME\" or remove it")
            continue
        if "redirect" in site:
            continue          # validation refuses recipe with redirect
        where = at.sub("sites").sub(sname)
        recipe = recipe_of(where.sub("recipe"), site["recipe"])
        options = _options(where.sub("recipe_options"), recipe, site.get("recipe_options", []))
        site = sites[sname] = copy.deepcopy(site)
        _apply_site(recipe, site)
        pname = site.get("pool")
        pool = pools.get(pname) if isinstance(pname, str) else None
        if not isinstance(pname, str) or not isinstance(pool, dict):
            continue          # validation of the site reports it
        if pname not in by_pool:
            pool = pools[pname] = copy.deepcopy(pool)
        if pname in by_pool and by_pool[pname][1] != recipe.name:
            other, other_recipe = by_pool[pname]
            where.sub("recipe").fail(
                f"pool {pname!r} also runs site {other!r} with recipe {other_recipe!r}",
                "give each application its own pool (or the same recipe)")
        by_pool[pname] = (sname, recipe.name)
        _apply_pool(at.sub("pools").sub(pname), recipe, options, pool, site,
                    _home(tenants, site))
    return sites, pools


def _home(tenants: Table, site: Table) -> str | None:
    name = site.get("tenant")
    tenant = tenants.get(name) if isinstance(name, str) else None
    home = tenant.get("home") if isinstance(tenant, dict) else None
    return home if isinstance(home, str) else None


def _apply_site(recipe: Recipe, site: dict[str, Any]) -> None:
    if recipe.allow_override and "allow_override" not in site:
        site["allow_override"] = list(recipe.allow_override)
    if recipe.front_controller and "front_controller" not in site:
        site["front_controller"] = recipe.front_controller


def _apply_pool(at: At, recipe: Recipe, options: list[Option], pool: dict[str, Any],
                site: Table, home: str | None) -> None:
    features = [*recipe.features, *(f for o in options for f in o.features)]
    if features:
        jail = pool.setdefault("jail", {})
        if isinstance(jail, dict):
            own = jail.get("features", [])
            if isinstance(own, list):
                jail["features"] = [*own, *(f for f in features if f not in own)]
    writable = [*recipe.writable, *(w for o in options for w in o.writable)]
    docroot = site.get("docroot")
    if writable and isinstance(docroot, str) and home is not None:
        _add_writable(pool, writable, docroot, home)
    for key, values in (("php_admin_values", recipe.php_admin_values),
                        ("php_values", recipe.php_values)):
        if values:
            own_tbl = table(at.sub(key), pool.get(key, {}))
            pool[key] = {**dict(values), **own_tbl}
    own_ext = pool.get("php_extensions", [])
    if recipe.extensions and isinstance(own_ext, list):
        pool["php_extensions"] = [*own_ext, *(e for e in recipe.extensions if e not in own_ext)]


def _add_writable(pool: dict[str, Any], writable: list[Writable], docroot: str,
                  home: str) -> None:
    own = pool.get("writable", [])
    if not isinstance(own, list):
        return                # validation of the pool reports it
    seen = {_abs(home, _entry_path(e)) for e in own}
    for w in writable:
        path = posixpath.join(docroot, w.path)
        if _abs(home, path) in seen:
            continue
        own.append({"path": path, "public": True} if w.public else path)
        seen.add(_abs(home, path))
    pool["writable"] = own


def _entry_path(entry: object) -> str:
    if isinstance(entry, dict):
        path = entry.get("path")
        return path if isinstance(path, str) else ""
    return entry if isinstance(entry, str) else ""


def _abs(home: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(home, path))
