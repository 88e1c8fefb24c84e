"""Audit rules over what Apache serves from the pools' writable dirs (PHA026) and the
.htaccess lines a site does not let Apache read (PHA027). Pure: (model, facts) ->
findings."""

from __future__ import annotations

import posixpath

from phphost.audit import apacheconf as ac
from phphost.audit import htaccess
from phphost.audit.apacheconf import Directive
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding, Severity
from phphost.spec.model import Model, Pool, Site
from phphost.spec.validate import is_inside

# lines that restrict access: ignored, they leave files open
ACCESS = frozenset({"require", "deny", "order", "allow", "satisfy", "<requireall",
                    "<requireany", "<requirenone", "authtype", "authuserfile"})


def _sites(model: Model, tenant: str) -> list[Site]:
    return [s for s in model.sites if s.tenant == tenant and s.docroot is not None]


# --- PHA026 -------------------------------------------------------------------------------


def served_writable(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA026: a pool's writable dir that Apache serves: one holding a docroot (high:
    the pool rewrites the code Apache serves), a non-public one inside a docroot that
    the live config does not deny (high: the DokuWiki leak), and public ones (info:
    uploads, served as static files by design)."""
    out: list[Finding] = []
    directives = list(facts.apache)
    for pool in model.pools:
        for i, path in enumerate(pool.writable):
            for site in _sites(model, pool.tenant):
                out += _served(pool, i, path, site, directives)
    return out


def _served(pool: Pool, i: int, path: str, site: Site, directives: list[Directive],
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
    rule = _effective_require(directives, site, path)
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


def _effective_require(directives: list[Directive], site: Site, path: str) -> Directive | None:
    """The Require of the most specific <Directory> that covers path, in the site's
    vhost or server-wide (sections inside <Files*>, <If>, <Limit> do not count)."""
    names = {site.server_name, *site.aliases}
    best: tuple[int, bool, int] | None = None
    found: Directive | None = None
    for order, d in enumerate(ac.named(directives, "require")):
        section = d.section("directory")
        if section is None or section.arg == "~" or d.section(
                "files", "filesmatch", "if", "elseif", "else", "limit", "limitexcept",
                "location", "locationmatch", "requireall", "requireany", "requirenone"):
            continue
        if d.vhost is not None and not names & ac.vhost_names(directives, d.vhost):
            continue
        if not ac.path_covers(section.arg, path):
            continue
        key = (len([p for p in section.arg.split("/") if p]), d.vhost is not None, order)
        if best is None or key > best:
            best, found = key, d
    return found


# --- PHA027 -------------------------------------------------------------------------------


def htaccess_lines(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA027: .htaccess lines in a docroot that Apache does not read there: with
    overrides, the dir answers 500 (low); without any, the lines are silently ignored
    (medium when they are access rules that leave files open). Each names the file,
    the lines, the directive and the spec key that does the same job."""
    out: list[Finding] = []
    for tree in facts.trees:
        for path, text in tree.htaccess:
            directory = posixpath.dirname(path)
            for site in _sites(model, tree.tenant):
                if is_inside(directory, site.docroot or ""):
                    out += _file(model, facts, site, path, text)
    return out


def _file(model: Model, facts: AuditFacts, site: Site, path: str, text: str) -> list[Finding]:
    directory = posixpath.dirname(path)
    allowed = htaccess.allowed_in(site, model, directory)
    writable = [w for w in htaccess.writable_in_docroot(site, model) if is_inside(directory, w)]
    public = any(w in p.public for p in model.pools_of(site.tenant or "") for w in writable)
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
