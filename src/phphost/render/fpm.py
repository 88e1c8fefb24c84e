"""PHP-FPM master config and argv of one pool: one master per pool, so every pool
has its own [global] section, pid file, error log and opcache segment. Pure."""

from __future__ import annotations

import json
import re

from phphost import layout
from phphost.launcher.mailer import SENDMAIL_PATH
from phphost.render.common import HEADER, check_value
from phphost.spec import extensions
from phphost.spec.limits import pool_limits
from phphost.spec.model import Pool, PoolSettings, Tenant

# Jails live here, one directory per pool (jails themselves come later).

# php_admin_value defaults that jail features bring (paths are inside the jail).
FEATURE_INI: dict[str, tuple[tuple[str, str], ...]] = {
    "mail": (("sendmail_path", SENDMAIL_PATH),),
    # Debian turns PHP's own session GC off and cleans /var/lib/php/sessions from a
    # cron job that never sees a jail: let PHP collect its own garbage.
    "sessions": (("session.save_path", layout.PHP_SESSION_DIR),
                 ("session.gc_probability", "1"), ("session.gc_divisor", "100")),
    "tls": (("openssl.cafile", layout.CA_BUNDLE), ("curl.cainfo", layout.CA_BUNDLE)),
    # Debian's PHP looks in /var/run/mysqld; the jail binds /run/mysqld only
    "mysql": (("mysqli.default_socket", layout.MYSQL_SOCKET),
              ("pdo_mysql.default_socket", layout.MYSQL_SOCKET)),
}

_INI_SPECIAL = ";\""
SOCKET_MODE = "0660"     # root and Apache's group (www-data) only

# php_admin_value defaults; the spec's php_admin_values override them key by key.
# (php_value cannot: both are PHP_INI_SYSTEM settings, which only php_admin_value sets.)
ADMIN_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("allow_url_include", "off"),
    ("expose_php", "off"),
)


# -d flags of every master; the pool's php_ini overrides them key by key.
def _opcache_defaults(settings: PoolSettings) -> tuple[tuple[str, str], ...]:
    return (
        ("opcache.enable", "1"),
        ("opcache.memory_consumption", str(settings.opcache_memory_mb)),
        # PHP's own ratio (8 MB of 128, 10,000 files): every master memsets a hash
        # table of a quarter of the interned strings buffer at startup (docs/idle.md)
        ("opcache.interned_strings_buffer", str(interned_strings_mb(settings))),
        ("opcache.max_accelerated_files", str(max_accelerated_files(settings))),
        # hashes only the inode of "/" (ext4: always 2), so it does not separate jails
        # on different filesystems; set anyway, with validate_permission and restrict_api
        ("opcache.validate_root", "1"),
        ("opcache.validate_permission", "1"),
        ("opcache.restrict_api", "/phphost-no-opcache-api/"),
    )


