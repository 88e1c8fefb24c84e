"""Golden-file tests of the renderers, targeted asserts on the hard rules, and (marked
integration) the real validators php-fpm -t and apache2 -t on rendered text.

Regenerate the expected files with PHPHOST_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout
from phphost.render.apache import (
    FPM_PAGES,
    PRIVATE_FILES,
    conflicting_modules,
    regex_literal,
    render_apache_global,
    render_site,
    required_modules,
)
from phphost.render.common import HEADER
from phphost.render.fpm import jail_root, render_fpm_argv, render_fpm_conf, render_limits_json
from phphost.render.logrotate import render_logrotate
from phphost.render.supervisor import command_line, render_supervisor_program
from phphost.spec.extensions import BASE
from phphost.spec.model import (
    TLS,
    ApacheSettings,
    JailSpec,
    Model,
    Pool,
    PoolSettings,
    Route,
    Site,
    Tenant,
)

EXPECTED = Path(__file__).parent / "expected"
UPDATE = os.environ.get("PHPHOST_UPDATE_GOLDEN") == "1"
NO_JAIL = JailSpec(enabled=False)
JAILED = JailSpec(enabled=True, features=("base", "dns"))


def _model() -> Model:
    tenants = (
        Tenant("acme", "acme", "acme", "/srv/www/acme"),
        Tenant("blog", "blog", "blog", "/home/blog"),
        Tenant("ncs", "ncs", "ncs", "/srv/www/ncs"),
    )
    pools = (
        Pool("acme", "acme", "php-acme", "/run/phphost/acme.sock", PoolSettings(
            pm="static", max_children=8, priority=5, listen_backlog=16,
            opcache_memory_mb=128, process_control_timeout=20,
            php_admin_values=(("expose_php", "on"), ("memory_limit", "256M")),
            php_values=(("max_execution_time", "30"), ("upload_max_filesize", "16M")),
            php_ini=(("opcache.jit", "tracing"), ("opcache.memory_consumption", "96")),
        ), writable=("/srv/www/acme/htdocs/uploads", "/srv/www/acme/cache"),
            public=("/srv/www/acme/htdocs/uploads",), jail=NO_JAIL),
        Pool("blog", "blog", "php-blog", "/run/phphost/blog.sock", PoolSettings(),
             writable=("/home/blog/htdocs/wp-content/uploads", "/home/blog/htdocs/data",
                       "/home/blog/htdocs/data/media", "/home/blog/static/cache"),
             public=("/home/blog/htdocs/wp-content/uploads", "/home/blog/htdocs/data/media"),
             jail=JAILED),
        Pool("chords", "ncs", "php-chords", "/run/phphost/chords.sock",
             PoolSettings(idle_timeout=30, request_slowlog_timeout=2),
             writable=("/srv/www/ncs/htdocs/files/chords/tmp",),
             jail=NO_JAIL),
        Pool("matomo", "ncs", "php-matomo", "/run/phphost/matomo.sock", PoolSettings(
            pm="dynamic", max_children=18, start_servers=3, min_spare=2, max_spare=4,
            request_terminate_timeout=25, request_slowlog_timeout=0,
        ), writable=("/srv/www/ncs/data",), jail=NO_JAIL),
        Pool("ncs-web", "ncs", "php-ncs-web", "/run/phphost/ncs-web.sock", PoolSettings(
            pm="dynamic", max_children=6, min_spare=1, max_spare=2,
        ), jail=NO_JAIL),
    )
    sites = (
        Site("acme", "www.acme.example", aliases=("acme.example",), tenant="acme",
             docroot="/srv/www/acme/htdocs", pool="acme",
             tls=TLS("/etc/ssl/certs/acme.pem", "/etc/ssl/private/acme.key")),
        Site("blog", "blog.example", tenant="blog", docroot="/home/blog/htdocs", pool="blog",
             tls=TLS("/etc/ssl/certs/blog.pem", "/etc/ssl/private/blog.key",
                     "/etc/ssl/certs/blog-chain.pem"),
             allow_override=("Limit", "ErrorDocument", "AuthConfig", "Redirect"),
             front_controller="/index.php"),
        Site("blog-static", "static.blog.example", tenant="blog",
             docroot="/home/blog/static", php=False),
        Site("files", "files.example.org", aliases=("www.files.example.org",), tenant="ncs",
             docroot="/srv/www/ncs/htdocs/files", pool="ncs-web",
             routes=(Route("/stats/matomo/", "matomo"), Route("/chords/", "chords")),
             front_controller="/app/front.php"),
        Site("old", "example-with-hyphens.org", aliases=("www.example-with-hyphens.org",),
             redirect="https://www.acme.example/"),
    )
    return Model("/etc/phphost/spec.toml", tenants, pools, sites, ApacheSettings())


MODEL = _model()


def _rendered(model: Model) -> dict[str, str]:
    files = {"apache-global.conf": render_apache_global(model),
             "logrotate-phphost": render_logrotate(model)}
    for pool in model.pools:
        files[f"fpm-{pool.name}.conf"] = render_fpm_conf(pool, model.tenant(pool.tenant))
        files[f"supervisor-{pool.name}.conf"] = render_supervisor_program(pool)
    for site in model.sites:
        files[f"site-{site.name}.conf"] = render_site(site, model)
    return files


RENDERED = _rendered(MODEL)


# --- golden files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_golden(name: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        EXPECTED.mkdir(exist_ok=True)
        path.write_text(RENDERED[name])
    assert path.exists(), f"{path} is missing: run with PHPHOST_UPDATE_GOLDEN=1"
    assert RENDERED[name] == path.read_text()


def test_no_stale_golden_files() -> None:
    assert sorted(p.name for p in EXPECTED.iterdir()) == sorted(RENDERED)


def test_deterministic() -> None:
    assert _rendered(_model()) == RENDERED


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_header_first(name: str) -> None:
    mark = ";" if name.startswith("fpm-") else "#"
    assert RENDERED[name].splitlines()[0] == f"{mark} {HEADER}"


# --- Apache hard rules --------------------------------------------------------------------


def _apache_texts() -> list[str]:
    return [text for name, text in RENDERED.items()
            if name.startswith(("site-", "apache-"))]


@pytest.mark.parametrize("word", ["AddHandler", "enablereuse", "ProxyPass",
                                  "AllowOverride All", "Options All", "FileInfo"])
def test_forbidden_apache_words(word: str) -> None:
    for text in _apache_texts():
        assert word not in text


def test_no_ifmodule_sections() -> None:
    """Nothing is wrapped in <IfModule> (a missing module fails closed); the word only
    appears as what a writable dir's .htaccess may hold (AllowOverrideList)."""
    for text in _apache_texts():
        assert not re.search(r"^\s*</?IfModule", text, re.M)
        for line in text.splitlines():
            if "IfModule" in line:
                assert line.strip() == "AllowOverrideList Require <IfModule"


