"""A master killed with SIGKILL comes back through supervisord within 5 s, and
takes its workers along (no orphan keeps the pool's socket)."""

from __future__ import annotations

import os
import signal

import pytest

from phphost.facts.gather import fpm_master_pid
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.hostkit import get, master_pids


def workers_of(pool_user: str) -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == hostkit.uid(pool_user):
                    pids.add(int(entry))
            except FileNotFoundError:
                pass
    return pids


@pytest.mark.parametrize("target", ["fpm-master", "launcher"])
def test_killed_master_is_back_within_5s(demo: Model, target: str) -> None:
    site = next(s for s in demo.sites if s.php and s.pool)
    assert site.pool is not None
    pool = demo.pool(site.pool)
    name = hostkit.program(pool.name)
    assert get(site.server_name, "/index.php")[0] == 200    # a socket-activated pool wakes
    launcher = master_pids()[name]
    assert launcher
    master = fpm_master_pid(launcher)
    assert master, "the launcher has no FPM master child"
    old_workers = workers_of(pool.user)
    assert old_workers
    # Processes phphost started, ended by their pid.
    os.kill(master if target == "fpm-master" else launcher, signal.SIGKILL)
    took = hostkit.wait_for(
        lambda: master_pids().get(name) not in (None, launcher)
        and get(site.server_name, "/index.php")[0] == 200, timeout=5.0)
    print(f"{target} of {name} killed: back and serving after {took:.2f}s")
    assert not old_workers & workers_of(pool.user), "orphaned workers survived their master"
