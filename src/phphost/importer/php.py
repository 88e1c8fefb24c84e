"""mod_php's per-directory PHP settings and handlers, translated for FPM pools. Pure.

- `php_value`/`php_flag` -> a pool's `php_values`, `php_admin_value`/`php_admin_flag`
  -> `php_admin_values` (FPM's php_value[]/php_admin_value[] mean the same);
- mod_php's php.ini values that FPM's php.ini does not have -> the pools' `php_ini`
  (FPM -d flags: the same level as php.ini, a script may still ini_set them)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from phphost.audit.apacheconf import Directive
from phphost.importer.problems import Problem
from phphost.spec import extensions

PHP_DIRECTIVES = ("php_value", "php_flag", "php_admin_value", "php_admin_flag")
PHP_TYPE = "application/x-httpd-php"
# php.ini keys phphost sets on every master itself (render/fpm.py), or that make no
# sense to copy (extensions are compared separately)
MANAGED_INI = frozenset({
    "opcache.enable", "opcache.memory_consumption", "opcache.validate_root",
    "opcache.validate_permission", "opcache.restrict_api", "extension", "zend_extension",
})
_INI_KEY = re.compile(r"^[a-zA-Z0-9_.]+$")
_BAD_VALUE = ("\n", "\r", "\0", '"', "'", ";")


@dataclass(frozen=True)
class PhpSetting:
    admin: bool
    key: str
    value: str | bool
    where: str
    source: str          # the line as written, for messages

    @property
    def table(self) -> str:
        return "php_admin_values" if self.admin else "php_values"


def setting(d: Directive) -> PhpSetting | None:
    """The setting of one php_* directive (None when malformed)."""
    if d.name not in PHP_DIRECTIVES or len(d.args) < 1:
        return None
    key = d.args[0]
    raw = " ".join(d.args[1:])
    value: str | bool = raw
    if d.name.endswith("_flag"):
        value = raw.lower() in ("on", "1", "true", "yes")
    return PhpSetting(d.name.startswith("php_admin"), key, value, d.where,
                      f"{d.name} {' '.join(d.args)}")


def expressible(s: PhpSetting) -> str:
    """'' when phphost's spec can carry the setting, else why not."""
    if not _INI_KEY.match(s.key):
        return f"{s.key!r} is not a php.ini name phphost accepts"
    if isinstance(s.value, str):
        bad = next((c for c in _BAD_VALUE if c in s.value), None)
        if bad is not None:
            return f"its value contains {bad!r}, which an FPM pool file cannot hold"
        if "${" in s.value:
            return ("its value contains '${', which FPM would replace with an environment "
                    "variable of its master (root's)")
    return ""


def is_php_handler(d: Directive) -> bool:
    """SetHandler/AddHandler/AddType/ForceType that hand files to mod_php."""
    if d.name not in ("sethandler", "addhandler", "addtype", "forcetype") or not d.args:
        return False
    return d.args[0].lower() in (PHP_TYPE, "php-script", "application/x-httpd-php5",
                                 "application/x-httpd-php7")


# names a PHP handler may cover; phphost runs only *.php and denies the PHP-like rest
_SAMPLES = ("x.html", "x.htm", "x.inc", "x.txt", "x.js", "x.css")


def non_php_names(d: Directive) -> list[str]:
    """Non-PHP-looking file names a mod_php handler line hands to PHP: under phphost
    they are served as they are, their PHP source included."""
    if d.name in ("addhandler", "addtype"):
        exts = [a.lower().lstrip(".") for a in d.args[1:]]
        return [f"*.{e}" for e in exts if f"x.{e}" in _SAMPLES or e in ("html", "htm", "inc")]
    section = next((s for s in reversed(d.context) if s.kind in ("files", "filesmatch")), None)
    if section is None:
        return ["every file"]
    regex = section.kind == "filesmatch" or section.arg == "~"
    pattern = section.args[-1] if section.args else ""
    found = []
    for name in _SAMPLES:
        try:
            hit = re.search(pattern, name) is not None if regex else \
                fnmatch.fnmatchcase(name, pattern)
        except re.error:
            hit = False
        if hit:
            found.append(name.replace("x.", "*."))
    return found


def engine_off(s: PhpSetting) -> bool:
    return s.key.lower() == "engine" and (s.value is False or str(s.value).lower() in
                                          ("0", "off", "false", "no"))


def ini_for_pools(modphp: dict[str, str], fpm: dict[str, str], where: dict[str, str]
                  ) -> tuple[dict[str, str], list[Problem]]:
    """php.ini values of mod_php that FPM's php.ini lacks or sets otherwise -> php_ini."""
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for key in sorted(modphp):
        value = modphp[key]
        if fpm.get(key) == value:
            continue
        if key in MANAGED_INI:
            problems.append(Problem(
                "note", where[key], f"mod_php's php.ini sets {key} = {value}",
                "phphost sets this on every FPM master itself; not copied"))
            continue
        why = expressible(PhpSetting(False, key, value, where[key], key))
        if why:
            problems.append(Problem("lost", where[key], f"{key} = {value}: {why}",
                                    "set it in FPM's php.ini by hand, or decide it is not needed"))
            continue
        out[key] = value
    only_fpm = sorted(set(fpm) - set(modphp) - MANAGED_INI)
    if only_fpm:
        shown = ", ".join(f"{k} = {fpm[k]}" for k in only_fpm[:12])
        more = f" (and {len(only_fpm) - 12} more)" if len(only_fpm) > 12 else ""
        problems.append(Problem(
            "decide", "FPM's php.ini", f"{len(only_fpm)} values FPM's php.ini sets and "
            f"mod_php's does not: {shown}{more}",
            "PHP under FPM runs with them; copy mod_php's value into the template's php_ini "
            "where scripts relied on PHP's built-in default"))
    return out, problems


def pool_extensions(modphp: dict[str, str]) -> list[str]:
    """What mod_php loaded beyond phphost's base set (spec/extensions.py), for the
    imported pools' php_extensions: the sites keep every extension they had. OPcache
    is always loaded; a name phphost does not know is left to extension_problems."""
    return sorted(n for n in modphp if n in extensions.KNOWN and n not in extensions.BASE)


def extension_problems(modphp: dict[str, str], fpm: dict[str, str]) -> list[Problem]:
    return [Problem("decide", modphp[name], f"mod_php loads the PHP extension {name!r}, "
                    "FPM does not", f"enable it for FPM (phpenmod -s fpm {name}) before "
                    "moving PHP sites to FPM") for name in sorted(set(modphp) - set(fpm))]
