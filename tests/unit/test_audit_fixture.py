"""A clean host's audit facts, built from phphost's own renders of the demo spec:
the starting point every rule test breaks in one place."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from phphost import layout
from phphost.audit import apacheconf, fpmconf
from phphost.audit.facts import AuditFacts, FpmMaster, PathStat, TreeScan
from phphost.audit.findings import Finding
from phphost.audit.rules import RULES
from phphost.facts.accounts import Account, AccountFacts
from phphost.facts.parse import ProgramStatus
from phphost.plan.desired import desired_state
from phphost.render.apache import render_apache_global, render_site
from phphost.render.fpm import render_fpm_argv, render_fpm_conf
from phphost.render.supervisor import command_line
from phphost.spec.loader import load_spec
from phphost.spec.model import Model

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
MODEL = load_spec(str(DEMO))
TODAY = date(2026, 6, 1)

# the parts of Debian's apache2.conf the rules care about
DEBIAN_BASE = """\
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
<Directory /var/www/>
    Options Indexes FollowSymLinks
    AllowOverride None
    Require all granted
</Directory>
AccessFileName .htaccess
<FilesMatch "^\\.ht">
    Require all denied
</FilesMatch>
"""
MPM_EVENT = """\
StartServers 2
ThreadsPerChild 25
MaxRequestWorkers 150
"""
DEFAULT_SITE = """\
<VirtualHost *:80>
    DocumentRoot /var/www/html
    ErrorLog ${APACHE_LOG_DIR}/error.log
</VirtualHost>
"""


def apache_texts(model: Model) -> list[tuple[str, str]]:
    """(file, text) in httpd's include order: apache2.conf, mods, conf, sites."""
    files = [("/etc/apache2/apache2.conf", DEBIAN_BASE),
             ("/etc/apache2/mods-enabled/mpm_event.conf", MPM_EVENT),
             (layout.APACHE_GLOBAL_CONF, render_apache_global(model)),
             ("/etc/apache2/sites-enabled/000-default.conf", DEFAULT_SITE)]
    files += [(layout.site_conf(s.name), render_site(s, model)) for s in model.sites]
    return files


def directives(files: list[tuple[str, str]]) -> tuple[apacheconf.Directive, ...]:
    return tuple(d for name, text in files for d in apacheconf.parse(name, text))


def clean_facts(model: Model = MODEL) -> AuditFacts:
    pools, masters, paths = [], [], {}
    for pool in model.pools:
        conf = layout.fpm_conf(pool.name)
        text = render_fpm_conf(pool, model.tenant(pool.tenant))
        pools += fpmconf.parse_fpm(conf, text, conf)
        flags = fpmconf.d_flags(command_line(render_fpm_argv(pool)))
        masters.append(FpmMaster(conf, True, True, flags))
        paths[pool.socket] = PathStat(pool.socket, "socket", 0, 33, "root", "www-data", 0o660)
    paths[layout.RUN_DIR] = PathStat(layout.RUN_DIR, "dir", 0, 0, "root", "root", 0o755)
    trees = tuple(TreeScan(t.name, PathStat(t.home, "dir", 1000, 1000, t.user, t.group, 0o750),
                           entries=10) for t in model.tenants)
    return AuditFacts(
        fpm_pools=tuple(pools), masters=tuple(masters), paths=paths, trees=trees,
        apache=directives(apache_texts(model)),
        apache_modules=frozenset({"mpm_event_module", "proxy_module", "proxy_fcgi_module"}),
        apache_version="Server version: Apache/2.4.71 (Debian)",
        php_versions={layout.FPM_BINARY: "PHP 8.2.36 (fpm-fcgi) (built: Nov 18 2026)"},
        programs={layout.program_name(p.name): ProgramStatus(layout.program_name(p.name),
                                                             "RUNNING", 100 + i)
                  for i, p in enumerate(model.pools)},
        supervisor_running=True,
        files={f.path: f.content for f in desired_state(model).files},
        today=TODAY,
        accounts=clean_accounts(model),
        writable={w: PathStat(w, "dir", 1000, 1000, model.tenant(p.tenant).user,
                              model.tenant(p.tenant).group, 0o2770)
                  for p in model.pools for w in p.writable},
    )


def clean_accounts(model: Model) -> AccountFacts:
    """Tenants as phphost creates them (ids from 1001), pool users as system users
    (ids below 1000) whose only group is their tenant's."""
    users = {t.user: Account(t.user, 1001 + i, (t.group,)) for i, t in enumerate(model.tenants)}
    users |= {p.user: Account(p.user, 990 - i, (model.tenant(p.tenant).group,))
              for i, p in enumerate(model.pools)}
    groups = {t.group: Account(t.group, 1001 + i) for i, t in enumerate(model.tenants)}
    return AccountFacts(users, groups)


CLEAN = clean_facts()


def with_apache(extra: list[tuple[str, str]], drop: str = "",
                replace: tuple[str, str, str] | None = None) -> AuditFacts:
    """CLEAN with extra Apache files appended, one file dropped, or one file's text
    changed (file, old, new)."""
    files = [(n, t) for n, t in apache_texts(MODEL) if n != drop]
    if replace is not None:
        name, old, new = replace
        assert any(old in t for n, t in files if n == name), f"{old!r} not in {name}"
        files = [(n, t.replace(old, new) if n == name else t) for n, t in files]
    return dataclasses.replace(CLEAN, apache=directives(files + extra))


def with_pool_file(name: str, text: str, master: str, running: bool = False) -> AuditFacts:
    pools = (*CLEAN.fpm_pools, *fpmconf.parse_fpm(name, text, master))
    masters = (*CLEAN.masters, FpmMaster(master, False, running, {}))
    return dataclasses.replace(CLEAN, fpm_pools=pools, masters=masters)


def run(rule: str, facts: AuditFacts, model: Model = MODEL) -> list[Finding]:
    return RULES[rule](model, facts)


def severities(findings: list[Finding]) -> list[str]:
    return [f.severity for f in findings]


# by design on the demo: blog's uploads are public (served as static files)
CLEAN_INFO = [("PHA026", "info", "pools.blog.writable[0]")]


def test_clean_host_has_no_findings() -> None:
    from phphost.audit.rules import run_rules

    assert [(f.rule, f.severity, f.where) for f in run_rules(MODEL, CLEAN)] == CLEAN_INFO


def test_every_rule_is_registered_once() -> None:
    assert sorted(RULES) == [f"PHA{n:03d}" for n in range(1, 28)]
