"""Missing features named from a pool's FPM log (jail/hints.py)."""

from __future__ import annotations

import time
from pathlib import Path

from phphost.jail.hints import UNUSUAL, current_life, hints_from_log, provider_of

HOME = "/srv/www/shop"
LOG = (Path(__file__).parent / "data" / "fpm-hints.log").read_text()


def test_providers() -> None:
    assert provider_of("/usr/share/php/SimplePie/autoloader.php") == "phplibs"
    assert provider_of("/usr/share/php-geshi/geshi.php") == "phplibs"
    assert provider_of("/usr/share/javascript/jquery/jquery.min.js") == "phplibs"
    assert provider_of("/usr/share/php8.2-common/x") is None
    assert provider_of("/run/mysqld/mysqld.sock") == "mysql"
    assert provider_of("/var/lib/php/sessions/sess_1") == "sessions"
    assert provider_of("/etc/ssl/certs/ca-certificates.crt") == "tls"
    assert provider_of("/etc/shadow") is None


def test_hints_from_log() -> None:
    hints = {h.what: h for h in hints_from_log(LOG, HOME, ignore_in=("/phphost-probes",))}
    assert hints["/usr/share/php-geshi/geshi.php"].feature == "phplibs"
    assert hints["/usr/share/php/simplepie/autoloader.php"].feature == "phplibs"
    mysql = hints["MariaDB/MySQL socket not found"]
    assert (mysql.feature, mysql.count) == ("mysql", 2)
    assert hints["mail() found no sendmail"].feature == "mail"
    # phphost's own probes, the tenant's own files and "Permission denied" are not hints
    assert not [w for w in hints if "sessions" in w or HOME in w or "x" in w.split("/")[-1]]
    fonts = hints["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
    assert (fonts.feature, fonts.mount) == (None, "/usr/share/fonts")
    assert 'source = "/usr/share/fonts"' in fonts.advice()
    shadow = hints["/etc/shadow"]
    assert shadow.mount is None and "mounts" not in shadow.advice()
    assert "add the jail feature 'phplibs'" in hints["/usr/share/php-geshi/geshi.php"].advice()
    assert "run phphost apply" in mysql.advice(frozenset({"mysql"}))


def test_only_the_current_master_counts() -> None:
    old = "NOTICE: PHP message: PHP Warning:  mysqli_connect(): (HY000/2002): No such " \
          "file or directory in /srv/www/shop/a.php on line 1\n"
    log = old + "[x] NOTICE: ready to handle connections\n"
    assert hints_from_log(current_life(log), HOME) == ()
    assert len(hints_from_log(log, HOME)) == 1


def test_log_text_is_cleaned() -> None:
    line = ("NOTICE: PHP message: PHP Warning:  include(/usr/share/php/a\x1b[2J.php): Failed to "
            "open stream: No such file or directory in /srv/www/shop/i.php on line 1\n")
    (hint,) = hints_from_log(line, HOME)
    assert "\x1b" not in hint.what and "\x1b" not in hint.line


def _hint_whats(log: str) -> set[str]:
    return {h.what for h in hints_from_log(log, HOME)}


def test_crafted_lines_cost_linear_time() -> None:
    """A tenant's PHP writes raw lines to its FPM log; the old mysql pattern took ~3 s
    on this 1 KB line (~13 min for a 256 KiB tail). Each is cut and matched linearly."""
    mysql = "PHP " + "mysql" * 100 + " 2002" * 100
    others = ["PHP " + "(/a, " * 250 + ")", "PHP " + "Failed opening '/" * 60,
              "PHP " + "php_network_getaddresses: getaddrinfo" * 30,
              "PHP sh: " + "sh: 1: " * 150, "PHP " + " in /x" * 200,
              "PHP " + "a" * 300_000]
    for line in (mysql, *others):
        tail = "\n".join([line] * max(1, 256 * 1024 // len(line)))
        start = time.monotonic()
        hints_from_log(tail, HOME)
        assert time.monotonic() - start < 1.0, line[:40]
    normal = ("NOTICE: PHP message: PHP Warning:  mysqli_real_connect(): (HY000/2002): No such "
              "file or directory in /srv/www/shop/a.php on line 1")
    assert _hint_whats(mysql + "\n" + normal) == {"MariaDB/MySQL socket not found"}


def test_signs_still_found() -> None:
    php = "NOTICE: PHP message: PHP Warning:  "
    assert _hint_whats(php + "PDO::__construct(): SQLSTATE[HY000] [2002] No such file or "
                       "directory") == {"MariaDB/MySQL socket not found"}
    assert _hint_whats(php + "file_get_contents(): php_network_getaddresses: getaddrinfo "
                       "for x.test failed: Temporary failure") == {"a host name did not resolve"}
    assert _hint_whats("sh: 1: convert: not found") == {"a program could not be run"}
    assert _hint_whats(php + "stream_socket_client(): SSL operation failed with code 1") \
        == {"a TLS handshake failed"}
    assert _hint_whats(php + "mysqli_connect(): (HY000/20021): No such file or directory") \
        == set()
    open_flags = php + "session_start(): open(/var/lib/php/sessions/x, O_RDWR) failed: No such " \
        "file or directory (2)"
    assert _hint_whats(open_flags) == {"/var/lib/php/sessions/x"}


def test_crafted_path_is_not_echoed_as_advice() -> None:
    """`Failed opening '...'` accepts quotes and spaces: a tenant must not make check print
    a pasteable TOML line of its choosing."""
    evil = ('NOTICE: PHP message: PHP Fatal error:  Failed opening required \'/usr/share/x", '
            'target = "/etc" }] # \' in /srv/www/shop/a.php on line 1')
    (hint,) = hints_from_log(evil, HOME)
    assert (hint.what, hint.mount) == (UNUSUAL, None)
    assert "/etc" not in hint.advice() and "mounts" not in hint.advice()
    (fonts,) = hints_from_log("PHP fopen(/usr/share/fonts/a.ttf): Failed to open stream: No "
                              "such file or directory", HOME)
    assert fonts.advice().startswith('PHP failed on "/usr/share/fonts/a.ttf"')
    assert 'source = "/usr/share/fonts", target = "/usr/share/fonts"' in fonts.advice()


LOG_EXT = (
    "[07-Dec-2026 06:00:00] WARNING: [pool web] child 12 said into stderr: \"NOTICE: PHP "
    "message: PHP Fatal error:  Uncaught Error: Call to undefined function curl_init() in "
    "/srv/www/acme/htdocs/a.php:3\"\n"
    "[07-Dec-2026 06:00:01] WARNING: [pool web] child 12 said into stderr: \"NOTICE: PHP "
    "message: PHP Fatal error:  Uncaught Error: Class \"IntlDateFormatter\" not found in "
    "/srv/www/acme/htdocs/b.php:9\"\n"
    "[07-Dec-2026 06:00:02] WARNING: [pool web] child 12 said into stderr: \"NOTICE: PHP "
    "message: PHP Fatal error:  Uncaught Error: Call to undefined function my_own() in "
    "/srv/www/acme/htdocs/c.php:1\"\n"
    "[07-Dec-2026 06:00:03] WARNING: [pool web] child 12 said into stderr: \"NOTICE: PHP "
    "message: PHP Warning:  include(/usr/share/php/x.php): Failed to open stream: No such "
    "file or directory in /srv/www/acme/htdocs/d.php on line 2\"\n")


def test_missing_extensions_are_named() -> None:
    """A pool that loads the base set only (php_extensions): an undefined function or
    class of a left-out extension names the extension; the app's own functions not."""
    hints = hints_from_log(LOG_EXT, "/srv/www/acme")
    advice = [h.advice(pool="web") for h in hints]
    assert 'PHP missed curl_init() (1 time), which the PHP extension curl provides: add ' \
        '"curl" to pools.web.php_extensions (docs/idle.md)' in advice
    assert any("class IntlDateFormatter" in a and '"intl"' in a for a in advice)
    assert not any("my_own" in a for a in advice)
    assert any("phplibs" in a for a in advice)
    # an unjailed pool gets the extension hints only; a loaded extension is not suggested
    unjailed = hints_from_log(LOG_EXT, "/srv/www/acme", jailed=False, loaded=frozenset({"curl"}))
    assert [h.extension for h in unjailed] == ["intl"]


def test_crafted_extension_lines_cost_linear_time() -> None:
    line = "PHP Call to undefined function " + "a" * 900 + " Class \"" + "B" * 900
    start = time.monotonic()
    assert hints_from_log((line + "\n") * 2000, "/srv") == ()
    assert time.monotonic() - start < 2.0
