"""The demo host serves every site as the spec says (issue 2, 'Done when')."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost.fastcgi.status import fpm_status
from phphost.spec.model import Model, Site
from tests.integration.hostkit import get


def php_sites(model: Model) -> list[Site]:
    return [s for s in model.sites if s.php and s.docroot]


def test_each_php_site_runs_as_its_pool_user(demo: Model) -> None:
    assert php_sites(demo)
    for site in php_sites(demo):
        assert site.pool is not None
        status, _, body = get(site.server_name, "/index.php")
        assert status == 200, body
        assert f"user={demo.pool(site.pool).user} " in body


def test_sub_path_runs_in_its_own_pool(demo: Model) -> None:
    routed = [s for s in demo.sites if s.routes]
    assert routed, "the demo must have a site with a sub-path on a second pool"
    for site in routed:
        for route in site.routes:
            status, _, body = get(site.server_name, f"{route.path}index.php")
            assert status == 200, body
            assert f"user={demo.pool(route.pool).user} " in body
            assert route.pool != site.pool


def test_static_files_are_served_by_apache(demo: Model) -> None:
    for site in [s for s in demo.sites if s.docroot]:
        status, headers, body = get(site.server_name, "/hello.txt")
        assert status == 200 and body.startswith("static hello")
        assert "etag" in headers and "x-powered-by" not in headers


def test_missing_php_is_apache_404_and_never_reaches_fpm(demo: Model) -> None:
    for site in php_sites(demo):
        assert site.pool is not None
        sock = demo.pool(site.pool).socket
        before = fpm_status(sock).accepted_conn
        status, _, _ = get(site.server_name, "/does-not-exist.php")
        after = fpm_status(sock).accepted_conn
        assert status == 404
        # exactly one connection: our own status query
        assert after - before == 1, "the missing script reached FPM"


def test_php_off_site_refuses_php_and_never_shows_source(demo: Model) -> None:
    off = [s for s in demo.sites if not s.php and s.docroot]
    assert off, "the demo must have a PHP-off site"
    for site in off:
        status, _, body = get(site.server_name, "/secret.php")
        assert status == 403
        assert "SOURCE-LEAK-CANARY" not in body and "<?php" not in body


@pytest.fixture
def probe(demo: Model) -> Iterator[tuple[Site, str]]:
    """A PHP file in one tenant's docroot that tries to read a path it is given."""
    site = php_sites(demo)[0]
    assert site.tenant and site.docroot
    tenant = demo.tenant(site.tenant)
    path = Path(site.docroot) / "probe-read.php"
    path.write_text("<?php $f = $_GET['f'];\n"
                    "echo (@file_get_contents($f) === false ? 'DENIED' : 'READ'), ' ',\n"
                    "     (@scandir(dirname($f)) === false ? 'NOLIST' : 'LISTED');\n")
    pw = pwd.getpwnam(tenant.user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o640)
    yield site, "/probe-read.php"
    path.unlink()


def test_pool_cannot_read_another_tenants_home(demo: Model, probe: tuple[Site, str]) -> None:
    site, url = probe
    own = f"{site.docroot}/index.php"
    assert get(site.server_name, f"{url}?f={own}")[2] == "READ LISTED"  # the probe can succeed
    others = [s for s in php_sites(demo) if s.tenant != site.tenant]
    assert others
    for other in others:
        target = f"{other.docroot}/index.php"
        assert get(site.server_name, f"{url}?f={target}")[2] == "DENIED NOLIST", other.name
        home = demo.tenant(other.tenant or "").home
        assert get(site.server_name, f"{url}?f={home}/x")[2] == "DENIED NOLIST"


def test_homes_not_world_readable_and_sockets_private(demo: Model) -> None:
    for tenant in demo.tenants:
        assert os.stat(tenant.home).st_mode & 0o007 == 0, tenant.home
    for pool in demo.pools:
        st = os.stat(pool.socket)
        assert st.st_mode & 0o777 == 0o660, pool.socket
