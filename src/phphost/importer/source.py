"""Read the Apache to import, as Apache itself resolves it, and the php.ini files of
mod_php and of FPM. Read-only: apache2 is run only with -t, -S and -M (it parses
its configuration and exits; apache2ctl is not used because it creates run
directories), files are read, nothing is written."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

from phphost import layout
from phphost.audit import apacheconf, fpmconf
from phphost.audit.apacheconf import Directive
from phphost.audit.facts import parse_modules
from phphost.errors import HostError
from phphost.importer.apacheout import (
    VhostRef,
    envvars,
    expand_config,
    included_files,
    run_user,
    vhost_refs,
)
from phphost.importer.errors import SourceError
from phphost.runner import run

CONFIG_NAMES = ("apache2.conf", "httpd.conf", "conf/httpd.conf")
PHP_MODULES = ("php_module", "php7_module", "php5_module")
_SERVER_ROOT = re.compile(r'^ServerRoot: "(.*)"', re.M)
_PHP_VERSION = re.compile(r"libphp(\d+(?:\.\d+)?)\.so")
DEFAULT_PHP_VERSION = "8.2"


@dataclass(frozen=True)
class ApacheSource:
    root: str                            # what -d was given
    config: str                          # what -f was given
    server_root: str                     # as Apache reports it
    variables: dict[str, str]            # envvars + Define: what ${X} expands to
    includes: tuple[str, ...]            # every file Apache read, in order
    refs: tuple[VhostRef, ...]           # the vhosts Apache runs (-S)
    modules: frozenset[str]              # loaded modules (-M): "php_module", ...
    user: str                            # the User children run as
    directives: tuple[Directive, ...]    # every file parsed, Includes expanded

    @property
    def php_loaded(self) -> bool:
        return any(m in self.modules for m in PHP_MODULES)


@dataclass(frozen=True)
class PhpIni:
    files: tuple[str, ...] = ()          # the files read, in order
    values: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)     # key -> file:line
    extensions: dict[str, str] = field(default_factory=dict)   # name -> file:line


def find_config(root: str) -> str:
    if not os.path.isdir(root):
        raise SourceError(f"{root}: no such directory. Pass --apache-root the directory "
                          "that holds apache2.conf (Debian: /etc/apache2)")
    for name in CONFIG_NAMES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise SourceError(f"{root}: none of {', '.join(CONFIG_NAMES)} is there. Pass --apache-root "
                      "the directory that holds Apache's main configuration file")


def apache_env(root: str) -> dict[str, str]:
    """The environment apache2ctl would give apache2: Debian's envvars, if any."""
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "APACHE_CONFDIR": root}
    path = os.path.join(root, "envvars")
    text = _read(path) if os.path.isfile(path) else None
    return {**base, **(envvars(text, base) if text else {})}


def ask_apache(root: str, config: str, env: dict[str, str], *args: str) -> str:
    """stdout of `apache2 -d ROOT -f CONFIG ARGS`; a rejected config is a SourceError
    carrying Apache's own message (it names the file and line)."""
    argv = [layout.APACHE_BINARY, "-d", root, "-f", config, *args]
    try:
        proc = run(argv, check=False, timeout=120, env=env)
    except HostError as err:
        raise SourceError(f"cannot run {layout.APACHE_BINARY}: {err}") from err
    if proc.returncode != 0:
        said = "\n".join(line for line in (proc.stderr + proc.stdout).splitlines()
                         if line.strip() and "Included configuration files" not in line
                         and not line.lstrip().startswith("("))
        raise SourceError(f"{config}: apache2 rejects this configuration "
                          f"({' '.join(args)}):\n  {said.strip()[-1500:]}\n"
                          "Fix the file and line Apache names (apache2 -d ROOT -f FILE -t "
                          "shows the same), then run import again; nothing was written")
    return proc.stdout


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise SourceError(f"{path}: cannot be read ({err.strerror}). Apache reads it; "
                          "fix its permissions, then run import again") from err


def read_apache(root: str) -> ApacheSource:
    root = os.path.abspath(root)
    config = find_config(root)
    env = apache_env(root)
    includes = included_files(ask_apache(root, config, env, "-t", "-D", "DUMP_INCLUDES"))
    listing = ask_apache(root, config, env, "-S")
    modules = parse_modules(ask_apache(root, config, env, "-M"))
    m = _SERVER_ROOT.search(listing)
    server_root = m.group(1) if m else root
    directives = apacheconf.load(config, _read, glob.glob, server_root)
    defines = {d.args[0]: (d.args[1] if len(d.args) > 1 else "")
               for d in apacheconf.named(directives, "define") if d.args}
    variables = {**env, **defines}
    return ApacheSource(root, config, server_root, variables, tuple(includes),
                        tuple(vhost_refs(listing)), modules, run_user(listing) or "www-data",
                        tuple(_expanded(d, variables) for d in directives))


def _expanded(d: Directive, variables: dict[str, str]) -> Directive:
    if not any("${" in a for a in d.args):
        return d
    return Directive(d.name, tuple(expand_config(a, variables) for a in d.args), d.file,
                     d.line, d.context)


# --- php.ini ------------------------------------------------------------------------------


def php_version(source: ApacheSource) -> str:
    for d in apacheconf.named(list(source.directives), "loadmodule"):
        if len(d.args) >= 2 and (m := _PHP_VERSION.search(d.args[1])):
            return m.group(1)
    return DEFAULT_PHP_VERSION


def modphp_ini_dir(source: ApacheSource, version: str) -> str:
    """PHPINIDir when the config sets it, else Debian's /etc/php/V/apache2."""
    found = apacheconf.global_value(list(source.directives), "phpinidir")
    return found.rstrip("/") if found else f"/etc/php/{version}/apache2"


def read_ini(main: str, scan_dir: str) -> PhpIni:
    """php.ini then scan_dir/*.ini, as PHP reads them (later files win)."""
    files = [main, *sorted(glob.glob(os.path.join(scan_dir, "*.ini")))]
    values: dict[str, str] = {}
    where: dict[str, str] = {}
    extensions: dict[str, str] = {}
    read: list[str] = []
    for path in files:
        text = _read(path)
        if text is None:
            continue
        read.append(path)
        for _, number, key, value in fpmconf.parse_ini(text):
            if key in ("extension", "zend_extension"):
                name = os.path.basename(value).removesuffix(".so")
                extensions[name] = f"{path}:{number}"
            else:
                values[key] = value
                where[key] = f"{path}:{number}"
    return PhpIni(tuple(read), values, where, extensions)
