"""The pure parts of the docroot-symlink and .htaccess attacks: what a tenant can swap,
which .htaccess texts read or test another tenant's file, and how answers are judged."""

from __future__ import annotations

from phphost.render.apache import ancestors
from phphost.verify import catalog
from phphost.verify.attacks_apache import swap_points
from phphost.verify.attacks_htaccess import (
    ORACLE_EXPRS,
    WRONG,
    Pair,
    answer,
    authuserfile,
    oracle_verdict,
    read_breaches,
    read_dir_stem,
    read_probes,
    told,
)
from phphost.verify.web import HttpResponse, parse_response

PATH = "/srv/t/htdocs/verify-1-code.php"
TOKEN = "VERIFY-CANARY-1-code-t"  # noqa: S105 (a canary, not a password)


def resp(status: int, body: str = "", headers: str = "") -> HttpResponse:
    head = f"HTTP/1.1 {status} X\r\n{headers}".rstrip("\r\n")
    return parse_response(f"{head}\r\n\r\n{body}".encode())


def test_new_attacks_are_registered_in_family_apache() -> None:
    ids = {a.id: a for a in catalog.ALL}
    for attack in ("apache.docroot-symlink", "apache.htaccess-read", "apache.htaccess-oracle"):
        assert ids[attack].family == "apache" and ids[attack].scope == "site>tenant"


def test_ancestors_from_root_down() -> None:
    assert ancestors("/srv/a/htdocs/files") == ["/", "/srv", "/srv/a", "/srv/a/htdocs"]
    assert ancestors("/srv") == ["/"]


def test_swap_points_are_the_docroot_and_dirs_below_the_home() -> None:
    assert swap_points("/srv/a", "/srv/a/htdocs/files") == ["/srv/a/htdocs/files",
                                                            "/srv/a/htdocs"]
    assert swap_points("/srv/a", "/srv/a/htdocs") == ["/srv/a/htdocs"]
    assert swap_points("/srv/a", "/srv/a") == []          # the home's parent is root's
    assert swap_points("/srv/a", "/srv/b/htdocs") == []


def test_read_probes_name_the_file_and_mirror_each_guess() -> None:
    probes = read_probes(PATH, TOKEN, 42)
    names = [p.name for p in probes]
    assert len(names) == len(set(names))
    for probe in probes:
        assert PATH in probe.htaccess
        if probe.right:
            assert probe.name == f"{probe.right}-wrong" and probe.right in names
            assert TOKEN not in probe.htaccess
            assert WRONG in probe.htaccess or "-eq 43" in probe.htaccess
    assert {"if-file", "require-expr", "errordocument", "authname", "redirect-if", "header",
            "sslrequire", "setenvifexpr", "rewritecond", "if-filesize"} <= set(names)
    assert read_dir_stem("if-file", "ncs") == "read-if-file-ncs"


def test_read_breaches_when_text_comes_back_or_guesses_differ() -> None:
    probes = read_probes(PATH, TOKEN, 42)
    refused = {p.name: resp(500) for p in probes}
    assert read_breaches(probes, refused, TOKEN) == []
    shown = dict(refused, errordocument=resp(404, f"<?php /* {TOKEN} */"))
    assert read_breaches(probes, shown, TOKEN) == [
        "errordocument: the canary's text came back (HTTP 404 '<?php /* VERIFY-CANARY-1-code-t "
        "*/')"]
    realm = f'WWW-Authenticate: Basic realm="{TOKEN}"'
    in_header = dict(refused, authname=resp(401, headers=realm))
    assert read_breaches(probes, in_header, TOKEN)[0].startswith("authname:")
    guessed = dict(refused, **{"if-file": resp(403), "if-file-wrong": resp(200)})
    assert read_breaches(probes, guessed, TOKEN) == [
        "if-file: the right guess got 403, a wrong one 200"]


def test_answer_sees_the_hit_header() -> None:
    assert answer(resp(200)) == "200"
    assert answer(resp(200, headers="X-Verify-Hit: 1")) == "200+hit"


def test_oracle_texts() -> None:
    assert all("%{QUERY_STRING}" in text for text in ORACLE_EXPRS.values())
    assert 'AuthUserFile "/x/y"' in authuserfile("/x/y")


def test_told_and_oracle_verdict() -> None:
    assert told({"if-e": ("403", "200"), "if-s": ("200", "200")}) == ["if-e"]
    own = Pair("own", "/a/own", "/a/nothere")
    private = Pair("private", "/t/p/secret", "/t/p/nothere")
    residual = Pair("residual", "/t/htdocs/c.php", "/t/htdocs/nothere")
    works = {"if-e": ("403", "200"), "authuserfile": ("401", "500")}
    blind = {"if-e": ("200", "200"), "authuserfile": ("500", "500")}
    hits, evidence = oracle_verdict({own: works, private: blind, residual: works})
    assert hits == []
    assert "control: the oracle works (if-e, authuserfile)" in evidence
    assert "residual (names www-data can stat): if-e, authuserfile tell(s) about" in evidence
    assert "/t/p/secret: not told" in evidence
    hits, _ = oracle_verdict({own: works, private: {"if-e": ("403", "200")}})
    assert hits == ["if-e tell(s) that /t/p/secret exists (if-e 403/200)"]
    _, evidence = oracle_verdict({own: blind})
    assert "the oracle does not work" in evidence
