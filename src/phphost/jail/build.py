"""Materialise a manifest under a jail root, in place.

In place, because a running FPM master's private namespace holds bind mounts on the
jail's directories: replacing the tree would leave it looking at the old one. Files
are replaced atomically (link beside, rename over), entries no longer wanted are
removed without following symlinks or leaving the filesystem, and nothing is done
while anything is mounted inside the jail in the namespace we run in.

`diff_jail` and `jail_listing` are pure, for `phphost plan` and `phphost jail show`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from phphost.errors import HostError
from phphost.jail.invariants import JailFacts
from phphost.jail.manifest import Entry, Manifest, is_inside
from phphost.jail.ondisk import (
    DIR_FLAGS,
    DiskEntry,
    parent_stats,
    refuse_mounts,
    remove_path,
    scan_jail,
)
from phphost.jail.store import STORE_DIR, Store, object_name

JAILS_DIR = "/var/lib/phphost/jails"

Action = Literal["create", "update", "remove"]


def default_root(pool: str) -> str:
    return f"{JAILS_DIR}/{pool}"


@dataclass(frozen=True)
class Change:
    action: Action
    path: str           # inside the jail
    kind: str
    why: str = ""
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        why = f" [{self.why}]" if self.why else ""
        return f"{self.action} {self.kind} {self.path}{extra}{why}"


# ---------------------------------------------------------------- pure diff


_DISK_KIND = {"dir": "dir", "mount": "dir", "file": "file", "symlink": "symlink",
              "device": "device"}


def _mismatch(entry: Entry, disk: DiskEntry, ids: tuple[int, int] | None) -> str:
    """Pure: why the disk entry is not what the manifest wants ("" = it is)."""
    if _DISK_KIND[entry.kind] != disk.kind:
        return f"was a {disk.kind}"
    if entry.kind == "symlink":
        return "" if disk.target == entry.source else f"target {disk.target} -> {entry.source}"
    if entry.kind == "device" and (disk.rdev != entry.device or not disk.char):
        return f"device {disk.rdev} -> {entry.device}"
    if entry.kind == "file" and disk.digest != object_name(entry.digest, entry.mode):
        return "content"
    problems = []
    if disk.mode != entry.mode:
        problems.append(f"mode {disk.mode:04o} -> {entry.mode:04o}")
    if ids is not None and (disk.uid, disk.gid) != ids:
        problems.append(f"owner {disk.uid}:{disk.gid} -> {ids[0]}:{ids[1]}")
    return ", ".join(problems)


def _ids(manifest: Manifest, entry: Entry) -> tuple[int, int] | None:
    if entry.owner == "pool":
        if manifest.uid is None or manifest.gid is None:
            return None
        return manifest.uid, manifest.gid
    return 0, 0


def diff_jail(manifest: Manifest, on_disk: Mapping[str, DiskEntry]) -> list[Change]:
    """Pure: what building `manifest` over `on_disk` (scan_jail output) changes.
    Removals first (the topmost path of each removed tree), then creations and
    updates parents first. An empty list means the jail is up to date."""
    want = manifest.on_disk()
    gone: list[str] = []
    changes: list[Change] = []
    for path, entry in sorted(want.items()):
        disk = on_disk.get(path)
        if disk is None:
            changes.append(Change("create", path, entry.kind, entry.why, _source(entry)))
            continue
        problem = _mismatch(entry, disk, _ids(manifest, entry))
        if problem:
            changes.append(Change("update", path, entry.kind, entry.why, problem))
            if problem.startswith("was a "):
                gone.append(path)
    removals = []
    for path in sorted(on_disk):
        if path in want or any(is_inside(path, top) for top in gone):
            continue
        removals.append(Change("remove", path, on_disk[path].kind))
        gone.append(path)
    return removals + changes


def _source(entry: Entry) -> str:
    if entry.kind == "mount" and entry.fstype == "tmpfs":
        return f"rw tmpfs size={entry.size // (1024 * 1024)}M noexec"
    if entry.kind == "mount":
        return f"{'rw' if entry.writable else 'ro'} {entry.fstype} {entry.source}"
    if entry.kind == "symlink":
        return f"-> {entry.source}"
    if entry.kind == "device" and entry.device is not None:
        return f"c {entry.device[0]},{entry.device[1]}"
    if entry.kind == "file":
        return f"from {entry.source}" if entry.host_path else "generated"
    return ""


@dataclass(frozen=True)
class ListingRow:
    path: str
    kind: str
    detail: str
    mode: str
    owner: str
    why: str


def jail_listing(manifest: Manifest) -> list[ListingRow]:
    """Pure: rows for `phphost jail show POOL`: every file, symlink, device, mount and
    pool-owned directory, with the feature or program that brought it in."""
    rows = []
    for e in manifest.entries:
        if e.kind == "dir" and e.owner == "root":
            continue
        mode = "" if e.kind == "symlink" else f"{e.mode:04o}"
        rows.append(ListingRow(e.path, e.kind, _source(e), mode, e.owner, e.why))
    return rows


# ---------------------------------------------------------------- side effects


def build_jail(manifest: Manifest, root: str, store_dir: str = STORE_DIR) -> list[Change]:
    """Bring the jail at `root` to `manifest`, in place. Returns what changed."""
    if manifest.pending:
        raise HostError(f"pool {manifest.pool!r}: {', '.join(manifest.pending)} need the "
                        "pool user, which does not exist yet; create users first")
    _ensure_root(root)
    refuse_mounts(root, "build the jail")
    store = Store(store_dir)
    store.ensure(same_fs_as=root)
    # nothing is mounted here (refuse_mounts): mount targets are plain directories
    on_disk = scan_jail(root, store.index())
    changes = diff_jail(manifest, on_disk)
    _refuse_under_mount_targets(manifest, changes, root)
    want = manifest.on_disk()
    with DirFds(root) as dirs:
        for change in changes:
            if change.action == "remove" or change.detail.startswith("was a "):
                dirs.forget(change.path)
                remove_path(root, change.path)
            if change.action != "remove":
                _materialise(dirs, want[change.path], manifest, store, change.action)
    return changes


def _refuse_under_mount_targets(manifest: Manifest, changes: list[Change], root: str) -> None:
    """A mount target is an empty directory on the host. Anything found beneath one
    was put there by hand: say so instead of deleting it."""
    # a tmpfs target may hold what the pool left in it when it was a pool-owned dir
    # (a jail built before /tmp became a tmpfs): the pool's own scratch, removed
    targets = [e.path for e in manifest.mounts if e.fstype != "tmpfs"]
    for change in changes:
        top = next((t for t in targets if change.action == "remove"
                    and change.path != t and is_inside(change.path, t)), None)
        if top is not None:
            raise HostError(
                f"pool {manifest.pool!r}: {root.rstrip('/')}{change.path} lies under the "
                f"mount target {top}, which must be an empty directory; phphost never "
                "deletes under a mount target. Move it away by hand and run again")


class DirFds:
    """Directory fds of the jail being built, each opened once, relative to its
    parent's fd with O_NOFOLLOW: no path is resolved through the host namespace."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fds: dict[str, int] = {}

    def __enter__(self) -> DirFds:
        self.fds["/"] = os.open(self.root, DIR_FLAGS)
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def get(self, path: str) -> int:
        if path not in self.fds:
            parent = self.get(posixpath.dirname(path))
            self.fds[path] = os.open(posixpath.basename(path), DIR_FLAGS, dir_fd=parent)
        return self.fds[path]

    def forget(self, path: str) -> None:
        for cached in [p for p in self.fds if p != "/" and is_inside(p, path)]:
            os.close(self.fds.pop(cached))


