"""A jail as it is on disk: scanning (lstat, never following symlinks), the mount
table of this namespace, and removal that cannot leave the jail.

Every walk here works on directory file descriptors opened with O_NOFOLLOW, checks
the device of each directory it enters, and never descends into directories owned
by anyone but root (the pool's own /tmp and session dir): a pool process renaming
things under us cannot redirect a removal outside the jail.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from phphost.errors import HostError

DiskKind = Literal["dir", "file", "symlink", "device", "other"]
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class DiskEntry:
    kind: DiskKind
    mode: int                        # stat.S_IMODE: permission, setuid, setgid, sticky bits
    uid: int
    gid: int
    digest: str | None = None        # files: name of the store object this is a link of
    target: str | None = None        # symlinks
    rdev: tuple[int, int] | None = None   # devices
    char: bool = True                # devices: character (False: block)


@dataclass(frozen=True)
class PathStat:
    path: str
    uid: int
    mode: int


# ---------------------------------------------------------------- mount table (pure)


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


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return fh.read()


def refuse_mounts(root: str, what: str) -> None:
    """HostError when anything is mounted in the jail in this mount namespace."""
    found = mounts_under(root, read_mountinfo())
    if found:
        raise HostError(
            f"cannot {what} {root}: {', '.join(found)} mounted there in this mount namespace. "
            "Jail mounts belong in the FPM master's private namespace only; phphost "
            "never deletes through a mount. Unmount them (umount PATH) and run again")


# ---------------------------------------------------------------- scanning


def _entry(st: os.stat_result, digest: str | None, target: str | None) -> DiskEntry:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return DiskEntry("dir", mode, st.st_uid, st.st_gid)
    if stat.S_ISREG(st.st_mode):
        return DiskEntry("file", mode, st.st_uid, st.st_gid, digest=digest)
    if stat.S_ISLNK(st.st_mode):
        return DiskEntry("symlink", mode, st.st_uid, st.st_gid, target=target)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        return DiskEntry("device", mode, st.st_uid, st.st_gid, rdev=rdev,
                         char=stat.S_ISCHR(st.st_mode))
    return DiskEntry("other", mode, st.st_uid, st.st_gid)


def scan_jail(root: str, store_index: Mapping[tuple[int, int], str] | None = None,
              prune: Collection[str] = ()) -> dict[str, DiskEntry]:
    """Everything in the jail, keyed by path inside the jail ("/" is the root).

    Does not descend into directories that are not root's (the pool's data), that
    lie on another device, or whose jail path is in `prune`. Files linked to a store
    object carry its name as digest (store_index: (st_dev, st_ino) -> name)."""
    index = store_index or {}
    try:
        fd = os.open(root, DIR_FLAGS)
    except FileNotFoundError:
        return {}
    try:
        top = os.fstat(fd)
        found = {"/": _entry(top, None, None)}
        for path, st, target in _walk(fd, "/", top.st_dev, prune):
            found[path] = _entry(st, index.get((st.st_dev, st.st_ino)), target)
        return found
    finally:
        os.close(fd)


def _walk(fd: int, where: str, dev: int, prune: Collection[str]
          ) -> Iterator[tuple[str, os.stat_result, str | None]]:
    with os.scandir(fd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        path = posixpath.join(where, name)
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
        yield path, st, target
        if (stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_dev == dev
                and path not in prune):
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            try:
                yield from _walk(sub, path, dev, prune)
            finally:
                os.close(sub)


def parent_stats(root: str) -> tuple[PathStat, ...]:
    """The jail root and each of its parents up to /, after resolving symlinks (the
    directories that really hold the jail); parts not created yet are left out."""
    out = []
    path = os.path.realpath(root)
    while True:
        try:
            st = os.lstat(path)
        except FileNotFoundError:   # not built yet: check what exists
            path = posixpath.dirname(path)
            continue
        out.append(PathStat(path, st.st_uid, stat.S_IMODE(st.st_mode)))
        if path == "/":
            return tuple(out)
        path = posixpath.dirname(path)


# ---------------------------------------------------------------- removal


@contextlib.contextmanager
def open_parent(root: str, path: str) -> Iterator[tuple[int, str]]:
    """(fd of the directory holding jail path `path`, its last name), walking from
    the jail root with O_NOFOLLOW so no symlink can lead elsewhere."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ValueError("the jail root has no parent inside the jail")
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts[:-1]:
            sub = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = sub
        yield fd, parts[-1]
    finally:
        os.close(fd)


def remove_path(root: str, path: str) -> None:
    """Remove jail path `path` (a whole tree when a directory) without following
    symlinks, without leaving the jail root's device."""
    dev = os.stat(root, follow_symlinks=False).st_dev
    with open_parent(root, path) as (fd, name):
        _remove_at(fd, name, dev, f"{root.rstrip('/')}{path}")


def _remove_at(fd: int, name: str, dev: int, shown: str) -> None:
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=fd)
        return
    if st.st_dev != dev:
        raise HostError(f"refusing to remove {shown}: it is on another filesystem "
                        "(a mount point); unmount it first")
    sub = os.open(name, DIR_FLAGS, dir_fd=fd)
    try:
        with os.scandir(sub) as it:
            names = [e.name for e in it]
        for child in names:
            _remove_at(sub, child, dev, f"{shown}/{child}")
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=fd)
