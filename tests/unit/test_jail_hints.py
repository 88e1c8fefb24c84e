"""Missing features named from a pool's FPM log (jail/hints.py)."""

from __future__ import annotations

from pathlib import Path

from phphost.jail.hints import current_life, hints_from_log, provider_of

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
