"""Every attack family, on a deliberately weakened demo host, is reported BREACHED
(an attack that cannot fail proves nothing), and only where the weakening is.

Each test edits what phphost rendered (or the host around it), runs verify, and
always restores: undo what apply does not manage (groups, modules, sockets kept
across a reload), re-apply the demo spec, and check that plan sees no change."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from phphost import layout
from phphost.host import services
from phphost.host.launcher import build_launcher
from phphost.render.fpm import launcher_args
from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.test_verify import DEMO, breached, verdicts, verify

BREACHED = 20
APACHE = Path(layout.APACHE_DIR)
# The spec the weakened hosts start from and are restored to. The non-jail layers are
# tested on the demo with jails off (a jail alone already stops several of these
# attacks); the jail family on the jailed demo itself.
BASE: list[Path] = [DEMO]


@pytest.fixture(scope="module")
def unjailed(demo: Model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    text = DEMO.read_text()
    for pool in demo.pools:
        text = hostkit.set_pool_key(text, f"pools.{pool.name}", "jail", "{ enabled = false }")
    spec = tmp_path_factory.mktemp("unjailed") / "unjailed.toml"
    spec.write_text(text)
    hostkit.phphost("apply", str(spec))
    BASE[0] = spec
    yield load_spec(str(spec))
    BASE[0] = DEMO
    hostkit.phphost("apply", str(DEMO))


def check(*only: str) -> tuple[int, dict[str, Any]]:
    return verify(*only, spec=BASE[0])


def edit(path: str | Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) in a rendered file."""
    p = Path(path)
    text = p.read_text()
    assert old in text, f"{old!r} not in {p}"
    p.write_text(text.replace(old, new))


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=60)


def graceful() -> None:
    services.apache_reload(restart=False)
    time.sleep(1.5)    # old children finish; new ones have the new config


def weaken_launcher(old: str, new: str) -> None:
    """Build the installed launcher from a copy of its installed source with `old`
    replaced (the source stays as apply wrote it: restore_launcher rebuilds from it).
    Its digest is not recorded, so should restore_launcher never run (an interrupted
    test), the next apply sees a binary apply did not build and rebuilds it."""
    text = Path(layout.LAUNCHER_SOURCE).read_text()
    assert old in text, f"{old!r} not in {layout.LAUNCHER_SOURCE}"
    with tempfile.TemporaryDirectory() as d:
        weak = Path(d) / "launch.c"
        weak.write_text(text.replace(old, new))
        build_launcher(layout.LAUNCHER, str(weak), record=False)


def restore_launcher() -> None:
    build_launcher(layout.LAUNCHER, layout.LAUNCHER_SOURCE)


def restart_master(model: Model, pool: str) -> None:
    services.supervisorctl("restart", layout.program_name(pool))
    services.wait_master(pool, model.pool(pool).socket)


@contextmanager
def weakened(model: Model, undo: tuple[Callable[[], None], ...] = (),
             restart: tuple[str, ...] = ()) -> Iterator[None]:
    """Restore after the block, whatever happened in it."""
    try:
        yield
    finally:
        for step in reversed(undo):
            step()
        hostkit.phphost("apply", str(BASE[0]))
        for pool in restart:
            restart_master(model, pool)
        assert hostkit.phphost("plan", str(BASE[0]), check=False).returncode == 0


# --- files ------------------------------------------------------------------------------


def test_files_breached_when_a_pool_user_joins_another_tenants_group(unjailed: Model) -> None:
    with weakened(unjailed, undo=(lambda: run("gpasswd", "-d", "php-files", "blog"),),
                  restart=("files",)):
        run("gpasswd", "-a", "php-files", "blog")
        restart_master(unjailed, "files")
        status, data = check("files.read-code", "files.symlink-php")
    assert status == BREACHED
    assert breached(data, "files.read-code") == {("pool:files", "tenant:blog")}
    assert breached(data, "files.symlink-php") == {("pool:files", "tenant:blog")}
    assert verdicts(data, "files.read-code", "pool:chords", "tenant:blog") == {"blocked"}


