"""A master killed with SIGKILL comes back through supervisord within 5 s."""

from __future__ import annotations

import os
import signal

from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.hostkit import get, master_pids


def test_killed_master_is_back_within_5s(demo: Model) -> None:
    site = next(s for s in demo.sites if s.php and s.pool)
    assert site.pool is not None
    name = hostkit.program(site.pool)
    pid = master_pids()[name]
    assert pid
    os.kill(pid, signal.SIGKILL)          # the master phphost started, by its pid
    took = hostkit.wait_for(
        lambda: get(site.server_name, "/index.php")[0] == 200
        and master_pids().get(name) not in (None, pid), timeout=5.0)
    print(f"master {name} back and serving after {took:.2f}s")
