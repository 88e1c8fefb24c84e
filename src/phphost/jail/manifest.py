"""A pool's jail as data: every directory, file, symlink, device node and mount the
pool's workers see after chroot, each with the feature or program that brought it in.
Pure: host facts come from a HostView (jail.closure), never from the host directly.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from phphost.errors import PlanError
from phphost.jail.closure import Closure, HostView

Kind = Literal["dir", "file", "symlink", "device", "mount"]
# "mail": root's, group phphost-mail (the setgid sendmail of the 'mail' feature)
Owner = Literal["root", "pool", "mail"]

# The only device nodes a jail may hold: (major, minor) of the Linux mem devices.
ALLOWED_DEVICES: dict[str, tuple[int, int]] = {
    "/dev/null": (1, 3),
    "/dev/zero": (1, 5),
    "/dev/random": (1, 8),
    "/dev/urandom": (1, 9),
}

DIR_MODE = 0o755
FILE_MODE = 0o444
EXEC_MODE = 0o555
DEVICE_MODE = 0o666
POOL_DIR_MODE = 0o700


@dataclass(frozen=True)
class Entry:
    """One thing inside a jail. `path` is the path inside the jail.

    source: files - host path they are copied from (None when generated: `content`);
    symlinks - the raw link target; devices - (major, minor); mounts - host path
    (or "proc" for a procfs mount, fstype "proc"; "tmpfs" for the private /tmp).
    owner "pool" is the pool's runtime user (its private /tmp, its session dir);
    everything else is root's and not writable by the pool.
    """

    path: str
    kind: Kind
    source: str | tuple[int, int] | None = None
    mode: int = DIR_MODE
    owner: Owner = "root"
    why: str = ""
    writable: bool = False          # mounts: read-write bind
    digest: str = ""                # files: sha256 of the content ("" = not known yet)
    content: bytes | None = None    # generated files
    fstype: str = "bind"            # mounts: "bind", "proc" or "tmpfs"
    size: int = 0                   # tmpfs mounts: bytes

    def same_thing(self, other: Entry) -> bool:
        """Equal in everything but `why`."""
        return replace(self, why="") == replace(other, why="")

    @property
    def host_path(self) -> str | None:
        return self.source if isinstance(self.source, str) else None

    @property
    def device(self) -> tuple[int, int] | None:
        return self.source if isinstance(self.source, tuple) else None


@dataclass(frozen=True)
class Manifest:
    pool: str
    uid: int | None         # the pool user's ids (None: user not created yet)
    gid: int | None
    entries: tuple[Entry, ...]  # sorted by path
    mail_gid: int | None = None  # group phphost-mail (None: not created yet)

    def get(self, path: str) -> Entry | None:
        return next((e for e in self.entries if e.path == path), None)

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    def on_disk(self) -> dict[str, Entry]:
        """What the jail directory holds on the host: everything but the mounts that
        lie inside another mount (their targets come with the outer mount)."""
        tops = [e.path for e in self.entries if e.kind == "mount"]
        if "/" in tops:
            return {e.path: e for e in self.entries if e.path == "/"}
        below = tuple(t.rstrip("/") + "/" for t in tops)
        return {e.path: e for e in self.entries if not e.path.startswith(below)}

    @property
    def mounts(self) -> tuple[Entry, ...]:
        """Mount entries, parents before children (the order to mount them in)."""
        found = [e for e in self.entries if e.kind == "mount"]
        return tuple(sorted(found, key=lambda e: (e.path.count("/"), e.path)))

    @property
    def pool_dirs(self) -> tuple[str, ...]:
        """Directories the pool writes (private /tmp, sessions): never pruned by builds."""
        return tuple(e.path for e in self.entries if e.kind == "dir" and e.owner == "pool")

    @property
    def pending(self) -> tuple[str, ...]:
        """Generated files whose content needs facts not there yet (the pool user)."""
        return tuple(e.path for e in self.entries if e.kind == "file" and not e.digest)

    @property
    def needs_mail_group(self) -> bool:
        return any(e.owner == "mail" for e in self.entries)

    def owner_ids(self, owner: Owner) -> tuple[int, int]:
        if owner == "root":
            return 0, 0
        if owner == "mail":
            if self.mail_gid is None:
                raise PlanError(f"pool {self.pool!r}: group phphost-mail does not exist yet; "
                                "create it before building the jail")
            return 0, self.mail_gid
        if self.uid is None or self.gid is None:
            raise PlanError(f"pool {self.pool!r}: its runtime user does not exist yet; "
                            "create users before building the jail")
        return self.uid, self.gid


def generated(path: str, text: str | None, why: str) -> Entry:
    """A root-owned read-only file with generated content (None: content pending)."""
    if text is None:
        return Entry(path, "file", None, FILE_MODE, why=why)
    data = text.encode()
    return Entry(path, "file", None, FILE_MODE, why=why, content=data,
                 digest=hashlib.sha256(data).hexdigest())


def is_inside(path: str, top: str) -> bool:
    """Pure: path equals top or lies beneath it (both normalised absolute paths)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


