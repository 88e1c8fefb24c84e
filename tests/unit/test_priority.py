"""apply plans and validates ahead of the tenants' PHP (host/priority.py: niceness and a
cpu cgroup of its own), and nothing long-lived it starts inherits either."""

from __future__ import annotations

import os
import sys

import pytest

from phphost import runner
from phphost.host import priority

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (niceness, cgroups)")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def _cpu_cgroup(text: str) -> str:
    for line in text.splitlines():
        _id, ctls, path = line.split(":", 2)
        if "cpu" in ctls.split(",") or ctls == "":
            return path
    return ""


def _child_cgroup() -> str:
    return _cpu_cgroup(runner.run(["cat", "/proc/self/cgroup"]).stdout)


def test_planning_runs_ahead_and_daemons_start_behind() -> None:
    before, cgroup = _nice(), _child_cgroup()
    with priority.planning():
        assert _nice() == priority.PLANNING_NICENESS
        assert runner.run(["nice"]).stdout.strip() == str(priority.PLANNING_NICENESS)
        if priority._cpu_hierarchy() is not None:
            assert _child_cgroup().rstrip("/").endswith(priority.CONTROL)
        with priority.planning():       # nested: still ahead, and still after it
            pass
        assert _nice() == priority.PLANNING_NICENESS
        with priority.normal():         # where supervisord and apache2 are started
            assert _nice() == before
            assert runner.run(["nice"]).stdout.strip() == str(before)
            assert _child_cgroup() == cgroup
        assert _nice() == priority.PLANNING_NICENESS
    assert _nice() == before and _child_cgroup() == cgroup
    with priority.normal():             # outside planning: nothing changes
        assert _nice() == before and _child_cgroup() == cgroup


def test_the_control_cgroup_goes_with_the_last_run() -> None:
    found = priority._cpu_hierarchy()
    if found is None:
        pytest.skip("no cpu cgroup hierarchy here")
    with priority.planning():
        assert os.path.isdir(f"{found[0]}/{priority.CONTROL}")
    assert not os.path.exists(f"{found[0]}/{priority.CONTROL}")


def test_the_command_moves_ahead_before_phphost_is_imported() -> None:
    """The `phphost` entry point (cli/entry.py) imports only host/priority.py before a
    planning command is ahead: the cgroup facts (once niceness is set), the spec loader,
    the planner and the CLI are imported after. Checked in a fresh interpreter."""
    probe = ("import sys, phphost.cli.entry; "
             "print(sorted(m for m in ('phphost.cli.main', 'phphost.spec.loader', "
             "'phphost.plan.planner', 'phphost.host.apply', 'phphost.facts.cgroups') "
             "if m in sys.modules))")
    out = runner.run([sys.executable, "-c", probe]).stdout.strip()
    assert out == "[]"
