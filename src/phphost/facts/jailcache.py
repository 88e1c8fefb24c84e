"""What lets a plan skip a jail it verified clean before (docs/scale.md).

After a plan finds a jail clean (invariants hold, nothing to change), it records, in
a root-only file, everything that decision rested on:

- a key: the phphost code, the pool and its tenant as the spec gives them (of the
  pool's FPM settings only those a jail reads, JAIL_SETTINGS), every tenant home and
  jail root (the neighbourhood the invariants checked against);
- the answers the manifest took from passwd, group and the hostname;
- the stat of every host path the manifest read (shared by all jails: one table),
  taken before the read; directories it listed with their mtime and ctime;
- the jail root (resolved) and its parents' owner and mode;
- for every directory of the jail it read, (dev, inode, mode, owner, mtime, ctime),
  from the descriptor it read, taken before reading it; for every entry a scan reads
  by lstat (devices, pool-owned directories, anything not linked to the store)
  what the scan made of it;
- the store: (dev, inode) -> (name, mode, owner) of every object.

The next plan trusts a jail only when all of it still holds: then its manifest,
scan, invariants and diff are skipped. A rename, link, unlink, chmod or chown in a
directory changes its mtime or ctime, and nobody can set a ctime back; a
modification in the same clock tick as the stat could keep it, so nothing whose
time lies within RACY_NS of the plan's start is recorded ("racy git"). Anything
missing, unreadable or different: the full path, as without a cache. The cache can
make a plan faster, never change what it decides.

Trust nothing a tenant can write: the file lives in root's state directory, is
written atomically (0600, never through a symlink), read only when root's and not
group/world-writable, and at most MAX_BYTES. Tenant-writable places (homes, writable
dirs, the pool's own directories) are never listed; the pool-owned directories in a
jail are recorded by what the scan reads of them (mode, owner), as the scan would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import stat
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phphost import __version__, files, layout, safefs
from phphost.facts.hostview import RealHostView
from phphost.facts.jailscan import disk_entry
from phphost.jail.closure import HostKind
from phphost.jail.diff import DiskEntry
from phphost.jail.invariants import JailFacts, Neighbours
from phphost.jail.manifest import Manifest
from phphost.safefs import DIR_FLAGS
from phphost.spec.model import Pool, Tenant

FORMAT = 1
MAX_BYTES = 256 << 20
RACY_NS = 1_000_000_000     # far above the coarse clock's tick (1-10 ms)
LD_FILES = (layout.LD_SO_CACHE, layout.LDD)

Sig = list[int] | None


# ---------------------------------------------------------------- host reads


def _full_sig(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns]


def _id_sig(st: os.stat_result) -> list[int]:
    """A directory that was only looked at, not listed: which one, whose, what mode."""
    return [st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid]


def host_sig(path: str, listed: bool) -> Sig:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _id_sig(st) if stat.S_ISDIR(st.st_mode) and not listed else _full_sig(st)


class RecordingHostView(RealHostView):
    """A RealHostView that stats each host path (and its parents) before its first
    read, and notes per jail what it answered from passwd, group and the hostname."""

    def __init__(self, etc: str = "/etc") -> None:
        super().__init__(etc)
        self.sigs: dict[str, Sig] = {}
        self.listed: set[str] = set()
        self.calls: list[tuple[str, str, str | None]] = []
        self._tables: dict[str, dict[str, str]] = {}

    def touch(self, path: str, listed: bool = False) -> None:
        if path in self.sigs and (not listed or path in self.listed):
            return
        if listed:
            self.listed.add(path)
        self.sigs[path] = host_sig(path, listed)
        parent = posixpath.dirname(path)
        if parent != path:
            self.touch(parent)

    def kind(self, path: str) -> HostKind | None:
        self.touch(path)
        return super().kind(path)

    def readlink(self, path: str) -> str | None:
        self.touch(path)
        return super().readlink(path)

    def listdir(self, path: str) -> tuple[str, ...]:
        self.touch(path, listed=True)
        return super().listdir(path)

    def head(self, path: str) -> bytes:
        self.touch(path)
        return super().head(path)

    def ldd(self, path: str) -> str:
        self.touch(path)
        for dep in LD_FILES:
            self.touch(dep)
        return super().ldd(path)

    def untrusted(self, path: str) -> str | None:
        self.touch(path)
        return super().untrusted(path)

    def digest(self, path: str) -> str:
        self.touch(path)
        return super().digest(path)

    def executable(self, path: str) -> bool:
        self.touch(path)
        self.touch(os.path.realpath(path))
        return super().executable(path)

    def passwd_entry(self, user: str) -> str | None:
        answer = self._lookup(self._passwd, user)
        self.calls.append(("passwd", user, answer))
        return answer

    def group_entry(self, group: str) -> str | None:
        answer = self._lookup(self._group, group)
        self.calls.append(("group", group, answer))
        return answer

    def hostname(self) -> str:
        answer = super().hostname()
        self.calls.append(("hostname", "", answer))
        return answer

    def _lookup(self, path: str, name: str) -> str | None:
        """The first line for name, from one read of the file per plan."""
        table = self._tables.get(path)
        if table is None:
            text = files.read_text(path) or ""
            table = {}
            for line in text.splitlines():
                table.setdefault(line.split(":", 1)[0], line)
            self._tables[path] = table
        return table.get(name)

    def replay(self, calls: Iterable[list[Any]]) -> bool:
        """Do passwd, group and the hostname still answer as recorded?"""
        for kind, arg, answer in calls:
            now = (self._lookup(self._passwd, arg) if kind == "passwd" else
                   self._lookup(self._group, arg) if kind == "group" else
                   RealHostView.hostname(self) if kind == "hostname" else object())
            if now != answer:
                return False
        return True


# ---------------------------------------------------------------- the key


_CODE: list[str] = []


def code_digest() -> str:
    """sha256 of every module of phphost (and its version): new code, new cache."""
    if not _CODE:
        top = os.path.dirname(os.path.abspath(__file__ + "/.."))
        h = hashlib.sha256(__version__.encode())
        for base, dirs, names in os.walk(top):
            dirs.sort()
            for name in sorted(n for n in names if n.endswith((".py", ".c"))):
                path = os.path.join(base, name)
                h.update(f"{os.path.relpath(path, top)}\0".encode())
                with open(path, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
        _CODE.append(h.hexdigest())
    return _CODE[0]


# what a jail reads of its pool's FPM settings (jail/features.py): the rest (sizes,
# timeouts, php_admin values) may change without a new walk of the jail;
# tests/unit/test_jail_key.py holds jail/ to this list
JAIL_SETTINGS = ("tmp_size",)


def jail_key(code: str, pool: Pool, tenant: Tenant, root: str) -> str:
    """code: code_digest(), the same for every pool."""
    jailed = [(f.name, getattr(pool, f.name)) for f in dataclasses.fields(pool)
              if f.name != "settings"]
    settings = [(name, getattr(pool.settings, name)) for name in JAIL_SETTINGS]
    return hashlib.sha256(repr((code, jailed, settings, tenant, root,
                                layout.SENDMAIL_BINARY)).encode()).hexdigest()


# ---------------------------------------------------------------- a jail's record


@dataclass
class JailRecord:
    key: str
    root: str                                   # resolved
    parents: list[list[Any]]                    # [path, uid, mode], root first
    shape: str                                  # id of the paths of its dirs (Cache.shapes)
    dirsig: str                                 # digest of their dir_sig()s, in that order
    checked: list[list[Any]]                    # [path, DiskEntry fields...]
    calls: list[list[Any]]                      # [kind, arg, answer]
    mounts: str                                 # the launcher's mounts file, as rendered
    sources: str                                # id of the files it copies (Cache.sources)
    binds: list[str]                            # sources of its bind mounts

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "root": self.root, "parents": self.parents,
                "shape": self.shape, "dirsig": self.dirsig, "checked": self.checked,
                "calls": self.calls,
                "mounts": self.mounts, "sources": self.sources, "binds": self.binds}

    @staticmethod
    def from_json(data: Any) -> JailRecord:
        rec = JailRecord(data["key"], data["root"], data["parents"], data["shape"],
                         data["dirsig"], data["checked"], data["calls"], data["mounts"],
                         data["sources"], data["binds"])
        if not all(isinstance(v, str) for v in (rec.key, rec.root, rec.mounts, rec.sources,
                                                rec.shape, rec.dirsig)) or \
                not all(isinstance(v, list) for v in (rec.parents, rec.checked,
                                                       rec.calls, rec.binds)) or \
                not all(isinstance(v, str) for v in rec.binds):
            raise ValueError("malformed jail record")
        return rec


def _entry_fields(e: DiskEntry) -> list[Any]:
    return [e.kind, e.mode, e.uid, e.gid, e.digest, e.target,
            list(e.rdev) if e.rdev is not None else None, e.char]


def host_sources(manifest: Manifest) -> tuple[tuple[str, ...], list[str]]:
    """The host paths the jail shows, what the invariants check against the other
    tenants' homes and jail roots: the files it copies (most jails copy the same)
    and the sources of its bind mounts (its tenant's home, ...)."""
    copied = {e.host_path for e in manifest.entries if e.host_path and e.kind == "file"}
    binds = {e.host_path for e in manifest.entries
             if e.host_path and e.kind == "mount" and e.fstype == "bind"}
    return tuple(sorted(copied)), sorted(binds)


def sources_id(sources: tuple[str, ...]) -> str:
    return hashlib.sha256("\0".join(sources).encode()).hexdigest()[:32]


def dir_sig(st: os.stat_result) -> tuple[int, ...]:
    """What proves a directory's listing, mode and owner unchanged."""
    return (st.st_mode, st.st_dev, st.st_ino, st.st_uid, st.st_gid, st.st_mtime_ns,
            st.st_ctime_ns)


def dirs_digest(stats: Iterable[os.stat_result]) -> str:
    return hashlib.sha256(repr([dir_sig(st) for st in stats]).encode()).hexdigest()


def shape_id(paths: list[str]) -> str:
    return hashlib.sha256("\0".join(paths).encode()).hexdigest()[:32]


def make_record(key: str, facts: JailFacts, walked: Mapping[str, os.stat_result],
                calls: Iterable[tuple[str, str, str | None]], mounts: str, sources: str,
                binds: list[str], since_ns: int) -> JailRecord | None:
    """The record of a jail just found clean (None: too fresh to trust, see RACY_NS)."""
    paths = sorted(walked)
    if any(max(walked[p].st_mtime_ns, walked[p].st_ctime_ns) >= since_ns - RACY_NS
           for p in paths):
        return None
    checked = [[path, *_entry_fields(e)] for path, e in sorted(facts.entries.items())
               if path not in walked and e.kind != "symlink"
               and not (e.kind == "file" and e.digest is not None)]
    return JailRecord(key, facts.root, [[p.path, p.uid, p.mode] for p in facts.parents],
                      shape_id(paths), dirs_digest([walked[p] for p in paths]), checked,
                      [list(c) for c in calls], mounts, sources, binds)


class Checker:
    """Checks records against the disk, with what all jails share looked up once."""

    def __init__(self, host: RecordingHostView, index: Mapping[tuple[int, int], str],
                 everyone: Neighbours, sources: Mapping[str, list[str]],
                 shapes: Mapping[str, list[str]]) -> None:
        self.shapes = shapes
        self.host = host
        self.index = index
        self.everyone = everyone
        self.sources = sources
        self._parents: dict[str, list[list[Any]]] = {}
        self._owners: dict[str, tuple[set[str], set[str]] | None] = {}

    def holds(self, rec: JailRecord, root: str, tenant: str, pool: str) -> bool:
        try:
            return (os.path.realpath(root) == rec.root and self.parents(rec.root) == rec.parents
                    and self._apart(rec, tenant, pool)
                    and self.host.replay(rec.calls) and self._on_disk(rec))
        except (OSError, ValueError, TypeError, IndexError):
            return False

    def _apart(self, rec: JailRecord, tenant: str, pool: str) -> bool:
        """The invariants about sources, against today's tenants and pools: no other
        tenant's home holds the jail, and none of its sources overlaps another
        tenant's home or another pool's jail root (its own root: unchanged since)."""
        owners = self.owners(rec.sources)
        if owners is None or not owners[0] <= {tenant} or not owners[1] <= {pool}:
            return False
        for src in rec.binds:
            if any(t != tenant for t, _h in self.everyone.homes_overlapping(src)) or \
                    any(p != pool for p, _r in self.everyone.roots_overlapping(src)):
                return False
        return not self.everyone.excluding(tenant, pool).homes_containing(rec.root)

    def owners(self, sid: str) -> tuple[set[str], set[str]] | None:
        """Tenants whose home and pools whose jail root overlap one of these sources
        (once per list: most jails show the same)."""
        if sid not in self._owners:
            paths = self.sources.get(sid)
            if not isinstance(paths, list) or sources_id(tuple(paths)) != sid:
                self._owners[sid] = None
            else:
                tenants = {t for src in paths for t, _h in self.everyone.homes_overlapping(src)}
                pools = {p for src in paths for p, _r in self.everyone.roots_overlapping(src)}
                self._owners[sid] = (tenants, pools)
        return self._owners[sid]

    def parents(self, path: str) -> list[list[Any]]:
        """[path, uid, mode] of path and each parent (what parent_stats reports)."""
        if path not in self._parents:
            try:
                st = os.lstat(path)
                here: list[list[Any]] = [[path, st.st_uid, stat.S_IMODE(st.st_mode)]]
            except FileNotFoundError:
                here = []
            up = posixpath.dirname(path)
            self._parents[path] = here + (self.parents(up) if up != path else [])
        return self._parents[path]

    def _on_disk(self, rec: JailRecord) -> bool:
        fd = os.open(rec.root, DIR_FLAGS)
        try:
            paths = self.shapes.get(rec.shape)
            if not isinstance(paths, list) or shape_id(paths) != rec.shape:
                return False
            stats = [os.fstat(fd) if path == "/" else
                     os.stat(path.lstrip("/"), dir_fd=fd, follow_symlinks=False)
                     for path in paths]
            if not all(stat.S_ISDIR(st.st_mode) for st in stats) or \
                    dirs_digest(stats) != rec.dirsig:
                return False
            for path, *want in rec.checked:
                st = os.stat(path.lstrip("/"), dir_fd=fd, follow_symlinks=False)
                now = disk_entry(st, self.index.get((st.st_dev, st.st_ino)), None)
                if _entry_fields(now) != want:
                    return False
            return True
        finally:
            os.close(fd)


# ---------------------------------------------------------------- the file


@dataclass
class Cache:
    code: str = ""
    host: dict[str, Sig] = field(default_factory=dict)
    store: list[list[Any]] = field(default_factory=list)    # [dev, ino, name, mode, uid, gid]
    jails: dict[str, JailRecord] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)    # id -> host paths
    shapes: dict[str, list[str]] = field(default_factory=dict)     # id -> dirs of a jail

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "code": self.code, "host": self.host,
                           "store": self.store, "sources": self.sources, "shapes": self.shapes,
                           "jails": {p: r.to_json() for p, r in sorted(self.jails.items())}},
                          separators=(",", ":"))


