"""What apply writes for the monitor when the spec has ``[exporter]``: the
supervisord program of `phphost exporter`, monitor.json, and an Apache conf that
logs one line per request handled by a pool. Pure (the Python that runs the
exporter is an argument; desired.py passes this installation's)."""

from __future__ import annotations

import sys

from phphost import layout
from phphost.render.common import HEADER
from phphost.render.monitorconfig import MONITOR_CONF, POOL_LOG, render_monitor_json
from phphost.render.supervisor import command_line
from phphost.spec.model import Model

# "phphost-" + a pool name can never be this (pool names start with a letter)
EXPORTER_PROGRAM = "phphost_exporter"
EXPORTER_SUPERVISOR_CONF = f"{layout.SUPERVISOR_CONF_DIR}/{EXPORTER_PROGRAM}.conf"
EXPORTER_LOG = f"{layout.LOG_DIR}/exporter.log"
# A plain file in conf-enabled, not a conf-available link: the planner removes files
# that leave the spec (state.json) but not links, and a dangling link would fail
# every later configtest once [exporter] is dropped.
APACHE_MONITOR_CONF = f"{layout.APACHE_DIR}/conf-enabled/phphost-monitor.conf"
POOL_LOG_FORMAT = "phphost_pools"

File = tuple[str, str, int]     # path, content, mode (plan.desired.DesiredFile's fields)


def exporter_argv(python: str) -> list[str]:
    return [python, "-I", "-m", "phphost.cli.main", "exporter", "--config", MONITOR_CONF]


def render_exporter_program(python: str) -> str:
    settings = [
        ("command", command_line(exporter_argv(python))),
        ("autostart", "true"),
        ("autorestart", "true"),
        ("startsecs", "2"),
        ("startretries", "20"),
        ("stopsignal", "TERM"),
        ("stopwaitsecs", "10"),
        ("redirect_stderr", "true"),
        ("stdout_logfile", EXPORTER_LOG),
        ("stdout_logfile_maxbytes", "1MB"),
        ("stdout_logfile_backups", "2"),
    ]
    lines = [f"# {HEADER}", "", f"[program:{EXPORTER_PROGRAM}]"]
    return "\n".join(lines + [f"{k}={v}" for k, v in settings]) + "\n"


def render_apache_monitor() -> str:
    """GlobalLog: also for vhosts with their own CustomLog. %R is the handler of the
    original request (`proxy:unix:SOCKET|fcgi://POOL/`), so a 503 from the pool's
    bound and an ErrorDocument after it still count for the pool; %v is the
    vhost's configured ServerName, never the client's Host header."""
    return "\n".join([
        f"# {HEADER}",
        "# one line per request handled by a pool, read by `phphost exporter` and `phphost top`",
        f'LogFormat "%{{sec}}t %>s %D %v %R" {POOL_LOG_FORMAT}',
        f'GlobalLog "{POOL_LOG}" {POOL_LOG_FORMAT} "expr=%{{HANDLER}} =~ /^proxy:unix:/"',
    ]) + "\n"


def installed_python() -> str:
    """This installation's interpreter, spelled the same however phphost was started
    (`.venv/bin/phphost`, `.venv/bin/python -m ...`), so plans stay stable."""
    return f"{sys.prefix}/bin/python3"


def monitor_files(model: Model, python: str | None = None) -> list[File]:
    if model.exporter is None:
        return []
    python = python or installed_python()
    return [(EXPORTER_SUPERVISOR_CONF, render_exporter_program(python), 0o644),
            (MONITOR_CONF, render_monitor_json(model), 0o640),
            (APACHE_MONITOR_CONF, render_apache_monitor(), 0o644)]

