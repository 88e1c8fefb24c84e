"""Which jail feature provides a path or a failure PHP met inside a jail: read from
the PHP messages of a pool's FPM log, named by `phphost check` (docs/check.md,
"Missing features"). Pure.

A log line is what the pool's PHP wrote: untrusted text. It is only matched, never
used to open anything, and what is shown of it is clipped and stripped of control
characters. A path no feature provides is shown as such; mounting it is suggested only
below /usr and /opt (system files), never for anything else a tenant could name.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from phphost import layout
from phphost.jail.features import MYSQL_RUN_DIR, PHPLIBS_DIRS
from phphost.launcher import mailer

# path prefix -> the feature that brings it into a jail (longest prefix wins)
PROVIDERS: tuple[tuple[str, str], ...] = (
    (MYSQL_RUN_DIR, "mysql"),
    ("/var/run/mysqld", "mysql"),
    *((d, "phplibs") for d in PHPLIBS_DIRS),
    ("/usr/share/php-", "phplibs"),
    (mailer.JAIL_SENDMAIL, "mail"),
    (mailer.JAIL_CONF, "mail"),
    ("/etc/ssl", "tls"),
    ("/usr/lib/ssl", "tls"),
    (layout.CA_BUNDLE, "tls"),
    ("/etc/resolv.conf", "dns"),
    ("/etc/hosts", "dns"),
    ("/etc/host.conf", "dns"),
    (layout.PHP_SESSION_DIR, "sessions"),
    ("/usr/lib/x86_64-linux-gnu/gconv", "iconv"),
    ("/usr/lib/locale", "locale"),
    ("/proc", "proc"),
    ("/bin/sh", "shell"),
    ("/usr/bin/sh", "shell"),
    ("/bin/dash", "shell"),
)
MOUNTABLE = ("/usr/", "/opt/")          # where a read-only jail.mounts entry is suggested
SHOWN_MAX = 160

LINE_MAX = 1000                         # a log line is cut to this before any matching
# what a path must look like to be echoed or suggested as a mount (no quote, space, brace)
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+-]{0,399}")
UNUSUAL = "a path with unusual characters (not shown)"

# Every pattern below is linear in the line: it starts with a literal, its quantifiers are
# bounded and no two adjacent ones can match the same character (no backtracking blow-up
# on a tenant's crafted line); looser checks are plain substring searches (_SIGNS).
# PHP messages that name a path: include(/x): Failed to open stream, fopen(/x): ...,
# open(/x, O_RDWR) failed, Failed opening required '/x', file_exists() etc. say nothing
_PATH_RES = (
    ("ailed to open", re.compile(r"\((/[^()\s,]{1,400})(?:, [^)]{0,80})?\): [Ff]ailed to open")),
    (") failed", re.compile(r"\((/[^()\s,]{1,400})(?:, [^)]{0,80})?\) failed")),
    ("Failed opening", re.compile(r"Failed opening (?:required )?'(/[^']{1,400})'")),
)
_WORD_2002 = re.compile(r"(?<![0-9A-Za-z_])2002(?![0-9A-Za-z_])")
_SH_N = re.compile(r"sh: [0-9]{1,9}: ")


def _after(line: str, first: str, then: str) -> bool:
    """`then` occurs somewhere after the first `first` (like `first.*then`, linear)."""
    at = line.find(first)
    return at >= 0 and line.find(then, at + len(first)) >= 0


def _mysql_2002(line: str) -> bool:
    """(mysqli|PDO|mysql)...2002...No such file or directory, case-insensitive."""
    low = line.lower()
    starts = [i for i in (low.find("mysql"), low.find("pdo")) if i >= 0]
    if not starts:
        return False
    code = _WORD_2002.search(low, min(starts) + 3)
    return code is not None and low.find("no such file or directory", code.end()) >= 0


def _shell_failed(line: str) -> bool:
    """sh: N: ...not found, /bin/sh: ...No such file, Exec failed."""
    numbered = _SH_N.search(line)
    return (numbered is not None and line.find("not found", numbered.end()) >= 0) \
        or _after(line, "/bin/sh: ", "No such file") or "Exec failed" in line


# failures that name no path but only one feature can cure
_SIGNS: tuple[tuple[Callable[[str], bool], str, str], ...] = (
    (_mysql_2002, "mysql", "MariaDB/MySQL socket not found"),
    (lambda line: _after(line, "php_network_getaddresses: getaddrinfo", " failed"), "dns",
     "a host name did not resolve"),
    (lambda line: "Could not execute mail delivery program" in line, "mail",
     "mail() found no sendmail"),
    (_shell_failed, "shell", "a program could not be run"),
    (lambda line: any(s in line for s in ("certificate verify failed", "SSL operation failed",
                                          "Failed to enable crypto")),
     "tls", "a TLS handshake failed"),
)
# A function or class PHP did not know -> the extension that provides it (one a pool may
# leave out: not in the base set, spec/extensions.py). Function names by prefix.
EXTENSION_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("curl_", "curl"), ("imagecreate", "gd"), ("imagepng", "gd"), ("imagejpeg", "gd"),
    ("imagegif", "gd"), ("imagewebp", "gd"), ("imagecopy", "gd"), ("imagecolor", "gd"),
    ("imagedestroy", "gd"), ("imagesx", "gd"), ("imagesy", "gd"), ("imagettf", "gd"),
    ("imagestring", "gd"), ("imagefill", "gd"), ("imagescale", "gd"), ("imagerotate", "gd"),
    ("imagesavealpha", "gd"), ("imagealphablending", "gd"), ("gd_info", "gd"),
    ("grapheme_", "intl"), ("idn_to_", "intl"), ("intl", "intl"), ("normalizer_", "intl"),
    ("numfmt_", "intl"), ("collator_", "intl"), ("msgfmt_", "intl"), ("transliterator_", "intl"),
    ("apcu_", "apcu"), ("socket_", "sockets"), ("cal_", "calendar"), ("jdto", "calendar"),
    ("gregoriantojd", "calendar"), ("easter_", "calendar"), ("unixtojd", "calendar"),
    ("gettext", "gettext"), ("ngettext", "gettext"), ("bindtextdomain", "gettext"),
    ("textdomain", "gettext"), ("ftp_", "ftp"), ("gmp_", "gmp"),
    *((f, "bcmath") for f in ("bcadd", "bcsub", "bcmul", "bcdiv", "bcmod", "bcpow", "bcsqrt",
                              "bcscale", "bccomp")),
    ("zip_", "zip"), ("pg_", "pgsql"), ("ldap_", "ldap"), ("tidy_", "tidy"),
    *((f, "bz2") for f in ("bzopen", "bzread", "bzwrite", "bzclose", "bzcompress",
                           "bzdecompress", "bzflush", "bzerr")),
    ("yaml_", "yaml"), ("igbinary_", "igbinary"), ("snmp", "snmp"),
    ("imap_", "imap"), ("enchant_", "enchant"), ("pspell_", "pspell"),
    ("odbc_", "odbc"), ("dba_", "dba"), ("readline", "readline"),
)
EXTENSION_CLASSES: dict[str, str] = {
    "IntlDateFormatter": "intl", "NumberFormatter": "intl", "Collator": "intl",
    "Normalizer": "intl", "Locale": "intl", "Transliterator": "intl", "IntlChar": "intl",
    "MessageFormatter": "intl", "ResourceBundle": "intl", "Spoofchecker": "intl",
    "IntlTimeZone": "intl", "IntlCalendar": "intl", "Phar": "phar", "PharData": "phar",
    "XSLTProcessor": "xsl", "FFI": "ffi", "ZipArchive": "zip", "SQLite3": "sqlite3",
    "PDO": "pdo", "SoapClient": "soap", "SoapServer": "soap", "Imagick": "imagick",
    "Redis": "redis", "Memcached": "memcached", "CurlHandle": "curl", "GdImage": "gd",
    "APCUIterator": "apcu", "tidy": "tidy", "GMP": "gmp", "Socket": "sockets",
}
_UNDEFINED_FUNCTION = re.compile(r"Call to undefined function ([A-Za-z_][A-Za-z0-9_]{0,80})\(")
_CLASS_NOT_FOUND = re.compile(r'Class "\\?([A-Za-z_][A-Za-z0-9_]{0,80})" not found')


def extension_of(line: str) -> tuple[str, str] | None:
    """(what PHP missed, the extension that provides it) for an undefined function or
    class of an extension a pool may leave out; None for anything else (the app's own)."""
    fn = _UNDEFINED_FUNCTION.search(line) if "undefined function" in line else None
    if fn:
        for prefix, ext in EXTENSION_FUNCTIONS:
            if fn[1].startswith(prefix):
                return f"{fn[1]}()", ext
        return None
    cls = _CLASS_NOT_FOUND.search(line) if "not found" in line else None
    if cls and cls[1] in EXTENSION_CLASSES:
        return f"class {cls[1]}", EXTENSION_CLASSES[cls[1]]
    return None


# where a PHP message comes from: "... in /path/file.php on line 12"
_IN_FILE = re.compile(r" in (/\S{1,400}) on line [0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Hint:
    """One thing PHP failed on, and what would provide it."""

    what: str                 # the path, or what failed ("MariaDB/MySQL socket not found")
    feature: str | None       # the jail feature that provides it, None when none does
    mount: str | None = None  # no feature; a read-only jail.mounts of this dir would
    count: int = 1
    line: str = ""            # the last log line that showed it (clipped, cleaned)
    extension: str | None = None   # a PHP extension the pool does not load provides it

    def advice(self, declared: frozenset[str] = frozenset(), pool: str = "POOL") -> str:
        seen = f"{self.count} time{'s' if self.count != 1 else ''}"
        if self.extension is not None:
            return (f"PHP missed {self.what} ({seen}), which the PHP extension "
                    f"{self.extension} provides: add \"{self.extension}\" to "
                    f"pools.{pool}.php_extensions (docs/idle.md)")
        what = json.dumps(self.what) if self.what.startswith("/") else self.what
        if self.feature is not None:
            have = " (declared: the jail was built without it? run phphost apply)" \
                if self.feature in declared else ""
            return (f"PHP failed on {what} ({seen}): add the jail feature "
                    f"'{self.feature}'{have}")
        if self.mount:
            mount = json.dumps(self.mount)
            return (f"PHP failed on {what} ({seen}): no jail feature provides it; if the "
                    f"app needs it, add jail.mounts = [{{ source = {mount}, "
                    f"target = {mount} }}] (read-only)")
        return f"PHP failed on {what} ({seen}): not in the jail, and no feature provides it"


def provider_of(path: str) -> str | None:
    """The feature that brings `path` into a jail, None when none does."""
    best: tuple[int, str] | None = None
    for prefix, feature in PROVIDERS:
        if _under(path, prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), feature)
    return best[1] if best else None


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("-"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def clean(text: str, limit: int = SHOWN_MAX) -> str:
    one = _CONTROL.sub("?", text.strip())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def current_life(log: str) -> str:
    """The part of an FPM log written since the master last started. The marker is
    forgeable: the pool's PHP can write the same line (docs/check.md, "Missing features")."""
    mark = log.rfind("ready to handle connections")
    return log if mark < 0 else log[mark:]


def hints_from_log(log: str, home: str, ignore_in: tuple[str, ...] = (),
                   jailed: bool = True, loaded: frozenset[str] = frozenset(),
                   ) -> tuple[Hint, ...]:
    """What PHP failed on, from an FPM log's PHP messages. Paths in the tenant's home
    (`home`: its own files; a missing one is the app's business) and messages from
    scripts under `ignore_in` (phphost's own probes) are skipped. Extensions in
    `loaded` are not suggested; without `jailed` only extensions are."""
    found: dict[str, Hint] = {}
    for line in log.splitlines():
        raw = line[:LINE_MAX]
        if "PHP " not in raw and "sh: " not in raw:
            continue
        where = _IN_FILE.search(raw)
        if where and any(_under(where[1], top) for top in ignore_in):
            continue
        missed = extension_of(raw)
        if missed is not None and missed[1] in loaded:
            continue
        hint = Hint(missed[0], None, extension=missed[1]) if missed else \
            _hint_of(raw, home) if jailed else None
        if hint is None:
            continue
        old = found.get(hint.what)
        found[hint.what] = Hint(hint.what, hint.feature, hint.mount,
                                (old.count if old else 0) + 1, clean(raw), hint.extension)
    return tuple(sorted(found.values(), key=lambda h: (h.feature is None, h.what)))


def mount_source(path: str) -> str:
    """What to mount for a missing system file: its package's directory
    (/usr/share/NAME, /usr/lib/NAME, /opt/NAME), or the file's directory."""
    parts = path.split("/")
    depth = 3 if parts[1] == "opt" else 4
    return "/".join(parts[:depth]) if len(parts) > depth else posixpath.dirname(path)


def _hint_of(line: str, home: str) -> Hint | None:
    missing = "No such file or directory" in line or "Failed opening" in line
    for needle, pattern in _PATH_RES if missing else ():
        match = pattern.search(line) if needle in line else None
        if match:
            return _path_hint(match[1], home)
    for sign, feature, what in _SIGNS:
        if sign(line):
            return Hint(what, feature)
    return None


def _path_hint(path: str, home: str) -> Hint | None:
    """A missing path: its feature, or a mount for a plain system path. A path with
    characters outside _SAFE_PATH is neither echoed nor suggested (it could carry a
    pasteable TOML line of the tenant's choosing)."""
    if _under(path, home):
        return None
    feature = provider_of(path)
    if not _SAFE_PATH.fullmatch(path):
        return Hint(UNUSUAL, feature)
    mount = feature is None and path.startswith(MOUNTABLE) and ".." not in path.split("/")
    return Hint(clean(path, 120), feature,
                mount=clean(mount_source(path), 120) if mount else None)