def test_files_symlink_via_apache_breached_with_followsymlinks(unjailed: Model) -> None:
    conf = APACHE / "sites-available/phphost-files.conf"
    with weakened(unjailed):
        edit(conf, "+SymLinksIfOwnerMatch", "+FollowSymLinks")
        graceful()
        status, data = check("files.symlink-http")
    assert status == BREACHED
    victims = {s.tenant for s in unjailed.sites if s.docroot and s.tenant != "ncs"}
    assert breached(data, "files.symlink-http") == {("site:files", f"tenant:{t}")
                                                    for t in victims}


# --- processes --------------------------------------------------------------------------


def test_processes_signal_breached_when_pools_share_a_user_and_pid_namespace(
        unjailed: Model) -> None:
    """blog runs as php-search, without the launcher (so in the host's PID namespace):
    it can signal search's workers."""
    with weakened(unjailed):
        edit(layout.fpm_conf("blog"), "user = php-blog", "user = php-search")
        launcher = " ".join(launcher_args(unjailed.pool("blog")))
        edit(layout.supervisor_conf("blog"), f"command={launcher} -- ", "command=")
        services.update_programs([layout.program_name("blog")])
        services.wait_master("blog", unjailed.pool("blog").socket)
        status, data = check("processes.signal")
    assert status == BREACHED
    assert breached(data, "processes.signal") == {("pool:blog", "pool:search")}
    assert verdicts(data, "processes.signal", "pool:files", "pool:search") == {"blocked"}


# --- fpm --------------------------------------------------------------------------------


def test_fpm_socket_breached_when_world_writable(unjailed: Model) -> None:
    sock = unjailed.pool("search").socket
    with weakened(unjailed, restart=("search",)):    # a reload keeps the socket's old mode
        edit(layout.fpm_conf("search"), "listen.mode = 0660", "listen.mode = 0666")
        if unjailed.pool("search").settings.activated:      # the launcher binds it
            edit(layout.supervisor_conf("search"), "--socket-mode 0660", "--socket-mode 0666")
            services.update_programs([layout.program_name("search")])
        restart_master(unjailed, "search")
        assert os.stat(sock).st_mode & 0o777 == 0o666
        status, data = check("fpm.socket-*")
    assert os.stat(sock).st_mode & 0o777 == 0o660
    assert status == BREACHED
    others = {f"pool:{p.name}" for p in unjailed.pools if p.name != "search"}
    for attack in ("fpm.socket-connect", "fpm.socket-exec"):
        assert breached(data, attack) == {(a, "pool:search") for a in others}


def test_fpm_htaccess_breached_with_allowoverride_all(unjailed: Model) -> None:
    conf = APACHE / "sites-available/phphost-blog.conf"
    # PHP_ADMIN_VALUE sticks to the FPM workers that got it: restart them after
    with weakened(unjailed, restart=("blog",)):
        edit(conf, "AllowOverride AuthConfig\n", "AllowOverride All\n")
        edit(conf, "AllowOverrideList ErrorDocument Redirect\n", "")
        graceful()
        status, data = check("fpm.htaccess-*")
    assert status == BREACHED
    others = {p.name for p in unjailed.pools if p.name != "blog"}
    assert breached(data, "fpm.htaccess-handler") == {("site:blog", f"pool:{p}")
                                                      for p in others}
    assert breached(data, "fpm.htaccess-php-value") == {("site:blog", None)}
    assert verdicts(data, "fpm.htaccess-handler", "site:files") == {"blocked"}


def test_fpm_status_page_breached_when_routed_through_apache(unjailed: Model) -> None:
    conf = APACHE / "sites-available/phphost-blog.conf"
    sock = unjailed.pool("blog").socket
    route = (f'    <Location "{layout.STATUS_PATH}">\n        Require all granted\n'
             f'        SetHandler "proxy:unix:{sock}|fcgi://blog/"\n    </Location>\n')
    with weakened(unjailed):
        edit(conf, "    DirectoryIndex index.php", route + "    DirectoryIndex index.php")
        graceful()
        status, data = check("fpm.status-http")
    assert status == BREACHED
    assert breached(data, "fpm.status-http") == {("site:blog", None)}


