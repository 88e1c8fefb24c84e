"""A real PHP application from Debian's packages, served from a jailed pool: MediaWiki
(package `mediawiki`) on MariaDB (`mariadb-server`), provisioned by
scripts/demo_mediawiki.py into the demo's tenant `wiki` (docs/mediawiki.md)."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phphost.spec.model import Model, Site
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get

INSTALLED = all(os.path.isfile(p) for p in ("/usr/share/mediawiki/index.php",
                                             "/usr/sbin/mariadbd"))
pytestmark = pytest.mark.skipif(
    not INSTALLED,
    reason="needs the Debian packages mediawiki and mariadb-server (scripts/setup-demo)")

SITENAME = "phphost Demo Wiki"
JAIL = "/var/lib/phphost/jails/wiki"


@pytest.fixture(scope="module")
def wiki(demo: Model) -> Site:
    """The wiki site, provisioned (idempotent: fast when setup-demo did it already)."""
    proc = subprocess.run([hostkit.PYTHON, str(hostkit.ROOT / "scripts" / "demo_mediawiki.py"),
                           str(DEMO)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = next(s for s in demo.sites if s.name == "wiki")
    assert site.pool and demo.pool(site.pool).jail.enabled
    return site


class WikiBrowser(hostkit.Browser):
    """hostkit's browser with MediaWiki's action API."""

    def api(self, params: dict[str, str], post: bool = False) -> Any:
        params = {**params, "format": "json", "formatversion": "2"}
        if post:
            status, _h, text = self.request("POST", "/w/api.php", params, follow=False)
        else:
            status, _h, text = self.request("GET", "/w/api.php?" + urllib.parse.urlencode(params),
                                            follow=False)
        assert status == 200, text[:500]
        data = json.loads(text)
        assert "error" not in data, data
        return data


def test_main_page_renders_at_the_root(wiki: Site) -> None:
    status, headers, body = get(wiki.server_name, "/")
    assert status == 200, (headers, body[:500])             # no redirect
    assert SITENAME in body and "Main Page" in body
    assert "MediaWiki has been installed" in body           # the page's text, from the DB
    assert "x-powered-by" not in headers
    # skins and assets are plain files Apache serves from the tenant's docroot
    status, headers, _ = get(wiki.server_name, "/w/resources/assets/poweredby_mediawiki_88x31.png")
    assert status == 200 and headers["content-type"] == "image/png" and "etag" in headers
    status, _, body = get(wiki.server_name, "/w/load.php?modules=startup&only=scripts&raw=1")
    assert status == 200 and "mw.loader" in body           # ResourceLoader (PHP) works


def test_anonymous_edit_through_the_api_is_stored_in_mariadb(wiki: Site) -> None:
    browser = WikiBrowser(wiki.server_name)
    marker = f"phphost-marker-{secrets.token_hex(8)}"
    tokens = browser.api({"action": "query", "meta": "tokens"})
    token = tokens["query"]["tokens"]["csrftoken"]
    edit = browser.api({"action": "edit", "title": "Phphost_test", "token": token,
                        "text": f"Edited by the integration test: '''{marker}'''",
                        "summary": "phphost integration test"}, post=True)
    assert edit["edit"]["result"] == "Success", edit

    status, _, body = get(wiki.server_name, "/w/index.php?title=Phphost_test")
    assert status == 200 and f"<b>{marker}</b>" in body
    content = browser.api({"action": "query", "prop": "revisions", "titles": "Phphost_test",
                           "rvprop": "content", "rvslots": "main"})
    assert marker in json.dumps(content)
    stored = subprocess.run(
        ["mariadb", "--batch", "--skip-column-names", "wiki", "-e",
         f"SELECT COUNT(*) FROM text WHERE old_text LIKE '%{marker}%'"],  # noqa: S608 (hex)
        capture_output=True, text=True, check=True).stdout.strip()
    assert stored == "1"


@pytest.fixture
def jail_probe(wiki: Site, demo: Model) -> Iterator[str]:
    """A PHP file in the wiki's docroot that reports what the pool sees."""
    assert wiki.docroot and wiki.tenant
    name = f"probe-jail-{secrets.token_hex(4)}.php"
    path = Path(wiki.docroot) / name
    path.write_text(
        "<?php header('Content-Type: application/json');\n"
        "echo json_encode([\n"
        "  'user' => posix_getpwuid(posix_geteuid())['name'],\n"
        "  'shadow' => file_exists('/etc/shadow'),\n"
        "  'package' => file_exists('/usr/share/mediawiki/index.php'),\n"
        "  'phphost' => file_exists('/var/lib/phphost'),\n"
        "  'passwd' => file_get_contents('/etc/passwd'),\n"
        "  'code' => is_file(__DIR__ . '/w/includes/WebStart.php'),\n"
        "  'settings' => is_readable('" + f"{demo.tenant(wiki.tenant).home}/LocalSettings.php"
        + "'),\n"
        "  'write_code' => @file_put_contents(__DIR__ . '/w/x.txt', 'x') !== false,\n"
        "]);\n")
    pw = pwd.getpwnam(demo.tenant(wiki.tenant).user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o640)
    yield f"/{name}"
    path.unlink()


def test_php_runs_chrooted(wiki: Site, demo: Model, jail_probe: str) -> None:
    status, _, body = get(wiki.server_name, jail_probe)
    assert status == 200, body
    seen = json.loads(body)
    assert wiki.pool is not None
    user = demo.pool(wiki.pool).user
    assert seen["user"] == user
    assert seen["shadow"] is False and seen["phphost"] is False
    assert seen["package"] is False           # the tenant's copy, not the host's package
    assert seen["code"] is True and seen["settings"] is True
    assert seen["write_code"] is False        # the code is read-only to the pool
    assert [line.split(":")[0] for line in seen["passwd"].splitlines()] == ["root", user]
    # and from the host: every worker of the pool has the jail as its root
    uid = pwd.getpwnam(user).pw_uid
    roots = {os.readlink(f"/proc/{pid}/root") for pid in os.listdir("/proc")
             if pid.isdigit() and _uid(pid) == uid}
    assert roots == {JAIL}


def _uid(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


def test_secrets_stay_with_the_tenant(wiki: Site, demo: Model) -> None:
    assert wiki.tenant and wiki.docroot
    tenant = demo.tenant(wiki.tenant)
    settings = Path(tenant.home) / "LocalSettings.php"
    st = settings.stat()
    assert st.st_mode & 0o777 == 0o640
    assert (pwd.getpwuid(st.st_uid).pw_name, st.st_gid) == (tenant.user,
                                                            pwd.getpwnam(tenant.user).pw_gid)
    assert not str(settings).startswith(wiki.docroot + "/")
    password = next(line.split('"')[1] for line in settings.read_text().splitlines()
                    if line.startswith("$wgDBpassword"))
    acl = subprocess.run(["getfacl", "--omit-header", str(settings)], capture_output=True,
                         text=True, check=True).stdout
    assert "www-data" not in acl
    # the docroot's LocalSettings.php is a stub that PHP runs, never shows
    status, _, body = get(wiki.server_name, "/w/LocalSettings.php")
    assert status == 200 and password not in body and "<?php" not in body
    # Debian's global Alias /mediawiki (every vhost) is disabled
    assert not os.path.lexists("/etc/apache2/conf-enabled/mediawiki.conf")
    assert get(wiki.server_name, "/mediawiki/")[0] == 404
