"""Audit rules over what Apache serves from the pools' writable dirs (PHA026) and the
.htaccess lines a site does not let Apache read (PHA027). Pure: (model, facts) ->
findings."""

from __future__ import annotations

import posixpath

from phphost.audit import apacheconf as ac
from phphost.audit import htaccess
from phphost.audit.apacheconf import Directive, Section
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding, Severity
from phphost.spec.model import Model, Pool, Site
from phphost.spec.validate import is_inside

# lines that restrict access: ignored, they leave files open
ACCESS = frozenset({"require", "deny", "order", "allow", "satisfy", "<requireall",
                    "<requireany", "<requirenone", "authtype", "authuserfile"})


def _sites_by_tenant(model: Model) -> dict[str, list[Site]]:
    out: dict[str, list[Site]] = {}
    for site in model.sites:
        if site.tenant is not None and site.docroot is not None:
            out.setdefault(site.tenant, []).append(site)
    return out


# --- PHA026 -------------------------------------------------------------------------------


def served_writable(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA026: a pool's writable dir that Apache serves: one holding a docroot (high:
    the pool rewrites the code Apache serves), a non-public one inside a docroot that
    the live config does not deny (high: the DokuWiki leak), and public ones (info:
    uploads, served as static files by design)."""
    out: list[Finding] = []
    sites = _sites_by_tenant(model)
    requires = _RequireIndex(list(facts.apache))
    for pool in model.pools:
        for i, path in enumerate(pool.writable):
            for site in sites.get(pool.tenant, []):
                out += _served(pool, i, path, site, requires)
    return out


def _served(pool: Pool, i: int, path: str, site: Site, requires: _RequireIndex,
            ) -> list[Finding]:
    where = f"pools.{pool.name}.writable[{i}]"
    docroot = site.docroot or ""
    if is_inside(docroot, path):
        return [Finding("PHA026", "high", where,
                        f"writable dir {path} holds the docroot {docroot} of site "
                        f"{site.name}: the pool can rewrite the code Apache serves and runs",
                        "make only the dirs the application writes writable (uploads, "
                        "cache, data), never the docroot or a dir above it")]
    if not is_inside(path, docroot):
        return []
    if path in pool.public:
        return [Finding("PHA026", "info", where,
                        f"public writable dir {path} is served by site {site.name} as "
                        "static files (PHP never runs there)",
                        "keep `public = true` for uploads only; data, caches and configs "
                        "stay not public")]
    rule = requires.effective(site, path)
    if rule is None or [a.lower() for a in rule.args] == ["all", "denied"]:
        return [] if rule is not None else [_open(where, path, site, "no Require applies")]
    return [_open(where, path, site, f"{rule.where}: Require {' '.join(rule.args)}")]


def _open(where: str, path: str, site: Site, why: str) -> Finding:
    return Finding("PHA026", "high", where,
                   f"writable dir {path} (not public) is served by site {site.name}: Apache's "
                   f"config does not deny it ({why}); whatever the pool writes there "
                   "(data, caches, configs) can be downloaded",
                   "phphost apply (phphost renders `Require all denied` for it), or "
                   "`public = true` if it holds uploads meant for the web")


# sections whose Require does not speak for the whole directory
_NOT_WHOLE_DIR = ("files", "filesmatch", "if", "elseif", "else", "limit", "limitexcept",
                  "location", "locationmatch", "requireall", "requireany", "requirenone")


class _RequireIndex:
    """The Require lines of <Directory> sections, server-wide and by vhost name, built
    in one pass (a host of 1,000 sites is looked up without rescanning the config)."""

    def __init__(self, directives: list[Directive]) -> None:
        names: dict[Section, set[str]] = {}
        for d in ac.named(directives, "servername", "serveralias"):
            if d.vhost is not None:
                names.setdefault(d.vhost, set()).update(a.lower().split(":")[0] for a in d.args)
        self.server: list[tuple[int, Directive]] = []
        self.by_name: dict[str, list[tuple[int, Directive]]] = {}
        for order, d in enumerate(ac.named(directives, "require")):
            section = d.section("directory")
            if section is None or section.arg == "~" or d.section(*_NOT_WHOLE_DIR):
                continue
            if d.vhost is None:
                self.server.append((order, d))
            for name in names.get(d.vhost, set()) if d.vhost is not None else ():
                self.by_name.setdefault(name, []).append((order, d))

    def effective(self, site: Site, path: str) -> Directive | None:
        """The Require of the most specific <Directory> covering path, in the site's
        vhost or server-wide (a vhost's wins over the main server's, then the last)."""
        found: dict[int, Directive] = dict(self.server)
        for name in (site.server_name, *site.aliases):
            found.update(self.by_name.get(name, []))
        best: tuple[int, bool, int] | None = None
        rule: Directive | None = None
        for order, d in found.items():
            section = d.section("directory")
            if section is None or not ac.path_covers(section.arg, path):
                continue
            key = (len([p for p in section.arg.split("/") if p]), d.vhost is not None, order)
            if best is None or key > best:
                best, rule = key, d
        return rule


# --- PHA027 -------------------------------------------------------------------------------


def htaccess_lines(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA027: .htaccess lines in a docroot that Apache does not read there: with
    overrides, the dir answers 500 (low); without any, the lines are silently ignored
    (medium when they are access rules that leave files open). Each names the file,
    the lines, the directive and the spec key that does the same job."""
    out: list[Finding] = []
    sites = _sites_by_tenant(model)
    for tree in facts.trees:
        if not tree.htaccess:
            continue
        pools = model.pools_of(tree.tenant)
        public = {w for p in pools for w in p.public}
        for site in sites.get(tree.tenant, []):
            writable = htaccess.writable_in_docroot(site, pools)
            for path, text in tree.htaccess:
                if is_inside(posixpath.dirname(path), site.docroot or ""):
                    out += _file(facts, site, (writable, public), path, text)
    return out


def _file(facts: AuditFacts, site: Site, dirs: tuple[list[str], set[str]], path: str,
          text: str) -> list[Finding]:
    directory = posixpath.dirname(path)
    allowed = htaccess.allowed_in(site, dirs[0], directory)
    writable = [w for w in dirs[0] if is_inside(directory, w)]
    public = any(w in dirs[1] for w in writable)
    grouped: dict[str, list[htaccess.Line]] = {}
    for line in htaccess.lines(path, text, facts.apache_modules):
        unread = not allowed.allows(line.name) if allowed.read \
            else line.name not in htaccess.CONTAINERS     # ignored: sections say nothing
        if unread:
            grouped.setdefault(line.name, []).append(line)
    out = []
    for found in grouped.values():
        first = found[0]
        numbers = ", ".join(str(x.line) for x in found)
        plural = "s" if len(found) > 1 else ""
        severity: Severity = "low"
        if allowed.read:
            effect = (f"not allowed here ({allowed.why}): Apache answers 500 for every "
                      f"request under {directory}")
        else:
            denied = bool(writable) and not public
            severity = "medium" if first.name in ACCESS and not denied else "low"
            effect = f"ignored ({allowed.why})" + (
                ": the files it protects are served" if severity == "medium" else "")
        out.append(Finding("PHA027", severity, f"{path}:{first.line}",
                           f"`{first.shown}` (line{plural} {numbers}) is {effect}",
                           htaccess.remedy(first, site, bool(writable) and allowed.read)))
    return out
