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
import posixpath

from phphost import layout
from phphost.jail.manifest import Manifest
from phphost.launcher.mountfile import (  # stdlib-only, beside the launcher
    MountSpec,
    MountType,
    order,
    parse_mount_arg,
    parse_mounts_json,
)

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


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> tuple[str, ...]:
    """Pure: mount points of /proc/self/mountinfo (field 5)."""
    points = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(_unescape(fields[4]))
    return tuple(points)


def mounts_under(root: str, mountinfo: str) -> tuple[str, ...]:
    """Pure: mount points at or beneath `root` in the given mount table."""
    top = posixpath.normpath(root)
    return tuple(p for p in parse_mountinfo(mountinfo)
                 if p == top or p.startswith(top.rstrip("/") + "/"))
