""".htaccess lines against what a site lets Apache read there (PHA027). Pure.

Which `AllowOverride` category each common directive needs (httpd's module docs,
"Override:" of each directive), which `.htaccess` a directory reads under phphost's
rendering (the site's `allow_override` on its docroot; `Require` and `<IfModule>` only in
a writable dir inside it; nothing when the site lists none), and the spec key that does
the same job for a directive that is not allowed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from phphost.audit import apacheconf as ac
from phphost.spec.model import Pool, Site
from phphost.spec.sites import OVERRIDE_DIRECTIVES
from phphost.spec.validate import is_inside

AUTHCONFIG = frozenset({
    "authtype", "authname", "authuserfile", "authgroupfile", "require", "satisfy",
    "authbasicprovider", "authbasicauthoritative", "authbasicfake", "authmerging",
    "authdigestprovider", "authdigestalgorithm", "authdigestdomain", "authdigestqop",
    "authdigestnoncelifetime", "authdbmuserfile", "authdbmgroupfile", "authdbmtype",
    "authzsendforbiddenonfailure", "authformprovider", "anonymous",
    "<requireall", "<requireany", "<requirenone",
})
LIMIT = frozenset({"allow", "deny", "order"})
INDEXES = frozenset({
    "directoryindex", "directoryindexredirect", "directoryslash", "fallbackresource",
    "indexoptions", "indexignore", "indexignorereset", "indexorderdefault",
    "indexstylesheet", "indexheadinsert", "headername", "readmename", "adddescription",
    "addalt", "addaltbyencoding", "addaltbytype", "addicon", "addiconbyencoding",
    "addiconbytype", "defaulticon", "expiresactive", "expiresbytype", "expiresdefault",
})
FILEINFO = frozenset({
    "rewriteengine", "rewriterule", "rewritecond", "rewritebase", "rewriteoptions",
    "sethandler", "addhandler", "removehandler", "addtype", "removetype", "forcetype",
    "action", "addencoding", "addcharset", "addlanguage", "defaultlanguage",
    "addinputfilter", "addoutputfilter", "addoutputfilterbytype", "setinputfilter",
    "setoutputfilter", "errordocument", "redirect", "redirectmatch", "redirectpermanent",
    "redirecttemp", "header", "requestheader", "setenv", "unsetenv", "passenv", "setenvif",
    "setenvifnocase", "setenvifexpr", "browsermatch", "browsermatchnocase",
    "adddefaultcharset", "acceptpathinfo", "languagepriority", "forcelanguagepriority",
    "multiviewsmatch", "substitute", "cookietracking", "cookiename",
})
OPTIONS = frozenset({"options", "xbithack", "checkspelling", "checkcaseonly",
                     "contentdigest"})
# sections allowed wherever any category is (httpd: OR_ALL)
CONTAINERS = frozenset({"<ifmodule", "<ifdefine", "<ifversion", "<iffile", "<ifdirective",
                        "<ifsection", "<files", "<filesmatch", "<if", "<elseif", "<else",
                        "<limit", "<limitexcept"})
CATEGORY = {**{n: "AuthConfig" for n in AUTHCONFIG}, **{n: "Limit" for n in LIMIT},
            **{n: "Indexes" for n in INDEXES}, **{n: "FileInfo" for n in FILEINFO},
            **{n: "Options" for n in OPTIONS}}
# what a writable dir inside a docroot reads (render/apache.py WRITABLE_OVERRIDES)
WRITABLE_LIST = frozenset({"require", "<ifmodule"})
MOD_PHP = re.compile(r"^php_(admin_)?(value|flag)$")


@dataclass(frozen=True)
class Allowed:
    """What Apache reads from .htaccess in one directory."""

    categories: frozenset[str]     # "AuthConfig", ...
    directives: frozenset[str]     # lowercased names (AllowOverrideList)
    why: str                       # for messages

    @property
    def read(self) -> bool:
        return bool(self.categories or self.directives)

    def allows(self, name: str) -> bool:
        if name in self.directives or CATEGORY.get(name) in self.categories:
            return True
        return name in CONTAINERS and bool(self.categories)


@dataclass(frozen=True)
class Line:
    """A directive (lowercased name, args as written) at a line of an .htaccess."""

    name: str
    shown: str
    args: tuple[str, ...]
    line: int


def writable_in_docroot(site: Site, pools: Iterable[Pool]) -> list[str]:
    """The writable dirs of `pools` (the site tenant's) inside the site's docroot."""
    root = site.docroot or ""
    return sorted({w for p in pools for w in p.writable if is_inside(w, root)})


def allowed_in(site: Site, writable: list[str], directory: str) -> Allowed:
    """What an .htaccess in `directory` (inside the site's docroot) may hold, given the
    writable dirs inside that docroot."""
    if not site.allow_override:
        return Allowed(frozenset(), frozenset(),
                       f"site {site.name} has no allow_override: Apache does not read .htaccess")
    inside = [w for w in writable if is_inside(directory, w)]
    if inside:
        return Allowed(frozenset(), WRITABLE_LIST,
                       f"{max(inside)} is a writable dir: its .htaccess may hold Require and "
                       "<IfModule> only")
    names = {n.lower() for n in site.allow_override}
    categories = frozenset(c for c in ("AuthConfig", "Indexes", "Limit") if c.lower() in names)
    return Allowed(categories, frozenset(names - {c.lower() for c in categories}),
                   f"site {site.name} allows {', '.join(site.allow_override)}")


def _module_active(arg: str, modules: frozenset[str]) -> bool:
    negated = arg.startswith("!")
    name = arg.lstrip("!")
    match = re.match(r"^mod_(\w+)\.c$", name)
    module = f"{match[1]}_module" if match else name
    loaded = module in modules if modules else True
    return loaded != negated


def lines(path: str, text: str, modules: frozenset[str]) -> list[Line]:
    """The directives Apache would evaluate (inside <IfModule> sections that hold on
    this host, `modules` being apache2ctl -M's names; unknown modules count as loaded)."""
    out: list[Line] = []
    for d in ac.parse(path, text):
        dead = any(s.kind == "ifmodule" and not _module_active(s.arg, modules)
                   for s in d.context)
        if not dead:
            out.append(Line(d.name, _shown(d.name, text, d.line), d.args, d.line))
    return out


def _shown(name: str, text: str, number: int) -> str:
    """The directive as the file spells it."""
    raw = text.splitlines()[number - 1].strip() if number <= len(text.splitlines()) else name
    word = raw.split()[0].rstrip(">") if raw.split() else name
    return word if word.lower() == name else name


# --- remedies -----------------------------------------------------------------------------

def remedy(line: Line, site: Site, writable: bool) -> str:
    """The spec key (or the answer) that does what the line meant to do."""
    key = f"sites.{site.name}"
    text = _remedy(line, site, key)
    if writable:
        return ("in a writable dir only Require and <IfModule> are read: move the line to an "
                ".htaccess outside it (e.g. the docroot's), where " + text)
    return text


def _remedy(line: Line, site: Site, key: str) -> str:
    name = line.name
    if name.startswith("rewrite") or name == "fallbackresource":
        return (f'a front controller: {key}.front_controller = "/index.php" (the script the '
                "rules send unknown URLs to); .htaccess rewrites are never allowed "
                "(RewriteRule [P]/[H=] could reach another pool's socket)")
    if MOD_PHP.match(name):
        table = "php_admin_values" if "admin" in name else "php_values"
        pools = ", ".join(f"pools.{p}.{table}" for p in _pools(site))
        value = (f' = {{ "{line.args[0]}" = "{line.args[1]}" }}'
                 if len(line.args) >= 2 else "")
        return f"{pools or 'the pool'}{value} (mod_php directives mean nothing to PHP-FPM)"
    if name in OPTIONS:
        return ("nothing in the spec: phphost sets Options -Indexes +SymLinksIfOwnerMatch; "
                "remove the line, or ask the host's admin")
    if name in ("sethandler", "addhandler", "addtype", "forcetype", "action", "removehandler"):
        return ("nothing: only .php files run, through the site's pool; remove the line "
                "(rename scripts to .php)")
    if name.startswith(("setenv", "unsetenv", "passenv", "browsermatch")):
        return ("nothing: .htaccess may not set the environment (it could set PHP_VALUE); "
                "set the value in the application's config or the pool's php_values")
    return _override_remedy(line, key)


def _override_remedy(line: Line, key: str) -> str:
    single = {d.lower(): d for d in OVERRIDE_DIRECTIVES}
    category = CATEGORY.get(line.name)
    if line.name in single:
        return f'{key}.allow_override = [..., "{single[line.name]}"]'
    if line.name in CONTAINERS or line.name in ("<requireall", "<requireany", "<requirenone"):
        return (f"{key}.allow_override with a category (AuthConfig, Indexes or Limit): "
                "sections are read only with one")
    if category in ("AuthConfig", "Indexes", "Limit"):
        return f'{key}.allow_override = [..., "{category}"]'
    if category is None:
        return "not a directive phphost knows; check it by hand (a module not loaded is a 500)"
    return f"nothing in the spec allows {category} directives; remove the line"


def _pools(site: Site) -> list[str]:
    names = {r.pool for r in site.routes}
    if site.pool is not None:
        names.add(site.pool)
    return sorted(names)
