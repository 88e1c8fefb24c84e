"""phphost migrate's pure parts: stages, the state file, the URL comparison and what
it renders (docs/migrate.md, section 2). The stages themselves run on a real mod_php
host in tests/importer/test_migrate_modphp.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from phphost.audit.apacheconf import Directive, Section, parse
from phphost.errors import FastCGIError, HostError, PlanError, ValidationFailed
from phphost.exitcodes import ExitCode
from phphost.importer.errors import SourceError
from phphost.importer.migrate import modules, oldserver, owners, render, state, takeover
from phphost.importer.migrate.modules import LinkPlan, Mods
from phphost.importer.migrate.oldserver import OldServer, read_mods, switch_links
from phphost.importer.migrate.run import (
    Options,
    Step,
    _modphp_off_possible,
    chosen,
    deferred_signals,
    migrate,
    modphp_ready,
    pools_step,
    split_unchanged,
    steps,
)
from phphost.importer.migrate.stages import StageError, parse_stage
from phphost.importer.migrate.state import MigrateState
from phphost.importer.migrate.urlcheck import (
    BODY_LIMIT,
    Seen,
    Url,
    clean,
    compare,
    compile_ignores,
    default_urls,
    logged_paths,
    read_urls,
    snapshot,
)
from phphost.spec.loader import parse_spec
from phphost.spec.model import Model, Tenant

SPEC = """
[tenants.acme]
home = "/srv/acme"
[pools.shop]
tenant = "acme"
php_values = { memory_limit = "99M" }
php_admin_values = { display_errors = "on" }
php_ini = { max_input_vars = "1500" }
[pools.wiki]
tenant = "acme"
php_ini = { max_input_vars = "3000" }
[sites.shop]
tenant = "acme"
server_name = "shop.test"
aliases = ["www.shop.test"]
docroot = "/srv/acme/shop"
pool = "shop"
routes = { "/wiki/" = "wiki" }
[sites.plain]
tenant = "acme"
server_name = "plain.test"
docroot = "/srv/acme/plain"
php = false
"""


def model() -> Model:
    return parse_spec(textwrap.dedent(SPEC), "t.toml")


# --- stages --------------------------------------------------------------------------------

def test_stages_by_number_and_name() -> None:
    assert parse_stage("0") == 0
    assert parse_stage("php-off") == 1
    assert parse_stage("Move") == 3
    assert parse_stage("modphp-off") == 4
    assert parse_stage("pools") == 5
    assert parse_stage("identities") == 6
    assert parse_stage("7") == parse_stage("jails") == 7


@pytest.mark.parametrize("text, words", [("9", "no such stage"), ("sideways", "no such stage"),
                                         ("-1", "no such stage")])
def test_bad_stage_is_a_usage_error(text: str, words: str) -> None:
    with pytest.raises(StageError) as info:
        parse_stage(text)
    assert words in str(info.value) and info.value.exit_code == ExitCode.USAGE


def test_steps_go_one_stage_at_a_time_both_ways() -> None:
    at0, at3 = MigrateState("/s", "/a"), MigrateState("/s", "/a", 3, ("shop",))
    assert steps(at0, 3, ("shop",)) == [Step(1, ()), Step(2, ()), Step(3, ("shop",))]
    assert steps(at3, 0, ()) == [Step(2, ()), Step(1, ()), Step(0, ())]
    assert steps(at3, 3, ("shop",)) == []
    assert steps(at3, 3, ("shop", "blog")) == [Step(3, ("shop", "blog"))]
    at4 = MigrateState("/s", "/a", 4, ("shop",))
    assert steps(at4, 0, ()) == [Step(3, ("shop",)), Step(2, ()), Step(1, ()), Step(0, ())]
    assert steps(at3, 4, ("shop",)) == [Step(4, ("shop",))]
    assert steps(at4, 5, ("shop",)) == [Step(5, ("shop",))]
    at5 = MigrateState("/s", "/a", 5, ("shop",))
    assert steps(at5, 3, ()) == [Step(4, ("shop",)), Step(3, ("shop",))]   # still on FPM


def test_sites_glob_matches_php_sites_only() -> None:
    m = model()
    assert chosen(m, None) == ("shop",)
    assert chosen(m, "*.test") == ("shop",)
    with pytest.raises(PlanError, match="matches no PHP site"):
        chosen(m, "plain")


# --- state ---------------------------------------------------------------------------------

@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A directory only root can write (root writes its state nowhere else)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the state file lives in a root-only directory")
    path = Path(tempfile.mkdtemp(prefix="phphost-migrate-test-", dir="/run"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_state_round_trip_is_atomic_and_root_only(root_dir: Path) -> None:
    tmp_path = root_dir
    path = str(tmp_path / "migrate.json")
    assert state.read(path) is None
    s = MigrateState("/s.toml", "/etc/apache2", 3, ("shop",), ("/etc/apache2/mods-enabled/x",))
    state.write(s, path)
    assert state.read(path) == s
    assert (tmp_path / "migrate.json").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["migrate.json"]     # no temp file left


def test_state_of_another_spec_is_refused(tmp_path: Path) -> None:
    under_way = MigrateState(str(tmp_path / "a.toml"), "/etc/apache2", 2)
    with pytest.raises(PlanError) as info:
        state.for_spec(under_way, str(tmp_path / "b.toml"), "/etc/apache2")
    assert "stands at stage 2" in str(info.value) and "--to 0" in str(info.value)
    assert state.for_spec(under_way, str(tmp_path / "a.toml"), "/etc/apache2") == under_way
    done = MigrateState(str(tmp_path / "a.toml"), "/etc/apache2", 0)
    assert state.for_spec(done, str(tmp_path / "b.toml"), "/etc/apache2").stage == 0


def test_broken_state_file_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "migrate.json"
    path.write_text(json.dumps({"spec": "/s"}))
    with pytest.raises(PlanError, match="not a migrate state file"):
        state.read(str(path))


# --- URLs ----------------------------------------------------------------------------------

def test_url_file(tmp_path: Path) -> None:
    urls = read_urls("u.txt", "# c\nhttp://a.test:8080/x?y=1\n\nhttps://b.test/\n")
    assert urls == [Url("http", "a.test", 8080, "/x?y=1"), Url("https", "b.test", 443, "/")]
    with pytest.raises(PlanError, match=r"u\.txt:2: 'ftp://x/' is not an http"):
        read_urls("u.txt", "http://a/\nftp://x/\n")
    with pytest.raises(PlanError, match="no URL"):
        read_urls("u.txt", "# nothing\n")


def test_default_urls_are_every_name() -> None:
    shown = [str(u) for u in default_urls(model())]
    assert sorted(shown) == ["http://plain.test:80/", "http://shop.test:80/",
                             "http://www.shop.test:80/"]


def test_access_log_paths_are_plain_gets_that_worked() -> None:
    log = "\n".join([
        '127.0.0.1 - - [07/Dec/2026:05:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "x"',
        'shop.test:80 127.0.0.1 - - [07/Dec/2026:05:00:01 +0000] "GET /b/ HTTP/1.1" 301 0',
        '127.0.0.1 - - [07/Dec/2026:05:00:02 +0000] "GET /b/ HTTP/1.1" 200 9 "-" "x"',
        '127.0.0.1 - - [07/Dec/2026:05:00:03 +0000] "GET /gone HTTP/1.1" 404 9 "-" "x"',
        '127.0.0.1 - - [07/Dec/2026:05:00:04 +0000] "POST /form HTTP/1.1" 200 9 "-" "x"',
        '127.0.0.1 - - [07/Dec/2026:05:00:05 +0000] "GET /logout?now=1 HTTP/1.1" 302 0',
        'garbage "GET /evil" 200 ', ""])
    assert logged_paths(log) == ["/b/", "/a"]
    assert logged_paths(log, cap=1) == ["/b/"]
    urls = default_urls(model(), {"shop.test": ["/b/", "/"]})
    assert Url("http", "shop.test", 80, "/b/") in urls
    assert len([u for u in urls if u.path == "/"]) == 3


def test_bodies_are_capped_and_volatile_parts_removed() -> None:
    ignores = compile_ignores([r"token=\w+"])
    assert clean(b"a token=abc1 b", ignores) == "a  b"
    big = clean(b"x" * (BODY_LIMIT + 10), [])
    assert big.endswith("the rest not compared]") and len(big) < BODY_LIMIT + 100
    with pytest.raises(PlanError, match="not a regular expression"):
        compile_ignores(["("])


def test_compare_names_each_url_that_differs() -> None:
    a, b, c = (Url("http", h, 80, "/") for h in ("a.test", "b.test", "c.test"))
    answers = {a: Seen(200, "", "same"), b: Seen(200, "", "old"), c: Seen(301, "/x", "")}

    def get(u: Url, _: Sequence[re.Pattern[str]]) -> Seen:
        return answers[u]

    before = snapshot([a, b, c], [], get)
    answers[b], answers[c] = Seen(500, "", "boom"), Seen(301, "/y", "")
    diffs = compare(before, snapshot([a, b, c], [], get))
    assert [d.url for d in diffs] == [b, c]
    assert "before: 200: 'old'" in diffs[0].line() and "after:  500: 'boom'" in diffs[0].line()
    assert "-> /y" in diffs[1].line()
    assert compare(before, before) == []


# --- what migrate writes -------------------------------------------------------------------

def test_overlay_by_stage() -> None:
    m = model()
    assert render.render_overlay(m, 0, (), "p") is None
    one = render.render_overlay(m, 1, (), "p") or ""
    assert '<Directory "/srv/acme/plain">' in one and "Require all denied" in one
    assert "SetHandler" not in one and "/phphost-migrate-probe-p" in one
    three = render.render_overlay(m, 3, ("shop",), "p") or ""
    assert '<Directory "/srv/acme/shop">' in three
    assert 'SetHandler "proxy:unix:/run/phphost/migrate.shop.sock|fcgi://migrate.shop/"' in three
    assert '<Directory "/srv/acme/shop/wiki">' in three and "migrate.wiki.sock" in three
    assert render.render_overlay(m, 3, (), "p") == one.replace("stage 1 of", "stage 3 of")


def test_web_user_fpm_keeps_values_per_pool() -> None:
    conf = render.render_fpm(model(), "www-data", "www-data")
    shop = conf[conf.index("[shop]"):conf.index("[wiki]")]
    assert "user = www-data" in shop and "php_value[memory_limit] = 99M" in shop
    assert "php_admin_value[display_errors] = on" in shop
    assert "chroot" not in conf and "php_value" not in conf[conf.index("[wiki]"):]
    assert "[program:phphost.migrate]" in render.render_program(model())


# --- stage 4: module links -----------------------------------------------------------------

ROOT = "/etc/old"
DEBIAN = {"mpm_prefork.load": "../mods-available/mpm_prefork.load",
          "mpm_prefork.conf": "../mods-available/mpm_prefork.conf",
          "php8.2.load": "../mods-available/php8.2.load",
          "php8.2.conf": "/etc/old/mods-available/php8.2.conf",       # the admin's own link
          "proxy.load": "../mods-available/proxy.load"}
AVAILABLE = frozenset({"mpm_event.load", "mpm_event.conf", "actions.load", "actions.conf",
                       "mpm_prefork.load", "mpm_prefork.conf", "php8.2.load", "php8.2.conf",
                       "proxy.load"})
LOADED = frozenset({"php_module", "mpm_prefork_module", "proxy_module", "dir_module"})


def _load(module: str, file: str, line: int = 1) -> Directive:
    return Directive("loadmodule", (module, f"/x/{module}.so"), file, line)


LOADERS = {"php_module": _load("php_module", f"{ROOT}/mods-enabled/php8.2.load"),
           "mpm_prefork_module": _load("mpm_prefork_module",
                                       f"{ROOT}/mods-enabled/mpm_prefork.load")}


def test_modphp_off_takes_out_exactly_the_admins_links_and_makes_event() -> None:
    plan = modules.modphp_off(Mods(ROOT, DEBIAN, AVAILABLE), LOADED, LOADERS)
    enabled = f"{ROOT}/mods-enabled"
    assert sorted(plan.remove) == sorted((f"{enabled}/{n}", DEBIAN[n]) for n in (
        "php8.2.load", "php8.2.conf", "mpm_prefork.load", "mpm_prefork.conf"))
    assert sorted(plan.make) == [(f"{enabled}/{n}", f"../mods-available/{n}") for n in (
        "actions.conf", "actions.load", "mpm_event.conf", "mpm_event.load")]
    assert plan.inverse() == LinkPlan(plan.make, plan.remove)
    # mod_actions already loaded: not linked (and so not removed on the way back)
    plan = modules.modphp_off(Mods(ROOT, DEBIAN, AVAILABLE), LOADED | {"actions_module"},
                              LOADERS)
    assert [link for link, _ in plan.make] == [f"{enabled}/mpm_event.load",
                                               f"{enabled}/mpm_event.conf"]


@pytest.mark.parametrize("mods, loaders, words", [
    (Mods(ROOT, DEBIAN, AVAILABLE - {"mpm_event.load"}), LOADERS,
     "/etc/old/mods-available/mpm_event.load: missing"),
    (Mods(ROOT, {**DEBIAN, "php8.2.load": None}, AVAILABLE), LOADERS,
     "/etc/old/mods-enabled/php8.2.load is a file, not a link"),
    (Mods(ROOT, DEBIAN, AVAILABLE),
     {**LOADERS, "mpm_prefork_module": _load("mpm_prefork_module", f"{ROOT}/apache2.conf", 7)},
     "/etc/old/apache2.conf:7: mpm_prefork_module is loaded here, not by a link"),
])
def test_modphp_off_refuses_what_links_cannot_switch(mods: Mods, loaders: dict[str, Directive],
                                                     words: str) -> None:
    with pytest.raises(PlanError) as info:
        modules.modphp_off(mods, LOADED, loaders)
    assert words in str(info.value) and "Nothing was changed" in str(info.value)


def test_php_only_lines_are_the_admins_unguarded_ones() -> None:
    guard = Section("ifmodule", "php_module", ("php_module",), "/etc/old/sites/b.conf", 1)
    lines = [Directive("php_value", ("memory_limit", "99M"), "/etc/old/sites/a.conf", 4),
             Directive("php_admin_flag", ("engine", "off"), "/etc/old/sites/b.conf", 2, (guard,)),
             Directive("php_flag", ("x", "on"), f"{ROOT}/mods-enabled/php8.2.conf", 9),
             Directive("servername", ("a.test",), "/etc/old/sites/a.conf", 2)]
    assert modules.php_only_lines(lines, LOADED, [f"{ROOT}/mods-enabled/php8.2.conf"]) == [
        "/etc/old/sites/a.conf:4: php_value memory_limit 99M"]


def test_switching_links_is_exact_and_idempotent(root_dir: Path) -> None:
    for sub in ("mods-available", "mods-enabled"):
        (root_dir / sub).mkdir()
    for name in AVAILABLE:
        (root_dir / "mods-available" / name).write_text("")
    for name, target in DEBIAN.items():
        (root_dir / "mods-enabled" / name).symlink_to(target.replace(ROOT, str(root_dir)))
    listing = _listing(root_dir)
    found = oldserver_mods(root_dir)
    loaders = {m: _load(m, d.file.replace(ROOT, str(root_dir))) for m, d in LOADERS.items()}
    plan = modules.modphp_off(found, LOADED, loaders)
    switch_links(plan)
    switch_links(plan)                                   # an interrupted run, finished
    assert set(_listing(root_dir)) == {"actions.conf", "actions.load", "mpm_event.conf",
                                       "mpm_event.load", "proxy.load"}
    switch_links(plan.inverse())
    assert _listing(root_dir) == listing                 # the admin's targets, as they were
    # a link the admin changed since migrate made it is theirs: left alone
    switch_links(plan)
    (root_dir / "mods-enabled" / "actions.load").unlink()
    (root_dir / "mods-enabled" / "actions.load").symlink_to("/elsewhere/actions.load")
    switch_links(plan.inverse())
    assert os.readlink(root_dir / "mods-enabled" / "actions.load") == "/elsewhere/actions.load"


def oldserver_mods(root: Path) -> Mods:
    return read_mods(OldServer(str(root), str(root / "apache2.conf"), None))  # type: ignore[arg-type]


def _listing(root: Path) -> dict[str, str]:
    where = root / "mods-enabled"
    return {p.name: os.readlink(p) for p in sorted(where.iterdir())}


def test_state_keeps_the_links_as_pairs(root_dir: Path) -> None:
    path = str(root_dir / "migrate.json")
    s = MigrateState("/s.toml", "/etc/old", 4, ("shop",), (), (("/m/e", "../a/e"),),
                     (("/m/p", "/abs/p"),))
    state.write(s, path)
    assert state.read(path) == s
    old = json.loads(Path(path).read_text())
    del old["off_made"], old["off_removed"]               # a record from before stage 4
    Path(path).write_text(json.dumps(old))
    assert state.read(path) == MigrateState("/s.toml", "/etc/old", 4, ("shop",))
    Path(path).write_text(json.dumps({**old, "off_removed": [["/m/p"]]}))
    with pytest.raises(PlanError, match="not a migrate state file"):
        state.read(path)


def test_stage_4_only_once_every_php_site_is_on_fpm() -> None:
    m = model()
    at2, at3 = MigrateState("/s", "/a", 2), MigrateState("/s", "/a", 3, ())
    with pytest.raises(PlanError, match=r"mod_php still serves the PHP site\(s\) shop"):
        modphp_ready(m, at3, steps(at3, 4, ("shop",)))
    modphp_ready(m, at2, steps(at2, 4, ("shop",)))
    with pytest.raises(PlanError, match="shop"):
        modphp_ready(m, at2, [Step(3, ()), Step(4, ())])
    modphp_ready(m, at3, steps(at3, 2, ()))                    # going back: no check


def test_stage_4_overlay_never_sends_php_source() -> None:
    four = render.render_overlay(model(), 4, ("shop",), "p") or ""
    three = render.render_overlay(model(), 3, ("shop",), "p") or ""
    assert "Action application/x-httpd-php /phphost-migrate-no-php" in four
    assert not [x for x in four.splitlines() if x.startswith("Action") and "virtual" in x]
    assert '<Location "/phphost-migrate-no-php">\n    Require all denied' in four
    assert "Action" not in three and "migrate.shop.sock" in four


def test_htaccess_lines_that_need_mod_php() -> None:
    text = textwrap.dedent("""\
        php_value upload_max_filesize 7M
        DirectoryIndex index.php
        AddHandler application/x-httpd-php .html
        <FilesMatch "\\.php$">
            SetHandler application/x-httpd-php
        </FilesMatch>
        <IfModule mod_php.c>
            php_flag short_open_tag on
        </IfModule>
        AddType application/x-httpd-php .php
        """)
    found = modules.htaccess_lines(parse("/d/.htaccess", text))
    assert len(found) == 2, found
    assert found[0] == "/d/.htaccess:1: php_value upload_max_filesize 7M: a 500 without mod_php"
    assert found[1].startswith("/d/.htaccess:3: addhandler application/x-httpd-php .html: "
                               "*.html would answer 403")
    evil = modules.htaccess_lines(parse("/d/.htaccess", "php_value x \x1b[2Jgone\n"))
    assert evil == ["/d/.htaccess:1: php_value x \\x1b[2Jgone: a 500 without mod_php"]


def test_an_interrupt_waits_until_apache_is_switched() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_signals():
        os.kill(os.getpid(), signal.SIGINT)        # Ctrl-C between stop and start
        done.append("apache2 started again")
    assert done == ["apache2 started again"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_config_apache_rejects_at_stage_4_says_why(root_dir: Path) -> None:
    """mod_php's lines put back while mod_php is off: the message says what to do."""
    apache = root_dir / "old"
    apache.mkdir()
    (apache / "apache2.conf").write_text(
        f'ServerRoot "{apache}"\nLoadModule mpm_event_module '
        "/usr/lib/apache2/modules/mod_mpm_event.so\nphp_value memory_limit 99M\n")
    spec = root_dir / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    path = str(root_dir / "migrate.json")
    state.write(MigrateState(str(spec), str(apache), 4, ("shop",)), path)
    opts = Options(str(spec), 3, str(apache), state_file=path)
    with pytest.raises(SourceError) as info:
        migrate(opts)
    assert "apache2.conf" in str(info.value) and "stands at stage 4 (modphp-off)" in str(info.value)
    state.write(MigrateState(str(spec), str(apache), 3, ("shop",)), path)
    with pytest.raises(SourceError) as info:
        migrate(opts)
    assert "stands at stage" not in str(info.value)