def _ensure_root(root: str) -> None:
    parent = os.path.dirname(root.rstrip("/"))
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755)
    if not os.path.lexists(root):
        os.mkdir(root, 0o755)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise HostError(f"jail root {root} exists and is not a directory; move it away")


def _materialise(dirs: DirFds, entry: Entry, manifest: Manifest, store: Store,
                 action: Action) -> None:
    uid, gid = manifest.owner_ids(entry.owner)
    if entry.kind in ("dir", "mount"):
        if entry.path != "/" and (action == "create" or not _is_dir(dirs, entry.path)):
            parent = dirs.get(posixpath.dirname(entry.path))
            os.mkdir(posixpath.basename(entry.path), 0o700, dir_fd=parent)
        fd = dirs.get(entry.path)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, entry.mode)
        return
    fd, name = dirs.get(posixpath.dirname(entry.path)), posixpath.basename(entry.path)
    tmp = f".phphost-{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=fd)
    _make(fd, tmp, entry, store)
    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)


def _is_dir(dirs: DirFds, path: str) -> bool:
    try:
        st = os.stat(posixpath.basename(path), dir_fd=dirs.get(posixpath.dirname(path)),
                     follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode)


def _make(fd: int, tmp: str, entry: Entry, store: Store) -> None:
    if entry.kind == "symlink":
        os.symlink(str(entry.source), tmp, dir_fd=fd)
    elif entry.kind == "device" and entry.device is not None:
        os.mknod(tmp, stat.S_IFCHR | entry.mode, os.makedev(*entry.device), dir_fd=fd)
        os.chmod(tmp, entry.mode, dir_fd=fd)   # a device node we just made: no link to follow
    elif entry.kind == "file":
        obj = store.put(entry.digest, entry.mode, source=entry.host_path, content=entry.content)
        os.link(obj, tmp, dst_dir_fd=fd, follow_symlinks=False)
    else:
        raise HostError(f"cannot materialise {entry.kind} {entry.path}")


def remove_jail(root: str) -> list[str]:
    """Remove a whole jail (its pool is gone). Refuses while anything is mounted in it
    in this namespace; never follows symlinks or leaves the filesystem. Returns the
    removed top-level paths."""
    if not os.path.lexists(root):
        return []
    refuse_mounts(root, "remove the jail")
    names = sorted(os.listdir(root))
    for name in names:
        remove_path(root, f"/{name}")
    os.rmdir(root)
    return [posixpath.join("/", n) for n in names]


def gather_facts(root: str) -> JailFacts:
    """Facts of the jail on disk for jail.invariants (a jail not built yet has none
    but its existing parents)."""
    real = os.path.realpath(root)
    return JailFacts(real, parent_stats(real), scan_jail(real))
