"""From what import read to a phphost spec and the list of what it could not carry
over. Pure: the host facts come in as `Inputs`.

Shape of the spec (docs/migrate.md): one tenant per site directory (a docroot named
htdocs/public_html/... gets its parent), one pool per PHP site and one per
sub-directory application (a route), all inheriting the template `modphp` (mod_php's
php.ini values as php_ini), each with the data dirs the web user could write as
`writable`, jails off (mod_php ran unjailed; `phphost migrate` turns them on last)."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phphost.audit.apacheconf import Directive
from phphost.errors import SpecError
from phphost.importer.php import extension_problems, ini_for_pools, pool_extensions, setting
from phphost.importer.problems import Problem, sort_problems
from phphost.importer.scope import ServerLines, live, place
from phphost.importer.sitephp import SitePhp, analyse, owner
from phphost.importer.source import ApacheSource, PhpIni
from phphost.importer.tenants import containing, forbidden_root, homes, tenant_names
from phphost.importer.tree import TreeFacts
from phphost.importer.vhosts import Draft, drafts, ports, spec_name
from phphost.spec.validate import At, hostname, is_inside

TEMPLATE = "modphp"
CARRIED = frozenset({
    "servername", "serveralias", "documentroot", "sslengine", "sslcertificatefile",
    "sslcertificatekeyfile", "sslcertificatechainfile", "php_value", "php_flag",
    "php_admin_value", "php_admin_flag", "allowoverride", "allowoverridelist",
    "errorlog", "customlog", "transferlog", "loglevel", "serveradmin", "cgipassauth",
})


@dataclass(frozen=True)
class Inputs:
    apache: ApacheSource
    trees: dict[str, TreeFacts]              # docroot -> what is on disk
    modphp_ini: PhpIni
    fpm_ini: PhpIni
    account_exists: Callable[[str], bool] = lambda name: False
    real: dict[str, str] = field(default_factory=dict)   # docroot -> its path without symlinks


@dataclass
class Translation:
    sections: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)     # "sites.x" -> comments
    origins: dict[str, list[str]] = field(default_factory=dict)   # site -> vhosts' file:line
    pool_names: set[str] = field(default_factory=set)
    homes: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    apache: dict[str, int] = field(default_factory=dict)

    def add(self, section: str, name: str, body: dict[str, Any], *notes: str) -> None:
        self.sections.setdefault(section, {})[name] = body
        if notes:
            self.notes[f"{section}.{name}"] = list(notes)


def global_lines(apache: ApacheSource) -> list[Directive]:
    defines = frozenset(apache.variables)
    return [d for d in apache.directives if d.vhost is None and live(d, apache.modules, defines)]


def valid_host(name: str) -> bool:
    try:
        hostname(At("import"), name)
    except SpecError:
        return False
    return True


def translate(inp: Inputs) -> Translation:
    out = Translation()
    all_drafts = [_resolved(d, inp.real, out) for d in drafts(inp.apache)]
    http, https, port_problems = ports(all_drafts)
    out.apache = {"http_port": http, "https_port": https}
    out.problems += port_problems
    content = _content_drafts(all_drafts, out)
    home_of = homes([d.content.docroot or "/" for d in content])
    tenant_of = tenant_names(list(home_of.values()), inp.account_exists, spec_name)
    for home, tenant in sorted(tenant_of.items(), key=lambda x: x[1]):
        out.add("tenants", tenant, {"home": home})
    out.homes = set(tenant_of)
    _template(inp, out)
    site_names: set[str] = set()
    hosts: dict[str, str] = {}
    server_lines = global_lines(inp.apache)
    out.problems += _server_aliases(server_lines)
    server = ServerLines(server_lines)
    is_content = {id(d) for d in content}
    for draft in all_drafts:
        if id(draft) in is_content:
            docroot = draft.content.docroot or "/"
            home = home_of[docroot]
            _content_site(inp, out, draft, (home, tenant_of[home]), server, (site_names, hosts))
        elif draft.content.redirect is not None:
            _redirect_site(out, draft, site_names, hosts)
    out.problems = sort_problems(out.problems)
    return out


def _resolved(draft: Draft, real: dict[str, str], out: Translation) -> Draft:
    """The draft with each docroot reached through a symlink replaced by the real path:
    phphost refuses symlinks on the way to a docroot (a tenant could swap them)."""
    for i, v in enumerate(draft.vhosts):
        target = real.get(v.docroot or "")
        if v.docroot is None or target is None or target == v.docroot:
            continue
        out.problems.append(Problem(
            "changed", v.docroot_where, f"DocumentRoot {v.docroot} is reached through a "
            f"symlink (it is {target})", f"the spec serves {target} itself; <Directory> "
            f"sections naming {v.docroot} are matched against {target}: check them"))
        draft.vhosts[i] = dataclasses.replace(v, docroot=target)
    return draft


def _server_aliases(lines: list[Directive]) -> list[Problem]:
    """Server-wide Alias lines reach every vhost; phphost's sites carry none."""
    return [Problem(
        "decide", d.where, f"`{d.name} {' '.join(d.args)}` applies to every vhost",
        "phphost sites carry no aliases and leave this Apache config alone: if mod_php ran "
        "PHP there, give it a site or route of its own before mod_php goes")
        for d in lines if d.name in ("alias", "aliasmatch", "scriptalias") and len(d.args) >= 2
        and not d.args[-1].rstrip("/").startswith("/usr/share/apache2/icons")]


