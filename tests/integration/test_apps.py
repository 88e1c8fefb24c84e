"""Applications from Debian's packages on app recipes (docs/recipes.md), deployed as a
customer would (code copied into the docroot, links followed, by scripts/demo_apps.py)
on the demo host plus examples/apps.toml, and driven over HTTP through Apache:
WordPress install, login, a post at its pretty URL and a media upload; a DokuWiki page
edited and read back, its data/ and conf/ refused; Adminer and phpMyAdmin logging in
to MariaDB. MediaWiki is tests/integration/test_mediawiki.py. The demo is re-applied
at the end."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO

APPS = hostkit.ROOT / "examples" / "apps.toml"
PACKAGES = ("/usr/share/wordpress/wp-login.php",
            "/usr/share/wordpress/wp-content/themes/twentytwentythree/theme.json",
            "/usr/share/dokuwiki/doku.php",
            "/usr/share/adminer/adminer.php", "/usr/share/phpmyadmin/index.php",
            "/usr/sbin/mariadbd")
pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in PACKAGES),
    reason="needs Debian's wordpress, wordpress-theme-twentytwentythree, dokuwiki, adminer, "
           "phpmyadmin, mariadb-server "
           "(scripts/setup-demo)")
PASSWORD_FILE = "/var/lib/phphost-demo/apps-db-password"  # noqa: S105 (a path)
# a 1x1 PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def run_script(*args: str) -> None:
    proc = subprocess.run([hostkit.PYTHON, str(hostkit.ROOT / "scripts" / "demo_apps.py"),
                           *args], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def apps(demo: Model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    """The demo host plus the apps, applied and deployed; the demo alone afterwards."""
    spec = Path("/root") / f"phphost-apps-{secrets.token_hex(4)}.toml"
    spec.write_text(DEMO.read_text() + "\n" + APPS.read_text())
    start = time.monotonic()
    try:
        run_script("--prepare")
        hostkit.phphost("apply", str(spec))
        run_script(str(spec))
        print(f"apps applied and deployed in {time.monotonic() - start:.1f}s")
        yield load_spec(str(spec))
    finally:
        start = time.monotonic()
        hostkit.phphost("apply", str(DEMO))
        print(f"demo re-applied in {time.monotonic() - start:.1f}s")
        spec.unlink()


def field(html: str, name: str) -> str:
    match = re.search(r'name="' + re.escape(name) + r'"[^>]*?value="([^"]*)"', html) or \
        re.search(r'value="([^"]*)"[^>]*?name="' + re.escape(name) + r'"', html)
    assert match, f"no field {name!r} in the page: {html[:1500]}"
    return match[1]


def db_password() -> str:
    return Path(PASSWORD_FILE).read_text().strip()


# ---------------------------------------------------------------- WordPress


def wp_login() -> hostkit.Browser:
    """A browser logged in to WordPress as its admin (installed first if need be)."""
    wp = hostkit.Browser("wordpress.demo.test")
    status, page = wp.get("/wp-admin/install.php")
    assert status == 200, page[:1000]
    admin_pw = secrets.token_urlsafe(16)
    if "Already Installed" not in page:
        status, page = wp.post("/wp-admin/install.php?step=2", {
            "weblog_title": "phphost demo blog", "user_name": "admin",
            "admin_password": admin_pw, "admin_password2": admin_pw, "pw_weak": "1",
            "admin_email": "admin@demo.test", "blog_public": "0", "language": ""})
        assert status == 200 and "Success!" in page, page[:2000]
    else:   # an earlier run installed it: reset the admin's password through MariaDB
        hostkit_sql(f"UPDATE wordpress.wp_users SET user_pass = MD5('{admin_pw}') "  # noqa: S608
                    "WHERE user_login = 'admin';")          # (a token_urlsafe: no quotes)
    wp.get("/wp-login.php")                              # the test cookie
    status, page = wp.post("/wp-login.php", {"log": "admin", "pwd": admin_pw,
                                             "wp-submit": "Log In", "testcookie": "1",
                                             "redirect_to": "/wp-admin/"})
    assert status == 200 and "Dashboard" in page, page[:2000]
    return wp


def test_wordpress_install_login_post_permalink_upload(apps: Model) -> None:
    wp = wp_login()

    # pretty permalinks: WordPress's form, no /index.php/ in front (front_controller)
    status, page = wp.get("/wp-admin/options-permalink.php")
    assert status == 200, page[:1000]
    status, page = wp.post("/wp-admin/options-permalink.php", {
        "_wpnonce": field(page, "_wpnonce"), "_wp_http_referer": "/wp-admin/options-permalink.php",
        "selection": "custom", "permalink_structure": "/%postname%/",
        "category_base": "", "tag_base": "", "submit": "Save Changes"})
    assert status == 200, page[:1000]

    status, nonce = wp.get("/wp-admin/admin-ajax.php?action=rest-nonce")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{10}", nonce), nonce[:500]
    slug = f"phphost-{secrets.token_hex(4)}"
    marker = f"marker-{secrets.token_hex(6)}"
    status, head, text = wp.request(
        "POST", "/?rest_route=/wp/v2/posts",
        body=json.dumps({"title": slug, "slug": slug, "status": "publish",
                         "content": f"<p>{marker}</p>"}).encode(),
        headers={"X-WP-Nonce": nonce, "Content-Type": "application/json"})
    assert status == 201, text[:1000]
    link = json.loads(text)["link"]
    assert urllib.parse.urlsplit(link).path == f"/{slug}/", link
    status, page = hostkit.Browser("wordpress.demo.test").get(f"/{slug}/")
    assert status == 200 and marker in page, page[:1000]

    status, _h, text = wp.request(
        "POST", "/?rest_route=/wp/v2/media", body=PNG,
        headers={"X-WP-Nonce": nonce, "Content-Type": "image/png",
                 "Content-Disposition": f'attachment; filename="{slug}.png"'})
    assert status == 201, text[:1000]
    url = urllib.parse.urlsplit(json.loads(text)["source_url"]).path
    assert url.startswith("/wp-content/uploads/"), url
    status, head, _b = hostkit.Browser("wordpress.demo.test").request("GET", url)
    assert status == 200 and head["content-type"] == "image/png"   # public writable dir


def hostkit_sql(statement: str) -> None:
    subprocess.run(["mariadb", "--batch", "-e", statement], check=True, capture_output=True)


# ---------------------------------------------------------------- DokuWiki


def test_dokuwiki_edit_read_back_and_data_refused(apps: Model) -> None:
    wiki = hostkit.Browser("dokuwiki.demo.test")
    page_id = f"phphost:test{secrets.token_hex(3)}"
    status, page = wiki.get(f"/doku.php?id={page_id}&do=edit")
    assert status == 200, page[:1000]
    marker = f"marker{secrets.token_hex(6)}"
    status, page = wiki.post("/doku.php", {
        "id": page_id, "sectok": field(page, "sectok"), "prefix": ".", "suffix": "",
        "date": field(page, "date"), "changecheck": field(page, "changecheck"),
        "wikitext": f"====== Test ======\n\nWritten by the test: **{marker}**\n",
        "summary": "phphost test", "do[save]": "Save"})
    assert status == 200, page[:1000]
    status, page = hostkit.Browser("dokuwiki.demo.test").get(f"/doku.php?id={page_id}")
    assert status == 200 and f"<strong>{marker}</strong>" in page, page[:2000]
    # its raw source is on disk in data/, which Apache never serves
    raw = page_id.replace(":", "/")
    for path in (f"/data/pages/{raw}.txt", "/data/pages/wiki/dokuwiki.txt",
                 "/data/meta/wiki/dokuwiki.changes", "/conf/local.php", "/conf/mime.conf",
                 "/conf/users.auth.php"):
        status, _page = hostkit.Browser("dokuwiki.demo.test").get(path)
        assert status in (403, 404), (path, status)
    # the shared libraries come through the phplibs feature: jQuery from libjs-jquery
    status, js = hostkit.Browser("dokuwiki.demo.test").get("/lib/exe/jquery.php")
    assert status == 200 and "jQuery" in js[:2000]


# ---------------------------------------------------------------- Adminer, phpMyAdmin


def test_adminer_logs_in_to_mariadb(apps: Model) -> None:
    web = hostkit.Browser("adminer.demo.test")
    status, page = web.get("/")
    assert status == 200 and "Adminer" in page, page[:1000]
    status, page = web.post("/", {"auth[driver]": "server", "auth[server]": "localhost",
                                  "auth[username]": "appsdemo",
                                  "auth[password]": db_password(), "auth[db]": "wordpress"})
    assert status == 200 and "Logout" in page and "wp_posts" in page, page[:2000]


def test_phpmyadmin_logs_in_to_mariadb(apps: Model) -> None:
    web = hostkit.Browser("phpmyadmin.demo.test")
    status, page = web.get("/index.php")
    assert status == 200 and "pma_username" in page, page[:2000]
    status, page = web.post("/index.php?route=/", {
        "pma_username": "appsdemo", "pma_password": db_password(), "server": "1",
        "token": field(page, "token"), "set_session": field(page, "set_session")})
    assert status == 200 and "wordpress" in page and "pma_username" not in page, page[:3000]


# ---------------------------------------------------------------- check


def check_json(spec: str, *pools: str) -> tuple[int, dict[str, object]]:
    args = [a for p in pools for a in ("--pool", p)]
    proc = hostkit.phphost("check", spec, "--json", *args, check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_check_probes_phplibs_and_names_missing_features(apps: Model) -> None:
    code, report = check_json(apps.source, "dokuwiki", "phpmyadmin", "adminer")
    assert code == 0, report
    rows = {(p["pool"], r["feature"]): r for p in report["pools"]  # type: ignore[attr-defined]
            for r in p["rows"]}
    assert rows["dokuwiki", "phplibs"]["verdict"] == "ok"
    assert rows["adminer", "phplibs"]["verdict"] == "absent"

    # the same apps with their features spelled out, minus phplibs and mysql
    text = Path(apps.source).read_text()
    text = text.replace('recipe = "dokuwiki"',
                        'allow_override = ["AuthConfig", "RedirectMatch"]')
    text = text.replace('recipe = "adminer"', "")
    text = text.replace('[pools.dokuwiki]\ntenant = "apps"',
                        '[pools.dokuwiki]\ntenant = "apps"\njail = { features = ["sessions"] }\n'
                        'writable = ["htdocs/dokuwiki/data", "htdocs/dokuwiki/conf"]')
    text = text.replace('[pools.adminer]\ntenant = "apps"',
                        '[pools.adminer]\ntenant = "apps"\njail = { features = ["sessions"] }')
    bare = Path(apps.source).with_suffix(".bare.toml")
    bare.write_text(text)
    try:
        hostkit.phphost("apply", str(bare))
        assert hostkit.Browser("dokuwiki.demo.test").get("/doku.php")[0] == 500
        web = hostkit.Browser("adminer.demo.test")
        web.get("/")
        _status, page = web.post("/", {"auth[driver]": "server", "auth[server]": "localhost",
                                       "auth[username]": "appsdemo",
                                       "auth[password]": db_password(), "auth[db]": ""})
        assert "No such file or directory" in page
        code, report = check_json(str(bare), "dokuwiki", "adminer")
        hints = {p["pool"]: p["hints"] for p in report["pools"]}  # type: ignore[attr-defined]
        assert any("/usr/share/php" in h and "'phplibs'" in h for h in hints["dokuwiki"]), hints
        # Adminer hides the warning (@), so the log says nothing; check's mysql row does
        rows = {(p["pool"], r["feature"]): r for p in report["pools"]  # type: ignore[attr-defined]
                for r in p["rows"]}
        assert "add the jail feature 'mysql'" in rows["adminer", "mysql"]["detail"]
        plain = hostkit.phphost("check", str(bare), "--pool", "dokuwiki", check=False).stdout
        assert 'hint: PHP failed on "/usr/share/php' in plain
    finally:
        hostkit.phphost("apply", apps.source)
        bare.unlink()
    assert hostkit.Browser("dokuwiki.demo.test").get("/doku.php")[0] == 200


def plugin_zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/{name}.php", f"<?php\n/*\nPlugin Name: {name}\n*/\n")
    return buf.getvalue()


def upload_plugin(wp: hostkit.Browser, name: str) -> str:
    status, page = wp.get("/wp-admin/plugin-install.php?tab=upload")
    assert status == 200, page[:1000]
    boundary = secrets.token_hex(12)
    parts = [('name="_wpnonce"', field(page, "_wpnonce").encode()),
             ('name="install-plugin-submit"', b"Install Now"),
             (f'name="pluginzip"; filename="{name}.zip"', plugin_zip(name))]
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; {head}\r\n\r\n"
                    .encode() + data + b"\r\n" for head, data in parts)
    body += f"--{boundary}--\r\n".encode()
    status, _h, text = wp.request(
        "POST", "/wp-admin/update.php?action=upload-plugin", body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, text[:1000]
    return text


def test_wordpress_admin_installs_plugins_only_when_opted_in(apps: Model) -> None:
    site = next(s for s in apps.sites if s.name == "wordpress")
    assert site.docroot is not None
    plugins = Path(site.docroot) / "wp-content" / "plugins"
    name = f"phphost-{secrets.token_hex(3)}"
    page = upload_plugin(wp_login(), name)
    assert "Plugin installed successfully" not in page and not (plugins / name).exists()
    assert "FTP" not in page                       # FS_METHOD direct: no credentials asked

    opted = Path(apps.source).with_suffix(".plugins.toml")
    opted.write_text(Path(apps.source).read_text().replace(
        'recipe = "wordpress"', 'recipe = "wordpress"\nrecipe_options = ["admin-installs"]'))
    try:
        hostkit.phphost("apply", str(opted))
        page = upload_plugin(wp_login(), name)
        assert "Plugin installed successfully" in page, page[:3000]
        code = plugins / name / f"{name}.php"
        assert code.is_file() and code.owner() == "php-wordpress"
        # what the pool wrote is served as a file at most, never run as PHP
        browser = hostkit.Browser("wordpress.demo.test")
        status, _p = browser.get(f"/wp-content/plugins/{name}/{name}.php")
        assert status == 403
    finally:
        hostkit.phphost("apply", apps.source)
        opted.unlink()
    # the option off again: the plugins dir is read-only in the jail at once
    again = f"{name}-again"
    assert "Plugin installed successfully" not in upload_plugin(wp_login(), again)
    assert not (plugins / again).exists()