def test_proxy_requests_off() -> None:
    assert "\nProxyRequests Off\n" in RENDERED["apache-global.conf"]


def test_handler_form_exact() -> None:
    text = RENDERED["site-acme.conf"]
    assert ('    <FilesMatch "\\.php$">\n'
            '        <If "-f %{REQUEST_FILENAME}">\n'
            '            SetHandler "proxy:unix:/run/phphost/acme.sock|fcgi://acme/"\n'
            '        </If>\n'
            '    </FilesMatch>\n') in text


def test_every_sethandler_is_guarded_by_php_filesmatch_and_file_test() -> None:
    for text in _apache_texts():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "SetHandler" in line:
                assert re.fullmatch(r' *SetHandler "proxy:unix:/run/phphost/[a-z-]+\.sock'
                                    r'\|fcgi://[a-z-]+/"', line)
                assert re.match(r' *<(If|ElseIf) "-f %\{REQUEST_FILENAME\}', lines[i - 1])
                opener = next(x for x in reversed(lines[:i]) if "<FilesMatch" in x)
                assert opener.strip() == '<FilesMatch "\\.php$">'


def test_routes_before_default_handler_longest_first() -> None:
    text = RENDERED["site-files.conf"]
    stats = text.index("m#^/srv/www/ncs/htdocs/files/stats/matomo/#")
    chords = text.index("m#^/srv/www/ncs/htdocs/files/chords/#")
    default = text.index('<ElseIf "-f %{REQUEST_FILENAME}">')
    assert stats < chords < default
    assert text.index("fcgi://matomo/") < text.index("fcgi://chords/") \
        < text.index("fcgi://ncs-web/")
    assert text.count("<If ") == 1 and text.count("<ElseIf ") == 2


