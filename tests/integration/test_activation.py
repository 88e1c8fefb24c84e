"""Socket activation on the demo host (docs/idle.md): an idle ondemand pool goes to
sleep with only its launcher left, holding the socket; `phphost status` shows it asleep
without waking it; signals while asleep start nothing; the next request wakes it and is
answered; the socket keeps its owner and mode throughout."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from phphost import layout
from phphost.facts.gather import fpm_master_pid
from phphost.host import services
from phphost.spec.model import Model
from tests.integration import hostkit


def test_idle_pool_sleeps_status_does_not_wake_it_a_request_does(demo: Model) -> None:
    pool = demo.pool("search")            # ondemand, idle_timeout 10s
    assert pool.settings.activated
    site = next(s for s in demo.sites if s.pool == pool.name)
    name = hostkit.program(pool.name)
    # RUNNING (an apply just before may have restarted it: STARTING, no pid yet for
    # supervisord's startsecs) and asleep (that apply woke it and sent SIGWINCH a moment
    # ago, and a request during that stop is served by the stopping master)
    hostkit.wait_for(lambda: hostkit.master_pids()[name] is not None, timeout=10,
                     interval=0.1)
    launcher = hostkit.master_pids()[name]
    assert launcher is not None
    services.supervisorctl("signal", "WINCH", name)
    hostkit.wait_for(lambda: fpm_master_pid(launcher) is None, timeout=10, interval=0.1)
    assert hostkit.get(site.server_name, "/index.php")[0] == 200     # awake now
    assert hostkit.master_pids()[name] == launcher and fpm_master_pid(launcher) is not None
    # its worker goes after idle_timeout, the master idle_timeout later
    hostkit.wait_for(lambda: fpm_master_pid(launcher) is None,
                     timeout=3 * pool.settings.idle_timeout + 10, interval=0.5)
    st = os.stat(pool.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0
    out = hostkit.phphost("status", "--json").stdout
    assert f'"pool": "{pool.name}"' in out and '"asleep": true' in out, out
    text = hostkit.phphost("status").stdout
    row = next(line for line in text.splitlines() if line.startswith(f"{pool.name} "))
    assert "ASLEEP" in row, text
    services.supervisorctl("signal", "USR2", name)          # a reload while asleep
    services.supervisorctl("signal", "USR1", name)          # a log reopen while asleep
    assert fpm_master_pid(launcher) is None                 # nothing woke it
    assert hostkit.master_pids()[name] == launcher
    assert hostkit.get(site.server_name, "/index.php")[0] == 200   # a fresh master answers
    assert fpm_master_pid(launcher) is not None
    assert hostkit.master_pids()[name] == launcher          # same launcher, no restart
    assert "using inherited socket" in Path(layout.fpm_log(pool.name)).read_text()


def test_winch_puts_an_awake_activated_pool_to_sleep_at_once(demo: Model) -> None:
    """What apply does after waking a pool it started (services.wake_masters)."""
    pool = demo.pool("search")
    site = next(s for s in demo.sites if s.pool == pool.name)
    name = hostkit.program(pool.name)
    services.restart_program(name)      # a launcher from the binary this apply built
    services.wake_masters([(pool.name, pool.socket)])       # woken and put to sleep
    launcher = hostkit.master_pids()[name]
    assert launcher is not None
    hostkit.wait_for(lambda: fpm_master_pid(launcher) is None, timeout=5, interval=0.1)
    assert hostkit.get(site.server_name, "/index.php")[0] == 200     # awake now
    launcher = hostkit.master_pids()[name]
    assert launcher is not None and fpm_master_pid(launcher) is not None
    services.supervisorctl("signal", "WINCH", name)
    # well before idle_timeout (10 s) with the worker still there
    hostkit.wait_for(lambda: fpm_master_pid(launcher) is None, timeout=5, interval=0.1)
    assert hostkit.master_pids()[name] == launcher          # the same launcher, asleep
    assert hostkit.get(site.server_name, "/index.php")[0] == 200     # and wakes again
    services.supervisorctl("signal", "WINCH", name)
    hostkit.wait_for(lambda: fpm_master_pid(launcher) is None, timeout=5, interval=0.1)
    static = next(p for p in demo.pools if not p.settings.activated)
    other = hostkit.master_pids()[hostkit.program(static.name)]
    assert other is not None
    master = fpm_master_pid(other)
    services.supervisorctl("signal", "WINCH", hostkit.program(static.name))
    assert hostkit.master_pids()[hostkit.program(static.name)] == other
    assert master is not None and fpm_master_pid(other) == master    # not activated: nothing
