"""phphost.host.asuser: a function run as another user, its result back."""

from __future__ import annotations

import os

import pytest

from phphost.errors import HostError
from phphost.host.asuser import call_as

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="setuid needs root")


@root_only
def test_runs_with_that_uid_and_gid_and_returns_its_value() -> None:
    assert call_as(65534, 65534, lambda: f"{os.getuid()} {os.getgid()} {os.getgroups()}") \
        == "65534 65534 []"
    assert call_as(65534, 65534, lambda: None) is None


@root_only
def test_what_the_user_may_not_do_fails_without_touching_the_caller() -> None:
    def write_etc() -> None:
        with open("/etc/phphost-asuser-test", "w"):
            pass

    with pytest.raises(HostError, match="uid 65534"):
        call_as(65534, 65534, write_etc)
    assert not os.path.exists("/etc/phphost-asuser-test")
    assert os.geteuid() == 0