def test_route_regex_escapes_metacharacters() -> None:
    assert regex_literal("/srv/a.b+c/x y#z/") == r"/srv/a\.b\x2bc/x\x20y\x23z/"
    for path in ("/srv/a.b+c/", "/srv/(x)/[y]/", "/srv/x y/#/", "/srv/ü/"):
        pattern = regex_literal(path)
        assert "#" not in pattern and '"' not in pattern
        assert re.fullmatch(pattern.encode(), path.encode())   # Apache's PCRE: bytes
    assert not re.match(regex_literal("/srv/a.b/"), "/srv/aXb/")


def test_php_off_site_denies_php() -> None:
    text = RENDERED["site-blog-static.conf"]
    assert "SetHandler" not in text and "proxy:" not in text
    deny = ('    <FilesMatch "(?i)\\.(php\\d?|phtml|phar|phps)$">\n'
            "        Require all denied\n    </FilesMatch>")
    assert deny in text
    assert "DirectoryIndex index.html\n" in text


def test_php_like_patterns() -> None:
    php_like = r"(?i)\.(php\d?|phtml|phar|phps)$"
    not_run = r"\.(?i:php\d?|phtml|phar|phps)(?<!\.php)$"
    for name in ("x.php", "x.PHP", "x.php7", "x.phtml", "x.phar", "x.phps"):
        assert re.search(php_like, name)
    assert not re.search(php_like, "x.php.jpg")
    assert not re.search(not_run, "x.php")
    for name in ("x.PHP", "x.Php", "x.php5", "x.phtml", "x.phar"):
        assert re.search(not_run, name), name


def test_private_files_pattern() -> None:
    for name in ("x.php~", "x.php.bak", "x.php.orig", "x.php.save", ".x.php.swp",
                 "#x.php#", ".htaccess", ".htpasswd", ".user.ini"):
        assert re.search(PRIVATE_FILES, name), name
    for name in ("x.php", "index.html", "x.bak.php", "photo.jpg", "x.html~"):
        assert not re.search(PRIVATE_FILES, name), name


def test_fpm_pages_denied() -> None:
    assert FPM_PAGES == "^(/phphost-fpm-status|/phphost-fpm-ping)"
    for path in (layout.STATUS_PATH, layout.PING_PATH):
        assert re.match(FPM_PAGES, path)
    assert f'<LocationMatch "{FPM_PAGES}">\n    Require all denied' \
        in RENDERED["apache-global.conf"]


def test_writable_dirs_in_docroot_do_not_run_php() -> None:
    acme = RENDERED["site-acme.conf"]
    assert '<Directory "/srv/www/acme/htdocs/uploads">\n' \
        "        AllowOverride None\n        AllowOverrideList None\n" \
        '        <FilesMatch "' in acme                  # public: static files, no PHP
    assert "/srv/www/acme/cache" not in acme      # outside the docroot
    files = RENDERED["site-files.conf"]            # a route's pool counts too
    assert '<Directory "/srv/www/ncs/htdocs/files/chords/tmp">\n' \
        "        AllowOverride None\n        AllowOverrideList None\n" \
        "        Require all denied\n" in files       # not public: nothing served
    assert "/srv/www/ncs/data" not in files


