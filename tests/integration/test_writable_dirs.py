"""Writable dirs inside a docroot on the live demo host (issue 13): blog's public
`htdocs/uploads` serves static files, its `htdocs/cache` serves nothing; an app's own
`Require` rules in `.htaccess` there keep working, nothing else is read (500), PHP never
runs; `audit` names the .htaccess lines Apache refuses with the spec key to use."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO

HOST = "blog.demo.test"
DOKUWIKI_DENY = ("<IfModule mod_authz_core.c>\n    Require all denied\n</IfModule>\n"
                 "<IfModule !mod_authz_core.c>\n    Order allow,deny\n    Deny from all\n"
                 "</IfModule>\n")


Put = Callable[[str, str, str], Path]


@pytest.fixture
def put(demo: Model) -> Iterator[Put]:
    """put(dir, name, text): a file in blog's `uploads` or `cache`, as the pool
    would write it (owned by the pool user, 0640); removed afterwards."""
    pool = demo.pool("blog")
    dirs = {Path(p).name: Path(p) for p in pool.writable}
    assert set(dirs) == {"uploads", "cache"} and pool.public == (str(dirs["uploads"]),)
    made: list[Path] = []

    def _put(where: str, name: str, text: str) -> Path:
        path = dirs[where] / name
        path.write_text(text)
        os.chown(path, hostkit.uid(pool.user), os.stat(dirs[where]).st_gid)
        path.chmod(0o640)
        made.append(path)
        return path

    try:
        yield _put
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def _get(path: str) -> tuple[int, str]:
    status, _, body = hostkit.get(HOST, path)
    return status, body


def test_public_uploads_are_served_and_the_cache_is_not(put: Put) -> None:
    token = uuid.uuid4().hex
    put("uploads", "w13.txt", token)
    put("cache", "w13.txt", token)
    assert _get("/uploads/w13.txt") == (200, token)
    status, body = _get("/cache/w13.txt")
    assert status == 403 and token not in body


def test_app_require_rules_keep_working_in_writable_dirs(put: Put) -> None:
    """DokuWiki's data/.htaccess closes a public dir; a Require-only .htaccess may open
    the pool's own cache (harmless: its PHP could print it anyway); PHP stays off."""
    token = uuid.uuid4().hex
    put("uploads", "w13.txt", token)
    put("uploads", ".htaccess", DOKUWIKI_DENY)
    assert _get("/uploads/w13.txt")[0] == 403
    put("cache", "w13.txt", token)
    put("cache", "w13.php", f"<?php echo 'ran-{token}';")
    put("cache", ".htaccess", "Require all granted\n")
    assert _get("/cache/w13.txt") == (200, token)
    status, body = _get("/cache/w13.php")
    assert status == 403 and token not in body


@pytest.mark.parametrize("text", [
    '<Files "w13.php">\n    Require all granted\n</Files>\n',     # would open PHP again
    "RewriteEngine On\nRewriteRule . /index.php [L]\n",
    "Options +Indexes\n",
])
def test_anything_else_in_a_writable_dirs_htaccess_is_a_500(
        put: Put, text: str) -> None:
    put("uploads", "w13.php", "<?php echo 'ran';")
    put("uploads", ".htaccess", text)
    status, body = _get("/uploads/w13.php")
    assert status == 500 and "ran" not in body


def test_audit_names_the_refused_lines_and_the_spec_key(put: Put) -> None:
    path = put("uploads", ".htaccess", "RewriteEngine On\nRewriteRule . /index.php [L]\n"
               "php_value upload_max_filesize 64M\n")
    proc = hostkit.phphost("audit", str(DEMO), "--rule", "PHA027", "--json", check=False)
    found = {f["where"]: f for f in json.loads(proc.stdout)["findings"]}
    rule = found[f"{path}:2"]
    assert "RewriteRule" in rule["problem"] and "500" in rule["problem"]
    assert "sites.blog.front_controller" in rule["remedy"]
    assert "pools.blog.php_values" in found[f"{path}:3"]["remedy"]
