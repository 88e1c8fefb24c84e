"""The launcher's mount file (/etc/phphost/fpm/POOL.mounts.json) and `--mount` argument:
the pure schema, shared by the planner (jail/mounts.py renders and reads it) and the tests.
The launcher itself is launch.c (it reads the same JSON); this module is stdlib only.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any, Literal

MountType = Literal["bind", "proc", "tmpfs"]
TMPFS_MODE = "1777"       # the pool user is the only user in its jail: a sticky /tmp


@dataclass(frozen=True)
class MountSpec:
    source: str          # host path ("proc" for procfs, "tmpfs" for a tmpfs)
    target: str          # path inside the jail
    writable: bool = False
    type: MountType = "bind"
    size: int = 0        # tmpfs: its size in bytes (> 0)


# ---------------------------------------------------------------- pure


def parse_mounts_json(text: str, where: str = "mount file") -> tuple[str, tuple[MountSpec, ...]]:
    """Pure: (pool, mounts) from a mount file; ValueError naming what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{where} is not JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("pool"), str) \
            or not isinstance(data.get("mounts"), list):
        raise ValueError(f"{where} needs a \"pool\" string and a \"mounts\" list")
    mounts = tuple(_mount_item(item, f"{where}: mounts[{i}]")
                   for i, item in enumerate(data["mounts"]))
    return data["pool"], order(mounts)


def _mount_item(item: Any, where: str) -> MountSpec:
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    kind, source, target = item.get("type", "bind"), item.get("source"), item.get("target")
    writable, size = item.get("writable", False), item.get("size", 0)
    if kind not in ("bind", "proc", "tmpfs") or not isinstance(writable, bool):
        raise ValueError(f"{where}: type must be bind, proc or tmpfs, writable true or false")
    if not isinstance(source, str) or not isinstance(target, str):
        raise ValueError(f"{where}: source and target must be strings")
    if kind == "tmpfs" and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ValueError(f"{where}: a tmpfs needs \"size\", a number of bytes > 0")
    return checked(MountSpec(source, target, writable, kind, size if kind == "tmpfs" else 0),
                   where)


def checked(m: MountSpec, where: str) -> MountSpec:
    """Pure: the mount with normalised paths; ValueError when a path is relative,
    has "..", or the target is the jail root."""
    for name, path in (("target", m.target), *((("source", m.source),) if m.type == "bind"
                                               else ())):
        if not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{where}: {name} {path!r} must be absolute, without '..'")
    target = posixpath.normpath(m.target)
    if target == "/":
        raise ValueError(f"{where}: cannot mount over the jail root")
    source = posixpath.normpath(m.source) if m.type == "bind" else m.type
    return MountSpec(source, target, m.writable, m.type, m.size)


def parse_mount_arg(text: str) -> MountSpec:
    """Pure: `SRC:DST:ro|rw` (SRC "proc" mounts a procfs) from the command line."""
    parts = text.split(":")
    if len(parts) != 3 or parts[2] not in ("ro", "rw"):
        raise ValueError(f"--mount {text!r}: expected SRC:DST:ro or SRC:DST:rw "
                         "(paths with ':' go in a mount file)")
    kind: MountType = "proc" if parts[0] == "proc" else "bind"
    return checked(MountSpec(parts[0], parts[1], parts[2] == "rw", kind), f"--mount {text}")


def order(mounts: tuple[MountSpec, ...]) -> tuple[MountSpec, ...]:
    """Pure: parents before children; a target given twice is an error."""
    targets = [m.target for m in mounts]
    dup = next((t for t in targets if targets.count(t) > 1), None)
    if dup is not None:
        raise ValueError(f"two mounts have the target {dup}")
    return tuple(sorted(mounts, key=lambda m: (m.target.count("/"), m.target)))


def tmpfs_options(m: MountSpec) -> str:
    """Pure: the data of a tmpfs mount as launch.c makes it: bounded in bytes and inodes,
    sticky."""
    return f"size={m.size},nr_inodes={max(1024, m.size // 4096)},mode={TMPFS_MODE}"