def test_stage_4_from_below_3_says_to_stop_at_3_first(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_server: object) -> None:
        raise PlanError("a.conf:4: php_value x 1. Nothing was changed")

    monkeypatch.setattr("phphost.importer.migrate.oldserver.plan_modphp_off", refuse)
    with pytest.raises(PlanError, match="go to stage 3 first"):
        _modphp_off_possible(None, MigrateState("/s", "/a", 1))  # type: ignore[arg-type]
    with pytest.raises(PlanError) as info:
        _modphp_off_possible(None, MigrateState("/s", "/a", 3))  # type: ignore[arg-type]
    assert "go to stage 3" not in str(info.value)


# --- stage 5: one master per pool ----------------------------------------------------------

def test_split_masters_one_per_pool_with_its_own_values() -> None:
    m = model()
    shop = render.render_split_fpm(m, "shop", "www-data", "www-data")
    assert re.findall(r"^\[(\w+)\]$", shop, re.M) == ["global", "shop"]       # one pool
    assert "listen = /run/phphost/migrate.pools.shop.sock" in shop
    assert "pid = /run/phphost/migrate.pools.shop.pid" in shop
    assert "php_value[memory_limit] = 99M" in shop and "user = www-data" in shop
    assert "php_admin_value[display_errors] = on" in shop and "chroot" not in shop
    assert "ping.path = /phphost-fpm-ping" in shop
    wiki = render.render_split_fpm(m, "wiki", "www-data", "www-data")
    assert "php_value" not in wiki and "migrate.pools.wiki.sock" in wiki
    # each master its own php_ini; the one master of stage 2 takes the first pool's
    assert render.split_argv(m, "wiki")[-2:] == ["-d", "max_input_vars=3000"]
    assert render.split_argv(m, "shop")[-2:] == ["-d", "max_input_vars=1500"]
    assert render.fpm_argv(m)[-2:] == ["-d", "max_input_vars=1500"]
    program = render.render_split_program(m, "wiki")
    assert "[program:phphost.migrate.wiki]" in program
    assert "--fpm-config /etc/phphost/migrate/pools/wiki.conf" in program
    # no spec name holds a dot, so neither apply nor stage 2 can collide with these
    assert render.split_program("wiki") != render.PROGRAM and "." in render.split_program("x")
    assert render.split_socket("wiki") != render.socket("wiki")


