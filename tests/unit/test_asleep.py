"""Socket-activated pools asleep: status, top and the exporter read /proc only and
never ask a pool whose answer would wake its master or start a worker."""

from __future__ import annotations

from typing import Any

import pytest

from phphost.cli import status
from phphost.errors import FastCGIError
from phphost.facts.parse import ProgramStatus
from phphost.monitor import collect, top


def _no_ask(*_args: object, **_kw: object) -> Any:
    raise AssertionError("the pool was asked")


def test_status_never_asks_an_asleep_pool_or_a_master_without_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "fpm_status", _no_ask)
    monkeypatch.setattr(status, "pool_pm", lambda pool: "ondemand")
    asleep: dict[str, Any] = {"pool": "p", "running": True, "asleep": True, "state": "RUNNING"}
    status._fpm_numbers(asleep, "p", None)
    assert (asleep["state"], asleep["total"], asleep["running"]) == ("ASLEEP", 0, True)
    monkeypatch.setattr(status, "child_count", lambda pid: 0)
    idle: dict[str, Any] = {"pool": "p", "running": True, "asleep": False, "state": "RUNNING"}
    status._fpm_numbers(idle, "p", 1234)
    assert (idle["state"], idle["active"], idle["total"]) == ("RUNNING", 0, 0)
    assert "ASLEEP" in status.format_statuses([{**asleep, "master_pid": None}])


def test_status_asks_a_pool_with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def fake(sock: str) -> Any:
        asked.append(sock)
        raise FastCGIError("no answer")

    monkeypatch.setattr(status, "fpm_status", fake)
    monkeypatch.setattr(status, "pool_pm", lambda pool: "ondemand")
    monkeypatch.setattr(status, "pool_socket", lambda pool: "/run/phphost/p.sock")
    monkeypatch.setattr(status, "child_count", lambda pid: 2)
    row: dict[str, Any] = {"pool": "p", "running": True, "asleep": False, "state": "RUNNING"}
    status._fpm_numbers(row, "p", 1234)
    assert asked == ["/run/phphost/p.sock"] and row["running"] is False


def test_monitor_leaves_quiet_pools_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = {10: [], 20: [21], 21: [], 30: [31], 31: [32]}
    monkeypatch.setattr(collect, "_children", lambda pid: tree.get(pid, []))
    monkeypatch.setattr(collect.os.path, "exists", lambda path: True)
    running = lambda pid: ProgramStatus("phphost-p", "RUNNING", pid)  # noqa: E731
    assert collect.quiet_pool(running(10), "ondemand") == "asleep"
    assert collect.quiet_pool(running(20), "ondemand") == "no workers"
    assert collect.quiet_pool(running(20), "static") is None
    assert collect.quiet_pool(running(30), "ondemand") is None
    assert collect.quiet_pool(ProgramStatus("phphost-p", "STARTING", None), "ondemand") is None
    assert top._state("RUNNING", None, "asleep") == "ASLEEP"
    assert top._state("RUNNING", None, "no workers") == "RUNNING"
    assert top._state("RUNNING", None, None) == "ERROR"
