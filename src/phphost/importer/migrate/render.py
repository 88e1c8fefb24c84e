"""What migrate writes, as text. Pure.

- The overlay: one conf file in the old Apache's conf-enabled/ (phphost's own; the
  admin's files are never rewritten) holding `<Directory DOCROOT>` sections: stage 1
  denies PHP files where the spec says `php = false`; stage 3 hands `.php` of the
  moved sites to the web user's FPM. The handler sits in an `<If>`, which Apache
  merges after every `<Directory>`, `<Files>` and `<Location>` section, so it wins
  over mod_php's server-wide `<FilesMatch> SetHandler application/x-httpd-php`.
  A `<Location>` with a random name answers 403: the sign that a (graceful)
  restart has taken this file in. Stage 4 (mod_php off) adds a server-wide guard:
  what mod_php ran and FPM does not (`.phtml`, `.phar`, `.php` outside the moved
  docroots, names an `AddHandler` gave to PHP) keeps mod_php's handler name, and
  mod_actions sends that name to a location that is denied: 403, never the file's
  source; a missing file stays mod_php's 404 (an Action without `virtual`).
- The web user's FPM (stage 2): ONE master running as Apache's user, unjailed, like
  mod_php, under phphost's supervisord. Rendered here directly rather than through
  the spec's Pool model, so no spec can ever ask for a pool as the web user. It has
  one pool section per pool of the spec, each with that pool's php_values and
  php_admin_values: values mod_php took from a vhost or .htaccess stay per site
  (FPM's PHP_VALUE parameter instead would stick to a worker and leak to the next
  site it serves)."""

from __future__ import annotations

from phphost import layout
from phphost.render.common import HEADER
from phphost.render.supervisor import command_line
from phphost.spec.model import Model, Pool, Site

OVERLAY_NAME = "phphost-migrate.conf"
PROGRAM = "phphost.migrate"            # a dot: no pool's program (phphost-POOL) is named so
FPM_CONF = f"{layout.ETC}/migrate/fpm.conf"
SUPERVISOR_CONF = f"{layout.SUPERVISOR_CONF_DIR}/{PROGRAM}.conf"
PID_FILE = f"{layout.RUN_DIR}/migrate.pid"
FPM_LOG = f"{layout.LOG_DIR}/migrate.fpm.log"
PHP_FILES = r"\.ph(ar|p|tml)$"         # what Debian's php8.2.conf hands to mod_php
PHP_TYPES = ("application/x-httpd-php", "application/x-httpd-php-source")
NO_PHP = "/phphost-migrate-no-php"     # where stage 4 sends them: denied
_BAD = '"\n\r\\<>'


PING = layout.PING_PATH                # each pool answers it (no file: Apache never sends it)
STATUS = layout.STATUS_PATH            # and its status page (drained before it is stopped)
SPLIT_PREFIX = f"{PROGRAM}."           # stage 5: phphost.migrate.POOL, one master per pool


def socket(pool: str) -> str:
    return f"{layout.RUN_DIR}/migrate.{pool}.sock"


# --- stage 5: one master per pool (names hold a dot, as no spec name can) ---------------------

def split_program(pool: str) -> str:
    return f"{SPLIT_PREFIX}{pool}"


def split_socket(pool: str) -> str:
    return f"{layout.RUN_DIR}/migrate.pools.{pool}.sock"


def split_conf(pool: str) -> str:
    return f"{layout.ETC}/migrate/pools/{pool}.conf"


def split_supervisor_conf(pool: str) -> str:
    return f"{layout.SUPERVISOR_CONF_DIR}/{split_program(pool)}.conf"


def split_pid(pool: str) -> str:
    return f"{layout.RUN_DIR}/migrate.pools.{pool}.pid"


def split_log(pool: str) -> str:
    return f"{layout.LOG_DIR}/migrate.pools.{pool}.fpm.log"


def split_files(pool: str) -> tuple[str, str]:
    """What stage 5 writes for a pool (removed again on the way back)."""
    return split_supervisor_conf(pool), split_conf(pool)


def handler_socket(pool: str, stage: int) -> str:
    """Where the overlay sends a pool's .php: the one master (stages 3-4), the pool's
    own (5)."""
    return split_socket(pool) if stage >= 5 else socket(pool)


