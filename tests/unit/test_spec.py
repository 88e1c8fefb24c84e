"""Spec loading: a full spec resolves as documented, and every class of mistake
is rejected with the file, the dotted key path and a remedy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from phphost.errors import SpecError
from phphost.spec.loader import load_spec, parse_spec
from phphost.spec.model import JailSpec, Model, Mount, PoolSettings, Route

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SRC = "test.toml"

BASE = """
[tenants.acme]
home = "/srv/www/acme"

[pools.web]
tenant = "acme"

[sites.main]
server_name = "acme.example.org"
tenant = "acme"
docroot = "htdocs"
pool = "web"
"""


def parse(text: str) -> Model:
    return parse_spec(textwrap.dedent(text), SRC)


def fails(text: str, key: str, *words: str) -> SpecError:
    """Parse `text`, expect a SpecError at `key` whose message has all `words`."""
    with pytest.raises(SpecError) as info:
        parse(text)
    err = info.value
    assert err.file == SRC
    assert err.key == key, str(err)
    assert err.problem and err.remedy, str(err)
    for word in words:
        assert word in str(err), str(err)
    return err


# --- valid specs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full() -> Model:
    return load_spec(str(HERE / "specs" / "full.toml"))


def test_full_spec_sorted_by_name(full: Model) -> None:
    assert full.source.endswith("full.toml")
    assert [t.name for t in full.tenants] == ["ncs", "shop"]
    assert [p.name for p in full.pools] == ["cart", "chords", "matomo"]
    assert [s.name for s in full.sites] == ["assets", "files", "old"]


def test_full_spec_apache(full: Model) -> None:
    a = full.apache
    assert (a.http_port, a.https_port, a.threads_per_child) == (8080, 8443, 10)
    assert (a.server_limit, a.max_request_workers, a.proxy_timeout) == (4, 40, 30)


def test_tenant_defaults_and_overrides(full: Model) -> None:
    ncs, shop = full.tenant("ncs"), full.tenant("shop")
    assert (ncs.user, ncs.group, ncs.home) == ("ncs", "ncs", "/srv/www/ncs")
    assert (shop.user, shop.group) == ("shopowner", "shopgrp")


def test_template_chain_and_pool_override(full: Model) -> None:
    s = full.pool("matomo").settings
    assert s.pm == "dynamic"                 # busy
    assert s.max_children == 24              # busier overrides busy
    assert (s.min_spare, s.max_spare, s.start_servers) == (2, 6, 3)   # pool overrides
    assert s.idle_timeout == 30              # base, "30s"
    assert s.request_terminate_timeout == 25
    assert s.process_control_timeout == 60   # "1m"
    assert s.priority == -5
    assert s.listen_backlog == 64            # default


def test_ini_tables_merge_along_chain(full: Model) -> None:
    s = full.pool("matomo").settings
    assert s.php_admin_values == (
        ("display_errors", "on"), ("max_execution_time", "30"),
        ("memory_limit", "256M"), ("upload_max_filesize", "16M"),
    )
    assert s.php_values == (("date.timezone", "UTC"), ("precision", "14.5"))
    assert s.php_ini == (("opcache.jit", "off"),)


def test_pool_without_template_gets_defaults(full: Model) -> None:
    chords = full.pool("chords")
    assert chords.settings == PoolSettings()
    assert chords.user == "chordsrun"
    assert chords.socket == "/run/php/chords.sock"
    assert chords.jail == JailSpec(enabled=False)
    cart = full.pool("cart")
    assert (cart.user, cart.socket) == ("php-cart", "/run/phphost/cart.sock")
    assert (cart.settings.pm, cart.settings.max_children) == ("static", 2)
    assert cart.jail == JailSpec()


def test_writable_resolved_and_deduped(full: Model) -> None:
    assert full.pool("matomo").writable == ("/srv/www/ncs/data", "/srv/www/ncs/cache")


def test_jail_features_base_first_deduped(full: Model) -> None:
    jail = full.pool("matomo").jail
    assert jail.enabled is True
    assert jail.features == ("base", "tls", "dns", "mysql")
    assert jail.programs == ("/usr/bin/tex",)
    assert jail.mounts == (
        Mount("/srv/shared/tex", "/usr/share/texlive", False),
        Mount("/srv/www/ncs/spool", "/spool", True),
    )
    assert jail.smtp == "127.0.0.2:2525"


def test_site_routes_longest_first_and_names_lowercased(full: Model) -> None:
    files = next(s for s in full.sites if s.name == "files")
    assert files.server_name == "files.example.org"
    assert files.docroot == "/srv/www/ncs/htdocs/files"
    assert (files.php, files.pool) == (True, "matomo")
    assert files.routes == (
        Route("/chords/deep/", "matomo"), Route("/chords/", "chords"), Route("/a/", "chords"),
    )
    assert files.tls is not None and files.tls.chain == "/etc/ssl/chain.pem"
    assert files.allow_override == ("AuthConfig", "Indexes", "ErrorDocument", "Header")


def test_static_and_redirect_sites(full: Model) -> None:
    assets = next(s for s in full.sites if s.name == "assets")
    assert (assets.php, assets.pool, assets.docroot) == (False, None, "/srv/www/shop/public")
    old = next(s for s in full.sites if s.name == "old")
    assert (old.php, old.tenant, old.docroot, old.pool) == (False, None, None, None)
    assert old.redirect == "https://files.example.org/"


def test_empty_spec_is_an_empty_model() -> None:
    assert parse("") == Model(source=SRC)


@pytest.mark.parametrize(("value", "seconds"), [("0", 0), ('"45s"', 45), ('"5m"', 300),
                                                ('"2h"', 7200), ("90", 90)])
def test_durations(value: str, seconds: int) -> None:
    model = parse(BASE + f"[templates.t]\nrequest_terminate_timeout = {value}\n"
                  '[pools.p]\ntenant = "acme"\ntemplate = "t"\n')
    assert model.pool("p").settings.request_terminate_timeout == seconds


def test_slowlog_timeout_inherits_and_defaults() -> None:
    model = parse(BASE + '[templates.base]\nrequest_slowlog_timeout = "2s"\n'
                  '[templates.t]\ninherits = "base"\n'
                  '[pools.p]\ntenant = "acme"\ntemplate = "t"\n'
                  '[pools.q]\ntenant = "acme"\ntemplate = "t"\nrequest_slowlog_timeout = 0\n'
                  '[pools.r]\ntenant = "acme"\n')
    assert [model.pool(n).settings.request_slowlog_timeout for n in "pqr"] == [2, 0, 5]


def test_demo_example_loads() -> None:
    model = load_spec(str(REPO / "examples" / "demo.toml"))
    assert len(model.tenants) >= 3 and len(model.sites) >= 4 and len(model.pools) >= 4
    assert {p.settings.pm for p in model.pools} == {"static", "dynamic", "ondemand"}
    assert all(t.home.startswith("/srv/phphost-demo/") for t in model.tenants)
    assert all(s.server_name.endswith(".demo.test") for s in model.sites)
    assert all(p.settings.max_children <= 6 and p.jail.enabled for p in model.pools)
    assert any(not s.php for s in model.sites)
    assert any(r.path == "/chords/" for s in model.sites for r in s.routes)


# --- files and syntax -------------------------------------------------------------------


def test_unreadable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(SpecError) as info:
        load_spec(missing)
    assert info.value.file == missing and info.value.remedy


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[tenants.a\n")
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert info.value.file == str(path)
    assert "invalid TOML" in info.value.problem and info.value.remedy


# --- structure and types ----------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    fails("[tenant.x]\nhome = '/srv/x'\n", "tenant", "unknown key", "tenants")


def test_unknown_pool_key_lists_allowed() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\nmax_childs = 3\n', "pools.p.max_childs",
          "max_children")


def test_unknown_nested_key() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\njail = { enabled = true, featurs = [] }\n',
          "pools.p.jail.featurs", "features")


@pytest.mark.parametrize(("line", "key", "words"), [
    ('max_children = "5"', "max_children", ("expected integer, got string",)),
    ("pm = 3", "pm", ("expected string, got integer",)),
    ("max_children = true", "max_children", ("expected integer, got boolean",)),
    ("idle_timeout = 1.5", "idle_timeout", ("expected duration, got float",)),
    ("writable = \"data\"", "writable", ("expected array, got string",)),
])
def test_wrong_types(line: str, key: str, words: tuple[str, ...]) -> None:
    fails(BASE + f'[pools.p]\ntenant = "acme"\n{line}\n', f"pools.p.{key}", *words)


def test_section_must_be_a_table() -> None:
    fails("tenants = 3\n", "tenants", "expected table")


@pytest.mark.parametrize(("section", "bad"), [("templates", "Busy"), ("tenants", "9lives"),
                                              ("sites", "a" * 32)])
def test_invalid_names(section: str, bad: str) -> None:
    fails(f"[{section}.{bad}]\n", f"{section}.{bad}", "not a valid")


# --- settings and templates -------------------------------------------------------------


@pytest.mark.parametrize(("line", "key", "word"), [
    ('pm = "fork"', "pm", "static, dynamic, ondemand"),
    ("max_children = 0", "max_children", "at least 1"),
    ("priority = 25", "priority", "-19 to 20"),
    ("opcache_memory_mb = 4", "opcache_memory_mb", "8 to 4096"),
    ("process_control_timeout = 0", "process_control_timeout", "at least 1"),
    ('request_terminate_timeout = "10 minutes"', "request_terminate_timeout", "5m"),
    ("max_requests = -1", "max_requests", "at least 0"),
    ('tmp_size = "64X"', "tmp_size", '"64M"'),
    ('tmp_size = "512K"', "tmp_size", "1M..16384M"),
    ("tmp_size = true", "tmp_size", "size"),
    ('memory_max = "8M"', "memory_max", "16M.."),
    ("pids_max = 2", "pids_max", "from 8 to"),
    ("cpu_weight = 0", "cpu_weight", "1 to 10000"),
    ('cpu_max = "2"', "cpu_max", "CPUs"),
    ("cpu_max = 0.001", "cpu_max", "0.01 to 1024"),
    ("io_weight = 10001", "io_weight", "1 to 10000"),
])
def test_setting_values(line: str, key: str, word: str) -> None:
    fails(f"[templates.t]\n{line}\n", f"templates.t.{key}", word)


def test_dangling_inherits() -> None:
    fails('[templates.a]\ninherits = "nope"\n[templates.b]\n', "templates.a.inherits",
          "'nope' is not defined", "b")


def test_inheritance_cycle_is_named() -> None:
    fails('[templates.a]\ninherits = "b"\n[templates.b]\ninherits = "c"\n'
          '[templates.c]\ninherits = "b"\n', "templates.b.inherits", "b -> c -> b")


def test_dangling_pool_template_and_tenant() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\ntemplate = "x"\n', "pools.p.template",
          "template 'x' is not defined")
    fails(BASE + '[pools.p]\ntenant = "nobody-here"\n', "pools.p.tenant", "acme")
    fails(BASE + "[pools.p]\npm = 'static'\n", "pools.p.tenant", "required")


def test_ini_key_and_value_checked() -> None:
    fails('[templates.t]\nphp_values = { "a b" = 1 }\n', 'templates.t.php_values."a b"',
          "php.ini setting name")
    fails('[templates.t]\nphp_admin_values = { x = "1; evil=1" }\n',
          "templates.t.php_admin_values.x", "';'")
    fails('[templates.t]\nphp_ini = { x = "a\\nb" }\n', "templates.t.php_ini.x", "newlines")



def test_ini_value_with_an_environment_reference_is_refused() -> None:
    """Attacker review: FPM's ini parser replaces ${NAME} with the master's environment
    variable (the master runs as root; `php-fpm -tt` shows ${HOME} as /root), handing
    root's environment to the pool's PHP (ini_get)."""
    for table in ("php_values", "php_admin_values", "php_ini"):
        fails(f'[templates.t]\n{table} = {{ x = "a${{SECRET}}b" }}\n',
              f"templates.t.{table}.x", "'${'", "environment variable NAME of its master")


# --- process manager after resolution ---------------------------------------------------

DYN = '[templates.busy]\npm = "dynamic"\nmax_children = 4\nmin_spare = 2\nmax_spare = 3\n'


def test_dynamic_max_spare_above_max_children_names_template() -> None:
    fails(BASE + DYN + '[pools.p]\ntenant = "acme"\ntemplate = "busy"\nmax_children = 2\n',
          "pools.p.max_spare", "max_spare = 3 (from template busy)", "max_children = 2")


def test_dynamic_max_spare_below_min_spare() -> None:
    fails(BASE + DYN + '[pools.p]\ntenant = "acme"\ntemplate = "busy"\nmax_spare = 1\n',
          "pools.p.max_spare", "min_spare = 2 (from template busy)")


def test_dynamic_start_servers_out_of_range() -> None:
    fails(BASE + DYN + '[pools.p]\ntenant = "acme"\ntemplate = "busy"\nstart_servers = 4\n',
          "pools.p.start_servers", "[2, 3]")


def test_dynamic_defaults_checked_too() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\npm = "dynamic"\nmax_children = 2\n',
          "pools.p.max_spare", "(default)")


def test_pool_key_for_other_pm_rejected() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\npm = "static"\nidle_timeout = 5\n',
          "pools.p.idle_timeout", "ondemand")


def test_socket_activation_defaults_to_ondemand_only() -> None:
    model = parse(BASE + DYN + '[pools.p]\ntenant = "acme"\ntemplate = "busy"\n'
                  '[pools.q]\ntenant = "acme"\nactivation = false\n')
    assert model.pool("web").settings.activated                   # ondemand (default pm)
    assert not model.pool("p").settings.activated                 # dynamic
    assert not model.pool("q").settings.activated                 # turned off
    fails(BASE + '[pools.p]\ntenant = "acme"\npm = "static"\nactivation = true\n',
          "pools.p.activation", "ondemand", "static")
    fails(BASE + '[pools.p]\ntenant = "acme"\nactivation = "yes"\n', "pools.p.activation")


def test_php_extensions_add_up_along_the_chain() -> None:
    tmpl = '[templates.img]\nphp_extensions = ["gd", "curl"]\n'
    model = parse(BASE + tmpl + '[pools.p]\ntenant = "acme"\ntemplate = "img"\n'
                  'php_extensions = ["intl", "gd"]\n'
                  '[pools.q]\ntenant = "acme"\ntemplate = "img"\nphp_extensions = "all"\n')
    assert model.pool("web").settings.php_extensions == ()
    assert model.pool("p").settings.php_extensions == ("gd", "curl", "intl")
    assert model.pool("q").settings.php_extensions == "all"


@pytest.mark.parametrize("value, key, words", [
    ('["gdd"]', "pools.p.php_extensions[0]", ("unknown PHP extension 'gdd'", "gd")),
    ('"most"', "pools.p.php_extensions", ("list of PHP extension names",)),
    ('[1]', "pools.p.php_extensions[0]", ()),
])
def test_bad_php_extensions_are_named(value: str, key: str, words: tuple[str, ...]) -> None:
    fails(BASE + f'[pools.p]\ntenant = "acme"\nphp_extensions = {value}\n', key, *words)


def test_inherited_key_for_other_pm_is_fine() -> None:
    model = parse(BASE + DYN + '[pools.p]\ntenant = "acme"\ntemplate = "busy"\npm = "static"\n')
    assert model.pool("p").settings.pm == "static"


# --- tenants ----------------------------------------------------------------------------


@pytest.mark.parametrize(("home", "word"), [
    ('"srv/x"', "absolute"), ('"/srv//x"', "normalised"), ('"/srv/x/"', "normalised"),
    ('"/"', "cannot be '/'"), ('"/etc/x"', "/etc"), ('"/lib64/x"', "/lib64"),
    ('"/var/lib/x"', "/var/lib"), ('"/root"', "/root"), ("7", "expected string"),
])
def test_bad_homes(home: str, word: str) -> None:
    fails(f"[tenants.x]\nhome = {home}\n", "tenants.x.home", word)


def test_nested_homes() -> None:
    fails('[tenants.a]\nhome = "/srv/www"\n[tenants.b]\nhome = "/srv/www/b"\n',
          "tenants.b.home", "tenant 'a'")


def test_tenants_share_user_or_group() -> None:
    fails('[tenants.a]\nhome = "/srv/a"\n[tenants.b]\nhome = "/srv/b"\nuser = "a"\n',
          "tenants.b.user", "tenant 'a'")
    fails('[tenants.a]\nhome = "/srv/a"\n[tenants.b]\nhome = "/srv/b"\ngroup = "a"\n',
          "tenants.b.group", "tenant 'a'")


def test_bad_unix_names() -> None:
    fails('[tenants.a]\nhome = "/srv/a"\nuser = "Alice"\n', "tenants.a.user", "not a valid")
    fails('[tenants.a]\nhome = "/srv/a"\nuser = "root"\n', "tenants.a.user", "system account")


# --- pools ------------------------------------------------------------------------------


def test_socket_too_long_names_length() -> None:
    sock = "/run/" + "s" * 100 + ".sock"
    fails(BASE + f'[pools.p]\ntenant = "acme"\nsocket = "{sock}"\n', "pools.p.socket",
          f"{len(sock)} bytes", "107")


def test_duplicate_socket_and_user() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\nsocket = "/run/phphost/web.sock"\n',
          "pools.web.socket", "pool 'p'")
    fails(BASE + '[pools.p]\ntenant = "acme"\nuser = "php-web"\n', "pools.web.user",
          "pool 'p'")


def test_pool_user_equal_to_tenant_identity() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\nuser = "acme"\n', "pools.p.user",
          "tenant 'acme'")


def test_default_runtime_user_too_long() -> None:
    long = "p" + "x" * 29
    fails(BASE + f'[pools.{long}]\ntenant = "acme"\n', f"pools.{long}.user", "32")


@pytest.mark.parametrize(("path", "word"), [
    ('"../other"', "'..'"), ('"/srv/www/other/data"', "outside"), ('"."', "tenant home"),
    ('"/srv/www/acme"', "tenant home"),
])
def test_bad_writable(path: str, word: str) -> None:
    fails(BASE + f'[pools.p]\ntenant = "acme"\nwritable = ["ok", {path}]\n',
          "pools.p.writable[1]", word)


def test_writable_tables_and_public() -> None:
    model = parse(BASE + '[pools.p]\ntenant = "acme"\nwritable = ["data", '
                  '{ path = "htdocs/uploads", public = true }, { path = "htdocs/cache" }, '
                  '"/srv/www/acme/data"]\n')
    pool = model.pool("p")
    assert pool.writable == ("/srv/www/acme/data", "/srv/www/acme/htdocs/uploads",
                             "/srv/www/acme/htdocs/cache")
    assert pool.public == ("/srv/www/acme/htdocs/uploads",)


@pytest.mark.parametrize(("entry", "key", "word"), [
    ('{ public = true }', "pools.p.writable[1].path", "missing"),
    ('{ path = "x", public = "yes" }', "pools.p.writable[1].public", "boolean"),
    ('{ path = "x", open = true }', "pools.p.writable[1].open", "unknown key"),
    ('{ path = "../x" }', "pools.p.writable[1].path", "'..'"),
    ('{ path = "ok", public = true }', "pools.p.writable[1].path", "once public"),
])
def test_bad_writable_tables(entry: str, key: str, word: str) -> None:
    fails(BASE + f'[pools.p]\ntenant = "acme"\nwritable = ["ok", {entry}]\n', key, word)


def test_front_controller() -> None:
    model = parse(BASE.replace('pool = "web"\n', 'pool = "web"\nfront_controller = "/index.php"\n'))
    assert model.sites[0].front_controller == "/index.php"
    assert parse(BASE).sites[0].front_controller is None


@pytest.mark.parametrize(("extra", "key", "word"), [
    ('front_controller = "index.php"', "sites.main.front_controller", "URL path"),
    ('front_controller = "/a/../index.php"', "sites.main.front_controller", "'..'"),
    ('front_controller = "/index.html"', "sites.main.front_controller", ".php"),
    ('front_controller = "/a b.php"', "sites.main.front_controller", "URL path"),
    ('front_controller = 1', "sites.main.front_controller", "string"),
    ('front_controller = "/app/index.php"\nroutes = { "/app/" = "web" }',
     "sites.main.front_controller", "route"),
])
def test_bad_front_controller(extra: str, key: str, word: str) -> None:
    fails(BASE.replace('pool = "web"\n', f'pool = "web"\n{extra}\n'), key, word)


def test_front_controller_needs_php_and_no_redirect() -> None:
    fails(BASE + '[sites.static]\nserver_name = "s.example.org"\ntenant = "acme"\n'
          'docroot = "static"\nphp = false\nfront_controller = "/index.php"\n',
          "sites.static.front_controller", "php = false")
    fails(BASE + '[sites.away]\nserver_name = "a.example.org"\nredirect = "https://x.org/"\n'
          'front_controller = "/index.php"\n', "sites.away.front_controller", "redirect")


def test_jail_checks() -> None:
    fails(BASE + '[pools.p]\ntenant = "acme"\njail = { features = ["dns", "x11"] }\n',
          "pools.p.jail.features[1]", "mysql")
    fails(BASE + '[pools.p]\ntenant = "acme"\njail = { programs = ["tex"] }\n',
          "pools.p.jail.programs[0]", "absolute")
    fails(BASE + '[tenants.b]\nhome = "/srv/www/b"\n[pools.p]\ntenant = "acme"\n'
          'jail = { mounts = [{ source = "/srv/www/b/up", target = "/x" }] }\n',
          "pools.p.jail.mounts[0].source", "tenant 'b'")
    fails(BASE + '[pools.p]\ntenant = "acme"\njail = { smtp = "localhost" }\n',
          "pools.p.jail.smtp", "host:port")


# --- sites ------------------------------------------------------------------------------


def test_bad_server_name() -> None:
    fails(BASE + '[sites.s]\nserver_name = "-bad.example.org"\nphp = false\n'
          'tenant = "acme"\ndocroot = "x"\n', "sites.s.server_name", "host name")


def test_duplicate_names_across_sites_case_insensitive() -> None:
    fails(BASE + '[sites.zz]\nserver_name = "z.example.org"\naliases = ["ACME.example.org"]\n'
          'redirect = "https://x.example.org/"\n', "sites.zz.aliases[0]",
          "site 'main'", "acme.example.org")


def test_php_site_needs_pool_and_static_site_forbids_it() -> None:
    fails(BASE + '[sites.s]\nserver_name = "s.example.org"\ntenant = "acme"\ndocroot = "x"\n',
          "sites.s.pool", "required")
    fails(BASE + '[sites.s]\nserver_name = "s.example.org"\ntenant = "acme"\ndocroot = "x"\n'
          'php = false\npool = "web"\n', "sites.s.pool", "php = false")


def test_site_pool_of_another_tenant() -> None:
    fails(BASE + '[tenants.b]\nhome = "/srv/www/b"\n[sites.s]\nserver_name = "s.example.org"\n'
          'tenant = "b"\ndocroot = "x"\npool = "web"\n', "sites.s.pool",
          "belongs to tenant 'acme'")


def test_route_checks() -> None:
    site = '[sites.s]\nserver_name = "s.example.org"\ntenant = "acme"\ndocroot = "x"\n'
    fails(BASE + site + 'pool = "web"\nroutes = { "/chords" = "web" }\n',
          'sites.s.routes."/chords"', "start and end")
    fails(BASE + site + 'pool = "web"\nroutes = { "/" = "web" }\n', 'sites.s.routes."/"')
    fails(BASE + site + 'pool = "web"\nroutes = { "/a/../b/" = "web" }\n',
          'sites.s.routes."/a/../b/"')
    fails(BASE + site + 'pool = "web"\nroutes = { "/c/" = "nope" }\n',
          'sites.s.routes."/c/"', "not defined")
    fails(BASE + site + 'php = false\nroutes = { "/c/" = "web" }\n', "sites.s.routes",
          "php = false")


def test_redirect_site_conflicts() -> None:
    red = '[sites.r]\nserver_name = "r.example.org"\nredirect = "https://acme.example.org/"\n'
    fails(BASE + red + 'docroot = "x"\n', "sites.r.docroot", "redirect")
    fails(BASE + red + "php = true\n", "sites.r.php", "redirect")
    fails(BASE + '[sites.r]\nserver_name = "r.example.org"\nredirect = "ftp://x/"\n',
          "sites.r.redirect", "http")


def test_site_paths() -> None:
    site = '[sites.s]\nserver_name = "s.example.org"\ntenant = "acme"\nphp = false\n'
    fails(BASE + site + 'docroot = "/srv/www/other"\n', "sites.s.docroot", "outside")
    fails(BASE + site + 'docroot = "x"\ntls = { cert = "x.pem", key = "/k" }\n',
          "sites.s.tls.cert", "absolute")
    fails(BASE + site + 'docroot = "x"\ntls = { cert = "/x.pem" }\n', "sites.s.tls.key",
          "required")
    fails(BASE + '[sites.s]\nserver_name = "s.example.org"\ndocroot = "x"\nphp = false\n',
          "sites.s.tenant", "required")


@pytest.mark.parametrize("entry", ["FileInfo", "Options", "All", "SetHandler", "addhandler",
                                   "SetEnvIf", "RewriteRule", "ProxyFCGISetEnvIf",
                                   "php_admin_value", "Action", "ForceType", "AddType"])
def test_dangerous_allow_override(entry: str) -> None:
    err = fails(BASE + '[sites.s]\nserver_name = "s.example.org"\ntenant = "acme"\n'
                f'docroot = "x"\npool = "web"\nallow_override = ["Indexes", "{entry}"]\n',
                "sites.s.allow_override[1]")
    assert "socket" in err.remedy and "PHP_ADMIN_VALUE" in err.remedy


def test_unknown_allow_override() -> None:
    fails(BASE + '[sites.s]\nserver_name = "s.example.org"\ntenant = "acme"\n'
          'docroot = "x"\npool = "web"\nallow_override = ["Include"]\n',
          "sites.s.allow_override[0]", "AuthConfig")


# --- apache -----------------------------------------------------------------------------


def test_apache_capacity() -> None:
    fails("[apache]\nthreads_per_child = 10\nserver_limit = 2\nmax_request_workers = 25\n",
          "apache.max_request_workers", "2 * 10 = 20")


def test_apache_values() -> None:
    fails("[apache]\nhttp_port = 70000\n", "apache.http_port", "65535")
    fails("[apache]\nthreads_per_child = 0\n", "apache.threads_per_child", "at least 1")
    fails("[apache]\nhttps_port = 80\n", "apache.https_port", "different")
    fails("[apache]\nkeepalive = 1\n", "apache.keepalive", "proxy_timeout")


def test_socket_in_a_shared_or_tenant_dir_is_refused() -> None:
    """php-fpm (root) unlinks/chowns/chmods its socket by name: not where others write."""
    fails(BASE + '[pools.p]\ntenant = "acme"\nsocket = "/tmp/p.sock"\n', "pools.p.socket",
          "/tmp/p.sock", "root-only directory")
    home = parse(BASE).tenants[0].home
    fails(BASE + f'[pools.p]\ntenant = "acme"\nsocket = "{home}/run/p.sock"\n',
          "pools.p.socket", "inside the home of tenant 'acme'")


@pytest.mark.parametrize(("value", "size"), [('"64M"', 64 << 20), ('"1g"', 1 << 30),
                                             ("2097152", 2 << 20), ('"2048K"', 2 << 20)])
def test_tmp_size_inherited_from_templates(value: str, size: int) -> None:
    model = parse(BASE.replace('tenant = "acme"\n', 'tenant = "acme"\ntemplate = "t"\n', 1)
                  + f"\n[templates.t]\ntmp_size = {value}\n")
    assert model.pool("web").settings.tmp_size == size
    assert parse(BASE).pool("web").settings.tmp_size == 64 << 20


def test_limits_inherited_and_checked_on_the_pool() -> None:
    text = BASE.replace('tenant = "acme"\n', 'tenant = "acme"\ntemplate = "t"\n', 1)
    model = parse(text + '\n[templates.t]\nmemory_max = "512M"\npids_max = 64\ncpu_max = 1.5\n')
    s = model.pool("web").settings
    assert (s.memory_max, s.pids_max, s.cpu_max, s.io_weight) == (512 << 20, 64, 1.5, None)
    fails(text + '\n[templates.t]\nmemory_max = "64M"\nmemory_high = "128M"\n',
          "pools.web.memory_high", "above memory_max", "from template t")
    fails(text + "\n[templates.t]\nmax_children = 20\npids_max = 10\n",
          "pools.web.pids_max", "at least 22")