def load(path: str = layout.JAIL_CACHE_FILE) -> Cache | None:
    """The recorded cache; None when missing, not root's, too big or malformed."""
    try:
        data = json.loads(safefs.read_file(path, MAX_BYTES, root_only=True))
        if data.get("format") != FORMAT or data.get("code") != code_digest():
            return None
        host, store, sources, shapes = data["host"], data["store"], data["sources"], \
            data["shapes"]
        if not isinstance(host, dict) or not isinstance(store, list) or \
                not isinstance(sources, dict) or not isinstance(shapes, dict):
            return None
        jails = {str(p): JailRecord.from_json(r) for p, r in data["jails"].items()}
        return Cache(data["code"], host, store, jails, sources, shapes)
    except (OSError, safefs.UnsafePath, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(cache: Cache, path: str = layout.JAIL_CACHE_FILE) -> None:
    """Written atomically, 0600, in a directory only root can write. A failure to
    write it only costs the next plan its speed."""
    with contextlib.suppress(OSError, safefs.UnsafePath):
        files.atomic_write(path, cache.to_json(), 0o600)


Gone = tuple[int, int, str]         # a store object the GC removed: (dev, inode, name)


def without_gone(store: list[list[Any]], gone: Collection[Gone]) -> list[list[Any]]:
    """The recorded store table less the objects the GC removed, matched by device,
    inode and name: an entry whose name now means another inode (an object root
    changed and put() replaced) stays, and fails store_holds as it should."""
    drop = set(gone)
    return [obj for obj in store if len(obj) < 3 or (obj[0], obj[1], obj[2]) not in drop]


def forget_objects(removed: Collection[Gone], path: str = layout.JAIL_CACHE_FILE) -> None:
    """The store's garbage collection removed these objects after the cache was
    written (an apply that removed jails and built none, so wrote no record after
    it): they leave the recorded store, or the next plan would trust no jail at all.
    It removes only objects no jail links to, and a jail that linked one when its
    record was made has lost that link since, which changed a directory its record
    holds: no record that still holds depends on them."""
    cache = load(path) if removed else None
    if cache is None:
        return
    kept = without_gone(cache.store, removed)
    if len(kept) < len(cache.store):
        save(dataclasses.replace(cache, store=kept), path)


def host_holds(recorded: Mapping[str, Sig]) -> bool:
    """Does every host path the recorded manifests read still stat the same?"""
    try:
        return all(host_sig(path, sig is not None and len(sig) == 8) == sig
                   for path, sig in recorded.items())
    except (OSError, TypeError, IndexError):
        return False


def store_table(objects: Mapping[tuple[int, int], tuple[str, int, int, int]]
                ) -> list[list[Any]]:
    return [[dev, ino, *obj] for (dev, ino), obj in sorted(objects.items())]


def store_holds(recorded: list[list[Any]],
                objects: Mapping[tuple[int, int], tuple[str, int, int, int]]) -> bool:
    """Is every recorded store object still there, with the same name, mode, owner?"""
    try:
        return all(list(objects.get((dev, ino), ())) == rest for dev, ino, *rest in recorded)
    except (TypeError, ValueError):
        return False


def racy(sigs: Mapping[str, Sig], since_ns: int) -> bool:
    """Did a host path the manifests read change too close to the plan's start?"""
    return any(sig is not None and len(sig) == 8 and max(sig[6], sig[7]) >= since_ns - RACY_NS
               for sig in sigs.values())


def now_ns() -> int:
    return time.time_ns()
