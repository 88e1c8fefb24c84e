"""apply plans and validates ahead of the tenants' PHP (runner.planning_priority),
and nothing long-lived it starts inherits that priority (service_priority)."""

from __future__ import annotations

import os

import pytest

from phphost import runner


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="a negative niceness needs root")
def test_planning_runs_ahead_and_services_and_the_end_go_back() -> None:
    before = _nice()
    with runner.planning_priority():
        assert _nice() == runner.PLANNING_NICENESS
        assert runner.run(["nice"]).stdout.strip() == str(runner.PLANNING_NICENESS)
        runner.service_priority()
        assert _nice() == before
        assert runner.run(["nice"]).stdout.strip() == str(before)
    assert _nice() == before
