"""PHA023 (.htaccess expressions that read files) and PHA024 (symlinks on the way to
a home, docroot or writable dir): facts that trigger them; the clean host does not
(test_audit_rules.py runs every rule on it)."""

from __future__ import annotations

import dataclasses

from phphost import layout
from phphost.audit.facts import AuditFacts, PathStat, walk_paths
from tests.unit.test_audit_fixture import CLEAN, MODEL, run, severities, with_apache

BLOG_ROOT = "/srv/phphost-demo/blog/htdocs"


def apache(version: str, *modules: str, facts: AuditFacts = CLEAN) -> AuditFacts:
    return dataclasses.replace(facts, apache_version=f"Server version: Apache/{version} (Debian)",
                               apache_modules=facts.apache_modules | set(modules))


# --- PHA023 -------------------------------------------------------------------------------


def test_pha023_old_apache_with_htaccess_sites() -> None:
    found = run("PHA023", apache("2.4.66"))
    # blog and wiki allow overrides; files, docs and search have AllowOverride None
    assert severities(found) == ["high", "high"]
    assert {f.where.split(":")[0] for f in found} == {layout.site_conf("blog"),
                                                     layout.site_conf("wiki")}
    assert "CVE-2026-24072" in found[0].problem and "CVE-2026-44119" in found[0].problem


def test_pha023_sslrequire_needs_mod_ssl_and_authconfig() -> None:
    assert run("PHA023", apache("2.4.68")) == []
    found = run("PHA023", apache("2.4.68", "ssl_module"))
    assert severities(found) == ["high", "high"]
    assert all("CVE-2026-59797" in f.problem and "44119" not in f.problem for f in found)
    assert run("PHA023", apache("2.4.69", "ssl_module")) == []


def test_pha023_only_where_htaccess_is_read() -> None:
    closed = dataclasses.replace(CLEAN, apache=tuple(
        d for d in CLEAN.apache
        if d.name not in ("allowoverride", "allowoverridelist") or d.args == ("None",)))
    assert run("PHA023", apache("2.4.66", facts=closed)) == []
    listed = with_apache([], replace=(layout.site_conf("blog"), "AllowOverride AuthConfig\n",
                                      "AllowOverride None\n"))
    found = run("PHA023", apache("2.4.66", facts=listed))     # AllowOverrideList alone
    assert any(f.where.startswith(layout.site_conf("blog")) for f in found)


def test_pha023_unknown_version_is_left_to_pha014() -> None:
    assert run("PHA023", dataclasses.replace(CLEAN, apache_version="")) == []


def test_pha023_behaviour_probe_counts_whatever_the_version() -> None:
    """A fixed version that still reads files in the probe (a broken backport) is
    flagged; a refusing probe adds nothing; an unknown version with an allowing probe
    is flagged too."""
    for version in ("2.4.71", ""):
        facts = dataclasses.replace(apache("2.4.71"), htaccess_probe="allowed",
                                    apache_version=version and apache("2.4.71").apache_version)
        found = run("PHA023", facts)
        assert severities(found) == ["high", "high"]
        assert all("behaviour probe" in f.problem for f in found)
    refused = dataclasses.replace(apache("2.4.71"), htaccess_probe="refused")
    assert run("PHA023", refused) == []
    old = run("PHA023", dataclasses.replace(apache("2.4.66"), htaccess_probe="refused"))
    assert old and all("probe" not in f.problem for f in old)


# --- PHA024 -------------------------------------------------------------------------------


def walked(**kinds: str) -> AuditFacts:
    walk = {p: PathStat(p, "dir", 0 if p.count("/") < 3 else 1000, 0, "root", "root", 0o755)
            for p in walk_paths(MODEL)}
    for path, kind in kinds.items():
        walk[path] = dataclasses.replace(walk[path], kind=kind, owner="blog")
    return dataclasses.replace(CLEAN, walk=walk)


def test_walk_paths_cover_homes_docroots_writable_dirs_and_above() -> None:
    paths = walk_paths(MODEL)
    assert paths[0] == "/"
    assert {"/srv", "/srv/phphost-demo", "/srv/phphost-demo/ncs",
            "/srv/phphost-demo/ncs/htdocs", "/srv/phphost-demo/ncs/htdocs/files",
            "/srv/phphost-demo/ncs/data", f"{BLOG_ROOT}/uploads"} <= set(paths)


def test_pha024_real_dirs_are_fine() -> None:
    assert run("PHA024", walked()) == []


def test_pha024_symlinked_docroot_is_high() -> None:
    found = run("PHA024", walked(**{BLOG_ROOT: "link"}))
    assert severities(found) == ["high"] and found[0].where == BLOG_ROOT
    assert "sites.blog.docroot" in found[0].problem
    assert "pools.blog.writable" in found[0].problem      # uploads is below it


def test_pha024_symlinked_intermediate_and_home() -> None:
    found = run("PHA024", walked(**{"/srv/phphost-demo/ncs/htdocs": "link",
                                    "/srv/phphost-demo/docs": "link"}))
    assert severities(found) == ["high", "high"]
    assert "sites.docs.docroot, sites.search.docroot, tenants.docs.home" in found[0].problem


def test_pha024_symlink_above_the_homes_is_medium() -> None:
    found = run("PHA024", walked(**{"/srv/phphost-demo": "link"}))
    assert severities(found) == ["medium"] and "above the tenant homes" in found[0].problem
