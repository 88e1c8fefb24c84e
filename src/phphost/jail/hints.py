"""Which jail feature provides a path or a failure PHP met inside a jail: read from
the PHP messages of a pool's FPM log, named by `phphost check` (docs/check.md,
"Missing features"). Pure.

A log line is what the pool's PHP wrote: untrusted text. It is only matched, never
used to open anything, and what is shown of it is clipped and stripped of control
characters. A path no feature provides is shown as such; mounting it is suggested only
below /usr and /opt (system files), never for anything else a tenant could name.
"""

from __future__ import annotations

import posixpath
import re
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

# PHP messages that name a path: include(/x): Failed to open stream, fopen(/x): ...,
# open(/x, O_RDWR) failed, Failed opening required '/x', file_exists() etc. say nothing
_PATH_RES = (
    re.compile(r"\w+\((/[^()\s,]{1,400})(?:, [^)]*)?\): [Ff]ailed to open"),
    re.compile(r"\w+\((/[^()\s,]{1,400})(?:, [^)]*)?\) failed"),
    re.compile(r"Failed opening (?:required )?'(/[^']{1,400})'"),
)
# failures that name no path but only one feature can cure
_SIGNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(mysqli|PDO|mysql)\S*.*\b2002\b.*No such file or directory", re.I),
     "mysql", "MariaDB/MySQL socket not found"),
    (re.compile(r"php_network_getaddresses: getaddrinfo.* failed"), "dns",
     "a host name did not resolve"),
    (re.compile(r"Could not execute mail delivery program"), "mail",
     "mail() found no sendmail"),
    (re.compile(r"sh: \d+: .*not found|/bin/sh: .*No such file|Exec failed"), "shell",
     "a program could not be run"),
    (re.compile(r"certificate verify failed|SSL operation failed|Failed to enable crypto"),
     "tls", "a TLS handshake failed"),
)
# where a PHP message comes from: "... in /path/file.php on line 12"
_IN_FILE = re.compile(r" in (/\S+) on line \d+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Hint:
    """One thing PHP failed on, and what would provide it."""

    what: str                 # the path, or what failed ("MariaDB/MySQL socket not found")
    feature: str | None       # the jail feature that provides it, None when none does
    mount: str | None = None  # no feature; a read-only jail.mounts of this dir would
    count: int = 1
    line: str = ""            # the last log line that showed it (clipped, cleaned)

    def advice(self, declared: frozenset[str] = frozenset()) -> str:
        seen = f"{self.count} time{'s' if self.count != 1 else ''}"
        if self.feature is not None:
            have = " (declared: the jail was built without it? run phphost apply)" \
                if self.feature in declared else ""
            return (f"PHP failed on {self.what} ({seen}): add the jail feature "
                    f"'{self.feature}'{have}")
        if self.mount:
            return (f"PHP failed on {self.what} ({seen}): no jail feature provides it; if the "
                    f'app needs it, add jail.mounts = [{{ source = "{self.mount}", '
                    f'target = "{self.mount}" }}] (read-only)')
        return f"PHP failed on {self.what} ({seen}): not in the jail, and no feature provides it"


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
    """The part of an FPM log written since the master last started."""
    mark = log.rfind("ready to handle connections")
    return log if mark < 0 else log[mark:]


def hints_from_log(log: str, home: str, ignore_in: tuple[str, ...] = ()) -> tuple[Hint, ...]:
    """What PHP failed on, from an FPM log's PHP messages. Paths in the tenant's home
    (`home`: its own files; a missing one is the app's business) and messages from
    scripts under `ignore_in` (phphost's own probes) are skipped."""
    found: dict[str, Hint] = {}
    for raw in log.splitlines():
        if "PHP " not in raw and "sh: " not in raw:
            continue
        where = _IN_FILE.search(raw)
        if where and any(_under(where[1], top) for top in ignore_in):
            continue
        hint = _hint_of(raw, home)
        if hint is None:
            continue
        old = found.get(hint.what)
        found[hint.what] = Hint(hint.what, hint.feature, hint.mount,
                                (old.count if old else 0) + 1, clean(raw))
    return tuple(sorted(found.values(), key=lambda h: (h.feature is None, h.what)))


def mount_source(path: str) -> str:
    """What to mount for a missing system file: its package's directory
    (/usr/share/NAME, /usr/lib/NAME, /opt/NAME), or the file's directory."""
    parts = path.split("/")
    depth = 3 if parts[1] == "opt" else 4
    return "/".join(parts[:depth]) if len(parts) > depth else posixpath.dirname(path)


def _hint_of(line: str, home: str) -> Hint | None:
    missing = "No such file or directory" in line or "Failed opening" in line
    for pattern in _PATH_RES if missing else ():
        match = pattern.search(line)
        if match:
            path = match[1]
            if _under(path, home):
                return None
            feature = provider_of(path)
            mount = feature is None and path.startswith(MOUNTABLE) \
                and ".." not in path.split("/")
            return Hint(clean(path, 120), feature,
                        mount=clean(mount_source(path), 120) if mount else None)
    for sign, feature, what in _SIGNS:
        if sign.search(line):
            return Hint(what, feature)
    return None
