"""Audit rules over Apache's configuration as httpd reads it (every enabled file,
phphost's and hand-written). Pure: (model, facts) -> findings."""

from __future__ import annotations

import fnmatch
import posixpath
import re

from phphost import layout
from phphost.audit import apacheconf as ac
from phphost.audit import versions
from phphost.audit.apacheconf import Directive, Section
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding
from phphost.spec.model import Model, Site
from phphost.spec.validate import is_inside

# AllowOverride categories through which .htaccess can change how files are handled
HAZARD_CATEGORIES = ("all", "fileinfo", "options")
# .htaccess directives that can point PHP at another socket, set PHP_VALUE or run
# other files as PHP (DESIGN.md, Apache)
HAZARD_DIRECTIVES = re.compile(
    r"^(sethandler|addhandler|addtype|forcetype|action|setenv\w*|rewrite\w*|proxyfcgi\w*|"
    r"php_\w+|setinputfilter|setoutputfilter|addoutputfilter\w*)$", re.I)
PHP_NAMES = ("x.php", "x.PHP", "x.Php", "x.phtml", "x.php7", "x.php5", "x.phar", "x.phps")
PHP_TEXT_NAMES = PHP_NAMES[1:]      # names a PHP site does not run: must be denied too


def _d(facts: AuditFacts) -> list[Directive]:
    return list(facts.apache)


def _docroots(model: Model) -> list[tuple[Site, str]]:
    return [(s, s.docroot) for s in model.sites if s.docroot is not None]


def _overlaps(a: str, b: str) -> bool:
    return is_inside(a, b) or is_inside(b, a)


def _applies(d: Directive, docroot: str, directives: list[Directive]) -> bool:
    """A directive in a vhost counts for a docroot only if the vhost serves files there."""
    vhost = d.vhost
    return vhost is None or any(_overlaps(r, docroot) for r in ac.vhost_roots(directives, vhost))


# --- PHA008 -------------------------------------------------------------------------------


def _hazards(d: Directive) -> list[str]:
    if d.name == "allowoverride":
        return [a for a in d.args if a.lower().split("=")[0] in HAZARD_CATEGORIES]
    return [a for a in d.args if HAZARD_DIRECTIVES.match(a)]


def _effective(candidates: list[Directive]) -> Directive | None:
    """The <Directory> section httpd applies last: most path components, then a vhost's
    over the main server's, then the last read."""
    def key(item: tuple[int, Directive]) -> tuple[int, bool, int]:
        order, d = item
        return len([p for p in _dir(d).split("/") if p]), d.vhost is not None, order

    return max(enumerate(candidates), key=key)[1] if candidates else None


def _override_directives(directives: list[Directive], name: str) -> list[Directive]:
    return [d for d in ac.named(directives, name)
            if (s := d.section("directory")) is not None and s.arg != "~"]


