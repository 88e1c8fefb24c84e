"""host/supervisord.py against a fake XML-RPC server: many programs per call,
stopped together before removal, faults that mean "already so" ignored, others
reported by name, an honest timeout naming what did not stop."""

from __future__ import annotations

from typing import Any

import pytest

from phphost.errors import HostError
from phphost.host import supervisord


class FakeSupervisor:
    def __init__(self, running: set[str], conf: set[str]) -> None:
        self.running = set(running)
        self.known = set(running)
        self.conf = set(conf)
        self.calls: list[tuple[str, int]] = []    # (method, how many in the batch)
        self.stuck: set[str] = set()
        self.system = self
        self.supervisor = self

    # supervisor.*
    def getAllProcessInfo(self) -> list[dict[str, Any]]:
        self.calls.append(("supervisor.getAllProcessInfo", 1))
        return [{"name": n, "statename": "RUNNING" if n in self.running else "STOPPED"}
                for n in sorted(self.known)]

    def reloadConfig(self) -> list[list[list[str]]]:
        added = sorted(self.conf - self.known)
        removed = sorted(self.known - self.conf)
        return [[added, [], removed]]

    # system.multicall
    def multicall(self, calls: list[dict[str, Any]]) -> list[object]:
        self.calls.append((calls[0]["methodName"], len(calls)))
        return [self._one(c["methodName"], c["params"][0]) for c in calls]

    def _one(self, method: str, name: str) -> object:
        if name not in self.known and method != "supervisor.addProcessGroup":
            return {"faultCode": supervisord.BAD_NAME, "faultString": f"BAD_NAME: {name}"}
        if method == "supervisor.stopProcess":
            if name not in self.running:
                return {"faultCode": 70, "faultString": "NOT_RUNNING"}
            if name not in self.stuck:
                self.running.discard(name)
        elif method == "supervisor.startProcess":
            if name in self.running:
                return {"faultCode": 60, "faultString": "ALREADY_STARTED"}
            self.running.add(name)
        elif method == "supervisor.removeProcessGroup":
            if name in self.running:
                return {"faultCode": 91, "faultString": "STILL_RUNNING"}
            self.known.discard(name)
        elif method == "supervisor.addProcessGroup":
            self.known.add(name)
            self.running.add(name)      # autostart
        return True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSupervisor:
    names = {f"phphost-p{i}" for i in range(250)}
    sup = FakeSupervisor(running=names, conf=set())
    monkeypatch.setattr(supervisord, "proxy", lambda timeout=60.0: sup)
    monkeypatch.setattr(supervisord.time, "sleep", lambda s: None)
    return sup


def test_update_stops_all_removed_programs_in_batches_then_removes_them(
        fake: FakeSupervisor) -> None:
    supervisord.update(sorted(fake.known), stop_timeout=5)
    assert fake.known == set() and fake.running == set()
    # one listing to see which exist, one to see them stopped: not one per program
    assert fake.calls == [("supervisor.getAllProcessInfo", 1),
                          ("supervisor.stopProcess", 100), ("supervisor.stopProcess", 100),
                          ("supervisor.stopProcess", 50), ("supervisor.getAllProcessInfo", 1),
                          ("supervisor.removeProcessGroup", 100),
                          ("supervisor.removeProcessGroup", 100),
                          ("supervisor.removeProcessGroup", 50)]


def test_update_touches_only_the_named_programs(fake: FakeSupervisor) -> None:
    fake.conf = set(fake.known) - {"phphost-p1"} | {"phphost-new"}
    supervisord.update(["phphost-p1", "phphost-new"], stop_timeout=5)
    assert "phphost-p1" not in fake.known and "phphost-new" in fake.running
    assert len(fake.known) == 250


def test_a_program_that_does_not_stop_is_named_after_the_deadline(
        fake: FakeSupervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.stuck = {"phphost-p7"}
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(supervisord.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(HostError, match=r"1 program\(s\) did not stop within 30s: "
                       r"phphost-p7 \(RUNNING\)"):
        supervisord.stop(["phphost-p7", "phphost-p8"], timeout=30)


def test_start_ignores_already_started_and_reports_others(fake: FakeSupervisor) -> None:
    fake.running.discard("phphost-p3")
    supervisord.start(["phphost-p3", "phphost-p4"])
    assert "phphost-p3" in fake.running
    with pytest.raises(HostError, match="could not start: phphost-nope: BAD_NAME"):
        supervisord.start(["phphost-nope"])


def test_start_says_which_programs_were_already_started(fake: FakeSupervisor) -> None:
    """apply restarts a master supervisord had started by itself before apply asked
    (it may have read the pool's files before apply wrote them: host/apply.py)."""
    stopped = sorted(fake.known)[:3]
    fake.running -= set(stopped)
    assert supervisord.start([*stopped, "phphost-p9"]) == {"phphost-p9"}
    assert set(stopped) <= fake.running