def _path(value: str, what: str) -> str:
    if any(c in value for c in _BAD) or not value.startswith("/"):
        raise ValueError(f"{what} {value!r} cannot be written into an Apache section")
    return value


def php_pools(model: Model) -> list[str]:
    """Pools that PHP sites or their routes use, in spec order."""
    used = {s.pool for s in model.sites if s.php and s.pool}
    used |= {r.pool for s in model.sites for r in s.routes}
    return [p.name for p in model.pools if p.name in used]


def _deny(site: Site) -> list[str]:
    docroot = _path(site.docroot or "", f"site {site.name}: docroot")
    return [f'# {site.name}: php = false in the spec (stage 1)', f'<Directory "{docroot}">',
            f'    <FilesMatch "{PHP_FILES}">', "        Require all denied",
            "    </FilesMatch>", "</Directory>"]


def _handler(directory: str, pool: str, note: str, stage: int) -> list[str]:
    backend = f"migrate.pools.{pool}" if stage >= 5 else f"migrate.{pool}"
    return [f"# {note}", f'<Directory "{_path(directory, note)}">',
            '    <FilesMatch "\\.php$">', '        <If "-f %{REQUEST_FILENAME}">',
            f'            SetHandler "proxy:unix:{handler_socket(pool, stage)}|'
            f'fcgi://{backend}/"', "        </If>", "    </FilesMatch>", "</Directory>"]


def _moved(site: Site, stage: int) -> list[str]:
    docroot = site.docroot or ""
    own = " (its own master, stage 5)" if stage >= 5 else " (stage 3)"
    lines = _handler(docroot, site.pool or "", f"{site.name}: moved to FPM pool "
                     f"{site.pool}{own}", stage)
    for route in site.routes:
        lines += _handler(docroot.rstrip("/") + route.path.rstrip("/"), route.pool,
                          f"{site.name}{route.path}: FPM pool {route.pool}{own}", stage)
    return lines


def _no_source() -> list[str]:
    """Stage 4: mod_php is gone; nothing it ran is ever sent as text."""
    return ["# mod_php is off (stage 4): what it ran and FPM does not (.phtml, .phar, .php",
            "# outside the moved docroots, names an AddHandler gave to PHP) keeps its handler",
            "# name, which mod_actions sends to a denied location: 403, never the source.",
            "# A missing file stays a 404 (no `virtual`), as under mod_php.",
            '<FilesMatch ".+\\.ph(ar|p|tml)$">', f"    SetHandler {PHP_TYPES[0]}",
            "</FilesMatch>", '<FilesMatch ".+\\.phps$">', "    Require all denied",
            "</FilesMatch>", '<FilesMatch "^\\.ph(ar|p|ps|tml)$">', "    Require all denied",
            "</FilesMatch>", *(f"Action {t} {NO_PHP}" for t in PHP_TYPES),
            f'<Location "{NO_PHP}">', "    Require all denied", "</Location>"]


def render_overlay(model: Model, stage: int, moved: tuple[str, ...], probe: str) -> str | None:
    """The overlay for this stage; None at stage 0 (no file)."""
    if stage == 0:
        return None
    lines = [f"# {HEADER}", "# phphost migrate: stage "
             f"{stage} of {model.source} (docs/migrate.md). `phphost migrate SPEC --to 0` "
             "removes it.", "", f'<Location "/phphost-migrate-probe-{probe}">',
             "    Require all denied", "</Location>"]
    if stage >= 4:
        lines += ["", *_no_source()]
    for site in model.sites:
        if site.docroot is None or site.redirect:
            continue
        if not site.php:
            lines += ["", *_deny(site)]
        elif stage >= 3 and site.name in moved:
            lines += ["", *_moved(site, stage)]
    return "\n".join(lines) + "\n"


def render_guard(model: Model) -> str:
    """The overlay from stage 6 on, when phphost's own vhosts serve the spec's sites:
    only the guard of stage 4, kept for whatever the old configuration still reaches
    outside the spec (a vhost the spec does not have, an Alias in conf-enabled/ such
    as phpmyadmin's, the server's own DocumentRoot): mod_php is gone, so without it
    those would send their PHP files as text. phphost's handler is an `<If>` as
    stage 3's was, so it wins over the guard in the spec's docroots."""
    lines = [f"# {HEADER}", f"# phphost migrate: stages 6-7 of {model.source} "
             "(docs/migrate.md). What mod_php ran is never sent as source.", "",
             *_no_source()]
    return "\n".join(lines) + "\n"


