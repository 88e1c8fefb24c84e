"""PHP extensions a pool's FPM master loads (`php_extensions`, docs/idle.md). Pure.

Every extension a master loads costs memory in every master, awake or not, before any
request: its startup tables on the heap, its shared libraries' relocated pages, its
interned strings. Measured per master (PHP 8.2, Debian 12, private dirty pages):
all 33 modules Debian enables for FPM 9.7 MB, OPcache alone 4.7 MB, the base set
below 5.6 MB (scripts/bench_master_memory.py); curl adds 0.8 MB, gd 1.0 MB, intl
0.7 MB (their libraries: libcurl's TLS stack, libgd's image codecs, ICU).
So a pool loads the base set plus what it asks for, and a recipe asks for what its
application needs.
"""

from __future__ import annotations

from typing import Literal

# The value that loads what Debian enabled for FPM (/etc/php/8.2/fpm/conf.d), as
# phphost did before php_extensions existed.
ALL: Literal["all"] = "all"

# Debian 12's PHP 8.2 extension modules (php8.2-* packages) a pool may name; each
# needs its package installed. -> the extensions it needs loaded before it.
KNOWN: dict[str, tuple[str, ...]] = {
    "apcu": (), "bcmath": (), "bz2": (), "calendar": (), "ctype": (), "curl": (),
    "dba": (), "dom": (), "enchant": (), "exif": (), "ffi": (), "fileinfo": (),
    "ftp": (), "gd": (), "gettext": (), "gmp": (), "iconv": (), "igbinary": (),
    "imagick": (), "imap": (), "intl": (), "ldap": (), "mbstring": (), "memcached": (),
    "msgpack": (), "mysqli": ("mysqlnd",), "mysqlnd": (), "odbc": (), "pdo": (),
    "pdo_mysql": ("pdo", "mysqlnd"), "pdo_pgsql": ("pdo",), "pdo_sqlite": ("pdo",),
    "pgsql": (), "phar": (), "posix": (), "pspell": (), "readline": (), "redis": (),
    "shmop": (), "simplexml": (), "snmp": (), "soap": (), "sockets": (), "sqlite3": (),
    "sysvmsg": (), "sysvsem": (), "sysvshm": (), "tidy": (), "tokenizer": (), "xml": (),
    "xmlreader": (), "xmlwriter": (), "xsl": ("dom",), "yaml": (), "zip": (),
}

# Loaded by every pool: what Debian's packages of web applications depend on (php-xml,
# php-mbstring, php-mysql) and php-common's modules that the shared-hosting checks use
# (posix, SysV IPC, shmop: phphost verify), none with a large library of its own.
# Left out, add them by name: curl, gd, intl, xsl (large libraries: +0.5-0.8 MB per
# master each), apcu (its own shared memory), ffi, readline (no use in FPM), and
# php-common's calendar, ftp, gettext, phar, sockets (rarely used, 0.3 MB together).
BASE: tuple[str, ...] = (
    "ctype", "dom", "exif", "fileinfo", "iconv", "mbstring", "mysqli", "mysqlnd", "pdo",
    "pdo_mysql", "posix", "shmop", "simplexml", "sysvmsg", "sysvsem", "sysvshm",
    "tokenizer", "xml", "xmlreader", "xmlwriter",
)

# load order: what others need first (Debian's priority=10 and 15 modules)
_FIRST = ("mysqlnd", "pdo", "xml", "dom")


def closure(extra: tuple[str, ...]) -> tuple[str, ...]:
    """The base set, `extra` and everything they need, in load order."""
    names = set(BASE) | set(extra)
    todo = list(names)
    while todo:
        for dep in KNOWN.get(todo.pop(), ()):
            if dep not in names:
                names.add(dep)
                todo.append(dep)
    first = [n for n in _FIRST if n in names]
    return (*first, *sorted(names - set(first)))
