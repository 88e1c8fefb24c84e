"""verify's pure parts: which cells an attack runs in, catalog invariants, the
judging helpers and the parsers behind each attack's verdict."""

from __future__ import annotations

import textwrap

import pytest

from phphost.spec.loader import parse_spec
from phphost.spec.model import Model
from phphost.verify import catalog
from phphost.verify.attack import Pair, pairs_for
from phphost.verify.attacks_apache import STATUS_PAGES
from phphost.verify.attacks_files import log_files, secret_paths
from phphost.verify.attacks_fpm import fpm_page, inject_memory, injected, override_outcome
from phphost.verify.attacks_procs import status_euid
from phphost.verify.docroot import classify, exec_mark, marked_php, source_mark
from phphost.verify.errors import VerifyError
from phphost.verify.fixtures import code_dir, data_dirs
from phphost.verify.fsops import describe, short_error
from phphost.verify.probes import encode_args, probe_dir
from phphost.verify.result import Result, Verdict, judged, not_applicable, verdict_of
from phphost.verify.scratch import Scratch
from phphost.verify.web import build_request, parse_response

SPEC = """
[tenants.a]
home = "/srv/t/a"
[tenants.b]
home = "/srv/t/b"
[tenants.c]
home = "/srv/t/c"

[pools.a1]
tenant = "a"
writable = ["data", "htdocs/up"]
jail = { enabled = false }
[pools.a2]
tenant = "a"
[pools.b1]
tenant = "b"
jail = { enabled = true }

[sites.a]
server_name = "a.test"
tenant = "a"
docroot = "htdocs"
pool = "a1"
routes = { "/sub/" = "a2" }
[sites.b]
server_name = "b.test"
tenant = "b"
docroot = "www"
pool = "b1"
[sites.c]
server_name = "c.test"
tenant = "c"
docroot = "static"
php = false
"""


@pytest.fixture
def model() -> Model:
    return parse_spec(textwrap.dedent(SPEC), "test.toml")


# --- cells --------------------------------------------------------------------------------


def test_pool_scopes(model: Model) -> None:
    assert [p.attacker for p in pairs_for(model, "pool")] == ["pool:a1", "pool:a2", "pool:b1"]
    to_tenants = [(p.pool, p.target_tenant) for p in pairs_for(model, "pool>tenant")]
    assert to_tenants == [("a1", "b"), ("a1", "c"), ("a2", "b"), ("a2", "c"),
                          ("b1", "a"), ("b1", "c")]
    to_pools = [(p.pool, p.target_pool) for p in pairs_for(model, "pool>pool")]
    assert ("a1", "a2") in to_pools and ("a1", "a1") not in to_pools
    assert len(to_pools) == 6


def test_site_scopes(model: Model) -> None:
    assert [p.attacker for p in pairs_for(model, "site")] == ["site:a", "site:b", "site:c"]
    assert all(p.tenant == p.site for p in pairs_for(model, "site"))
    to_pools = [(p.site, p.target_pool) for p in pairs_for(model, "site>pool")]
    # a site never targets its own pools (a1 and its route's a2)
    assert [t for s, t in to_pools if s == "a"] == ["b1"]
    assert [t for s, t in to_pools if s == "c"] == ["a1", "a2", "b1"]
    assert len(pairs_for(model, "site>tenant")) == 6


def test_pair_labels() -> None:
    assert Pair("a", pool="a1", target_pool="b1").target == "pool:b1"
    assert Pair("a", site="a", target_tenant="b").target == "tenant:b"
    assert Pair("a", site="a").attacker == "site:a" and Pair("a", site="a").target is None


def test_catalog_ids_unique_and_every_family_present() -> None:
    ids = [a.id for a in catalog.ALL]
    assert len(ids) == len(set(ids))
    assert set(catalog.FAMILIES) == {"files", "processes", "fpm", "apache", "jail", "network",
                                     "root", "resources"}
    assert all(a.id.startswith(a.family + ".") for a in catalog.ALL)


def test_select_by_glob_or_family() -> None:
    assert catalog.select([]) == list(catalog.ALL)
    assert {a.family for a in catalog.select(["jail"])} == {"jail"}
    assert [a.id for a in catalog.select(["fpm.socket-*"])] == ["fpm.socket-connect",
                                                                "fpm.socket-exec"]
    assert catalog.select(["nothing"]) == []


# --- results ------------------------------------------------------------------------------


def test_results_and_verdicts() -> None:
    assert verdict_of(judged([], "t", "refused")) is Verdict.BLOCKED
    breached = judged(["a", "b"], "t", "refused")
    assert verdict_of(breached) is Verdict.BREACHED and breached.evidence == "a; b"
    assert verdict_of(not_applicable("pool not jailed")) is Verdict.NA
    assert verdict_of(Result(blocked=False, tried="", evidence="", applicable=False)) \
        is Verdict.NA


# --- fixtures, paths ----------------------------------------------------------------------


def test_where_tenants_keep_code_and_data(model: Model) -> None:
    assert code_dir(model, model.tenant("a")) == "/srv/t/a/htdocs"
    assert data_dirs(model, model.tenant("a")) == ["/srv/t/a/data", "/srv/t/a/htdocs/up"]
    assert data_dirs(model, model.tenant("c")) == []


def test_probe_dir_outside_docroots_and_inside_jails(model: Model) -> None:
    plain = probe_dir(model.pool("a1"), "r1")
    assert plain.host == plain.inside == "/var/lib/phphost-probes/r1/a1"
    jailed = probe_dir(model.pool("b1"), "r1")
    assert jailed.inside == "/phphost-probes/r1"
    assert jailed.host == "/var/lib/phphost/jails/b1/phphost-probes/r1"
    assert not any(plain.host.startswith(s.docroot or "") for s in model.sites)


