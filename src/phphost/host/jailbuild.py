"""Materialise a manifest under a jail root, in place.

In place, because a running FPM master's private namespace holds bind mounts on the
jail's directories: replacing the tree would leave it looking at the old one. Files
are replaced atomically (link beside, rename over), entries no longer wanted are
removed without following symlinks or leaving the filesystem, and nothing is done
while anything is mounted inside the jail in the namespace we run in.

What to change is jail.diff's (pure); reading the jail is facts.jailscan's.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterator

from phphost import layout
from phphost.errors import HostError
from phphost.facts.jailscan import scan_jail
from phphost.files import read_mountinfo
from phphost.host.jailstore import Store
from phphost.jail.diff import Action, Change, diff_jail
from phphost.jail.manifest import Entry, Manifest, is_inside
from phphost.jail.mounts import mounts_under
from phphost.safefs import DIR_FLAGS


def build_jail(manifest: Manifest, root: str, store_dir: str = layout.STORE_DIR) -> list[Change]:
    """Bring the jail at `root` to `manifest`, in place. Returns what changed."""
    if manifest.pending:
        raise HostError(f"pool {manifest.pool!r}: {', '.join(manifest.pending)} need the "
                        "pool user, which does not exist yet; create users first")
    _ensure_root(root)
    refuse_mounts(root, "build the jail")
    store = Store(store_dir)
    store.ensure(same_fs_as=root)
    # nothing is mounted here (refuse_mounts): mount targets are plain directories
    # a new (empty) jail needs no index of the store's links (a scan of every object)
    on_disk = scan_jail(root, store.index() if os.listdir(root) else None)
    changes = diff_jail(manifest, on_disk)
    _refuse_under_mount_targets(manifest, changes, root)
    want = manifest.on_disk()
    hidden = base_binds(manifest)
    with DirFds(root) as dirs:
        for change in changes:
            if change.action == "remove" and _beneath(change.path, hidden):
                continue        # the running master still reads it: prune_hidden, later
            if change.action == "remove" or change.detail.startswith("was a "):
                dirs.forget(change.path)
                remove_path(root, change.path)
            if change.action != "remove":
                _materialise(dirs, want[change.path], manifest, store, change.action)
    return changes


def base_binds(manifest: Manifest) -> list[str]:
    """The targets of the base feature's binds (tzdata). A jail built before tzdata
    was bound holds the tree linked in there, which its running master still reads
    until it is restarted with the bind: builds leave it, and prune_hidden removes it
    once every master has the bind (apply, after the commit point)."""
    return [e.path for e in manifest.mounts if e.why == "base" and e.fstype != "tmpfs"]


def _beneath(path: str, tops: list[str]) -> bool:
    return any(path != top and is_inside(path, top) for top in tops)


def prune_hidden(manifest: Manifest, root: str) -> list[str]:
    """Remove what lies beneath the base feature's bind targets (the jail paths
    removed): only root can write there, and no master reads it any more."""
    refuse_mounts(root, "prune the jail")
    removed = []
    for top in base_binds(manifest):
        try:
            with open_parent(root, top) as (pfd, name):
                fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
                try:
                    names = sorted(os.listdir(fd))
                finally:
                    os.close(fd)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            remove_path(root, f"{top}/{name}")
            removed.append(f"{top}/{name}")
    return removed


def _refuse_under_mount_targets(manifest: Manifest, changes: list[Change], root: str) -> None:
    """A mount target is an empty directory on the host. Anything found beneath one
    was put there by hand: say so instead of deleting it."""
    # the base feature's targets may hold what older builds put there, removed: /tmp
    # what the pool left in it when it was a pool-owned dir (before it became a
    # tmpfs), /usr/share/zoneinfo the tree builds linked in before tzdata was bound
    targets = [e.path for e in manifest.mounts if e.why != "base"]
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
    # jails are built two at once: on a new host both may make the parent
    os.makedirs(parent, mode=0o755, exist_ok=True)
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
    owner_gid = gid if entry.owner == "mail" else 0
    if action == "create":          # nothing there: made in place, one call
        with contextlib.suppress(FileExistsError):      # something appeared: replace it
            _make(fd, name, entry, store, owner_gid)
            return
    tmp = f".phphost-{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=fd)
    _make(fd, tmp, entry, store, owner_gid)
    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)


def _is_dir(dirs: DirFds, path: str) -> bool:
    try:
        st = os.stat(posixpath.basename(path), dir_fd=dirs.get(posixpath.dirname(path)),
                     follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode)


def _make(fd: int, tmp: str, entry: Entry, store: Store, gid: int) -> None:
    if entry.kind == "symlink":
        os.symlink(str(entry.source), tmp, dir_fd=fd)
    elif entry.kind == "device" and entry.device is not None:
        os.mknod(tmp, stat.S_IFCHR | entry.mode, os.makedev(*entry.device), dir_fd=fd)
        os.chmod(tmp, entry.mode, dir_fd=fd)   # a device node we just made: no link to follow
    elif entry.kind == "file":
        obj = store.put(entry.digest, entry.mode, source=entry.host_path, content=entry.content,
                        gid=gid)
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


# ---------------------------------------------------------------- removal


def refuse_mounts(root: str, what: str) -> None:
    """HostError when anything is mounted in the jail in this mount namespace."""
    found = mounts_under(root, read_mountinfo())
    if found:
        raise HostError(
            f"cannot {what} {root}: {', '.join(found)} mounted there in this mount namespace. "
            "Jail mounts belong in the FPM master's private namespace only; phphost "
            "never deletes through a mount. Unmount them (umount PATH) and run again")


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