def _https_of(draft: Draft) -> bool:
    """The plain vhost only sends visitors to the TLS vhost of the same name."""
    target = (draft.vhosts[0].redirect or "").lower()
    return target.startswith(f"https://{draft.server_name}")


def _content_drafts(all_drafts: list[Draft], out: Translation) -> list[Draft]:
    content: list[Draft] = []
    for draft in all_drafts:
        docroot = draft.content.docroot
        if docroot is None:
            continue
        system = forbidden_root(docroot)
        if system is not None:
            out.problems.append(Problem(
                "lost", draft.content.docroot_where,
                f"{draft.server_name}: DocumentRoot {docroot} is inside {system}",
                "phphost tenant homes cannot be there: copy the files to a directory of "
                "their own (e.g. /srv/www/NAME), point the vhost at it, run import again"))
            continue
        content.append(draft)
        _tls_changes(draft, out)
    return content


def _tls_changes(draft: Draft, out: Translation) -> None:
    tls = draft.tls_vhost
    if tls is None:
        return
    plain = [v for v in draft.vhosts if not v.ssl]
    if not plain:
        out.problems.append(Problem(
            "changed", tls.ref.where, f"{draft.server_name} had no http vhost",
            "phphost answers http://NAME/ with a redirect to https://NAME/"))
    elif plain[0].redirect is None or not _https_of(Draft(draft.server_name, [], plain)):
        out.problems.append(Problem(
            "changed", plain[0].ref.where,
            f"{draft.server_name} served content over http too",
            "phphost redirects http to https for a site with TLS; keep a separate site "
            "without tls if plain http must stay"))


def _names(draft: Draft, out: Translation, hosts: dict[str, str], site: str
           ) -> tuple[str, list[str]] | None:
    kept: list[str] = []
    for name in [draft.server_name, *draft.aliases]:
        if not valid_host(name):
            out.problems.append(Problem(
                "lost", draft.where, f"host name {name!r} (a wildcard or not a DNS name)",
                "phphost sites take exact host names only: list the names you need"))
        elif name in hosts:
            out.problems.append(Problem(
                "lost", draft.where, f"{name} is also a name of site {hosts[name]}",
                "Apache answered with the first vhost; phphost keeps it there"))
        else:
            hosts[name] = site
            kept.append(name)
    return (kept[0], kept[1:]) if kept else None


def _redirect_site(out: Translation, draft: Draft, site_names: set[str],
                   hosts: dict[str, str]) -> None:
    site = spec_name(draft.server_name, site_names)
    names = _names(draft, out, hosts, site)
    v = draft.content
    if names is None or v.redirect is None:
        return
    if not v.redirect.lower().startswith(("http://", "https://")):
        out.problems.append(Problem("lost", v.redirect_where, f"Redirect / {v.redirect}",
                                    "phphost redirects to full URLs only: write one"))
        return
    if v.redirect_status != "301":
        out.problems.append(Problem(
            "changed", v.redirect_where, f"redirect with status {v.redirect_status}",
            "phphost's redirect sites answer 301 (permanent)"))
    body: dict[str, Any] = {"server_name": names[0], "aliases": names[1] or None,
                            "redirect": v.redirect}
    out.add("sites", site, body, f"from {v.ref.where} ({v.ref.addr}:{v.ref.port})")
    out.origins[site] = [x.ref.where for x in draft.vhosts]