def test_secret_and_log_paths(model: Model) -> None:
    secrets = dict((p, k) for k, p in secret_paths(model))
    assert secrets["/etc/shadow"] == "read" and secrets["/root"] == "list"
    assert "/etc/phphost/fpm/b1.conf" in secrets
    logs = log_files(model, model.tenant("a"))
    assert "/var/log/phphost/a2.fpm.log" in logs
    assert "/var/log/apache2/phphost-a-access.log" in logs
    assert not any("/b1." in p or "-b-" in p for p in logs)


def test_scratch_only_touches_paths_of_its_run() -> None:
    scratch = Scratch("r42")
    assert scratch.name("x.php") == "verify-r42-x.php"
    assert scratch.ours("/srv/t/a/htdocs/.verify-r42-x.php.swp")
    assert scratch.ours("/srv/t/a/htdocs/verify-r42-dir/.htaccess")
    assert not scratch.ours("/srv/t/a/htdocs/index.php")
    assert not scratch.ours("/srv/t/a/htdocs/verify-r43-x.php")
    with pytest.raises(VerifyError):
        scratch.track("/srv/t/a/htdocs/index.php")


# --- judging helpers ----------------------------------------------------------------------


def test_marked_php_tells_source_from_execution() -> None:
    php = marked_php("r1").decode()
    assert classify(php, "r1") == "source"
    assert exec_mark("r1") not in php and source_mark("r1") in php
    assert classify("VERIFY-EXEC-r1", "r1") == "executed"
    assert classify("<h1>403</h1>", "r1") is None


def test_fs_descriptions() -> None:
    assert short_error("fopen(/x): Failed to open stream: Permission denied") == \
        "Permission denied"
    assert describe({"op": "read", "path": "/x", "ok": True, "content": "abc def"}) == \
        "read /x: got 7 bytes 'abc def'"
    assert describe({"op": "list", "path": "/d", "ok": True, "content": "a\nb"}) == \
        "list /d: 2 entries 'a, b'"
    assert describe({"op": "link", "path": "/l", "ok": True, "target": "/t"}) == \
        "link /l -> /t: succeeded"
    assert describe({"op": "delete", "path": "/v", "ok": False,
                     "error": "unlink(/v): Permission denied"}) == "delete /v: Permission denied"


def test_override_outcome() -> None:
    static = "VERIFY-STATIC-r1"
    assert override_outcome(parse_response(b"HTTP/1.1 200 OK\r\n\r\n" + static.encode()),
                            static)[0] is False
    assert override_outcome(parse_response(b"HTTP/1.1 500 Oops\r\n\r\nx"), static)[0] is False
    assert override_outcome(parse_response(b"HTTP/1.1 403 F\r\n\r\nAccess denied.\n"),
                            static)[0] is True
    assert override_outcome(parse_response(b"HTTP/1.1 503 U\r\n\r\n"), static)[0] is True
    with pytest.raises(VerifyError):
        override_outcome(parse_response(b"HTTP/1.1 302 Found\r\n\r\n"), static)


def test_injected_settings() -> None:
    clean = {"memory_limit": "128M", "highlight_html": "#000080", "http_proxy_env": False,
             "http_proxy_server": None, "injected": []}
    assert injected(clean, "abcdef12") == []
    assert len({inject_memory("abcdef12", s) for s in range(5)}) == 5
    assert injected({**clean, "memory_limit": inject_memory("00000000", 1)}, "abcdef12") == []
    dirty = {**clean, "memory_limit": inject_memory("abcdef12", 2), "highlight_html": "#abcdef",
             "http_proxy_server": "http://127.0.0.1:9/", "injected": ["PHP_VALUE"]}
    assert len(injected(dirty, "abcdef12")) == 4


def test_fpm_page_recognised() -> None:
    assert fpm_page("pool: www\nprocess manager: static\naccepted conn: 3\n")
    assert fpm_page('{"pool":"x","process manager":"static","accepted conn":1}')
    assert fpm_page("pong\n")
    assert not fpm_page("<h1>Forbidden</h1>") and not fpm_page("site=blog user=php-blog")
    assert {p for p, _ in STATUS_PAGES} >= {"/server-status", "/server-info"}


def test_status_euid() -> None:
    assert status_euid("Name:\tphp-fpm\nUid:\t994\t995\t994\t994\nGid:\t1\n") == 995
    assert status_euid("Name:\tx\n") is None


# --- wire formats -------------------------------------------------------------------------


def test_http_request_and_response() -> None:
    raw = build_request("CONNECT", "127.0.0.1:9", "a.test", [("X-A", "1")])
    assert raw == (b"CONNECT 127.0.0.1:9 HTTP/1.0\r\nHost: a.test\r\nConnection: close\r\n"
                   b"X-A: 1\r\n\r\n")
    resp = parse_response(b"HTTP/1.1 403 Forbidden\r\nA: b\r\n\r\n<title>403 Forbidden</title>")
    assert resp.status == 403 and resp.brief() == "HTTP 403 '403 Forbidden'"
    assert parse_response(b"").status == 0


def test_probe_args_round_trip() -> None:
    import base64
    import json

    query = encode_args({"ops": [{"op": "read", "path": "/etc/shadow"}]})
    assert query.startswith("a=") and "+" not in query and "/" not in query
    assert json.loads(base64.urlsafe_b64decode(query[2:])) == \
        {"ops": [{"op": "read", "path": "/etc/shadow"}]}
