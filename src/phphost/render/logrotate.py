"""/etc/logrotate.d/phphost: every pool's FPM error log and slow log, rotated
daily (or sooner past MAX_SIZE when logrotate runs), compressed, a bounded
number kept. After rotating, each pool's master is told to reopen its error log:
supervisord sends SIGUSR1 to the launcher, which forwards it to the master (FPM
reopens its logs on USR1). The slow log needs no signal: FPM opens it anew for
every trace. The masters' stdout logs (POOL.supervisor.log) and the exporter's
log are rotated by supervisord itself (stdout_logfile_maxbytes/backups), Apache's
logs by Debian's /etc/logrotate.d/apache2. Pure."""

from __future__ import annotations

from phphost import layout
from phphost.render.common import HEADER
from phphost.spec.model import Model

KEEP = 14               # rotated files kept per log
MAX_SIZE = "100M"       # rotate earlier than daily once a log is this big
SUPERVISORCTL = f"supervisorctl -c {layout.SUPERVISOR_MAIN_CONF}"


def reopen_command(pools: tuple[str, ...]) -> str:
    """One shell line for logrotate's postrotate: USR1 to every pool's master. A
    master that is not running opens a new log when it starts: not an error.
    Pool names are validated (^[a-z][a-z0-9_-]*$), so they need no quoting."""
    programs = " ".join(layout.program_name(p) for p in pools)
    return f"{SUPERVISORCTL} signal USR1 {programs} >/dev/null 2>&1 || true"


def render_logrotate(model: Model) -> str:
    pools = tuple(p.name for p in model.pools)
    lines = [
        f"# {HEADER}",
        "# pools' FPM logs (docs/monitoring.md); supervisord rotates POOL.supervisor.log",
        f"{layout.LOG_DIR}/*.fpm.log {layout.LOG_DIR}/*.slow.log {{",
        "    daily",
        f"    maxsize {MAX_SIZE}",
        f"    rotate {KEEP}",
        "    compress",
        "    delaycompress",
        "    missingok",
        "    notifempty",
        "    create 0600 root root",
        "    sharedscripts",
        "    postrotate",
        f"        {reopen_command(pools)}",
        "    endscript",
        "}",
    ]
    return "\n".join(lines) + "\n"