def test_stage_5_overlay_points_each_pool_at_its_own_master() -> None:
    four = render.render_overlay(model(), 4, ("shop",), "p") or ""
    five = render.render_overlay(model(), 5, ("shop",), "p") or ""
    assert "migrate.pools." not in four
    assert 'SetHandler "proxy:unix:/run/phphost/migrate.pools.shop.sock|' \
           'fcgi://migrate.pools.shop/"' in five
    assert "/run/phphost/migrate.pools.wiki.sock" in five and "migrate.shop.sock" not in five
    assert "Action application/x-httpd-php /phphost-migrate-no-php" in five  # guard stays


def test_state_keeps_what_stage_5_made(root_dir: Path) -> None:
    path = str(root_dir / "migrate.json")
    s = MigrateState("/s.toml", "/etc/old", 5, ("shop",), split_programs=("phphost.migrate.shop",),
                     split_files=("/etc/phphost/migrate/pools/shop.conf",))
    state.write(s, path)
    assert state.read(path) == s
    old = json.loads(Path(path).read_text())
    del old["split_programs"], old["split_files"]          # a record from before stage 5
    Path(path).write_text(json.dumps(old))
    assert state.read(path) == MigrateState("/s.toml", "/etc/old", 5, ("shop",))
    Path(path).write_text(json.dumps({**old, "split_files": "/etc/passwd"}))
    with pytest.raises(PlanError, match="not a migrate state file"):
        state.read(path)