def _template(inp: Inputs, out: Translation) -> None:
    ini: dict[str, str] = {}
    if inp.apache.php_loaded:
        ini, problems = ini_for_pools(inp.modphp_ini.values, inp.fpm_ini.values,
                                      inp.modphp_ini.where)
        out.problems += problems + extension_problems(inp.modphp_ini.extensions,
                                                      inp.fpm_ini.extensions)
    body: dict[str, Any] = {"pm": "ondemand", "max_children": 5}
    if inp.apache.php_loaded:
        # every extension mod_php loaded stays loaded (the masters load a base set)
        body["php_extensions"] = pool_extensions(inp.modphp_ini.extensions) or None
    php_values: dict[str, Any] = {}
    admin_values: dict[str, Any] = {}
    for d in global_lines(inp.apache):
        s = setting(d)
        if s is not None and place(d, "/nonexistent-docroot").kind == "server":
            (admin_values if s.admin else php_values)[s.key] = s.value
    body.update({"php_ini": ini or None, "php_values": php_values or None,
                 "php_admin_values": admin_values or None})
    files = ", ".join(inp.modphp_ini.files) or "no php.ini (PHP's built-in defaults)"
    if not inp.apache.php_loaded:
        files = "nothing: mod_php is not loaded"
    out.add("templates", TEMPLATE, body,
            "what every imported pool shares: mod_php's php.ini values FPM's php.ini lacks",
            f"mod_php read: {files}")


def _content_site(inp: Inputs, out: Translation, draft: Draft, owner_: tuple[str, str],
                  server: ServerLines, taken: tuple[set[str], dict[str, str]]) -> None:
    home, tenant = owner_
    site_names, hosts = taken
    v = draft.content
    docroot = v.docroot or "/"
    site = spec_name(draft.server_name, site_names)
    names = _names(draft, out, hosts, site)
    if names is None:
        return
    tree = inp.trees.get(docroot, TreeFacts(docroot, exists=False))
    _tree_problems(tree, v.docroot_where, out)
    lines = server.for_docroot(docroot) + list(v.directives)
    sp = analyse(lines, docroot, tree, inp.apache.php_loaded)
    out.problems += sp.problems + _lost_lines(draft)
    body: dict[str, Any] = {"server_name": names[0], "aliases": names[1] or None,
                            "tenant": tenant, "docroot": docroot, "php": sp.on}
    if sp.on:
        pools = _pools(out, site, tenant, home, sp, tree)
        body["pool"] = pools[""]
        routes = {path: pools[rel] for path, rel in sp.routes.items()}
        body["routes"] = routes or None
    if draft.tls_vhost is not None:
        body["tls"] = _tls(draft, out)
    body["allow_override"] = sp.allow_override or None
    out.add("sites", site, body, *_site_notes(out, draft, sp))
    out.origins[site] = [x.ref.where for x in draft.vhosts]


def _site_notes(out: Translation, draft: Draft, sp: SitePhp) -> list[str]:
    """The comments above a site (where it came from, why PHP is on or off)."""
    if not sp.on and sp.why.startswith("PHP's engine is off"):
        out.problems.append(Problem(
            "changed", sp.where, f"{draft.server_name}: mod_php served its .php files as "
            "text (engine off: the source, passwords included)",
            "phphost denies .php on a site without PHP (403); nothing to do unless the "
            "source was meant to be downloadable"))
    sources = ", ".join(f"{x.ref.where} ({x.ref.addr}:{x.ref.port})" for x in draft.vhosts)
    php_note = f"PHP {'on' if sp.on else 'off'}: {sp.why}" + \
        (f" ({sp.where})" if sp.where else "")
    return [f"from {sources}", php_note]


def _tree_problems(tree: TreeFacts, where: str, out: Translation) -> None:
    if not tree.exists:
        out.problems.append(Problem("decide", where, f"DocumentRoot {tree.root} does not exist",
                                    "create it or drop the site before applying"))
    if tree.truncated:
        out.problems.append(Problem("note", tree.root, "more files than import walks",
                                    "PHP files, .htaccess and data dirs beyond were not seen"))
    odd = [f for f in tree.php_files if not f.endswith(".php")]
    if odd:
        out.problems.append(Problem(
            "changed", tree.root, f"mod_php ran files not named .php: {', '.join(odd[:5])}",
            "phphost runs only *.php and denies .phtml/.phar/...: rename them"))