def _kv(key: str, value: str) -> str:
    if any(c in key + value for c in ';"\n\r') or not key:
        raise ValueError(f"{key} = {value!r} cannot be written into an FPM config")
    return f"{key} = {value}"


def _pool_section(pool: Pool, user: str, group: str, listen: str) -> list[str]:
    lines = [f"[{pool.name}]", _kv("user", user), _kv("group", group),
             _kv("listen", listen), _kv("listen.owner", "root"),
             _kv("listen.group", group), _kv("listen.mode", "0660"),
             _kv("pm", "ondemand"), _kv("pm.max_children", str(pool.settings.max_children)),
             _kv("pm.process_idle_timeout", "10s"), _kv("security.limit_extensions", ".php"),
             _kv("ping.path", PING), _kv("ping.response", "pong"),
             _kv("pm.status_path", STATUS)]
    lines += [_kv(f"php_value[{k}]", v) for k, v in pool.settings.php_values]
    lines += [_kv(f"php_admin_value[{k}]", v) for k, v in pool.settings.php_admin_values]
    return lines


def render_fpm(model: Model, user: str, group: str) -> str:
    lines = [f"; {HEADER}", f"; phphost migrate: the web user's FPM (stage 2) for {model.source}",
             "", "[global]", _kv("pid", PID_FILE), _kv("error_log", FPM_LOG),
             _kv("daemonize", "no"), _kv("process_control_timeout", "10s")]
    for name in php_pools(model):
        lines += ["", *_pool_section(model.pool(name), user, group, socket(name))]
    return "\n".join(lines) + "\n"


def render_split_fpm(model: Model, pool: str, user: str, group: str) -> str:
    """Stage 5: the master of one pool, its section as stage 2 renders it."""
    lines = [f"; {HEADER}", f"; phphost migrate: pool {pool}'s own master as the web user "
             f"(stage 5) for {model.source}", "", "[global]", _kv("pid", split_pid(pool)),
             _kv("error_log", split_log(pool)), _kv("daemonize", "no"),
             _kv("process_control_timeout", "10s"), "",
             *_pool_section(model.pool(pool), user, group, split_socket(pool))]
    return "\n".join(lines) + "\n"


def fpm_argv(model: Model) -> list[str]:
    """The master's argv: mod_php's php.ini differences (the pools' php_ini, the first
    pool's value where they disagree) as -d flags, as phphost's own masters take them."""
    return _argv(FPM_CONF, php_pools(model), model)


def split_argv(model: Model, pool: str) -> list[str]:
    """Stage 5: a pool's own master, with that pool's own php_ini as -d flags."""
    return _argv(split_conf(pool), [pool], model)


def _argv(conf: str, pools: list[str], model: Model) -> list[str]:
    flags: dict[str, str] = {}
    for name in pools:
        for key, value in model.pool(name).settings.php_ini:
            flags.setdefault(key, value)
    argv = [layout.FPM_BINARY, "--nodaemonize", "--fpm-config", conf]
    for key, value in flags.items():
        argv += ["-d", f"{key}={value}"]
    return argv


def render_program(model: Model) -> str:
    return _program(PROGRAM, fpm_argv(model), f"{layout.LOG_DIR}/migrate.supervisor.log")


def render_split_program(model: Model, pool: str) -> str:
    return _program(split_program(pool), split_argv(model, pool),
                    f"{layout.LOG_DIR}/migrate.pools.{pool}.supervisor.log")


def _program(program: str, argv: list[str], log: str) -> str:
    settings = [("command", command_line(argv)), ("umask", "022"),
                ("autostart", "true"), ("autorestart", "true"), ("startsecs", "1"),
                ("stopsignal", "QUIT"), ("stopwaitsecs", "15"), ("redirect_stderr", "true"),
                ("stdout_logfile", log),
                ("stdout_logfile_maxbytes", "1MB"), ("stdout_logfile_backups", "2")]
    return "\n".join([f"# {HEADER}", "", f"[program:{program}]",
                      *(f"{k}={v}" for k, v in settings)]) + "\n"