def test_a_changed_spec_at_stage_5_is_refused() -> None:
    at5 = MigrateState("/s", "/a", 5, ("shop",), split_programs=("phphost.migrate.shop",))
    split_unchanged(model(), at5, steps(at5, 4, ()))              # going back: fine
    split_unchanged(model(), at5, [])
    with pytest.raises(PlanError, match=r"Go back to stage 4 .* Nothing was changed"):
        split_unchanged(model(), at5, [Step(5, ("shop", "blog"))])


def test_stage_5_through_4_from_3_names_the_sites_left() -> None:
    at3 = MigrateState("/s", "/a", 3, ())
    with pytest.raises(PlanError) as info:
        modphp_ready(model(), at3, steps(at3, 5, ()))
    assert "--to 5 (pools) (through stage 4 (modphp-off)): mod_php still serves the PHP " \
           "site(s) shop" in str(info.value)


class FakeOld:
    """What pools_step asks of oldserver, recorded in order; `fail` names the call that
    raises."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, overlay: Path, fail: str = "") -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.overlay = overlay
        where = "phphost.importer.migrate.oldserver."
        for fn in ("split_up", "split_down", "fpm_up", "fpm_down", "configtest", "graceful",
                   "write_overlay", "drain"):
            monkeypatch.setattr(where + fn, self._recorder(fn))

    def _recorder(self, fn: str) -> object:
        def call(*args: object, **_kw: object) -> object:
            if fn == "write_overlay":
                text = args[1]
                self.calls.append(f"overlay {_stage_of(text)}")
                self.overlay.write_text(text if isinstance(text, str) else "")
                return None
            self.calls.append(fn)
            if fn == self.fail == "configtest":
                return "AH00526: bad"
            if fn == self.fail:
                raise HostError(f"{fn} failed")
            return None
        return call


def _stage_of(text: object) -> str:
    if isinstance(text, str) and "stages 6-7" in text:
        return "guard"                          # render_guard: stage 4's guard alone
    found = re.search(r"stage (\d)", text) if isinstance(text, str) else None
    return found[1] if found else "none"


def _server(root: Path) -> OldServer:
    source = type("S", (), {"user": "www-data"})()
    overlay = root / "conf-enabled" / render.OVERLAY_NAME
    overlay.parent.mkdir(exist_ok=True)
    overlay.write_text("# stage 4\n")
    return OldServer(str(root), str(root / "apache2.conf"), source)  # type: ignore[arg-type]


def test_stage_5_starts_the_new_masters_before_switching_and_stops_the_old_after(
        root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, path = FakeOld(monkeypatch, root_dir / "o"), str(root_dir / "migrate.json")
    server = _server(root_dir)
    at4 = MigrateState("/s", str(root_dir), 4, ("shop",), off_made=(("/l", "t"),))
    at5 = pools_step(server, model(), at4, Step(5, ("shop",)), path)
    assert fake.calls == ["split_up", "overlay 5", "configtest", "graceful", "drain",
                          "fpm_down"]
    assert at5.split_programs == ("phphost.migrate.shop", "phphost.migrate.wiki")
    assert "/etc/phphost/migrate/pools/wiki.conf" in at5.split_files
    assert state.read(path) == at5 and at5.off_made == at4.off_made
    fake.calls.clear()
    back = pools_step(server, model(), at5, Step(4, ("shop",)), path)
    assert fake.calls == ["fpm_up", "overlay 4", "configtest", "graceful", "drain",
                          "split_down"]
    assert back == at4 and state.read(path) == at4


@pytest.mark.parametrize("fail, calls, error", [
    ("split_up", ["split_up", "split_down"], HostError),
    ("configtest", ["split_up", "overlay 5", "configtest", "overlay 4", "split_down"],
     ValidationFailed),
    ("graceful", ["split_up", "overlay 5", "configtest", "graceful", "overlay 4",
                  "split_down"], HostError),
])
def test_a_failed_stage_5_leaves_the_one_master_serving(
        root_dir: Path, monkeypatch: pytest.MonkeyPatch, fail: str, calls: list[str],
        error: type[Exception]) -> None:
    fake, path = FakeOld(monkeypatch, root_dir / "o", fail), str(root_dir / "migrate.json")
    monkeypatch.setattr(OldServer, "apache", lambda *_a, **_k: "")
    at4 = MigrateState("/s", str(root_dir), 4, ("shop",))
    with pytest.raises(error):
        pools_step(_server(root_dir), model(), at4, Step(5, ("shop",)), path)
    assert fake.calls == calls and "fpm_down" not in fake.calls
    assert state.read(path) == at4


def test_a_failed_step_back_from_5_keeps_the_pools_serving(
        root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, path = FakeOld(monkeypatch, root_dir / "o", "configtest"), str(root_dir / "migrate.json")
    at5 = MigrateState("/s", str(root_dir), 5, ("shop",), split_programs=("p",),
                       split_files=("f",))
    state.write(at5, path)
    with pytest.raises(ValidationFailed):
        pools_step(_server(root_dir), model(), at5, Step(4, ("shop",)), path)
    assert fake.calls == ["fpm_up", "overlay 4", "configtest", "overlay 4", "fpm_down"]
    assert state.read(path) == at5


def test_drain_waits_until_only_its_own_requests_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    """An old Apache child still sending to the master keeps it from being stopped."""
    counts = iter([5, 9, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23])    # busy, busy, then +1s
    asked: list[int] = []

    def status(_sock: str, _path: str, timeout: float) -> object:
        asked.append(next(counts))
        return type("St", (), {"accepted_conn": asked[-1], "active_processes": 1})()

    monkeypatch.setattr("phphost.importer.migrate.oldserver.fpm_status", status)
    monkeypatch.setattr("phphost.importer.migrate.oldserver.QUIET", 0.5)
    monkeypatch.setattr("phphost.importer.migrate.oldserver.time.sleep", lambda _s: None)
    clock = iter(x * 0.25 for x in range(100))
    monkeypatch.setattr("phphost.importer.migrate.oldserver.time.monotonic", lambda: next(clock))
    oldserver.drain(["/run/x.sock"])
    assert asked[:3] == [5, 9, 14] and len(asked) < 12


def test_drain_gives_up_on_a_socket_that_does_not_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def status(_sock: str, _path: str, timeout: float) -> object:
        raise FastCGIError("refused")

    monkeypatch.setattr("phphost.importer.migrate.oldserver.fpm_status", status)
    monkeypatch.setattr("phphost.importer.migrate.oldserver.QUIET", 0.0)
    oldserver.drain(["/run/gone.sock"])


def test_going_back_from_5_removes_only_where_stage_5_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    removed: list[str] = []
    updated: list[list[str]] = []
    monkeypatch.setattr("phphost.importer.migrate.oldserver.files.remove", removed.append)
    monkeypatch.setattr("phphost.importer.migrate.oldserver.supervisord.update",
                        lambda names, _t: updated.append(list(names)))
    monkeypatch.setattr("phphost.importer.migrate.oldserver.supervisord.stop",
                        lambda _names, _t: None)
    ours = render.split_files("shop")
    oldserver.split_down(("phphost.migrate.shop",),
                         (*ours, "/etc/passwd", render.SUPERVISOR_CONF, render.FPM_CONF,
                          "/etc/phphost/migrate/pools/../../../passwd"))
    assert sorted(set(removed)) == sorted(ours)
    # the program's file goes before supervisord rereads: it stops and removes the program
    assert removed[0] == render.split_supervisor_conf("shop")
    assert updated == [["phphost.migrate.shop"]]


def test_an_interrupt_waits_until_stage_5_is_switched(
        root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, path = FakeOld(monkeypatch, root_dir / "o"), str(root_dir / "migrate.json")
    monkeypatch.setattr("phphost.importer.migrate.oldserver.split_up",
                        lambda *_a: os.kill(os.getpid(), signal.SIGINT))   # Ctrl-C meanwhile
    at4 = MigrateState("/s", str(root_dir), 4, ("shop",))
    with pytest.raises(KeyboardInterrupt):
        pools_step(_server(root_dir), model(), at4, Step(5, ("shop",)), path)
    assert fake.calls == ["overlay 5", "configtest", "graceful", "drain", "fpm_down"]
    assert state.read(path) is not None and state.read(path).stage == 5  # type: ignore[union-attr]


# --- stages 6-7: phphost's own rendering, own users, jails ----------------------------------

WEB = (33, 33)


@pytest.mark.parametrize("place, is_dir, uid, gid, mode, want", [
    # the home: the tenant's, 0750, whatever it was
    (owners.HOME, True, 0, 0, 0o755, (True, True, 0o750)),
    # a writable dir and below: the tenant's, group read-write, never world-write
    (owners.WRITABLE_ROOT, True, 33, 33, 0o755, (True, True, 0o2775)),
    (owners.WRITABLE, True, 33, 33, 0o777, (True, True, 0o2775)),
    (owners.WRITABLE, False, 33, 33, 0o644, (True, True, 0o664)),
    (owners.WRITABLE, False, 0, 0, 0o606, (True, True, 0o664)),
    # elsewhere: the web user's become the tenant's, group may read, never write
    (owners.OTHER, False, 33, 33, 0o664, (True, True, 0o644)),
    (owners.OTHER, False, 33, 33, 0o600, (True, True, 0o640)),
    (owners.OTHER, True, 33, 33, 0o775, (True, True, 0o755)),
    (owners.OTHER, False, 0, 33, 0o640, (False, True, 0o640)),     # root's secret, web group
    (owners.OTHER, False, 0, 0, 0o644, (False, False, 0o644)),     # root's code: unchanged
    (owners.OTHER, False, 0, 0, 0o666, (False, False, 0o664)),     # world-write goes
    (owners.OTHER, False, 1000, 1000, 0o664, (False, False, 0o664)),
])
def test_stage_6_ownership_rule(place: str, is_dir: bool, uid: int, gid: int, mode: int,
                                want: tuple[bool, bool, int]) -> None:
    assert owners.new_state(place, is_dir, uid, gid, mode, WEB) == want


def test_stage_6_where_a_path_lies() -> None:
    w = ["/srv/a/htdocs/data", "/srv/a/cache"]
    assert owners.where("/srv/a/htdocs/data", w) == owners.WRITABLE_ROOT
    assert owners.where("/srv/a/htdocs/data/pages/x.txt", w) == owners.WRITABLE
    assert owners.where("/srv/a/htdocs/database.php", w) == owners.OTHER
    assert owners.where("/srv/a/cache2", w) == owners.OTHER


def _tree(top: Path) -> None:
    (top / "htdocs" / "data" / "pages").mkdir(parents=True)
    (top / "htdocs" / "index.php").write_text("<?php echo 1;\n")
    (top / "htdocs" / "data" / "pages" / "start.txt").write_text("hello\n")
    (top / "htdocs" / "secret.php").write_text("<?php $pw = 1;\n")
    for path in [top / "htdocs" / "data", *(top / "htdocs" / "data").rglob("*")]:
        os.chown(path, *WEB)
    os.chown(top / "htdocs" / "secret.php", *WEB)
    os.chmod(top / "htdocs" / "secret.php", 0o600)
    (top / "htdocs" / "link").symlink_to("/etc/shadow")


def test_stage_6_lists_made_and_put_back_by_descriptor(root_dir: Path) -> None:
    top = root_dir / "home"
    top.mkdir()
    _tree(top)
    tenant = Tenant("t", "root", "root", str(top))
    writable = [str(top / "htdocs" / "data")]
    found = owners.changes_for(tenant, writable, WEB)
    by_path = {c.path: c for c in found}
    assert str(top / "htdocs" / "link") not in by_path          # symlinks never touched
    assert str(top / "htdocs" / "index.php") not in by_path     # root's code: unchanged
    assert by_path[str(top / "htdocs" / "secret.php")].new_mode == 0o640
    start = by_path[str(top / "htdocs" / "data" / "pages" / "start.txt")]
    assert (start.uid, start.owner, start.new_mode) == (33, "root", 0o664)
    assert "www-data:www-data 0644 -> root:root 0664" in start.line()
    before = {p: os.lstat(p) for p in by_path}
    # apply's docroot grant gives www-data an ACL first: chmod alone would set the mask
    subprocess.run(["setfacl", "-m", "u:www-data:r-x", start.path], check=True)
    assert owners.make(found) == []
    st = os.lstat(start.path)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o664)
    acl = subprocess.run(["getfacl", "-cp", start.path], capture_output=True, text=True).stdout
    assert "group::rw-" in acl and "user:www-data:r-x" in acl, acl
    assert os.lstat(top / "htdocs" / "data").st_mode & 0o7777 == 0o2775
    (top / "htdocs" / "data" / "pages" / "new.txt").write_text("made at stage 6\n")
    records = [c.record() for c in found]
    assert owners.restore(records, {0}) == []
    for path, was in before.items():
        now = os.lstat(path)
        assert (now.st_uid, now.st_gid, now.st_mode) == (was.st_uid, was.st_gid, was.st_mode)
    m = SimpleNamespace(pools=[SimpleNamespace(writable=writable)])
    assert owners.handed_back(m, WEB, {0}, set(before)) == 1  # type: ignore[arg-type]
    assert os.lstat(top / "htdocs" / "data" / "pages" / "new.txt").st_uid == 33


def test_stage_6_refuses_a_hard_link_it_would_give_away(root_dir: Path) -> None:
    top = root_dir / "home"
    top.mkdir()
    _tree(top)
    os.link(top / "htdocs" / "secret.php", root_dir / "elsewhere.php")  # another site's file
    tenant = Tenant("t", "root", "root", str(top))
    with pytest.raises(PlanError, match=r"secret.php: is a hard link"):     # safefs's walk
        owners.changes_for(tenant, [], WEB)
    # the web user's tree and file (as on the old server): past the walk, stage 6's own
    # rule refuses it (root never counts as a tree's owner: safefs.walk_tree)
    os.chown(top, *WEB)
    os.chown(top / "htdocs" / "secret.php", *WEB)
    with pytest.raises(PlanError, match=r"secret.php: a file with 2 hard links .* Nothing was"):
        owners.changes_for(tenant, [], WEB)


def test_stage_6_disables_only_links_the_spec_covers() -> None:
    V = takeover.VhostFile
    enabled = "/etc/apache2/sites-enabled"
    links = {f"{enabled}/10-shop.conf": "../sites-available/10-shop.conf",
             f"{enabled}/000-default.conf": "../sites-available/000-default.conf"}
    vhosts = [V(f"{enabled}/10-shop.conf", 1, ("shop.test", "www.shop.test")),
              V(f"{enabled}/10-shop.conf", 9, ("shop.test",)),
              V(f"{enabled}/000-default.conf", 1, ("localhost",))]
    names = takeover.spec_names(model())
    assert takeover.links_to_disable(vhosts, names, enabled, links.get) == (
        (f"{enabled}/10-shop.conf", "../sites-available/10-shop.conf"),)
    mixed = [*vhosts, V(f"{enabled}/10-shop.conf", 20, ("other.test",)),
             V("/etc/apache2/apache2.conf", 200, ("plain.test",))]
    with pytest.raises(PlanError) as info:
        takeover.links_to_disable(mixed, names, enabled, links.get)
    text = str(info.value)
    assert "10-shop.conf: holds vhosts of the spec and others it lacks (other.test" in text
    assert "apache2.conf:200: not a link in /etc/apache2/sites-enabled" in text
    assert "Nothing was changed" in text


def test_stage_6_and_7_jail_every_pool_or_none() -> None:
    m = model()
    assert all(p.jail.enabled for p in takeover.with_jails(m, True).pools)
    assert not any(p.jail.enabled for p in takeover.with_jails(m, False).pools)
    assert takeover.with_jails(m, False).sites == m.sites


def test_stages_6_7_only_on_the_hosts_own_apache(root_dir: Path) -> None:
    server = _server(root_dir)
    with pytest.raises(PlanError, match="need phphost's apply"):
        takeover.check_host(server, model(), None)
    with pytest.raises(PlanError, match=r"this migration's Apache is .* Nothing was changed"):
        takeover.check_host(server, model(), object())  # type: ignore[arg-type]


def test_state_keeps_what_stage_6_changed(root_dir: Path) -> None:
    path = str(root_dir / "migrate.json")
    s = MigrateState("/s.toml", "/etc/apache2", 6, ("shop",),
                     sites_off=(("/etc/apache2/sites-enabled/a.conf", "../sites-available/a"),),
                     owners=(("/srv/a/data", 33, 33, 0o755, 2049, 1234),))
    state.write(s, path)
    assert state.read(path) == s
    old = json.loads(Path(path).read_text())
    Path(path).write_text(json.dumps({**old, "owners": [["/srv/a", -1, 0, 0, 1, 2]]}))
    with pytest.raises(PlanError, match="not a migrate state file"):
        state.read(path)


def test_stage_6_weakened_hands_another_sites_file_over(
        root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack the hard-link refusal stops: while every site ran as www-data, a tenant
    hard-linked another site's file (www-data's) into its home. Without the refusal
    (weakened), stage 6 gives that file to the tenant: BREACHED."""
    top, other = root_dir / "home", root_dir / "other-site-secret.php"
    top.mkdir()
    other.write_text("<?php $db_password = 'theirs';\n")
    os.chown(other, *WEB)
    os.chmod(other, 0o600)
    os.link(other, top / "mine.php")
    os.chown(top, *WEB)           # the tenant (www-data) owned its tree: safefs lets it by
    tenant = Tenant("t", "root", "root", str(top))
    with pytest.raises(PlanError, match="2 hard links"):
        owners.changes_for(tenant, [], WEB)
    monkeypatch.setattr(owners, "refuse_shared", lambda _p, _s: None)
    owners.make(owners.changes_for(tenant, [], WEB))
    st = os.lstat(other)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o640), "not breached"
    print("BREACHED on the weakened rule: another site's file now the tenant's, "
          "group-readable by its pools")


