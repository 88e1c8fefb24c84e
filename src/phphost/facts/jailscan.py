"""A jail as it is on disk, read only: scanning (lstat, never following symlinks),
the mount table of this namespace, the jail root's parents, the store's index.

Every walk here works on directory file descriptors opened with O_NOFOLLOW, checks
the device of each directory it enters, and never descends into directories owned
by anyone but root (the pool's own /tmp and session dir). Removal, which relies on
the same discipline, is host.jailbuild's.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Collection, Mapping

from phphost.jail.diff import DiskEntry, PathStat
from phphost.jail.invariants import JailFacts
from phphost.safefs import DIR_FLAGS

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


disk_entry = _entry      # what a scan makes of one lstat (facts.jailcache checks with it)


class ScanCache:
    """Entries of files linked to the jail store, by (st_dev, st_ino): every jail
    links the same store objects (zoneinfo, libraries), so a plan over 1,000 jails
    stats each object once, not once per jail. Only for one scan session: a store
    object's mode or owner is read when the session first meets it."""

    def __init__(self, symlink_owners: bool = True) -> None:
        self.files: dict[tuple[int, int], DiskEntry] = {}
        # False: a symlink is only read (its target), not stat'ed; its mode, uid and gid
        # read as 0o777, -1, -1. Planning needs no more: no invariant and no diff looks
        # at a symlink's owner (its target is all it is), and it is never descended
        self.symlink_owners = symlink_owners


def scan_jail(root: str, store_index: Mapping[tuple[int, int], str] | None = None,
              prune: Collection[str] = (), cache: ScanCache | None = None,
              walked: dict[str, os.stat_result] | None = None) -> dict[str, DiskEntry]:
    """Everything in the jail, keyed by path inside the jail ("/" is the root).

    Does not descend into directories that are not root's (the pool's data), that
    lie on another device, or whose jail path is in `prune`. Files linked to a store
    object carry its name as digest (store_index: (st_dev, st_ino) -> name); with a
    `cache`, such a file is recognised by the inode its directory entry names and
    not stat'ed again (directories, symlinks, devices and other files always are).
    `walked` receives the fstat of every directory read, taken before it was read
    (facts.jailcache: what proves next time that a listing did not change)."""
    index = store_index or {}
    try:
        fd = os.open(root, DIR_FLAGS)
    except FileNotFoundError:
        return {}
    try:
        top = os.fstat(fd)
        found = {"/": _entry(top, None, None)}
        walk = _Walk(index, prune, top.st_dev, cache or ScanCache(), found)
        walk.walked = walked
        walk.directory(fd, "/")
        return found
    finally:
        os.close(fd)


class _Walk:
    def __init__(self, index: Mapping[tuple[int, int], str], prune: Collection[str],
                 dev: int, cache: ScanCache, found: dict[str, DiskEntry]) -> None:
        self.index = index
        self.prune = prune
        self.dev = dev
        self.cache = cache
        self.found = found
        self.walked: dict[str, os.stat_result] | None = None

    def directory(self, fd: int, where: str) -> None:
        if self.walked is not None:
            self.walked[where] = os.fstat(fd)
        with os.scandir(fd) as it:
            by_name = {e.name: e for e in it}
        entries = [by_name[n] for n in sorted(by_name)]
        prefix = where if where.endswith("/") else where + "/"
        for item in entries:
            path = prefix + item.name
            key = (self.dev, item.inode())
            known = self.cache.files.get(key) if key[1] and key in self.index else None
            if known is not None and item.is_file(follow_symlinks=False):
                self.found[path] = known
                continue
            if not self.cache.symlink_owners and item.is_symlink():
                self.found[path] = DiskEntry("symlink", 0o777, -1, -1,
                                             target=os.readlink(item.name, dir_fd=fd))
                continue
            st = os.stat(item.name, dir_fd=fd, follow_symlinks=False)
            target = os.readlink(item.name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
            entry = _entry(st, self.index.get((st.st_dev, st.st_ino)), target)
            self.found[path] = entry
            if entry.kind == "file" and entry.digest is not None:
                self.cache.files[(st.st_dev, st.st_ino)] = entry
            if (stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_dev == self.dev
                    and path not in self.prune):
                sub = os.open(item.name, DIR_FLAGS, dir_fd=fd)
                try:
                    self.directory(sub, path)
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


def gather_facts(root: str, store: Mapping[tuple[int, int], str] | None = None,
                 cache: ScanCache | None = None,
                 walked: dict[str, os.stat_result] | None = None) -> JailFacts:
    """Facts of the jail on disk for jail.invariants (a jail not built yet has none
    but its existing parents). With the store's index, the entries also serve
    jail.diff (one scan for both)."""
    real = os.path.realpath(root)
    return JailFacts(real, parent_stats(real), scan_jail(real, store, cache=cache, walked=walked))


def store_index(path: str) -> dict[tuple[int, int], str]:
    """(st_dev, st_ino) -> object name of the jail store at path, for recognising
    links on disk ({} when there is no store)."""
    return {key: obj[0] for key, obj in store_objects(path).items()}


def store_objects(path: str) -> dict[tuple[int, int], tuple[str, int, int, int]]:
    """(st_dev, st_ino) -> (name, mode, uid, gid) of each object of the jail store
    at path: everything a scan of a jail learns from a file linked to one."""
    found: dict[tuple[int, int], tuple[str, int, int, int]] = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(path) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:       # removed meanwhile (the store's GC)
                continue
            if stat.S_ISREG(st.st_mode) and not entry.name.startswith("."):
                found[(st.st_dev, st.st_ino)] = (entry.name, stat.S_IMODE(st.st_mode),
                                                 st.st_uid, st.st_gid)
    return found