def test_writable_dirs_public_or_denied_with_require_overrides() -> None:
    """blog reads .htaccess: its writable dirs allow Require (and <IfModule>) only; a
    public dir inside a denied one opens again; a PHP-off site of the same tenant
    denies the pool's dir in its docroot too."""
    blog = RENDERED["site-blog.conf"]
    assert '<Directory "/home/blog/htdocs/data">\n' \
        "        AllowOverride None\n        AllowOverrideList Require <IfModule\n" \
        "        Require all denied\n" in blog
    assert '<Directory "/home/blog/htdocs/data/media">\n' \
        "        AllowOverride None\n        AllowOverrideList Require <IfModule\n" \
        "        Require all granted\n" in blog
    uploads = blog.split('<Directory "/home/blog/htdocs/wp-content/uploads">')[1]
    assert "Require all" not in uploads.split("<FilesMatch")[0]    # public, inherits
    static = RENDERED["site-blog-static.conf"]
    assert '<Directory "/home/blog/static/cache">\n' \
        "        AllowOverride None\n        AllowOverrideList None\n" \
        "        Require all denied\n" in static
    assert "/home/blog/htdocs" not in static


def test_front_controller_is_a_fallback_resource() -> None:
    """Unknown URLs of the site run its front controller; under a route they stay the
    route's own (no fallback there); sites without one have none."""
    blog = _docroot_section(RENDERED["site-blog.conf"])
    assert 'FallbackResource "/index.php"\n' in blog
    files = RENDERED["site-files.conf"]
    assert 'FallbackResource "/app/front.php"\n' in _docroot_section(files)
    for route in ("chords", "stats/matomo"):
        assert (f'<Directory "/srv/www/ncs/htdocs/files/{route}">\n'
                "        FallbackResource disabled\n    </Directory>\n") in files
    for name in ("site-acme.conf", "site-blog-static.conf", "site-old.conf"):
        assert "FallbackResource" not in RENDERED[name]


def test_allow_override() -> None:
    blog = RENDERED["site-blog.conf"]
    assert "AllowOverride AuthConfig Limit\n" in blog
    assert "AllowOverrideList ErrorDocument Redirect\n" in blog
    for name in ("site-acme.conf", "site-files.conf", "site-blog-static.conf"):
        section = _docroot_section(RENDERED[name])
        assert "AllowOverride None\n" in section
        assert "AllowOverrideList" not in section


def _docroot_section(text: str) -> str:
    """The body of the <Directory> section of the (first) DocumentRoot."""
    root = re.search(r'DocumentRoot (".*?")', text)
    assert root is not None
    return text.split(f"<Directory {root.group(1)}>\n", 1)[1].split("</Directory>")[0]


def test_no_symlink_is_followed_above_a_docroot() -> None:
    """Apache checks a symlinked path component with the Options of its parent dir
    (Debian's <Directory /> has FollowSymLinks): every dir from / to the docroot's
    parent forbids following, the docroot keeps the owner-match rule inside."""
    for name in ("site-acme.conf", "site-files.conf", "site-blog.conf"):
        text = RENDERED[name]
        root = re.search(r'DocumentRoot "(.*?)"', text)
        assert root is not None
        parts = root.group(1).strip("/").split("/")
        above = ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
        for directory in above:
            body = text.split(f'<Directory "{directory}">\n', 1)[1].split("</Directory>")[0]
            assert "Options -FollowSymLinks -SymLinksIfOwnerMatch\n" in body, (name, directory)
            assert "AllowOverride None\n" in body
        assert "Options -Indexes +SymLinksIfOwnerMatch\n" in _docroot_section(text)
        assert "+FollowSymLinks" not in text