def test_stage_6_names_htaccess_lines_phphost_refuses() -> None:
    text = ("DirectoryIndex index.php index.html\nRewriteEngine On\n"
            "RewriteRule ^old$ index.php [L]\n<IfModule !mod_authz_core.c>\n"
            "    Order allow,deny\n</IfModule>\n<IfModule mod_php.c>\nphp_value x 1\n"
            "</IfModule>\nHeader set X-A b\n")
    found = modules.phphost_refuses(parse("/d/.htaccess", text), ("Indexes",),
                                    frozenset({"authz_core_module", "rewrite_module"}))
    assert found == ["/d/.htaccess:2: rewriteengine On",
                     "/d/.htaccess:3: rewriterule ^old$ index.php [L]",
                     "/d/.htaccess:10: header set X-A b"], found
    assert modules.phphost_refuses(parse("/d/.htaccess", "Header set X-A b\n"), ("Header",),
                                   frozenset()) == []


class FakePhphost:
    """phphost's plan/apply/destroy as migrate's stages 6-7 call them, recorded."""

    def __init__(self, calls: list[str], fail: str = "") -> None:
        self.calls, self.fail = calls, fail

    def plan(self, model: Model) -> str:
        return "* create user php-shop"

    def apply(self, model: Model, show: object) -> None:
        jailed = all(p.jail.enabled for p in model.pools)
        self.calls.append("apply jailed" if jailed else "apply unjailed")
        if self.fail == "apply":
            raise HostError("apply failed (rolled back)")

    def destroy(self, model: Model, show: object) -> None:
        self.calls.append("destroy")


