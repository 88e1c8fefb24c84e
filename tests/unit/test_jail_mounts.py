"""The launcher's mount file: pure parts (the launcher itself: test_launcher.py)."""

from __future__ import annotations

import json

import pytest

from phphost.jail.features import build_manifest
from phphost.jail.mounts import (
    MountSpec,
    mounts_file,
    parse_mount_arg,
    parse_mounts_json,
    render_mounts_json,
)
from phphost.launcher.mountfile import tmpfs_options
from tests.unit.test_jail_fakes import TENANT, debian_host, pool


def test_render_and_parse_round_trip() -> None:
    m = build_manifest(pool(features=("proc",)), TENANT, debian_host())
    text = render_mounts_json(m)
    assert json.loads(text)["mounts"][0] == {"type": "proc", "source": "proc",
                                             "target": "/proc", "writable": False}
    owner, mounts = parse_mounts_json(text)
    assert owner == "blog"
    assert json.loads(text)["mounts"][1] == {"type": "tmpfs", "source": "tmpfs",
                                             "target": "/tmp", "writable": True,
                                             "size": 64 * 1024 * 1024}
    assert mounts == (MountSpec("proc", "/proc", False, "proc"),
                      MountSpec("tmpfs", "/tmp", True, "tmpfs", 64 * 1024 * 1024),
                      MountSpec("/srv/www/ncs", "/srv/www/ncs"),
                      MountSpec("/usr/share/zoneinfo", "/usr/share/zoneinfo"),
                      MountSpec("/srv/www/ncs/data", "/srv/www/ncs/data", True))
    assert mounts_file("blog") == "/etc/phphost/fpm/blog.mounts.json"


@pytest.mark.parametrize(("text", "error"), [
    ("nope", "not JSON"),
    ('{"pool": "blog"}', "mounts"),
    ('{"pool": "b", "mounts": [{"source": "x", "target": "/y"}]}', "must be absolute"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/y/../../etc"}]}', "without '..'"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/"}]}', "jail root"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/y", "writable": "yes"}]}',
     "writable true or false"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/y"}, '
     '{"source": "/z", "target": "/y/"}]}', "two mounts have the target /y"),
])
def test_bad_mount_files(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_mounts_json(text)


def test_mount_arg() -> None:
    assert parse_mount_arg("/srv/a:/srv/a:rw") == MountSpec("/srv/a", "/srv/a", True)
    assert parse_mount_arg("proc:/proc:ro") == MountSpec("proc", "/proc", False, "proc")
    with pytest.raises(ValueError, match="SRC:DST:ro"):
        parse_mount_arg("/a:/b")


def test_tmpfs_mounts() -> None:
    item = {"type": "tmpfs", "source": "tmpfs", "target": "/tmp", "writable": True,
            "size": 1 << 20}
    _, mounts = parse_mounts_json(json.dumps({"pool": "blog", "mounts": [item]}))
    assert mounts == (MountSpec("tmpfs", "/tmp", True, "tmpfs", 1 << 20),)
    assert tmpfs_options(mounts[0]) == "size=1048576,nr_inodes=1024,mode=1777"
    for bad in (0, -1, "1M", True, None):
        with pytest.raises(ValueError, match="size"):
            parse_mounts_json(json.dumps({"pool": "b", "mounts": [{**item, "size": bad}]}))
