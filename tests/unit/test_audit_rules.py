"""Each audit rule: facts that trigger it, and the clean host (phphost's own renders
of the demo) that does not."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from phphost import layout
from phphost.audit.facts import AuditFacts, JailScan, PathStat
from phphost.audit.findings import Finding
from phphost.audit.rules import RULES
from phphost.facts.accounts import Account, AccountFacts
from phphost.facts.parse import ProgramStatus
from phphost.render.apache import PHP_LIKE, PHP_LIKE_NOT_RUN
from tests.unit.test_audit_fixture import (
    CLEAN,
    CLEAN_INFO,
    MODEL,
    apache_texts,
    run,
    severities,
    with_apache,
    with_pool_file,
)

FILES_SOCK = "/run/phphost/files.sock"
DEBIAN_MASTER = "/etc/php/8.2/fpm/php-fpm.conf"
EXTRA_POOL = "/etc/php/8.2/fpm/pool.d/extra.conf"
EXTRA_CONF = "/etc/apache2/conf-enabled/zz-extra.conf"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_is_silent_on_the_clean_host(rule: str) -> None:
    assert [(f.rule, f.severity, f.where) for f in run(rule, CLEAN)] == \
        [x for x in CLEAN_INFO if x[0] == rule]


def replace_path(path: str, **changes: object) -> dict[str, PathStat]:
    paths = dict(CLEAN.paths)
    paths[path] = dataclasses.replace(paths[path], **changes)  # type: ignore[arg-type]
    return paths


def only(findings: list[Finding], rule: str) -> list[Finding]:
    assert findings and all(f.rule == rule for f in findings)
    return findings


# --- PHA001 sockets -----------------------------------------------------------------------


def test_pha001_world_writable_socket_is_critical() -> None:
    facts = dataclasses.replace(CLEAN, paths=replace_path(FILES_SOCK, mode=0o666))
    found = only(run("PHA001", facts), "PHA001")
    assert severities(found) == ["critical"] and found[0].where == FILES_SOCK


def test_pha001_socket_of_another_group() -> None:
    facts = dataclasses.replace(CLEAN, paths=replace_path(FILES_SOCK, group="ncs"))
    assert severities(run("PHA001", facts)) == ["high"]


def test_pha001_listen_mode_in_config() -> None:
    text = "[x]\nuser = php-x\nlisten = /run/x.sock\nlisten.mode = 0666\n"
    found = run("PHA001", with_pool_file(EXTRA_POOL, text, DEBIAN_MASTER))
    assert severities(found) == ["critical"] and found[0].where == f"{EXTRA_POOL}:4"


def test_pha001_missing_socket_of_a_spec_pool() -> None:
    facts = dataclasses.replace(CLEAN, paths=replace_path(FILES_SOCK, kind="missing"))
    assert severities(run("PHA001", facts)) == ["medium"]


def test_pha001_world_writable_socket_dir() -> None:
    facts = dataclasses.replace(CLEAN, paths=replace_path(layout.RUN_DIR, mode=0o777))
    found = run("PHA001", facts)
    assert set(severities(found)) == {"high"} and found[0].where == layout.RUN_DIR


# --- PHA002 TCP ---------------------------------------------------------------------------


@pytest.mark.parametrize(("listen", "severity"), [
    ("127.0.0.1:9001", "high"), ("[::1]:9001", "high"),
    ("9001", "critical"), ("0.0.0.0:9001", "critical"), ("192.0.2.1:9001", "critical"),
])
def test_pha002_tcp_without_allowed_clients(listen: str, severity: str) -> None:
    text = f"[extra]\nuser = php-extra\nlisten = {listen}\n"
    found = only(run("PHA002", with_pool_file(EXTRA_POOL, text, DEBIAN_MASTER)), "PHA002")
    assert severities(found) == [severity] and found[0].where == f"{EXTRA_POOL}:3"
    assert "not running" in found[0].problem


def test_pha002_tcp_with_allowed_clients_is_low() -> None:
    text = "[extra]\nlisten = 127.0.0.1:9001\nlisten.allowed_clients = 127.0.0.1\n"
    found = run("PHA002", with_pool_file(EXTRA_POOL, text, DEBIAN_MASTER, running=True))
    assert severities(found) == ["low"] and "not running" not in found[0].problem


def test_pha002_unix_socket_is_fine() -> None:
    text = "[extra]\nuser = php-extra\nlisten = /run/php/extra.sock\n"
    assert run("PHA002", with_pool_file(EXTRA_POOL, text, DEBIAN_MASTER)) == []


# --- PHA003 / PHA004 / PHA005 trees -------------------------------------------------------


def with_tree(tenant: str, **changes: object) -> AuditFacts:
    trees = tuple(dataclasses.replace(t, **changes) if t.tenant == tenant  # type: ignore[arg-type]
                  else t for t in CLEAN.trees)
    return dataclasses.replace(CLEAN, trees=trees)


def test_pha003_world_writable() -> None:
    facts = with_tree("ncs", world_writable=("/srv/phphost-demo/ncs/htdocs/files/up",))
    found = only(run("PHA003", facts), "PHA003")
    assert severities(found) == ["high"] and found[0].where == "tenants.ncs.home"


def test_pha004_world_readable_inside_closed_home_is_low() -> None:
    facts = with_tree("blog", world_readable=("/srv/phphost-demo/blog/htdocs/wp-config.php",))
    assert severities(run("PHA004", facts)) == ["low"]


def test_pha004_open_home() -> None:
    home = PathStat("/srv/phphost-demo/blog", "dir", 1000, 1000, "blog", "blog", 0o755)
    facts = with_tree("blog", home=home, world_readable=("/srv/phphost-demo/blog/x",))
    assert severities(run("PHA004", facts)) == ["medium", "medium"]


def test_pha004_truncated_walk_is_info() -> None:
    facts = with_tree("docs", truncated=True, entries=200000)
    assert severities(run("PHA004", facts)) == ["info"]


def test_pha005_group_writable_code() -> None:
    code = "/srv/phphost-demo/ncs/htdocs/files/index.php"
    facts = with_tree("ncs", group_writable=(code,))
    found = run("PHA005", facts)
    assert severities(found) == ["medium"] and code in found[0].problem


def test_pha005_writable_dirs_are_expected() -> None:
    data = MODEL.pool("files").writable[0]
    facts = with_tree("ncs", group_writable=(data, f"{data}/upload.bin"))
    assert run("PHA005", facts) == []


# --- PHA006 / PHA007 jails ----------------------------------------------------------------

ROOTS = ("/", "/var", "/var/lib", "/var/lib/phphost", "/var/lib/phphost/jails")


def jail(over: dict[str, PathStat] | None = None,
         root: str = "/var/lib/phphost/jails/files") -> JailScan:
    chain = tuple((over or {}).get(p, PathStat(p, "dir", 0, 0, "root", "root", 0o755))
                  for p in (*ROOTS, root))
    return JailScan(root, chain)


def test_pha006_clean_jail() -> None:
    assert run("PHA006", dataclasses.replace(CLEAN, jails=(jail(),))) == []


def test_pha006_parent_owned_by_a_user() -> None:
    bad = PathStat("/var/lib/phphost/jails", "dir", 1000, 1000, "ncs", "ncs", 0o755)
    facts = dataclasses.replace(CLEAN, jails=(jail({"/var/lib/phphost/jails": bad}),))
    found = run("PHA006", facts)
    assert severities(found) == ["high"] and found[0].where == "/var/lib/phphost/jails"


def test_pha006_group_writable_jail_root() -> None:
    root = "/var/lib/phphost/jails/files"
    bad = PathStat(root, "dir", 0, 0, "root", "root", 0o775)
    facts = dataclasses.replace(CLEAN, jails=(jail({root: bad}),))
    assert severities(run("PHA006", facts)) == ["high"]


def test_pha006_missing_jail_of_a_jailed_pool() -> None:
    pools = tuple(dataclasses.replace(p, jail=dataclasses.replace(p.jail, enabled=True))
                  if p.name == "files" else p for p in MODEL.pools)
    model = dataclasses.replace(MODEL, pools=pools)
    root = "/var/lib/phphost/jails/files"
    facts = dataclasses.replace(CLEAN, jails=(jail({root: PathStat(root)}),))
    assert severities(run("PHA006", facts, model)) == ["medium"]


def test_pha007_setuid_in_jail() -> None:
    scan = dataclasses.replace(jail(), setid=("/var/lib/phphost/jails/files/bin/su",))
    found = run("PHA007", dataclasses.replace(CLEAN, jails=(scan,)))
    assert severities(found) == ["high"] and "bin/su" in found[0].problem
    assert run("PHA007", dataclasses.replace(CLEAN, jails=(jail(),))) == []


# --- PHA008 AllowOverride -----------------------------------------------------------------


def test_pha008_parent_all_is_overridden_by_the_docroot_section() -> None:
    extra = '<Directory "/srv/phphost-demo">\n    AllowOverride All\n</Directory>\n'
    assert run("PHA008", with_apache([(EXTRA_CONF, extra)])) == []


def test_pha008_all_on_a_dir_inside_a_docroot() -> None:
    extra = '<Directory "/srv/phphost-demo/blog/htdocs/wp">\n    AllowOverride All\n</Directory>\n'
    found = only(run("PHA008", with_apache([(EXTRA_CONF, extra)])), "PHA008")
    assert severities(found) == ["high"] and found[0].where == f"{EXTRA_CONF}:2"


def test_pha008_docroot_section_with_fileinfo() -> None:
    site = layout.site_conf("blog")
    facts = with_apache([], replace=(site, "AllowOverride AuthConfig", "AllowOverride FileInfo"))
    assert severities(run("PHA008", facts)) == ["high"]


def test_pha008_options_only_is_medium() -> None:
    site = layout.site_conf("search")
    facts = with_apache([], replace=(site, "AllowOverride None", "AllowOverride Options=Indexes"))
    assert severities(run("PHA008", facts)) == ["medium"]


def test_pha008_override_list_with_sethandler() -> None:
    site = layout.site_conf("blog")
    facts = with_apache([], replace=(site, "AllowOverrideList ErrorDocument Redirect",
                                     "AllowOverrideList ErrorDocument SetHandler"))
    found = run("PHA008", facts)
    assert severities(found) == ["high"] and "SetHandler" in found[0].problem


def test_pha008_other_vhosts_sections_do_not_count() -> None:
    extra = ('<VirtualHost *:80>\n  ServerName other.test\n  DocumentRoot /var/www/other\n'
             '  <Directory "/srv/phphost-demo/blog/htdocs/x">\n    AllowOverride All\n'
             '  </Directory>\n</VirtualHost>\n')
    assert run("PHA008", with_apache([(EXTRA_CONF, extra)])) == []


# --- PHA009 / PHA020 PHP-like files -------------------------------------------------------


def test_pha009_php_off_site_without_deny() -> None:
    site = layout.site_conf("docs")
    facts = with_apache([], replace=(site, "Require all denied", "Require all granted"))
    found = run("PHA009", facts)
    assert severities(found) == ["high"] and "x.php" in found[0].problem


def test_pha009_php_off_site_without_vhost() -> None:
    found = run("PHA009", with_apache([], drop=layout.site_conf("docs")))
    assert severities(found) == ["medium"] and found[0].where == "sites.docs"


def test_pha020_php_site_serving_other_php_names() -> None:
    site = layout.site_conf("search")
    facts = with_apache([], replace=(site, PHP_LIKE_NOT_RUN, "\\.inc$"))
    found = run("PHA020", facts)
    assert severities(found) == ["medium"] and "x.phtml" in found[0].problem


def test_pha009_renderer_patterns_deny_every_sample() -> None:
    import re

    from phphost.audit.rules_apache import PHP_NAMES, PHP_TEXT_NAMES

    assert all(re.search(PHP_LIKE, n) for n in PHP_NAMES)
    assert all(re.search(PHP_LIKE_NOT_RUN, n) for n in PHP_TEXT_NAMES)
    assert not re.search(PHP_LIKE_NOT_RUN, "x.php")


# --- PHA010 opcache -----------------------------------------------------------------------

TWO_POOLS = "[a]\nuser = php-a\nlisten = /run/a.sock\n[b]\nuser = php-b\nlisten = /run/b.sock\n"


def test_pha010_shared_master_without_validation() -> None:
    found = run("PHA010", with_pool_file("/etc/php/8.2/fpm/pool.d/ab.conf", TWO_POOLS,
                                         DEBIAN_MASTER))
    assert severities(found) == ["high"] and "validate_permission" in found[0].problem


def test_pha010_shared_master_with_validation_is_low() -> None:
    facts = with_pool_file("/etc/php/8.2/fpm/pool.d/ab.conf", TWO_POOLS, DEBIAN_MASTER)
    ini = {"opcache.validate_permission": "1", "opcache.validate_root": "On",
           "opcache.restrict_api": "/nowhere/"}
    masters = tuple(dataclasses.replace(m, ini=ini) if m.config == DEBIAN_MASTER else m
                    for m in facts.masters)
    assert severities(run("PHA010", dataclasses.replace(facts, masters=masters))) == ["low"]


def test_pha010_opcache_off_is_fine() -> None:
    facts = with_pool_file("/etc/php/8.2/fpm/pool.d/ab.conf", TWO_POOLS, DEBIAN_MASTER)
    masters = tuple(dataclasses.replace(m, ini={"opcache.enable": "0"})
                    if m.config == DEBIAN_MASTER else m for m in facts.masters)
    assert run("PHA010", dataclasses.replace(facts, masters=masters)) == []


# --- PHA011 status page -------------------------------------------------------------------

STATUS_HANDLER = ('<Location "/phphost-fpm-status">\n'
                  f'    SetHandler "proxy:unix:{FILES_SOCK}|fcgi://files/"\n</Location>\n')


def test_pha011_handler_reaching_status_behind_deny_is_medium() -> None:
    found = run("PHA011", with_apache([(EXTRA_CONF, STATUS_HANDLER)]))
    assert severities(found) == ["medium"] and found[0].where == f"{EXTRA_CONF}:2"


def test_pha011_without_the_deny_is_high() -> None:
    facts = with_apache([(EXTRA_CONF, STATUS_HANDLER)], replace=(
        layout.APACHE_GLOBAL_CONF, "<LocationMatch", "<LocationMatch \"^/never$\">\n"
        "</LocationMatch>\n<IfDefine NEVER"))
    assert "high" in severities(run("PHA011", facts))


def test_pha011_proxypassmatch_catch_all() -> None:
    extra = 'ProxyPassMatch "^/(.*)$" "fcgi://127.0.0.1:9000/var/www/$1"\n'
    found = run("PHA011", with_apache([(EXTRA_CONF, extra)]))
    assert {f.where for f in found} == {f"{EXTRA_CONF}:1"} and len(found) == 2


def test_pha011_php_only_proxypassmatch_does_not_reach() -> None:
    extra = 'ProxyPassMatch "^/(.*\\.php)$" "fcgi://127.0.0.1:9000/var/www/$1"\n'
    assert run("PHA011", with_apache([(EXTRA_CONF, extra)])) == []


# --- PHA012 reuse -------------------------------------------------------------------------


def test_pha012_reuse_beyond_children() -> None:
    extra = '<Proxy "fcgi://files/">\n    ProxySet enablereuse=on\n</Proxy>\n'
    found = run("PHA012", with_apache([(EXTRA_CONF, extra)]))
    assert severities(found) == ["high"] and "= 128" in found[0].problem


def test_pha012_reuse_within_children_is_fine() -> None:
    # 1 per process x 2 processes <= 6 children of pool files
    extra = f'<Proxy "unix:{FILES_SOCK}|fcgi://files/" enablereuse=on max=1>\n</Proxy>\n'
    assert run("PHA012", with_apache([(EXTRA_CONF, extra)])) == []


# --- PHA013 sizing ------------------------------------------------------------------------


def without_bounds() -> AuditFacts:
    text = dict(apache_texts(MODEL))[layout.APACHE_GLOBAL_CONF]
    start, end = text.index("# per pool"), text.index("# FPM status")
    return with_apache([], replace=(layout.APACHE_GLOBAL_CONF, text[start:end], ""))


def test_pha013_unbounded_pools_can_pin_every_thread() -> None:
    found = run("PHA013", without_bounds())
    high = [f for f in found if f.severity == "high"]
    assert {f.where for f in high} == {f"tenants.{t.name}" for t in MODEL.tenants}
    assert "no Apache-side bound" in high[0].problem


def test_pha013_bound_too_large_for_max_request_workers() -> None:
    facts = with_apache([], replace=(layout.APACHE_GLOBAL_CONF, "ProxySet max=18 ",
                                     "ProxySet max=40 "))
    found = run("PHA013", facts)
    # files: 40 x 2 processes = 80, + chords 12 = 92 of 128 threads
    assert [(f.severity, f.where) for f in found] == [("medium", "tenants.ncs"),
                                                     ("low", "apache.max_request_workers")]


def test_pha013_slow_acquire() -> None:
    facts = with_apache([], replace=(layout.APACHE_GLOBAL_CONF, "max=18 acquire=1 ",
                                     "max=18 acquire=5s "))
    found = run("PHA013", facts)
    assert severities(found) == ["low"] and "5000 ms" in found[0].problem


# --- PHA014 / PHA015 versions -------------------------------------------------------------


def test_pha014_old_apache() -> None:
    facts = dataclasses.replace(CLEAN, apache_version="Server version: Apache/2.4.59 (Debian)")
    found = run("PHA014", facts)
    assert "high" in severities(found) and "CVE-2024-38476" in found[0].problem


def test_pha014_unreadable_version_is_info() -> None:
    assert severities(run("PHA014", dataclasses.replace(CLEAN, apache_version=""))) == ["info"]


def test_pha015_php_with_cve_2024_4577() -> None:
    facts = dataclasses.replace(CLEAN, php_versions={layout.FPM_BINARY: "PHP 8.2.19 (fpm)"})
    found = run("PHA015", facts)
    assert any("CVE-2024-4577" in f.problem and f.severity == "high" for f in found)
    assert not any("CVE-2023-3823" in f.problem for f in found)   # fixed in 8.2.8


def test_pha015_end_of_life_branch() -> None:
    facts = dataclasses.replace(CLEAN, php_versions={"/usr/sbin/php-fpm8.0": "PHP 8.0.30"})
    assert severities(run("PHA015", facts)) == ["high"]


def test_pha015_end_of_support_soon_is_info() -> None:
    facts = dataclasses.replace(CLEAN, today=date(2026, 11, 23))
    assert severities(run("PHA015", facts)) == ["info"]


# --- PHA016 handlers ----------------------------------------------------------------------


def test_pha016_mod_php() -> None:
    facts = dataclasses.replace(CLEAN, apache_modules=CLEAN.apache_modules | {"php_module"})
    assert severities(run("PHA016", facts)) == ["high"]


def test_pha016_addhandler() -> None:
    extra = "AddHandler application/x-httpd-php .php\n"
    assert severities(run("PHA016", with_apache([(EXTRA_CONF, extra)]))) == ["high"]


def test_pha016_handler_in_ifmodule() -> None:
    extra = ('<IfModule proxy_fcgi_module>\n<FilesMatch "\\.php$">\n'
             f'SetHandler "proxy:unix:{FILES_SOCK}|fcgi://files/"\n</FilesMatch>\n'
             '</IfModule>\n')
    assert severities(run("PHA016", with_apache([(EXTRA_CONF, extra)]))) == ["medium"]


# --- PHA017 drift -------------------------------------------------------------------------


def test_pha017_edited_and_missing_files() -> None:
    files = dict(CLEAN.files)
    conf = layout.fpm_conf("files")
    files[conf] = (files[conf] or "") + "listen.mode = 0666\n"
    files[layout.site_conf("docs")] = None
    found = run("PHA017", dataclasses.replace(CLEAN, files=files))
    assert sorted((f.severity, f.where) for f in found) == [
        ("low", conf), ("medium", layout.site_conf("docs"))]


# --- PHA018 supervision -------------------------------------------------------------------


def test_pha018_stopped_master() -> None:
    name = layout.program_name("blog")
    programs = {**CLEAN.programs, name: ProgramStatus(name, "FATAL", None)}
    found = run("PHA018", dataclasses.replace(CLEAN, programs=programs))
    assert severities(found) == ["medium"] and found[0].where == "pools.blog"


def test_pha018_starting_master_is_info() -> None:
    name = layout.program_name("blog")
    programs = {**CLEAN.programs, name: ProgramStatus(name, "STARTING", None)}
    assert severities(run("PHA018", dataclasses.replace(CLEAN, programs=programs))) == ["info"]


def test_pha018_supervisord_down() -> None:
    facts = dataclasses.replace(CLEAN, supervisor_running=False)
    assert severities(run("PHA018", facts)) == ["high"]


# --- PHA019 identity ----------------------------------------------------------------------

WWW = "[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\n"


def test_pha019_web_user_pool_running_is_high() -> None:
    found = run("PHA019", with_pool_file(EXTRA_POOL, WWW, DEBIAN_MASTER, running=True))
    assert severities(found) == ["high"] and found[0].where == f"{EXTRA_POOL}:2"


def test_pha019_web_user_pool_not_running_is_info() -> None:
    assert severities(run("PHA019", with_pool_file(EXTRA_POOL, WWW, DEBIAN_MASTER))) == ["info"]


def test_pha019_root_and_code_owner() -> None:
    text = "[r]\nuser = root\nlisten = /run/r.sock\n[o]\nuser = ncs\nlisten = /run/o.sock\n"
    found = run("PHA019", with_pool_file(EXTRA_POOL, text, DEBIAN_MASTER, running=True))
    assert severities(found) == ["critical", "medium"]


# --- PHA021 adopted accounts / PHA022 foreign-owned writable dirs -------------------------


def _with_accounts(**users: Account) -> AuditFacts:
    accounts = AccountFacts({**CLEAN.accounts.users, **users}, CLEAN.accounts.groups)
    return dataclasses.replace(CLEAN, accounts=accounts)


def test_pha021_tenant_user_with_a_system_uid() -> None:
    tenant = MODEL.tenants[0]
    found = only(run("PHA021", _with_accounts(**{tenant.user: Account(tenant.user, 8,
                                                                      (tenant.group,))})),
                 "PHA021")
    assert severities(found) == ["high"] and found[0].where == f"tenants.{tenant.name}"
    assert "uid 8" in found[0].problem


def test_pha021_tenant_group_that_is_privileged_is_critical() -> None:
    tenant = MODEL.tenants[0]
    groups = {**CLEAN.accounts.groups, tenant.group: Account(tenant.group, 110)}
    model = dataclasses.replace(MODEL, tenants=(dataclasses.replace(tenant, group="ssl-cert"),
                                                *MODEL.tenants[1:]))
    groups["ssl-cert"] = Account("ssl-cert", 110)
    facts = dataclasses.replace(CLEAN, accounts=AccountFacts(CLEAN.accounts.users, groups))
    found = only(run("PHA021", facts, model), "PHA021")
    assert severities(found) == ["critical"] and "ssl-cert" in found[0].problem


def test_pha021_pool_user_in_a_privileged_group() -> None:
    pool = MODEL.pools[0]
    group = MODEL.tenant(pool.tenant).group
    found = only(run("PHA021", _with_accounts(**{pool.user: Account(pool.user, 990,
                                                                    (group, "docker"))})),
                 "PHA021")
    assert severities(found) == ["critical"] and found[0].where == f"pools.{pool.name}.user"


def test_pha022_writable_dir_owned_by_another_user() -> None:
    pool = next(p for p in MODEL.pools if p.writable)
    path = pool.writable[0]
    writable = {**CLEAN.writable, path: dataclasses.replace(CLEAN.writable[path],
                                                            owner="mail", uid=8)}
    found = only(run("PHA022", dataclasses.replace(CLEAN, writable=writable)), "PHA022")
    assert severities(found) == ["high"] and found[0].where == f"pools.{pool.name}.writable[0]"
    assert "'mail'" in found[0].problem


def test_pha022_writable_path_that_is_a_symlink() -> None:
    pool = next(p for p in MODEL.pools if p.writable)
    path = pool.writable[0]
    writable = {**CLEAN.writable, path: dataclasses.replace(CLEAN.writable[path], kind="link")}
    assert "is a link" in run("PHA022", dataclasses.replace(CLEAN, writable=writable))[0].problem


def test_pha022_pool_user_may_own_its_writable_dir() -> None:
    pool = next(p for p in MODEL.pools if p.writable)
    path = pool.writable[0]
    writable = {**CLEAN.writable, path: dataclasses.replace(CLEAN.writable[path],
                                                            owner=pool.user)}
    assert run("PHA022", dataclasses.replace(CLEAN, writable=writable)) == []
