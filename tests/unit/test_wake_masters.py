"""services.wake_masters: apply sees every master it starts come up, a bounded number
at a time, and lets each activated pool sleep again at once (SIGWINCH)."""

from __future__ import annotations

import threading
import time

import pytest

from phphost.errors import HostError
from phphost.host import services, supervisord


class Host:
    def __init__(self, broken: str = "") -> None:
        self.broken = broken
        self.lock = threading.Lock()
        self.awake: set[str] = set()
        self.most_awake = 0
        self.woken: list[str] = []
        self.slept: list[str] = []
        self.calls = 0
        self.refuse = 0          # signal calls that fail before sending anything

    def wait_master(self, pool: str, socket: str) -> None:
        assert socket == f"/run/{pool}.sock"
        with self.lock:
            self.awake.add(pool)
            self.most_awake = max(self.most_awake, len(self.awake))
        time.sleep(0.01)
        if pool == self.broken:
            raise HostError(f"FPM master of pool {pool!r} did not answer")
        with self.lock:
            self.woken.append(pool)

    def signal(self, names: list[str], sig: str) -> None:
        assert sig == "WINCH"
        with self.lock:
            self.calls += 1
            if self.refuse:
                self.refuse -= 1
                raise HostError("supervisord could not send SIGWINCH")
            for name in names:
                self.slept.append(name)
                self.awake.discard(name.removeprefix("phphost-"))


@pytest.fixture()
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    h = Host()
    monkeypatch.setattr(services, "wait_master", h.wait_master)
    monkeypatch.setattr(supervisord, "signal", h.signal)
    monkeypatch.setattr(services, "MASTER_WAKES_AT_ONCE", 3)
    monkeypatch.setattr(services, "SLEEP_BATCH", 4)
    return h


def pools(n: int) -> list[tuple[str, str]]:
    return [(f"p{i}", f"/run/p{i}.sock") for i in range(n)]


def test_every_master_is_woken_then_put_back_to_sleep(host: Host) -> None:
    services.wake_masters(pools(20))
    assert sorted(host.woken) == sorted(f"p{i}" for i in range(20))
    assert sorted(host.slept) == sorted(f"phphost-p{i}" for i in range(20))
    assert not host.awake
    # bounded: 3 waiting, and fewer than 4 + 3 answered and waiting for their SIGWINCH
    assert 1 < host.most_awake <= 3 + 4 + 3 - 1 < 20
    assert host.calls <= 20 // 4 + 1      # put to sleep in batches, not one call each


def test_a_master_that_does_not_come_up_fails_the_wake(host: Host) -> None:
    host.broken = "p4"
    with pytest.raises(HostError, match="'p4' did not answer"):
        services.wake_masters(pools(20))
    assert "p4" not in host.woken and "phphost-p4" not in host.slept
    assert len(host.woken) < 20 or host.awake == {"p4"}   # the rest cancelled or slept
    assert sorted(host.slept) == sorted(f"phphost-{p}" for p in host.woken)


def test_a_failed_sigwinch_leaves_no_master_awake(host: Host) -> None:
    """The first batch's call fails: the apply fails, and every master that answered
    (that batch's and those still waking meanwhile) is still put to sleep."""
    host.refuse = 1
    with pytest.raises(HostError, match="could not send SIGWINCH"):
        services.wake_masters(pools(20))
    assert host.woken
    assert sorted(host.slept) == sorted(f"phphost-{p}" for p in host.woken)
    assert not host.awake
