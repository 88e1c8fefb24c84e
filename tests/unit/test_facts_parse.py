from __future__ import annotations

from phphost.facts.parse import parse_apache_modules, parse_getfacl, parse_supervisorctl_status
from phphost.facts.state import State, parse_state

SUPERVISOR = """\
phphost-app                      RUNNING   pid 4242, uptime 0:01:02
phphost-blog                     FATAL     Exited too quickly (process log may have details)
phphost-new                      STOPPED   Not started
"""

GETFACL = """\
user::rwx
user:www-data:--x
group::r-x
mask::r-x
other::---
default:user::rwx
default:user:www-data:r-x	#effective:r-x
default:group::r-x
"""


def test_supervisorctl_status() -> None:
    st = parse_supervisorctl_status(SUPERVISOR)
    assert st["phphost-app"].pid == 4242 and st["phphost-app"].state == "RUNNING"
    assert st["phphost-blog"].state == "FATAL" and st["phphost-blog"].pid is None
    assert set(st) == {"phphost-app", "phphost-blog", "phphost-new"}


def test_supervisorctl_not_running_output() -> None:
    assert parse_supervisorctl_status("unix:///var/run/supervisor.sock no such file\n") == {}


def test_getfacl_named_entries_only() -> None:
    assert parse_getfacl(GETFACL) == frozenset(
        {"user:www-data:--x", "default:user:www-data:r-x"})


def test_modules_from_mods_enabled() -> None:
    assert parse_apache_modules(["proxy.load", "proxy.conf", "mpm_event.load"]) == frozenset(
        {"proxy", "mpm_event"})


def test_state_round_trip() -> None:
    s = State(pools=("a",), users=("php-a",))
    import json
    assert parse_state(json.dumps(s.to_json())) == s
    assert parse_state(None) == State()
