"""Where phphost keeps things on the host, and where it finds the host's own: every
host path phphost names is here, so renderers, planner, host code and checks agree.
Paths are plain strings: the model is pure data. (Paths inside a jail belong to
the jail code; the launcher, installed as one stdlib-only file, takes its paths as
arguments.)"""

from __future__ import annotations

ETC = "/etc/phphost"
FPM_CONF_DIR = f"{ETC}/fpm"
RUN_DIR = "/run/phphost"
LOG_DIR = "/var/log/phphost"
STATE_DIR = "/var/lib/phphost"
STATE_FILE = f"{STATE_DIR}/state.json"
JOURNAL_DIR = f"{STATE_DIR}/journal"
APPLIED_FILE = f"{STATE_DIR}/applied.json"      # the model last applied (--tenant runs)
RUNS_FILE = f"{STATE_DIR}/runs.json"            # the last run of each command (monitor)
JAILS_DIR = f"{STATE_DIR}/jails"
STORE_DIR = f"{STATE_DIR}/jail-store"           # content-addressed files the jails share
JAIL_CACHE_FILE = f"{STATE_DIR}/jail-cache.json"  # jails verified clean (facts/jailcache.py)
PROBE_ROOT = "/var/lib/phphost-probes"          # verify's probe scripts, per run
LOCK_FILE = f"{RUN_DIR}/apply.lock"

# network policy (docs/network.md): phphost's own nftables table, rendered to NFT_CONF
NFT_CONF = f"{ETC}/nftables.conf"
NFT_TABLE = ("inet", "phphost")
NFT_LOADED = f"{STATE_DIR}/nftables.loaded"   # sha256 of `nft list table` after a load
NFT_BINARY = "/usr/sbin/nft"
MAIL_GROUP = "phphost-mail"   # the jail's sendmail is setgid to it; only it reaches the relay

SUPERVISOR_DIR = "/etc/supervisor"
SUPERVISOR_CONF_DIR = f"{SUPERVISOR_DIR}/conf.d"
SUPERVISOR_MAIN_CONF = f"{SUPERVISOR_DIR}/supervisord.conf"
SUPERVISOR_LOG_DIR = "/var/log/supervisor"

APACHE_DIR = "/etc/apache2"
APACHE_GLOBAL_CONF = f"{APACHE_DIR}/conf-available/phphost.conf"
APACHE_GLOBAL_LINK = f"{APACHE_DIR}/conf-enabled/phphost.conf"
APACHE_LOG_DIR = "/var/log/apache2"
APACHE_BINARY = "/usr/sbin/apache2"
APACHE_MODULES_DIR = "/usr/lib/apache2/modules"
APACHE_PID_FILE = "/run/apache2/apache2.pid"

FPM_BINARY = "/usr/sbin/php-fpm8.2"
FPM_BINARIES_GLOB = "/usr/sbin/php-fpm*"     # every PHP version's (audit)
DEBIAN_FPM_GLOB = "/etc/php/*/fpm"           # Debian's own FPM configs (audit)
PHP_SESSION_DIR = "/var/lib/php/sessions"    # Debian's; a jail has it at the same path
LAUNCHER = "/usr/local/lib/phphost/phphost-launch"   # built by apply from LAUNCHER_SOURCE
LAUNCHER_SOURCE = "/usr/local/lib/phphost/launch.c"   # launcher/launch.c, installed by apply
LAUNCHER_DIGEST = LAUNCHER + ".sha256"   # sha256 of the binary apply built (root-only)
SENDMAIL_BINARY = "/usr/local/lib/phphost/phphost-sendmail"   # launcher/sendmail.c, built by setup
WEB_USER = "www-data"
WEB_GROUP = "www-data"

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MYSQL_SOCKET = "/run/mysqld/mysqld.sock"
LDD = "/usr/bin/ldd"
LD_SO_CACHE = "/etc/ld.so.cache"     # ldd resolves libraries through it (facts/jailcache.py)
NOLOGIN = "/usr/sbin/nologin"               # the shell of users phphost creates
# pool runtime users: system accounts (no aging, no subordinate ids) with uids from this
# range, allocated from the top down. Debian's dynamic system range (100-999) holds
# fewer than 900 and is shared with packages; this one lies in the normal-user range
# far above the tenants (allocated upwards from 1000) and below the subordinate-id
# ranges (100000 and up) that useradd gives normal users for user namespaces.
POOL_UID_MIN = 30000
POOL_UID_MAX = 59999
# the account files: shadow's tools write them, and phphost for many pool users at once
USER_DB = "/etc/passwd"
USER_SHADOW_DB = "/etc/shadow"
GROUP_DB = "/etc/group"
GROUP_SHADOW_DB = "/etc/gshadow"
SUBUID_DB = "/etc/subuid"
SUBGID_DB = "/etc/subgid"
NSCD = "/usr/sbin/nscd"     # told to forget cached users after that, when installed
# the lowest pool uid ever handed out: the next pool user gets one below it, so a uid is
# never given twice (files and ACL entries a removed pool left behind keep its number)
POOL_UID_FLOOR = f"{STATE_DIR}/pool-uid-floor"
# tenant users and groups: uids and gids from TENANT_ID_MIN up to below the pool range,
# each above the highest one phphost ever gave ("UID GID" in TENANT_ID_MARK): a tenant
# destroyed without --purge leaves its home owned by its ids, which a new tenant must
# never get
TENANT_ID_MIN = 1000
TENANT_ID_MARK = f"{STATE_DIR}/tenant-id-mark"
PROC = "/proc"      # processes' memory for plan's capacity report (facts/capacity.py)
# a pool's cgroup, by how it was set up (cgroupfs by hand, or systemd's scope)
CGROUP_DIRS = ("/sys/fs/cgroup/phphost/{pool}", "/sys/fs/cgroup/phphost.slice/phphost-{pool}.scope")

STATUS_PATH = "/phphost-fpm-status"
PING_PATH = "/phphost-fpm-ping"
UNIX_SOCKET_MAX = 107


def fpm_conf(pool: str) -> str:
    return f"{FPM_CONF_DIR}/{pool}.conf"


def jail_root(pool: str) -> str:
    """The root of a jailed pool's jail."""
    return f"{JAILS_DIR}/{pool}"


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


def slow_log(pool: str) -> str:
    """FPM's slowlog: a PHP stack trace of each request slower than
    request_slowlog_timeout, written by the master (outside any jail)."""
    return f"{LOG_DIR}/{pool}.slow.log"


LOGROTATE_CONF = "/etc/logrotate.d/phphost"


def program_name(pool: str) -> str:
    """supervisord program name of a pool's master."""
    return f"phphost-{pool}"


def supervisor_conf(pool: str) -> str:
    return f"{SUPERVISOR_CONF_DIR}/{program_name(pool)}.conf"


def site_conf(site: str) -> str:
    return f"{APACHE_DIR}/sites-available/phphost-{site}.conf"


def site_link(site: str) -> str:
    return f"{APACHE_DIR}/sites-enabled/phphost-{site}.conf"