def test_tls_site() -> None:
    text = RENDERED["site-blog.conf"]
    http, https = text.split("<VirtualHost")[1:]
    assert http.startswith(" *:80>")
    assert 'Redirect permanent / "https://blog.example/"' in http
    assert "DocumentRoot" not in http and "SetHandler" not in http
    assert https.startswith(" *:443>")
    assert "SSLEngine on" in https and "SSLCertificateChainFile" in https
    assert "SetHandler" in https


def test_tls_other_port_and_listen() -> None:
    model = dataclasses.replace(MODEL, apache=ApacheSettings(http_port=8080, https_port=8443))
    glob = render_apache_global(model)
    assert "\nListen 8080\nListen 8443 https\n" in glob
    assert 'Redirect permanent / "https://blog.example:8443/"' in render_site(
        model.sites[1], model)
    assert "Listen" not in RENDERED["apache-global.conf"]
    no_tls = dataclasses.replace(model, sites=(model.sites[2],))
    assert "8443" not in render_apache_global(no_tls)


def test_redirect_site() -> None:
    text = RENDERED["site-old.conf"]
    assert 'Redirect permanent / "https://www.acme.example/"' in text
    for word in ("DocumentRoot", "Directory", "SetHandler", "SSLEngine"):
        assert word not in text


def test_modules() -> None:
    mods = required_modules(MODEL)
    assert "ssl" in mods and "mpm_event" in mods and "proxy_fcgi" in mods
    assert list(mods) == sorted(mods)
    plain = dataclasses.replace(MODEL, sites=(MODEL.sites[2],))
    assert "ssl" not in required_modules(plain)
    assert set(conflicting_modules()) == {"php8.2", "mpm_prefork", "mpm_worker"}
    assert not set(conflicting_modules()) & set(mods)


def test_unquotable_paths_rejected() -> None:
    site = dataclasses.replace(MODEL.sites[2], docroot='/home/blog/x"y')
    with pytest.raises(ValueError, match="docroot"):
        render_site(site, MODEL)
    site = dataclasses.replace(MODEL.sites[2], docroot="/home/blog/*")
    with pytest.raises(ValueError, match="docroot"):
        render_site(site, MODEL)


# --- FPM ----------------------------------------------------------------------------------


def _fpm(name: str) -> dict[str, str]:
    """key -> value of one rendered FPM config (keys are unique within ours)."""
    out: dict[str, str] = {}
    for line in RENDERED[f"fpm-{name}.conf"].splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            assert key not in out, f"{key} twice"
            out[key] = value
    return out


@pytest.mark.parametrize("pool", [p.name for p in MODEL.pools])
def test_fpm_invariants(pool: str) -> None:
    conf = _fpm(pool)
    assert int(conf["process_control_timeout"].removesuffix("s")) > 0
    assert conf["listen.mode"] == "0660"
    assert conf["listen.owner"] == "root" and conf["listen.group"] == layout.WEB_GROUP
    assert conf["daemonize"] == "no"
    assert conf["pid"] == layout.pid_file(pool) and conf["error_log"] == layout.fpm_log(pool)
    assert conf["clear_env"] == "yes" and conf["security.limit_extensions"] == ".php"
    assert conf["chdir"] == "/"
    assert conf["pm.status_path"] == layout.STATUS_PATH
    assert "php_admin_value[disable_functions]" not in conf
    assert conf["php_admin_value[allow_url_include]"] == "off"


def test_fpm_pm_knobs_only_of_their_pm() -> None:
    static, dynamic, ondemand = _fpm("acme"), _fpm("matomo"), _fpm("chords")
    assert static["pm"] == "static"
    assert not {k for k in static if k.startswith(("pm.start", "pm.min", "pm.max_spare",
                                                   "pm.process_idle"))}
    assert dynamic["pm.start_servers"] == "3" and dynamic["pm.max_spare_servers"] == "4"
    assert "pm.process_idle_timeout" not in dynamic
    assert "pm.start_servers" not in _fpm("ncs-web")
    assert ondemand["pm.process_idle_timeout"] == "30s"
    assert "pm.min_spare_servers" not in ondemand


