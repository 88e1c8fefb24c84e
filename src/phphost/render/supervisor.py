"""supervisord program of one pool's FPM master. Pure."""

from __future__ import annotations

import re

from phphost import layout
from phphost.render.common import HEADER
from phphost.render.fpm import render_fpm_argv, scan_dir_env
from phphost.spec.model import Pool

# supervisord splits `command` with shlex and expands %(...)s; ';' and '#' start
# inline comments. argv elements must need none of that.
_SPECIAL = "%;#'\"\\"
# printable characters that are still refused: the specials and the one printable
# space (every other whitespace character is not printable)
_SPECIAL_OR_SPACE = re.compile("[" + re.escape(_SPECIAL + " ") + "]")


def supervisor_log(pool: str) -> str:
    return f"{layout.LOG_DIR}/{pool}.supervisor.log"


def command_line(argv: list[str]) -> str:
    """argv joined with single spaces; ValueError when an element would not come
    back unchanged from supervisord's parsing."""
    joined = "".join(argv)
    if all(argv) and joined.isprintable() and not _SPECIAL_OR_SPACE.search(joined):
        return " ".join(argv)       # the common case: one search for the whole argv
    for arg in argv:
        if arg and arg.isprintable() and not _SPECIAL_OR_SPACE.search(arg):
            continue
        bad = next((c for c in arg if c.isspace() or not c.isprintable() or c in _SPECIAL),
                   None)
        if not arg or bad is not None:
            raise ValueError(f"argument {arg!r} cannot be passed through supervisord's "
                             f"command line" + (f" (it contains {bad!r})" if bad else
                                                " (it is empty)"))
    return " ".join(argv)


def render_supervisor_program(pool: Pool) -> str:
    settings = [
        ("command", command_line(render_fpm_argv(pool))),
        ("umask", "007"),               # FPM has no umask setting; workers inherit it
        ("autostart", "true"),
        ("autorestart", "true"),
        ("startsecs", "1"),
        ("startretries", "20"),
        ("stopsignal", "QUIT"),         # graceful: children finish their requests
        ("stopwaitsecs", str(pool.settings.process_control_timeout + 5)),
        ("stopasgroup", "false"),
        ("killasgroup", "false"),
        ("redirect_stderr", "true"),
        ("stdout_logfile", supervisor_log(pool.name)),
        ("stdout_logfile_maxbytes", "1MB"),
        ("stdout_logfile_backups", "2"),
    ]
    env = scan_dir_env(pool.settings)
    if env:
        # names and values of ours only: [A-Z_]+ and "" (no quoting needed)
        settings.append(("environment", ",".join(f'{k}="{v}"' for k, v in env.items())))
    lines = [f"# {HEADER}", "", f"[program:{layout.program_name(pool.name)}]"]
    lines += [f"{key}={value}" for key, value in settings]
    return "\n".join(lines) + "\n"