def interned_strings_mb(settings: PoolSettings) -> int:
    return max(1, min(8, settings.opcache_memory_mb // 16))


def max_accelerated_files(settings: PoolSettings) -> int:
    return max(1000, min(10000, settings.opcache_memory_mb * 10000 // 128))


def extension_flags(settings: PoolSettings) -> list[tuple[str, str]]:
    """-d flags that load the pool's extensions; [] for "all" (FPM reads Debian's
    conf.d). Otherwise the supervisord program empties PHP_INI_SCAN_DIR
    (scan_dir_env) so that conf.d is not read, and these load OPcache and the base
    set plus the pool's own."""
    if settings.php_extensions == extensions.ALL:
        return []
    return [("zend_extension", "opcache"),
            *(("extension", e) for e in extensions.closure(settings.php_extensions))]


def scan_dir_env(settings: PoolSettings) -> dict[str, str]:
    """Environment of the master: an empty PHP_INI_SCAN_DIR unless it loads "all"."""
    return {} if settings.php_extensions == extensions.ALL else {"PHP_INI_SCAN_DIR": ""}


def jail_root(pool: str) -> str:
    return layout.jail_root(pool)


def render_fpm_conf(pool: Pool, tenant: Tenant) -> str:
    """The whole config file of the pool's own FPM master."""
    if pool.tenant != tenant.name:
        raise ValueError(f"pool {pool.name!r} belongs to tenant {pool.tenant!r}, "
                         f"not {tenant.name!r}")
    if pool.name.lower() == "global":
        raise ValueError("a pool cannot be named 'global': FPM reads [global] as its "
                         "master section")
    lines = [
        f"; {HEADER}",
        "",
        "[global]",
        *_global_lines(pool),
        "",
        f"[{pool.name}]",
        *_identity_lines(pool, tenant),
        *_pm_lines(pool.settings),
        *_worker_lines(pool),
        *_ini_lines(pool),
    ]
    return "\n".join(lines) + "\n"


def _kv(key: str, value: str) -> str:
    # ';' starts a comment and '"' a quoted string in FPM's ini syntax
    return f"{key} = {check_value(value, key, forbidden=_INI_SPECIAL)}"


def _global_lines(pool: Pool) -> list[str]:
    return [
        _kv("pid", layout.pid_file(pool.name)),
        _kv("error_log", layout.fpm_log(pool.name)),
        _kv("daemonize", "no"),
        # above zero, or a reload (SIGUSR2) kills in-flight requests
        _kv("process_control_timeout", f"{pool.settings.process_control_timeout}s"),
    ]


def _identity_lines(pool: Pool, tenant: Tenant) -> list[str]:
    return [
        _kv("user", pool.user),
        _kv("group", tenant.group),
        _kv("listen", pool.socket),
        _kv("listen.owner", "root"),
        _kv("listen.group", layout.WEB_GROUP),
        _kv("listen.mode", SOCKET_MODE),
        _kv("listen.backlog", str(pool.settings.listen_backlog)),
    ]


def _pm_lines(s: PoolSettings) -> list[str]:
    lines = [_kv("pm", s.pm), _kv("pm.max_children", str(s.max_children))]
    if s.pm == "dynamic":
        if s.start_servers > 0:
            lines.append(_kv("pm.start_servers", str(s.start_servers)))
        lines.append(_kv("pm.min_spare_servers", str(s.min_spare)))
        lines.append(_kv("pm.max_spare_servers", str(s.max_spare)))
    elif s.pm == "ondemand":
        lines.append(_kv("pm.process_idle_timeout", f"{s.idle_timeout}s"))
    lines.append(_kv("pm.max_requests", str(s.max_requests)))
    return lines


def _worker_lines(pool: Pool) -> list[str]:
    s = pool.settings
    lines = [
        _kv("pm.status_path", layout.STATUS_PATH),
        _kv("ping.path", layout.PING_PATH),
        _kv("request_terminate_timeout", f"{s.request_terminate_timeout}s"),
        # the master (root, outside the jail, same PID namespace as its workers)
        # ptraces a slow worker and appends its PHP stack to this file
        _kv("slowlog", layout.slow_log(pool.name)),
        _kv("request_slowlog_timeout", f"{s.request_slowlog_timeout}s"),
    ]
    if s.priority is not None:
        lines.append(_kv("process.priority", str(s.priority)))
    lines += [
        _kv("catch_workers_output", "yes"),
        _kv("decorate_workers_output", "no"),
        _kv("clear_env", "yes"),
        _kv("security.limit_extensions", ".php"),
    ]
    if pool.jail.enabled:
        lines.append(_kv("chroot", jail_root(pool.name)))
    lines.append(_kv("chdir", "/"))
    return lines


def _feature_ini(pool: Pool) -> dict[str, str]:
    if not pool.jail.enabled:
        return {}
    return {k: v for f in pool.jail.features for k, v in FEATURE_INI.get(f, ())}


def _ini_lines(pool: Pool) -> list[str]:
    s = pool.settings
    admin = dict(ADMIN_DEFAULTS)
    admin.update(_feature_ini(pool))
    admin.update(s.php_admin_values)
    lines = [_kv(f"php_admin_value[{_ini_key(k)}]", v) for k, v in sorted(admin.items())]
    values = dict(s.php_values)
    lines += [_kv(f"php_value[{_ini_key(k)}]", v) for k, v in sorted(values.items())]
    return lines


_INI_KEY = re.compile(r"[A-Za-z0-9._]+")


def _ini_key(key: str) -> str:
    if not _INI_KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a php.ini setting name")
    return key


def launcher_args(pool: Pool) -> list[str]:
    """phphost's launcher (launcher/launch.c): private PID and mount namespaces;
    a jailed pool gets its jail's mounts, an unjailed one a /proc of its own. With
    socket activation the launcher binds the socket as FPM would (listen.owner root,
    listen.group, listen.mode, listen.backlog) and starts the master on demand."""
    args = [layout.LAUNCHER, "--pool", pool.name, "--pid-ns", "--cgroup", f"phphost/{pool.name}",
            "--limits", layout.limits_file(pool.name), "--network-policy", layout.NFT_CONF,
            "--network-user", pool.user]
    if pool.jail.enabled:
        args += ["--jail", jail_root(pool.name), "--mounts", layout.mounts_file(pool.name)]
    else:
        args += ["--jail", "/", "--mount", "proc:/proc:ro"]
    return args + activation_args(pool)


def activation_args(pool: Pool) -> list[str]:
    s = pool.settings
    if not s.activated:
        return []
    return ["--socket", pool.socket, "--socket-group", layout.WEB_GROUP,
            "--socket-mode", SOCKET_MODE, "--backlog", str(s.listen_backlog),
            "--idle-timeout", str(s.idle_timeout)]


def render_limits_json(pool: Pool) -> str:
    """The launcher's limits file: RLIMIT_NPROC of the workers (spec/limits.py). A file,
    not an argument: a changed limit must not change the supervisord command line
    (that restarts the master); apply sets it live on the running pool instead."""
    return json.dumps({"pool": pool.name, "nproc": pool_limits(pool).nproc}) + "\n"


def render_fpm_argv(pool: Pool) -> list[str]:
    """argv of the pool's master: the launcher, then FPM in the foreground on its own
    config, php.ini flags last."""
    flags = dict(_opcache_defaults(pool.settings))
    if pool.settings.php_extensions != extensions.ALL:
        flags["opcache.jit"] = "off"         # Debian's conf.d/10-opcache.ini, not read
    flags.update(pool.settings.php_ini)
    argv = [
        *launcher_args(pool), "--",
        layout.FPM_BINARY, "--nodaemonize", "--fpm-config", layout.fpm_conf(pool.name),
    ]
    # extensions first: PHP loads them as it reads the flags, before the settings
    for key, value in [*extension_flags(pool.settings), *flags.items()]:
        argv += ["-d", f"{_ini_key(key)}={value}"]
    return argv
