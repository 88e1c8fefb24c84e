"""One imported site's PHP: is it on, which values go to which pool, what its
`.htaccess` files become, which sub-directories get a pool of their own. Pure."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass, field

from phphost.audit.apacheconf import Directive, parse, path_covers
from phphost.importer.errors import SourceError
from phphost.importer.htaccess import judge, needed_overrides, rewrite_depends_on_handler
from phphost.importer.php import (
    PHP_DIRECTIVES,
    PhpSetting,
    engine_off,
    expressible,
    is_php_handler,
    non_php_names,
    setting,
)
from phphost.importer.problems import Problem
from phphost.importer.scope import Place, in_modphp_only, place
from phphost.importer.tree import TreeFacts

_ROUTE_OK = re.compile(r"^[A-Za-z0-9._~/-]+$")
_FILE_SECTIONS = ("files", "filesmatch")
# where a handler line sits does not change which site it serves
_HANDLER_SECTIONS = (*_FILE_SECTIONS, "if", "elseif", "else")


@dataclass
class SitePhp:
    on: bool = False
    why: str = ""                    # why PHP is on or off
    where: str = ""
    values: dict[str, dict[str, str | bool]] = field(default_factory=dict)  # rel -> table
    routes: dict[str, str] = field(default_factory=dict)     # "/sub/" -> rel dir
    per_dir: dict[str, list[PhpSetting]] = field(default_factory=dict)     # rel -> settings
    allow_override: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def table(self, rel: str, name: str) -> dict[str, str | bool]:
        return self.values.setdefault(f"{rel}\0{name}", {})


def _denies_php(d: Directive) -> bool:
    """`Require all denied` / `Deny from all` in a <Files*> section matching x.php."""
    denied = (d.name == "require" and [a.lower() for a in d.args] == ["all", "denied"]) or \
        (d.name == "deny" and [a.lower() for a in d.args] == ["from", "all"])
    section = next((s for s in reversed(d.context) if s.kind in _FILE_SECTIONS), None)
    if not denied or section is None:
        return False
    if section.kind == "files" and section.arg != "~":
        return fnmatch.fnmatchcase("x.php", section.arg)
    pattern = section.args[-1] if section.args else ""
    try:
        return re.search(pattern, "x.php") is not None
    except re.error:
        return False


def php_state(lines: list[Directive], docroot: str, tree: TreeFacts,
              php_loaded: bool, problems: list[Problem]) -> tuple[bool, str, str]:
    """(on, why, where) for the site as mod_php ran it."""
    site_level = [d for d in lines
                  if place(d, docroot, _HANDLER_SECTIONS).kind in ("server", "site")]
    fpm = next((d for d in site_level if d.name == "sethandler" and d.args
                and d.args[0].lower().startswith("proxy:")), None)
    handler = next((d for d in site_level if is_php_handler(d)), None)
    if fpm is not None:
        handler = fpm
    elif not php_loaded or handler is None:
        return False, "no PHP module or handler reaches it", ""
    for d in site_level:
        s = setting(d) if d.name in PHP_DIRECTIVES else None
        if s is not None and engine_off(s) and place(d, docroot).kind in ("server", "site"):
            return False, f"PHP's engine is off ({s.source})", d.where
        if _denies_php(d):
            return False, ".php files are denied", d.where
        if d.name in ("removehandler", "removetype") and ".php" in [a.lower() for a in d.args]:
            return False, f"{d.name} .php", d.where
    problems += _non_php_handlers(site_level)
    if tree.php_count == 0:
        return False, "no PHP file under the docroot (the handler was on, nothing used it)", \
            handler.where
    return True, f"{handler.name} {' '.join(handler.args)}", handler.where


def _non_php_handlers(lines: list[Directive]) -> list[Problem]:
    out = []
    for d in lines:
        names = non_php_names(d) if is_php_handler(d) else []
        if names:
            out.append(Problem(
                "changed", d.where, f"`{d.name} {' '.join(d.args)}` ran {', '.join(names)} "
                "as PHP", "phphost runs only *.php: such files would be served as they are, "
                "PHP source included; rename them to .php or deny them before the move"))
    return out


def _route_dirs(tree: TreeFacts, config_dirs: set[str]) -> dict[str, str]:
    """Sub-directories holding an application of their own -> their route path."""
    out: dict[str, str] = {}
    for rel in sorted(set(tree.apps) | config_dirs):
        if any(rel.startswith(r + "/") for r in out.values()):
            continue
        if rel in tree.dirs_with_php or any(d.startswith(rel + "/") for d in tree.dirs_with_php):
            out[f"/{rel}/"] = rel
    return out


def owner(rel: str, routes: dict[str, str]) -> str:
    """The route dir (or "" for the site) whose pool runs PHP in dir rel."""
    found = [r for r in routes.values() if rel == r or rel.startswith(r + "/")]
    return max(found, key=len) if found else ""


def _apply(sp: SitePhp, s: PhpSetting, rel: str) -> None:
    """Put a setting where it belongs: a pool table, or a per-directory suggestion."""
    why = expressible(s)
    if why:
        sp.problems.append(Problem("lost", s.where, f"{s.source}: {why}",
                                   "set it in the pool by hand, or drop it"))
        return
    pool_dir = owner(rel, sp.routes)
    if rel == pool_dir:
        table = sp.table(pool_dir, s.table)
        if not s.admin and s.key in sp.table(pool_dir, "php_admin_values"):
            return
        table[s.key] = s.value
    else:
        sp.per_dir.setdefault(rel, []).append(s)


def config_values(sp: SitePhp, lines: list[Directive], docroot: str) -> None:
    for d in lines:
        s = setting(d)
        if s is None or place(d, docroot).kind == "server":
            continue
        where = place(d, docroot)
        if where.kind == "site":
            _apply(sp, s, "")
        elif where.kind == "dir":
            _apply(sp, s, where.rel)
        elif where.kind == "other":
            sp.problems.append(Problem(
                "lost", d.where, f"{s.source} applies only inside {where.why}",
                "phphost pools hold values per site or route; set it in the pool, in a "
                ".user.ini, or in the script (ini_set)"))


def config_app_dirs(lines: list[Directive], docroot: str) -> set[str]:
    """Dirs a <Directory>/<Location> gives php_admin_* values of their own: an app."""
    out: set[str] = set()
    for d in lines:
        if d.name in ("php_admin_value", "php_admin_flag"):
            where: Place = place(d, docroot)
            if where.kind == "dir" and _ROUTE_OK.match(where.rel):
                out.add(where.rel)
    return out


def effective_override(lines: list[Directive], path: str) -> str:
    """AllowOverride of the most specific <Directory> covering path ("None": default)."""
    best, value = -1, "None"
    for d in lines:
        if d.name != "allowoverride" or not d.args:
            continue
        section = next((s for s in reversed(d.context) if s.kind == "directory"), None)
        if section is None or section.arg == "~" or not path_covers(section.arg, path):
            continue
        depth = len(section.arg.rstrip("/").split("/"))
        if depth >= best:
            best, value = depth, " ".join(d.args)
    return value


def htaccess_lines(sp: SitePhp, tree: TreeFacts, docroot: str, lines: list[Directive]
                   ) -> list[tuple[str, list[Directive]]]:
    """(rel dir, directives) of every .htaccess Apache reads today."""
    out: list[tuple[str, list[Directive]]] = []
    for h in tree.htaccess:
        directory = posixpath.dirname(h.path)
        rel = posixpath.relpath(directory, docroot)
        rel = "" if rel == "." else rel
        if effective_override(lines, directory).lower() == "none":
            sp.problems.append(Problem("note", h.path, "not read today (AllowOverride None)",
                                       "nothing to carry over"))
            continue
        if h.text is None:
            raise SourceError(f"{h.path}: {h.problem}. Apache cannot read it either (it "
                              "answers 403 there); make it readable by the web user or "
                              "remove it, then run import again; nothing was written")
        out.append((rel, parse(h.path, h.text)))
    return out


def translate_htaccess(sp: SitePhp, files: list[tuple[str, list[Directive]]]) -> None:
    allowed: list[Directive] = []
    other: list[Directive] = []
    for rel, directives in files:
        for d in directives:
            v = judge(d)
            if d.name in PHP_DIRECTIVES and (s := setting(d)) is not None:
                if s.admin:
                    sp.problems.append(Problem(
                        "note", d.where, f"{s.source} in .htaccess",
                        "mod_php refuses php_admin_* in .htaccess (a 500 today); not carried"))
                else:
                    _apply(sp, s, rel)
                    other.append(d)
            elif v.allow == "-":
                continue
            elif v.allow:
                allowed.append(d)
            else:
                other.append(d)
    sp.allow_override = needed_overrides(allowed)
    for d in other:
        sp.problems.append(_htaccess_problem(d, sp.allow_override))


def _htaccess_problem(d: Directive, overrides: list[str]) -> Problem:
    line = f"{d.name} {' '.join(d.args)}".strip()
    if in_modphp_only(d):
        return Problem("note", d.where, f"`{line}` sits in <IfModule mod_php>",
                       "never read without mod_php; its value is carried to the pool")
    carried = " (its value is carried to the pool or a .user.ini: keep the spec written " \
        "before removing the line, a later import no longer sees it)" \
        if d.name in PHP_DIRECTIVES else ""
    handler = " It depends on mod_php's handler." if rewrite_depends_on_handler(d) else ""
    names = non_php_names(d) if is_php_handler(d) else []
    if names:
        handler += (f" It ran {', '.join(names)} as PHP: under phphost they are served as "
                    "they are, PHP source included; rename them to .php")
    if overrides:
        return Problem("lost", d.where, f"`{line}` in .htaccess{carried}",
                       f"the site reads .htaccess under phphost (allow_override = "
                       f"{', '.join(overrides)}), and this line would make Apache answer 500 "
                       f"there: remove it before the move{handler}")
    return Problem("lost" if not carried else "note", d.where,
                   f"`{line}` in .htaccess{carried}",
                   "ignored under phphost (the site reads no .htaccess; FPM never sees it): "
                   f"carry its effect over by hand if it matters{handler}")


def per_dir_problems(sp: SitePhp, docroot: str) -> None:
    for rel, settings in sorted(sp.per_dir.items()):
        user = [s for s in settings if not s.admin]
        admin = [s for s in settings if s.admin]
        if user:
            lines = "; ".join(f"{s.key} = {_ini(s.value)}" for s in user)
            sp.problems.append(Problem(
                "decide", user[0].where, f"PHP values for {docroot}/{rel} only: {lines}",
                f"put them in {docroot}/{rel}/.user.ini (FPM reads it for that directory; "
                "PHP_INI_PERDIR/USER settings only)"))
        for s in admin:
            sp.problems.append(Problem(
                "decide", s.where, f"{s.source} applies to {docroot}/{rel} only",
                "a .user.ini cannot hold admin values: make it pool-wide, or route the "
                "directory to a pool of its own"))


def _ini(value: str | bool) -> str:
    return ("On" if value else "Off") if isinstance(value, bool) else value


def analyse(lines: list[Directive], docroot: str, tree: TreeFacts, php_loaded: bool) -> SitePhp:
    problems: list[Problem] = []
    on, why, where = php_state(lines, docroot, tree, php_loaded, problems)
    sp = SitePhp(on, why, where, problems=problems)
    files = htaccess_lines(sp, tree, docroot, lines)
    if on:
        sp.routes = _route_dirs(tree, config_app_dirs(lines, docroot))
        config_values(sp, lines, docroot)
    translate_htaccess(sp, files)
    if not on:
        sp.values.clear()
        sp.per_dir.clear()
    per_dir_problems(sp, docroot)
    return sp