def test_fpm_overrides_and_jail() -> None:
    acme = _fpm("acme")
    assert acme["php_admin_value[expose_php]"] == "on"
    assert acme["process.priority"] == "5"
    assert "process.priority" not in _fpm("blog")
    assert "chroot" not in acme
    assert _fpm("blog")["chroot"] == "/var/lib/phphost/jails/blog"
    assert _fpm("blog")["php_admin_value[expose_php]"] == "off"


def test_fpm_rejects_wrong_tenant_and_injection() -> None:
    pool = MODEL.pool("acme")
    with pytest.raises(ValueError):
        render_fpm_conf(pool, MODEL.tenant("blog"))
    bad = dataclasses.replace(pool, settings=dataclasses.replace(
        pool.settings, php_values=(("x", "1\n[evil]"),)))
    with pytest.raises(ValueError):
        render_fpm_conf(bad, MODEL.tenant("acme"))
    with pytest.raises(ValueError):
        render_fpm_conf(dataclasses.replace(pool, name="global"), MODEL.tenant("acme"))


def test_fpm_argv() -> None:
    argv = render_fpm_argv(MODEL.pool("acme"))
    launcher = [layout.LAUNCHER, "--pool", "acme", "--pid-ns", "--cgroup", "phphost/acme",
                "--limits", layout.limits_file("acme"), "--network-policy", layout.NFT_CONF,
                "--network-user", "php-acme", "--jail", "/", "--mount", "proc:/proc:ro", "--"]
    assert argv[:21] == [*launcher, layout.FPM_BINARY, "--nodaemonize",
                         "--fpm-config", layout.fpm_conf("acme")]
    flags = argv[21:]
    assert flags[0::2] == ["-d"] * (len(flags) // 2)
    pairs = [f.split("=", 1) for f in flags[1::2]]
    keys = [k for k, _ in pairs if k not in ("extension", "zend_extension")]
    assert len(keys) == len(set(keys))
    exts = [v for k, v in pairs if k == "extension"]
    assert pairs[0] == ["zend_extension", "opcache"]
    assert set(BASE) <= set(exts) and "gd" not in exts and len(exts) == len(set(exts))
    assert exts.index("mysqlnd") < exts.index("mysqli")
    assert dict(pairs)["opcache.memory_consumption"] == "96"      # php_ini wins
    assert dict(pairs)["opcache.interned_strings_buffer"] == "8"  # opcache_memory_mb 128 / 16
    assert "environment=PHP_INI_SCAN_DIR=\"\"\n" in RENDERED["supervisor-acme.conf"]
    assert dict(pairs)["opcache.jit"] == "tracing"
    assert dict(pairs)["opcache.validate_root"] == "1"
    blog_argv = render_fpm_argv(MODEL.pool("blog"))
    blog = dict(f.split("=", 1) for f in blog_argv[blog_argv.index("--") + 6::2])
    assert blog["opcache.memory_consumption"] == "64"


def test_fpm_argv_all_extensions() -> None:
    pool = MODEL.pool("acme")
    pool = dataclasses.replace(pool, settings=dataclasses.replace(
        pool.settings, php_extensions="all"))
    argv = render_fpm_argv(pool)
    assert not any(a.startswith(("extension=", "zend_extension=")) for a in argv)
    assert "opcache.jit=tracing" in argv            # the pool's php_ini, as before
    assert "environment=" not in render_supervisor_program(pool)


# --- supervisor ---------------------------------------------------------------------------


def test_supervisor() -> None:
    text = RENDERED["supervisor-acme.conf"]
    assert "[program:phphost-acme]\n" in text
    assert "\nstopwaitsecs=25\n" in text and "\numask=007\n" in text
    assert "\nstopsignal=QUIT\n" in text
    assert f"command={' '.join(render_fpm_argv(MODEL.pool('acme')))}\n" in text


@pytest.mark.parametrize("arg", ["a b", "100%", "x;y", "#x", "", "a\tb", "'q'"])
def test_supervisor_rejects_special_arguments(arg: str) -> None:
    with pytest.raises(ValueError):
        command_line(["/bin/true", arg])
    pool = MODEL.pool("acme")
    bad = dataclasses.replace(pool, settings=dataclasses.replace(
        pool.settings, php_ini=(("error_log", f"/tmp/{arg}x"),)))
    if arg:
        with pytest.raises(ValueError):
            render_supervisor_program(bad)


# --- real validators (integration) --------------------------------------------------------

FPM = "/usr/sbin/php-fpm8.2"
APACHE = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
OPENSSL = "/usr/bin/openssl"

needs_validators = pytest.mark.skipif(
    os.geteuid() != 0 or not all(os.path.exists(p) for p in (FPM, APACHE, OPENSSL)),
    reason="needs root, php-fpm8.2, apache2 and openssl",
)


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="phphost-render-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _fpm_check(tmp: Path, pool: Pool, moved: dict[str, Path] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """php-fpm -t on the pool's rendered config and -d flags, host paths moved to `tmp`."""
    tenant = Tenant(pool.tenant, layout.WEB_USER, layout.WEB_GROUP, str(tmp))
    text = render_fpm_conf(pool, tenant)
    moved = {layout.pid_file(pool.name): tmp / "fpm.pid",
             layout.fpm_log(pool.name): tmp / "fpm.log",
             layout.slow_log(pool.name): tmp / "fpm.slow.log", **(moved or {})}
    for real, fake in moved.items():
        text = text.replace(f" = {real}\n", f" = {fake}\n")
    conf = tmp / "fpm.conf"
    conf.write_text(text)
    argv = render_fpm_argv(pool)
    argv = [FPM, "-t", "--fpm-config", str(conf), *argv[argv.index("--fpm-config") + 2:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.integration
@needs_validators
@pytest.mark.parametrize("pool", [p.name for p in MODEL.pools])
def test_php_fpm_accepts_config(tmp: Path, pool: str) -> None:
    pool_ = dataclasses.replace(MODEL.pool(pool), user=layout.WEB_USER,
                                socket=str(tmp / "fpm.sock"), jail=NO_JAIL)
    result = _fpm_check(tmp, pool_)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stdout + result.stderr


@pytest.mark.integration
@needs_validators
def test_php_fpm_accepts_jailed_config(tmp: Path) -> None:
    pool = dataclasses.replace(MODEL.pool("blog"), user=layout.WEB_USER,
                               socket=str(tmp / "fpm.sock"))
    (tmp / "jail").mkdir()
    result = _fpm_check(tmp, pool, {jail_root("blog"): tmp / "jail"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stdout + result.stderr


def _apache_model(tmp: Path) -> Model:
    """MODEL with every docroot, socket and certificate moved under `tmp`."""
    def move(path: str) -> str:
        return str(tmp) + path

    tenants = tuple(dataclasses.replace(t, home=move(t.home)) for t in MODEL.tenants)
    pools = tuple(dataclasses.replace(p, socket=str(tmp / f"{p.name}.sock"),
                                      writable=tuple(move(w) for w in p.writable))
                  for p in MODEL.pools)
    sites: list[Site] = []
    for site in MODEL.sites:
        if site.docroot is not None:
            site = dataclasses.replace(site, docroot=move(site.docroot))
            Path(site.docroot or "").mkdir(parents=True, exist_ok=True)
        if site.tls is not None:
            chain = str(tmp / "cert.pem") if site.tls.chain else None
            site = dataclasses.replace(site, tls=TLS(str(tmp / "cert.pem"),
                                                     str(tmp / "key.pem"), chain))
        sites.append(site)
    return dataclasses.replace(MODEL, tenants=tenants, pools=pools, sites=tuple(sites),
                               apache=ApacheSettings(http_port=18080, https_port=18443))


def _apache_main_conf(tmp: Path, model: Model, includes: list[Path]) -> str:
    mods = required_modules(model)
    lines = [
        "ServerRoot /etc/apache2",
        f"Define APACHE_LOG_DIR {tmp}",
        f"PidFile {tmp}/apache2.pid",
        f"ErrorLog {tmp}/error.log",
        "ServerName localhost",
        'LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined',
        *(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in sorted(mods)),
        *(f"Include {path}" for path in includes),
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.integration
@needs_validators
def test_apache_accepts_config(tmp: Path) -> None:
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x",
                    "-days", "1", "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")],
                   check=True, capture_output=True, timeout=120)
    model = _apache_model(tmp)
    includes = [tmp / "phphost.conf"]
    includes[0].write_text(render_apache_global(model))
    for site in model.sites:
        path = tmp / f"phphost-{site.name}.conf"
        path.write_text(render_site(site, model))
        includes.append(path)
    main = tmp / "apache2.conf"
    main.write_text(_apache_main_conf(tmp, model, includes))
    result = subprocess.run([APACHE, "-t", "-f", str(main)], capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": "/usr/sbin:/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == "Syntax OK"    # and no warnings


def test_redirect_site_with_tls_redirects_from_both_ports() -> None:
    site = dataclasses.replace(MODEL.sites[4], tls=TLS("/etc/ssl/c.pem", "/etc/ssl/k.pem"))
    text = render_site(site, MODEL)
    assert text.count('Redirect permanent / "https://www.acme.example/"') == 2
    assert "<VirtualHost *:443>" in text and "SSLEngine on" in text
    assert "DocumentRoot" not in text


def test_jailed_master_gets_its_mounts_file() -> None:
    argv = render_fpm_argv(MODEL.pool("blog"))
    assert argv[:16] == [layout.LAUNCHER, "--pool", "blog", "--pid-ns", "--cgroup",
                         "phphost/blog", "--limits", layout.limits_file("blog"),
                         "--network-policy", layout.NFT_CONF, "--network-user", "php-blog",
                         "--jail", jail_root("blog"),
                         "--mounts", layout.mounts_file("blog")]


def test_ondemand_pools_are_socket_activated() -> None:
    """The launcher binds the socket as FPM's listen.* lines say, and starts the master
    on the first connection; static and dynamic pools (and activation = false) not."""
    blog = MODEL.pool("blog")
    assert blog.settings.pm == "ondemand" and blog.settings.activated
    argv = render_fpm_argv(blog)
    assert argv[16:argv.index("--")] == [
        "--socket", blog.socket, "--socket-group", "www-data", "--socket-mode", "0660",
        "--backlog", str(blog.settings.listen_backlog),
        "--idle-timeout", str(blog.settings.idle_timeout)]
    conf = render_fpm_conf(blog, MODEL.tenant(blog.tenant))
    for line in (f"listen = {blog.socket}", "listen.owner = root", "listen.group = www-data",
                 "listen.mode = 0660", f"listen.backlog = {blog.settings.listen_backlog}"):
        assert line in conf.splitlines()
    off = dataclasses.replace(blog, settings=dataclasses.replace(blog.settings,
                                                                 activation=False))
    assert "--socket" not in render_fpm_argv(off)
    static = next(p for p in MODEL.pools if p.settings.pm != "ondemand")
    assert "--socket" not in render_fpm_argv(static)


def test_limits_file_carries_rlimit_nproc() -> None:
    # max_children 8 -> pids_max = RLIMIT_NPROC = 8 * 8 + 16 (docs/sizing.md)
    assert json.loads(render_limits_json(MODEL.pool("acme"))) == {"pool": "acme", "nproc": 80}
