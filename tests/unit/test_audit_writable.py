"""PHA026 (writable dirs Apache serves) and PHA027 (.htaccess lines a site does not
read): facts that trigger them. The clean demo host gives only the info about blog's
public uploads (test_audit_rules.py)."""

from __future__ import annotations

import dataclasses

from phphost.audit import htaccess
from phphost.audit.facts import AuditFacts
from phphost.spec.loader import parse_spec
from phphost.spec.model import Model
from tests.unit.test_audit_fixture import CLEAN, DEMO, MODEL, clean_facts, run, with_apache
from tests.unit.test_audit_rules import layout

BLOG = "/srv/phphost-demo/blog"
CACHE_DENY = ('<Directory "/srv/phphost-demo/blog/htdocs/cache">\n'
              "        AllowOverride None\n"
              "        AllowOverrideList Require <IfModule\n"
              "        Require all denied\n")


def _demo_with(old: str, new: str) -> Model:
    text = DEMO.read_text()
    assert old in text
    return parse_spec(text.replace(old, new), str(DEMO))


# --- PHA026 -------------------------------------------------------------------------------


def test_pha026_cache_served_by_todays_rendering() -> None:
    """The rendering before writable dirs were denied: no Require in the dir's section."""
    facts = with_apache([], replace=(layout.site_conf("blog"), CACHE_DENY,
                                     CACHE_DENY.replace("        Require all denied\n", "")))
    found = [f for f in run("PHA026", facts) if f.severity == "high"]
    assert [(f.where, f.severity) for f in found] == [("pools.blog.writable[1]", "high")]
    assert "htdocs/cache" in found[0].problem and "Require all granted" in found[0].problem


def test_pha026_writable_docroot_is_high() -> None:
    model = _demo_with('writable = ["data"]', 'writable = ["htdocs"]')
    found = run("PHA026", clean_facts(model), model)
    [high] = [f for f in found if f.severity == "high"]
    assert high.where == "pools.files.writable[0]" and "holds the docroot" in high.problem


def test_pha026_public_uploads_are_info_only() -> None:
    found = run("PHA026", CLEAN)
    assert [(f.where, f.severity) for f in found] == [("pools.blog.writable[0]", "info")]


# --- PHA027 -------------------------------------------------------------------------------

WORDPRESS = """\
# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteBase /
RewriteRule ^index\\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteRule . /index.php [L]
</IfModule>
php_value upload_max_filesize 64M
Options -Indexes
# END WordPress
"""
DOKUWIKI_DATA = """\
## no access to the data directory
<IfModule mod_authz_core.c>
    Require all denied
</IfModule>
<IfModule !mod_authz_core.c>
    Order allow,deny
    Deny from all
</IfModule>
"""
MODULES = frozenset({"authz_core_module", "rewrite_module"})


def _facts(tenant: str, files: dict[str, str]) -> AuditFacts:
    trees = tuple(dataclasses.replace(t, htaccess=tuple(files.items()))
                  if t.tenant == tenant else t for t in CLEAN.trees)
    return dataclasses.replace(CLEAN, trees=trees, apache_modules=MODULES)


def test_pha027_wordpress_rules_name_the_spec_keys() -> None:
    found = run("PHA027", _facts("blog", {f"{BLOG}/htdocs/.htaccess": WORDPRESS}))
    by = {f.problem.split("`")[1]: f for f in found}
    assert set(by) == {"RewriteEngine", "RewriteBase", "RewriteRule", "RewriteCond",
                       "php_value", "Options"}
    rule = by["RewriteRule"]
    assert rule.where == f"{BLOG}/htdocs/.htaccess:5" and "lines 5, 7" in rule.problem
    assert "500" in rule.problem and rule.severity == "low"
    assert 'sites.blog.front_controller = "/index.php"' in rule.remedy
    assert 'pools.blog.php_values = { "upload_max_filesize" = "64M" }' in \
        by["php_value"].remedy
    assert "nothing in the spec" in by["Options"].remedy


def test_pha027_allowed_lines_and_dead_ifmodule_branches_are_silent() -> None:
    """blog allows AuthConfig: Require inside <IfModule> is read; the !mod_authz_core
    branch never runs, so its Order/Deny do not count."""
    assert run("PHA027", _facts("blog", {f"{BLOG}/htdocs/x/.htaccess": DOKUWIKI_DATA})) == []


def test_pha027_writable_dir_reads_require_only() -> None:
    text = DOKUWIKI_DATA + "ErrorDocument 404 /missing.html\n"
    found = run("PHA027", _facts("blog", {f"{BLOG}/htdocs/cache/.htaccess": text}))
    assert [f.problem.split("`")[1] for f in found] == ["ErrorDocument"]
    assert "writable dir" in found[0].problem and "only Require and <IfModule>" in \
        found[0].remedy


def test_pha027_ignored_access_rules_without_overrides_are_medium() -> None:
    """search (tenant docs) has no allow_override: Apache never reads the file, so its
    Require all denied protects nothing."""
    path = "/srv/phphost-demo/docs/htdocs/search/conf/.htaccess"
    found = run("PHA027", _facts("docs", {path: DOKUWIKI_DATA}))
    assert [(f.severity, f.where) for f in found] == [("medium", f"{path}:3")]
    assert "ignored" in found[0].problem and "served" in found[0].problem
    assert 'allow_override = [..., "Require"]' in found[0].remedy


def test_pha027_outside_docroots_is_not_read() -> None:
    assert run("PHA027", _facts("blog", {f"{BLOG}/.htaccess": WORDPRESS})) == []


def test_allowed_in_categories_and_lists() -> None:
    wiki = MODEL.sites[[s.name for s in MODEL.sites].index("wiki")]
    writable = htaccess.writable_in_docroot(wiki, MODEL.pools_of("wiki"))
    assert writable == []                          # images and cache are beside the docroot
    allowed = htaccess.allowed_in(wiki, writable, "/srv/phphost-demo/wiki/htdocs/w")
    assert allowed.allows("require") and allowed.allows("deny")
    assert allowed.allows("directoryindex") and allowed.allows("<ifmodule")
    assert not allowed.allows("rewriterule") and not allowed.allows("errordocument")


def test_module_names() -> None:
    lines = htaccess.lines("x", "<IfModule !mod_rewrite.c>\nA b\n</IfModule>\n"
                           "<IfModule headers_module>\nB c\n</IfModule>\n",
                           frozenset({"rewrite_module"}))
    assert [x.shown for x in lines] == ["<IfModule", "<IfModule"]