def _stage6_fakes(monkeypatch: pytest.MonkeyPatch, root: Path, calls: list[str]) -> Path:
    enabled = root / "sites-enabled"
    enabled.mkdir()
    (enabled / "10-shop.conf").symlink_to("../sites-available/10-shop.conf")
    monkeypatch.setattr(takeover, "old_vhost_links", lambda _s, _m: (
        (str(enabled / "10-shop.conf"), "../sites-available/10-shop.conf"),))
    change = owners.Change("/srv/acme/data", 33, 33, 0o755, "acme", "acme", 0o2775)
    monkeypatch.setattr(owners, "plan", lambda _m, _u: [change])
    monkeypatch.setattr(owners, "make", lambda c: calls.append(f"owners {len(c)}") or [])
    monkeypatch.setattr(owners, "restore", lambda r, _i: calls.append(f"restore {len(r)}") or [])
    monkeypatch.setattr(owners, "handed_back", lambda *_a: 0)
    monkeypatch.setattr(takeover.pwd, "getpwnam", lambda _n: SimpleNamespace(pw_uid=33,
                                                                             pw_gid=33))
    return enabled / "10-shop.conf"


def test_stage_6_order_and_its_inverse(root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """5 -> 6: recorded first; the links and the overlay out before apply (its reload
    switches every site at once); owners after apply (the users exist then); stage 5's
    masters drained and removed last. 6 -> 5: the masters first, links and overlay back
    (apache2 -t), owners back, destroy (no purge), graceful."""
    fake, path = FakeOld(monkeypatch, root_dir / "o"), str(root_dir / "migrate.json")
    link = _stage6_fakes(monkeypatch, root_dir, fake.calls)
    server = _server(root_dir)
    at5 = MigrateState("/s", str(root_dir), 5, ("shop",), split_programs=("phphost.migrate.shop",),
                       split_files=render.split_files("shop"))
    hooks = FakePhphost(fake.calls)
    six = takeover.step(server, model(), at5, 6, ("shop",), path, hooks, lambda _: None)
    assert fake.calls == ["overlay guard", "apply unjailed", "owners 1", "graceful", "drain",
                          "split_down"]
    assert not link.exists() and six.stage == 6 and six.split_programs == ()
    assert state.read(path) == six and six.owners == (("/srv/acme/data", 33, 33, 0o755, 0, 0),)
    fake.calls.clear()
    seven = takeover.step(server, model(), six, 7, ("shop",), path, hooks, lambda _: None)
    back6 = takeover.step(server, model(), seven, 6, ("shop",), path, hooks, lambda _: None)
    assert fake.calls == ["apply jailed", "apply unjailed"] and back6.stage == 6
    fake.calls.clear()
    five = takeover.step(server, model(), back6, 5, ("shop",), path, hooks, lambda _: None)
    assert fake.calls == ["split_up", "overlay 5", "configtest", "restore 1", "destroy",
                          "graceful"]
    assert os.readlink(link) == "../sites-available/10-shop.conf"
    assert (five.stage, five.sites_off, five.owners) == (5, (), ())
    assert five.split_programs == ("phphost.migrate.shop", "phphost.migrate.wiki")


def test_stage_6_apply_failing_puts_the_old_vhosts_back(
        root_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, path = FakeOld(monkeypatch, root_dir / "o"), str(root_dir / "migrate.json")
    link = _stage6_fakes(monkeypatch, root_dir, fake.calls)
    server = _server(root_dir)
    monkeypatch.setattr(OldServer, "apache", lambda *_a, **_k: fake.calls.append("graceful!"))
    at5 = MigrateState("/s", str(root_dir), 5, ("shop",))
    state.write(at5, path)
    with pytest.raises(HostError, match=r"rolled itself back.*at stage 5 \(pools\)"):
        takeover.step(server, model(), at5, 6, ("shop",), path, FakePhphost(fake.calls, "apply"),
                      lambda _: None)
    assert fake.calls == ["overlay guard", "apply unjailed", "overlay 4", "graceful!"]
    assert os.readlink(link) == "../sites-available/10-shop.conf"
    assert state.read(path) == at5 and "owners" not in " ".join(fake.calls)


def test_stages_6_7_refuse_a_host_where_phphost_runs_more(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from phphost.facts.state import State
    server = OldServer(os.path.realpath("/etc/apache2"), "/etc/apache2/apache2.conf",
                       None)  # type: ignore[arg-type]
    monkeypatch.setattr(takeover, "read_state", lambda: State(pools=("shop", "demo-blog")))
    with pytest.raises(PlanError, match=r"already manages demo-blog .* Nothing was changed"):
        takeover.check_host(server, model(), FakePhphost([]))
    monkeypatch.setattr(takeover, "read_state", lambda: State(pools=("shop",)))
    takeover.check_host(server, model(), FakePhphost([]))


def test_stage_6_never_hands_over_a_set_id_file() -> None:
    """While every site ran as www-data, any site's PHP could leave a setuid file of
    www-data's in a home; handed to the tenant with the bit kept, the tenant's pool
    could run it and become the tenant (write its code)."""
    for place in (owners.OTHER, owners.WRITABLE):
        _u, _g, mode = owners.new_state(place, False, WEB[0], WEB[1], 0o6755, WEB)
        assert mode & 0o6000 == 0, (place, oct(mode))
    _u, _g, mode = owners.new_state(owners.OTHER, False, 0, 0, 0o4755, WEB)   # root's: kept
    assert mode == 0o4755
    _u, _g, mode = owners.new_state(owners.WRITABLE, True, WEB[0], WEB[1], 0o755, WEB)
    assert mode == 0o2775                                         # a writable dir: setgid


def test_stage_6_changes_and_undoes_only_the_file_it_listed(root_dir: Path) -> None:
    """A path swapped for another file between the listing and the change, or between
    stage 6 and going back, is left alone: the recorded owner (root's, say) and mode
    never land on a file the tenant put there."""
    path = root_dir / "f.php"
    path.write_text("listed")
    st = os.lstat(path)
    change = owners.Change(str(path), st.st_uid, st.st_gid, 0o644, None, None, 0o640,
                           st.st_dev, st.st_ino)
    keep = root_dir / "keep"
    os.rename(path, keep)                               # the listed file moves away
    path.write_text("swapped in")
    os.chmod(path, 0o600)
    assert owners.make([change]) == [str(path)]
    assert os.lstat(path).st_mode & 0o7777 == 0o600
    record = (str(path), 0, 0, 0o4755, st.st_dev, st.st_ino)
    assert owners.restore([record], {0}) == [str(path)]
    assert os.lstat(path).st_mode & 0o7777 == 0o600
    os.replace(keep, path)                              # the listed file back: changed
    assert owners.make([change]) == []
    assert os.lstat(path).st_mode & 0o7777 == 0o640


def test_stage_6_keeps_the_guard_for_what_the_spec_does_not_serve() -> None:
    """From stage 6 phphost's vhosts serve the spec's sites; a vhost or Alias outside
    the spec still reaches PHP files with mod_php gone: the guard stays, alone."""
    guard = render.render_guard(model())
    four = render.render_overlay(model(), 4, ("shop",), "p") or ""
    assert "\n".join(render._no_source()) in guard and "\n".join(render._no_source()) in four
    assert "<Directory" not in guard and "probe" not in guard


def test_stage_6_listing_shows_a_tenants_odd_path_on_one_line() -> None:
    change = owners.Change("/srv/a/x\n/srv/b/y: root:root 0644 -> a:a 4755\x1b[2J", 33, 33,
                           0o644, "a", "a", 0o640)
    line = change.line()
    assert "\n" not in line and "\x1b" not in line and "\\x0a" in line