def test_fpm_opcache_breached_when_two_pools_share_a_master(unjailed: Model) -> None:
    """search's pool section moved into blog's master (seed 004: one OPcache for both),
    with the OPcache API open there."""
    with weakened(unjailed, restart=("search",)):
        search = Path(layout.fpm_conf("search")).read_text()
        blog = Path(layout.fpm_conf("blog"))
        blog.write_text(blog.read_text() + "\n" + search[search.index("[search]"):])
        edit(layout.supervisor_conf("blog"), " -d opcache.restrict_api=/phphost-no-opcache-api/",
             "")
        services.stop_program(layout.program_name("search"))
        services.update_programs([layout.program_name("blog")])
        services.wait_master("blog", unjailed.pool("blog").socket)
        services.wait_master("search", unjailed.pool("search").socket)
        status, data = check("fpm.opcache")
    assert status == BREACHED
    assert breached(data, "fpm.opcache") == {("pool:blog", "pool:search"),
                                             ("pool:search", "pool:blog")}


# --- apache -----------------------------------------------------------------------------

PHP_OFF_DENY = ('    <FilesMatch "(?i)\\.(php\\d?|phtml|phar|phps)$">\n'
                "        Require all denied\n    </FilesMatch>\n")
PROXY_MODULES = ("proxy_http", "proxy_connect")


def _drop_private_files_deny() -> None:
    path = APACHE / "conf-available/phphost.conf"
    text = path.read_text()
    start = text.index("# .ht* and .user.ini files")
    path.write_text(text[:start])


def test_apache_breached_when_its_guards_are_removed(unjailed: Model) -> None:
    """PHP-off deny dropped (docs), backup-file deny dropped (global), +Indexes
    (search), and a forward proxy (ProxyRequests On with mod_proxy_http)."""
    enabled = [m for m in PROXY_MODULES
               if not (APACHE / f"mods-enabled/{m}.load").exists()]
    with weakened(unjailed, undo=(lambda: run("a2dismod", "-q", *enabled),) if enabled else ()):
        edit(APACHE / "sites-available/phphost-docs.conf", PHP_OFF_DENY, "")
        _drop_private_files_deny()
        edit(APACHE / "sites-available/phphost-search.conf", "Options -Indexes",
             "Options +Indexes")
        edit(APACHE / "conf-available/phphost.conf", "ProxyRequests Off", "ProxyRequests On")
        if enabled:
            run("a2enmod", "-q", *enabled)
        graceful()
        status, data = check("apache.php-off-source", "apache.backup-source",
                              "apache.dir-listing", "apache.forward-proxy")
    assert status == BREACHED
    assert breached(data, "apache.php-off-source") == {("site:docs", None)}
    assert ("site:blog", None) in breached(data, "apache.backup-source")
    assert breached(data, "apache.dir-listing") >= {("site:search", None)}
    assert verdicts(data, "apache.dir-listing", "site:files") == {"blocked"}
    assert breached(data, "apache.forward-proxy")
    assert not any((APACHE / f"mods-enabled/{m}.load").exists() for m in enabled)


CACHE_DENIED = ('htdocs/cache">\n        AllowOverride None\n'
                "        AllowOverrideList Require <IfModule\n        Require all denied\n")
TODAYS_CACHE = 'htdocs/cache">\n        AllowOverride None\n        AllowOverrideList None\n'


def test_apache_writable_leak_breached_with_the_old_rendering(unjailed: Model) -> None:
    """The rendering before issue 13: a writable dir in the docroot had PHP blocked and
    .htaccess off, nothing else, so what the pool wrote there (DokuWiki's data/ and
    conf/) was served. Only blog has a not-public one (htdocs/cache)."""
    with weakened(unjailed):
        edit(APACHE / "sites-available/phphost-blog.conf", CACHE_DENIED, TODAYS_CACHE)
        graceful()
        status, data = check("apache.writable-leak", "apache.upload-exec")
    assert status == BREACHED, [str(c) for c in data["cells"] if c["verdict"] == "error"]
    assert breached(data, "apache.writable-leak") == {("site:blog", None)}
    assert verdicts(data, "apache.upload-exec", "site:blog") == {"blocked"}
    assert verdicts(data, "apache.writable-leak", "site:files") == {"n/a"}


# --- jail -------------------------------------------------------------------------------