def allow_override(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA008: .htaccess in a tenant docroot must not reach handler or env directives."""
    directives = _d(facts)
    hits: dict[Directive, list[str]] = {}
    for name in ("allowoverride", "allowoverridelist"):
        found = _override_directives(directives, name)
        for _, docroot in _docroots(model):
            relevant = [d for d in found if _applies(d, docroot, directives)]
            above = [d for d in relevant if ac.path_covers(_dir(d), docroot)]
            below = [d for d in relevant if is_inside(_dir(d), docroot) and _dir(d) != docroot]
            for d in [_effective(above), *below]:
                if d is not None and _hazards(d):
                    hits.setdefault(d, []).append(docroot)
    return [_override_finding(d, roots) for d, roots in hits.items()]


def _dir(d: Directive) -> str:
    section = d.section("directory")
    return section.arg.rstrip("/") or "/" if section else "/"


def _override_finding(d: Directive, roots: list[str]) -> Finding:
    what = " ".join(_hazards(d))
    severe = any(h.lower() in ("all", "fileinfo") for h in _hazards(d)) or \
        d.name == "allowoverridelist"
    shown = {"allowoverride": "AllowOverride", "allowoverridelist": "AllowOverrideList"}
    return Finding("PHA008", "high" if severe else "medium", d.where,
                   f"{shown[d.name]} {what} reaches tenant docroot(s) "
                   f"{', '.join(sorted(set(roots)))}: a .htaccess can set handlers, "
                   "environment (PHP_VALUE) or proxy targets",
                   "AllowOverride None, or only AuthConfig/Indexes/Limit plus an "
                   "AllowOverrideList without SetHandler, SetEnv*, Rewrite*, ProxyFCGI* "
                   "(spec: sites.NAME.allow_override)")


# --- PHA009 / PHA020 ----------------------------------------------------------------------


def _matches(section: Section, name: str) -> bool:
    if section.kind == "filesmatch" or (section.kind == "files" and section.arg == "~"):
        pattern = section.args[-1] if section.kind == "files" else section.arg
        return ac.regex_search(pattern, name)
    return section.kind == "files" and fnmatch.fnmatchcase(name, section.arg)


def _denied(directives: list[Directive], vhost: Section, name: str) -> bool:
    """A <Files*> section of this vhost (or server-wide) denies `name`."""
    for d in ac.named(directives, "require"):
        section = d.section("filesmatch", "files")
        if section is None or [a.lower() for a in d.args] != ["all", "denied"]:
            continue
        if d.vhost in (None, vhost) and _matches(section, name):
            return True
    return False


def _content_vhosts(directives: list[Directive], site: Site) -> list[Section]:
    return [v for v in ac.vhosts(directives) if site.server_name in ac.vhost_names(directives, v)
            and ac.vhost_roots(directives, v)]


def php_off_sites(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA009: a site with PHP off must deny PHP-like files, not serve their source."""
    directives = _d(facts)
    out = []
    for site in model.sites:
        if site.php or site.docroot is None:
            continue
        vhosts = _content_vhosts(directives, site)
        if not vhosts:
            out.append(Finding("PHA009", "medium", f"sites.{site.name}",
                               f"no enabled vhost serves {site.server_name}",
                               "run `phphost apply`"))
        for vhost in vhosts:
            served = [n for n in PHP_NAMES if not _denied(directives, vhost, n)]
            if served:
                out.append(Finding("PHA009", "high", vhost.where,
                                   f"site {site.name} has PHP off but does not deny "
                                   f"{', '.join(served)}: their source is served as text",
                                   "deny them: <FilesMatch \"(?i)\\.(php\\d?|phtml|phar|phps)$\">"
                                   " Require all denied (phphost renders this)"))
    return out


def php_source_names(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA020: on a PHP site only *.php runs; x.phtml, x.PHP, x.php7 ... must be denied
    or they are sent as source text."""
    directives = _d(facts)
    out = []
    for site in model.sites:
        if not site.php or site.docroot is None:
            continue
        for vhost in _content_vhosts(directives, site):
            served = [n for n in PHP_TEXT_NAMES if not _denied(directives, vhost, n)]
            if served:
                out.append(Finding("PHA020", "medium", vhost.where,
                                   f"site {site.name} serves {', '.join(served)} as text "
                                   "(the PHP handler runs only lowercase .php)",
                                   "deny other PHP-like names (phphost renders this)"))
    return out


# --- PHA016 -------------------------------------------------------------------------------


def php_handlers(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA016: PHP must run only through phphost's handler form: no mod_php, no
    AddHandler/AddType for PHP (x.php.jpg runs), no <IfModule> around a handler
    (a missing module would serve source)."""
    del model
    out = [Finding("PHA016", "high", "apache2ctl -M",
                   f"{m} is loaded: PHP runs inside Apache as {layout.WEB_USER} for every "
                   "vhost, bypassing the pools", f"a2dismod {m.removesuffix('_module')}")
           for m in sorted(facts.apache_modules) if re.fullmatch(r"php\d*_module", m)]
    for d in ac.named(_d(facts), "addhandler", "addtype"):
        if any("php" in a.lower() or a.lower().startswith("proxy:") for a in d.args[:1]):
            out.append(Finding("PHA016", "high", d.where,
                               f"{' '.join(d.args)}: AddHandler/AddType match any name "
                               "containing the extension (x.php.jpg runs as PHP)",
                               "<FilesMatch \"\\.php$\"> + <If \"-f %{REQUEST_FILENAME}\"> "
                               "+ SetHandler"))
    for d, _ in ac_handlers(facts):
        if d.section("ifmodule") is not None:
            out.append(Finding("PHA016", "medium", d.where,
                               "PHP handler inside <IfModule>: without the module Apache "
                               "serves PHP source instead of failing",
                               "remove the <IfModule> wrapper"))
    return out


def ac_handlers(facts: AuditFacts) -> list[tuple[Directive, str]]:
    return [(d, d.args[0]) for d in ac.named(_d(facts), "sethandler")
            if d.args and d.args[0].lower().startswith("proxy:")]


# --- PHA011 -------------------------------------------------------------------------------


def _status_paths(facts: AuditFacts) -> list[str]:
    paths = {layout.STATUS_PATH, layout.PING_PATH}
    paths |= {p.get(k) for p in facts.fpm_pools for k in ("pm.status_path", "ping.path")}
    return sorted(p for p in paths if p.startswith("/"))


def _reaches(d: Directive, url: str) -> bool:
    """A proxy handler directive would send `url` to FPM."""
    if d.name in ("proxypass",):
        return len(d.args) >= 2 and ac.url_covers(d.args[0], url)
    if d.name in ("proxypassmatch", "rewriterule"):
        return bool(d.args) and ac.regex_search(d.args[0], url.lstrip("/") if d.name ==
                                                "rewriterule" and d.section("directory")
                                                else url)
    if any(s.kind in ("if", "elseif") and "-f" in s.arg for s in d.context):
        return False        # only existing files: the status path is not one
    for section in reversed(d.context):
        if section.kind in ("files", "filesmatch"):
            return _matches(section, posixpath.basename(url))
        if section.kind == "location":
            return ac.url_covers(section.arg, url) if section.arg != "~" else \
                ac.regex_search(section.args[-1], url)
        if section.kind == "locationmatch":
            return ac.regex_search(section.arg, url)
    return True


def _deny_for(directives: list[Directive], url: str) -> bool:
    for d in ac.named(directives, "require"):
        section = d.section("location", "locationmatch")
        if section is None or [a.lower() for a in d.args] != ["all", "denied"]:
            continue
        pattern = section.args[-1] if section.arg == "~" else section.arg
        if ac.regex_search(pattern, url) if section.kind == "locationmatch" or \
                section.arg == "~" else ac.url_covers(pattern, url):
            return True
    return False


def status_exposure(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA011: FPM's status and ping pages are for phphost over the socket only; the
    full status lists every request's URI and client address."""
    del model
    directives = _d(facts)
    out = []
    for url in _status_paths(facts):
        denied = _deny_for(directives, url)
        for d in [d for d, _ in _proxy_directives(directives) if _reaches(d, url)]:
            out.append(Finding("PHA011", "medium" if denied else "high", d.where,
                               f"this proxy handler sends {url} to FPM"
                               + (", only the deny section stops it" if denied else ""),
                               f"scope the handler to existing .php files; deny {url} "
                               "server-wide (phphost.conf does)"))
        if not denied and url in (layout.STATUS_PATH, layout.PING_PATH):
            out.append(Finding("PHA011", "medium", layout.APACHE_GLOBAL_CONF,
                               f"no server-wide section denies {url}",
                               "run `phphost apply` (phphost.conf denies it)"))
    return out


def _proxy_directives(directives: list[Directive]) -> list[tuple[Directive, str]]:
    out = []
    for d in ac.named(directives, "sethandler", "proxypass", "proxypassmatch", "rewriterule"):
        text = " ".join(d.args).lower()
        if "fcgi://" in text and (d.name != "rewriterule" or "[p" in text or "h=proxy" in text):
            out.append((d, text))
    return out


# --- PHA023 -------------------------------------------------------------------------------

# Apache releases that refuse file-reading expressions (file(), filesize(), %{file:}) in
# .htaccess, per advisory (the vendor's changelog): before them an .htaccess author
# reads any file the web server can (every tenant's docroot, PHP source included).
HTACCESS_FILE_READS: tuple[tuple[versions.Version, str, str], ...] = (
    ((2, 4, 67), "CVE-2026-24072", "mod_rewrite and other modules: ap_expr file reads"),
    ((2, 4, 68), "CVE-2026-44119", "expressions in .htaccess in multiple modules"),
    ((2, 4, 69), "CVE-2026-59797", "SSLRequire with file-related expressions"),
)


def _htaccess_sections(directives: list[Directive], docroot: str) -> list[Directive]:
    """AllowOverride / AllowOverrideList directives that make httpd read .htaccess
    files in the docroot or below (the effective one above it, any inside it)."""
    out: list[Directive] = []
    for name in ("allowoverride", "allowoverridelist"):
        relevant = [d for d in _override_directives(directives, name)
                    if _applies(d, docroot, directives)]
        above = [d for d in relevant if ac.path_covers(_dir(d), docroot)]
        below = [d for d in relevant if is_inside(_dir(d), docroot) and _dir(d) != docroot]
        out += [d for d in [_effective(above), *below]
                if d is not None and [a.lower() for a in d.args] != ["none"]]
    return out


def _reaches_sslrequire(sections: list[Directive]) -> bool:
    return any(a.lower() in ("all", "authconfig") if d.name == "allowoverride"
               else a.lower() == "sslrequire" for d in sections for a in d.args)


def htaccess_file_reads(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA023: an Apache that lets .htaccess expressions read files (file(),
    filesize(), %{file:...}), on a host where a tenant docroot reads .htaccess
    files: its author reads any file www-data can, other tenants' PHP source
    included. Two sources: the version against the fixes, and the behaviour of the
    installed apache2 in a throwaway config (facts.htaccess_probe: a backport or a
    patched build shows there, whatever version it prints)."""
    version = versions.parse_version(facts.apache_version)
    probed = facts.htaccess_probe == "allowed"
    if version is None and not probed:
        return []       # PHA014 says the version cannot be read
    directives = _d(facts)
    ssl = "ssl_module" in facts.apache_modules
    out = []
    for site, docroot in _docroots(model):
        sections = _htaccess_sections(directives, docroot)
        if not sections:
            continue
        open_to = [(ids, what) for fixed, ids, what in HTACCESS_FILE_READS
                   if version is not None and version < fixed
                   and (ids != "CVE-2026-59797" or (ssl and _reaches_sslrequire(sections)))]
        why = [f"{i}: {w}" for i, w in open_to]
        if probed:
            why.insert(0, "a throwaway apache2 of this host let an .htaccess `Require expr "
                          "file(...)` read a file (behaviour probe)")
        if why:
            shown = versions.show(version) if version is not None else "(version unknown)"
            out.append(Finding(
                "PHA023", "high", sections[0].where,
                f"Apache {shown} lets .htaccess expressions read files as "
                f"{layout.WEB_USER} ({'; '.join(why)}), and "
                f"site {site.name} reads .htaccess in {docroot}: its tenant can read every "
                "other tenant's docroot, PHP source included",
                "upgrade Apache (>= 2.4.69), or AllowOverride None for the site "
                "(spec: sites.NAME.allow_override = [])"))
    return out
