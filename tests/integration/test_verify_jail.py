"""The jail attack family, on the jailed demo deliberately weakened, is reported
BREACHED (the other families: test_verify_weakened.py, on the demo with jails off)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from phphost import layout
from phphost.host import services
from phphost.spec.model import Model
from tests.integration.test_verify import breached, verdicts
from tests.integration.test_verify_weakened import BREACHED, check, weakened


def add_mount(pool: str, source: str) -> None:
    """A bind of a host directory the spec never asked for, in the pool's mounts file."""
    path = Path(layout.mounts_file(pool))
    data = json.loads(path.read_text())
    data["mounts"].append({"type": "bind", "source": source, "target": source,
                           "writable": False})
    path.write_text(json.dumps(data))


def test_jail_breached_when_the_jail_is_leaky(demo: Model) -> None:
    """On the jailed demo: a block device planted in search's jail, and the host's
    /etc/apache2 bound into blog's jail."""
    node = Path(layout.jail_root("search")) / "dev" / "vda"
    with weakened(demo, undo=(lambda: node.unlink(missing_ok=True),), restart=("blog",)):
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(253, 0))
        add_mount("blog", "/etc/apache2")
        services.restart_program(layout.program_name("blog"))
        services.wait_master("blog", demo.pool("blog").socket)
        status, data = check("jail.*")
    assert status == BREACHED
    assert breached(data, "jail.devices") == {("pool:search", None)}
    assert breached(data, "jail.host-mounts") == {("pool:blog", None)}
    assert verdicts(data, "jail.escape", "pool:files") == {"blocked"}
