"""burst_queue: the spec key and the per-pool bound it renders (docs/sizing.md)."""

from __future__ import annotations

import textwrap

import pytest

from phphost.errors import SpecError
from phphost.render.apache import pool_bound, processes, render_apache_global
from phphost.spec.loader import parse_spec

SPEC = """
[apache]
threads_per_child = 25
max_request_workers = 100
server_limit = 5

[tenants.acme]
home = "/srv/www/acme"

[pools.web]
tenant = "acme"
max_children = 6
{extra}

[sites.main]
server_name = "acme.example.org"
tenant = "acme"
docroot = "htdocs"
pool = "web"
"""


def bound(extra: str = "") -> int:
    model = parse_spec(textwrap.dedent(SPEC.format(extra=extra)), "t.toml")
    return pool_bound(model.pool("web"), model)


def test_default_is_twice_max_children_on_top() -> None:
    assert bound() == 18


def test_zero_is_the_old_bound_and_threads_per_child_caps_it() -> None:
    assert bound("burst_queue = 0") == 6
    assert bound("burst_queue = 100") == 25


def test_negative_is_a_spec_error_naming_the_key() -> None:
    with pytest.raises(SpecError) as info:
        bound("burst_queue = -1")
    assert info.value.key == "pools.web.burst_queue"


def test_rendered_worker_and_kept_processes() -> None:
    model = parse_spec(textwrap.dedent(SPEC.format(extra="burst_queue = 4")), "t.toml")
    text = render_apache_global(model)
    assert "ProxySet max=10 acquire=1 retry=0 disablereuse=On" in text
    assert processes(model) == 4
    assert "StartServers 4\n" in text and "MaxSpareThreads 100\n" in text
