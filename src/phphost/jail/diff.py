"""A jail on disk as data, and what building a manifest over it changes. Pure:
`facts.jailscan` reads the disk into DiskEntry/PathStat, `host.jailbuild` acts on
the Changes; `diff_jail` and `jail_listing` serve `phphost plan` and `phphost jail show`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from phphost.jail.manifest import Entry, Manifest, is_inside

DiskKind = Literal["dir", "file", "symlink", "device", "other"]


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


def object_name(digest: str, mode: int, gid: int = 0) -> str:
    """Pure: the store name of content `digest` with permission bits `mode` and group
    `gid` (not root only for the jail's setgid sendmail, docs/network.md)."""
    if mode & 0o7000 or gid:
        return f"{digest}.{mode:04o}.{gid}"
    return f"{digest}.x" if mode & 0o111 else digest


Action = Literal["create", "update", "remove"]


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
    gid = ids[1] if ids is not None and entry.owner == "mail" else 0
    if entry.kind == "file" and disk.digest != object_name(entry.digest, entry.mode, gid):
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
    if entry.owner == "mail":
        return None if manifest.mail_gid is None else (0, manifest.mail_gid)
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
