"""The mount file a pool's launcher reads (/etc/phphost/fpm/POOL.mounts.json). Pure.

    {"pool": "blog", "mounts": [
      {"type": "bind", "source": "/srv/www/ncs", "target": "/srv/www/ncs", "writable": false},
      {"type": "proc", "source": "proc", "target": "/proc", "writable": false},
      {"type": "tmpfs", "source": "tmpfs", "target": "/tmp", "writable": true,
       "size": 67108864}]}

Targets are paths inside the jail; mounts are listed parents first.
"""

from __future__ import annotations

import json

from phphost import layout
from phphost.jail.launch import (  # the launcher is stdlib-only: the parsing lives there
    MountSpec,
    MountType,
    order,
    parse_mount_arg,
    parse_mounts_json,
)
from phphost.jail.manifest import Manifest

__all__ = ["MountSpec", "mounts_file", "mounts_of", "order", "parse_mount_arg",
           "parse_mounts_json", "render_mounts_json"]


def mounts_file(pool: str) -> str:
    return layout.mounts_file(pool)


def mounts_of(manifest: Manifest) -> tuple[MountSpec, ...]:
    """Pure: the manifest's mounts, parents first."""
    out = []
    for e in manifest.mounts:
        kind: MountType = "proc" if e.fstype == "proc" else \
            "tmpfs" if e.fstype == "tmpfs" else "bind"
        out.append(MountSpec(str(e.source), e.path, e.writable, kind, e.size))
    return tuple(out)


def render_mounts_json(manifest: Manifest) -> str:
    """Pure: the launcher's mount file for this manifest."""
    mounts = [{"type": m.type, "source": m.source, "target": m.target,
               "writable": m.writable, **({"size": m.size} if m.type == "tmpfs" else {})}
              for m in mounts_of(manifest)]
    return json.dumps({"pool": manifest.pool, "mounts": mounts}, indent=2) + "\n"