class ManifestBuilder:
    """Accumulates entries; the same path brought in twice must be the same thing."""

    def __init__(self, pool: str, host: HostView) -> None:
        self.pool = pool
        self.host = host
        self.entries: dict[str, Entry] = {}

    def put(self, entry: Entry) -> None:
        path = posixpath.normpath(entry.path)
        if path != entry.path:
            entry = replace(entry, path=path)
        old = self.entries.get(path)
        if old is None:
            self.entries[path] = entry
            return
        if not old.same_thing(entry):
            raise PlanError(
                f"pool {self.pool!r}: jail path {path} is wanted as {_describe(old)} "
                f"(by {old.why}) and as {_describe(entry)} (by {entry.why}); "
                "change the mount target or program so they do not collide")
        whys = old.why.split(", ")
        if entry.why not in whys:
            self.entries[path] = replace(old, why=f"{old.why}, {entry.why}")

    def put_closure(self, closure: Closure, why: str) -> None:
        for entry in self.closure_entries(closure, why):
            self.put(entry)

    def closure_entries(self, closure: Closure, why: str) -> list[Entry]:
        """The entries a closure brings in (not put yet)."""
        out = []
        for need in closure.needs.values():
            if need.kind == "symlink":
                out.append(Entry(need.path, "symlink", need.link, 0o777, why=why))
            elif need.kind == "dir":
                out.append(Entry(need.path, "dir", None, DIR_MODE, why=why))
            else:
                mode = EXEC_MODE if self.host.executable(need.path) else FILE_MODE
                out.append(Entry(need.path, "file", need.path, mode, why=why,
                                 digest=self.host.digest(need.path)))
        return out

    def finish(self, uid: int | None, gid: int | None,
               mail_gid: int | None = None) -> Manifest:
        self._add_parents()
        self._check_shape()
        entries = tuple(sorted(self.entries.values(), key=lambda e: e.path))
        return Manifest(self.pool, uid, gid, entries, mail_gid)

    def _add_parents(self) -> None:
        """Directories above every entry, except those a mount provides: a writable
        dir deep in the tenant home is mounted over the home's own mount."""
        mounts = [p for p, e in self.entries.items() if e.kind == "mount"]
        for path in list(self.entries):
            parent = posixpath.dirname(path)
            while parent not in self.entries:
                if not any(is_inside(parent, m) for m in mounts):
                    self.entries[parent] = Entry(parent, "dir", None, DIR_MODE, why="parent")
                if parent == "/":
                    break
                parent = posixpath.dirname(parent)

    def _check_shape(self) -> None:
        """Every entry against every ancestor in the manifest. Parents first: an entry
        whose parent is a root-owned directory already checked needs no further walk
        (its other ancestors are its parent's, which passed for a non-mount entry, the
        strictest case)."""
        clean: set[str] = set()     # root-owned dirs whose ancestors all passed
        for path in sorted(self.entries):
            entry = self.entries[path]
            if posixpath.dirname(path) not in clean or path == "/":
                for parent in _ancestors(path):
                    if parent in self.entries:      # else a mount provides it
                        self._check_parent(entry, self.entries[parent])
            if entry.kind == "dir" and entry.owner != "pool":
                clean.add(path)

    def _check_parent(self, entry: Entry, parent: Entry) -> None:
        where = f"pool {self.pool!r}: jail path {entry.path} (from {entry.why})"
        if parent.kind in ("file", "symlink", "device"):
            raise PlanError(
                f"{where} lies beneath {parent.path}, which is a {parent.kind} in the jail "
                f"(from {parent.why}); use the real path"
                + (f" (the link points to {parent.source})" if parent.kind == "symlink" else ""))
        if parent.kind == "mount" and parent.fstype == "tmpfs":
            raise PlanError(f"{where} lies in {parent.path}, the pool's private tmpfs, a "
                            "directory the pool writes; mount somewhere else")
        if parent.kind == "mount" and (entry.kind != "mount" or
                                       (entry.why == "base" and parent.why != "base")):
            # a base bind (tzdata) under another mount would need its target inside
            # that mount's source
            raise PlanError(f"{where} would be hidden by the mount at {parent.path}; "
                            "mount somewhere else or drop the feature that needs the path")
        if parent.kind == "dir" and parent.owner == "pool":
            raise PlanError(f"{where} lies in {parent.path}, a directory the pool writes; "
                            "mount targets and system files must be in root-owned directories")


def _ancestors(path: str) -> Iterable[str]:
    parent = posixpath.dirname(path)
    while path != "/":
        yield parent
        path, parent = parent, posixpath.dirname(parent)


def _describe(entry: Entry) -> str:
    if entry.kind == "mount":
        return f"a {'rw' if entry.writable else 'ro'} mount of {entry.source}"
    if entry.kind == "symlink":
        return f"a symlink to {entry.source}"
    if entry.kind == "file":
        return f"a file from {entry.source or 'generated content'}"
    return f"a {entry.kind}"