def _pools(out: Translation, site: str, tenant: str, home: str, sp: SitePhp,
           tree: TreeFacts) -> dict[str, str]:
    """The pools of one PHP site: rel dir ("" for the site) -> pool name."""
    dirs = {"": spec_name(site, out.pool_names),
            **{rel: spec_name(f"{site}-{posixpath.basename(rel)}", out.pool_names)
               for rel in sp.routes.values()}}
    writable: dict[str, list[str]] = {rel: [] for rel in dirs}
    for path in tree.writable:
        rel = posixpath.relpath(path, tree.root)
        rel = "" if rel == "." else rel
        if _data_dir_problem(out, path, rel, home, tree):
            continue
        writable[owner(rel, sp.routes)].append(path)
        if path in tree.web_owned:
            out.problems.append(Problem(
                "decide", path, "the files in this data dir belong to the web user",
                f"phphost makes only the directory itself writable for the pool: run "
                f"`chmod -R g+w {path}` before applying (phphost's ACLs then keep the group's "
                f"write bit; chmod after them changes only the ACL mask) and "
                f"`chown -R {tenant}:{tenant} {path}` once the tenant exists, before PHP "
                "moves to the pool"))
    for rel, pool in dirs.items():
        body: dict[str, Any] = {"tenant": tenant, "template": TEMPLATE}
        for table in ("php_values", "php_admin_values"):
            body[table] = dict(sorted(sp.table(rel, table).items())) or None
        body["writable"] = sorted(writable[rel]) or None
        body["jail"] = {"enabled": False}
        where = f"{tree.root}/{rel}" if rel else tree.root
        out.add("pools", pool, body, f"runs PHP of {where}; jail off until migrate's last stage")
    return dirs


def _data_dir_problem(out: Translation, path: str, rel: str, home: str,
                      tree: TreeFacts) -> bool:
    """True (and the problem listed) when a dir the web user could write cannot be a
    pool's writable dir: the home itself, or a dir holding PHP that runs (phphost
    denies PHP in writable dirs inside a docroot)."""
    if path == home or not is_inside(path, home):
        out.problems.append(Problem(
            "decide", path, "the web user can write the whole tenant home here",
            "name the data dirs the pool may write in its writable list"))
        return True
    php = sorted(d for d in tree.dirs_with_php
                 if not rel or d == rel or d.startswith(rel + "/"))
    if php:
        out.problems.append(Problem(
            "decide", path, f"the web user can write this dir, and PHP runs from it "
                            f"({', '.join(d or '.' for d in php[:3])})",
            "phphost denies PHP in a pool's writable dirs: name only the data dirs below "
            "it as writable (the code stays the tenant's, read-only for the pool)"))
        return True
    return False


def _tls(draft: Draft, out: Translation) -> dict[str, str]:
    v = draft.tls_vhost
    assert v is not None
    files = dict(v.tls)
    for key in ("cert", "key"):
        if key not in files:
            out.problems.append(Problem(
                "decide", v.ref.where, f"the TLS vhost names no SSLCertificate{key.title()}File",
                "add the file to the site's tls table before applying"))
            files[key] = f"/etc/ssl/MISSING-{key}"
    for path in files.values():
        if containing(path, out.homes) is not None:
            out.problems.append(Problem(
                "decide", v.ref.where, f"TLS file {path} is inside a tenant home",
                "phphost refuses TLS files a tenant can write: move it to /etc/ssl"))
    return files


def _lost_lines(draft: Draft) -> list[Problem]:
    out: list[Problem] = []
    for v in draft.vhosts:
        for d in v.directives:
            if d.name.startswith("<") or d.name in CARRIED or d.where == v.redirect_where:
                continue
            if d.name in ("sethandler", "addhandler", "addtype", "require", "options",
                          "directoryindex") and _harmless(d):
                continue
            line = f"{d.name} {' '.join(d.args)}".strip()
            out.append(Problem("lost", d.where, f"`{line}` in the vhost {v.ref.name}",
                               "phphost writes the vhost itself: carry it over by hand "
                               "(or drop it) after the move"))
    return out


def _harmless(d: Directive) -> bool:
    """Lines phphost's own vhost already says (handler, Require all granted, ...)."""
    args = [a.lower() for a in d.args]
    if d.name in ("sethandler", "addhandler", "addtype"):
        return bool(args) and ("php" in args[0] or args[0].startswith("proxy:"))
    if d.name == "require":
        return args in (["all", "granted"], ["all", "denied"])
    if d.name == "directoryindex":
        return set(args) <= {"index.php", "index.html"}
    return all(a.lstrip("+-").lower() in ("followsymlinks", "symlinksifownermatch", "none",
                                          "multiviews") or a.startswith("-") for a in args)
