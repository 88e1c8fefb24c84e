"""Where phphost keeps things on the host. One place, so renderers, planner and
host code agree. Paths are plain strings: the model is pure data."""

from __future__ import annotations

ETC = "/etc/phphost"
FPM_CONF_DIR = f"{ETC}/fpm"
RUN_DIR = "/run/phphost"
LOG_DIR = "/var/log/phphost"
STATE_DIR = "/var/lib/phphost"
STATE_FILE = f"{STATE_DIR}/state.json"
JOURNAL_DIR = f"{STATE_DIR}/journal"
LOCK_FILE = f"{RUN_DIR}/apply.lock"

SUPERVISOR_CONF_DIR = "/etc/supervisor/conf.d"
SUPERVISOR_MAIN_CONF = "/etc/supervisor/supervisord.conf"

APACHE_DIR = "/etc/apache2"
APACHE_GLOBAL_CONF = f"{APACHE_DIR}/conf-available/phphost.conf"
APACHE_GLOBAL_LINK = f"{APACHE_DIR}/conf-enabled/phphost.conf"

FPM_BINARY = "/usr/sbin/php-fpm8.2"
LAUNCHER = "/usr/local/lib/phphost/launch"     # src/phphost/jail/launch.py, installed by apply
WEB_USER = "www-data"
WEB_GROUP = "www-data"

STATUS_PATH = "/phphost-fpm-status"
PING_PATH = "/phphost-fpm-ping"
UNIX_SOCKET_MAX = 107


def fpm_conf(pool: str) -> str:
    return f"{FPM_CONF_DIR}/{pool}.conf"


def default_socket(pool: str) -> str:
    return f"{RUN_DIR}/{pool}.sock"


def mounts_file(pool: str) -> str:
    """The jail mounts the pool's launcher makes (JSON)."""
    return f"{FPM_CONF_DIR}/{pool}.mounts.json"


def limits_file(pool: str) -> str:
    """The process limits the pool's launcher sets (JSON: RLIMIT_NPROC)."""
    return f"{FPM_CONF_DIR}/{pool}.limits.json"


def pid_file(pool: str) -> str:
    return f"{RUN_DIR}/{pool}.pid"


def fpm_log(pool: str) -> str:
    return f"{LOG_DIR}/{pool}.fpm.log"


def program_name(pool: str) -> str:
    """supervisord program name of a pool's master."""
    return f"phphost-{pool}"


def supervisor_conf(pool: str) -> str:
    return f"{SUPERVISOR_CONF_DIR}/{program_name(pool)}.conf"


def site_conf(site: str) -> str:
    return f"{APACHE_DIR}/sites-available/phphost-{site}.conf"


def site_link(site: str) -> str:
    return f"{APACHE_DIR}/sites-enabled/phphost-{site}.conf"
