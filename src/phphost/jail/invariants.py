"""Safety invariants of a jail, checked over its manifest and facts of the jail on
disk. Pure: `gather_facts` (facts.jailscan) reads the facts.

- the jail root and every parent are root's and not group/world-writable (else a
  user could rename a directory and swap the jail under FPM's chroot);
- nothing setuid or setgid; no device nodes but null, zero, random and urandom;
- nothing owned by or writable for anyone but root, except the pool's own dirs;
- nothing from another tenant's home or another pool's jail: mount sources and
  copied files are checked against both (and no jail inside a tenant home).
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from phphost.errors import PlanError
from phphost.jail.diff import DiskEntry, PathStat
from phphost.jail.manifest import ALLOWED_DEVICES, Manifest, is_inside
from phphost.spec.model import Model
from phphost.spec.validate import PathIndex


@dataclass(frozen=True)
class JailFacts:
    root: str                                   # the jail root, symlinks resolved
    parents: tuple[PathStat, ...]               # root first, then each parent up to /
    entries: Mapping[str, DiskEntry] = field(default_factory=dict)  # scan_jail output


class Neighbours:
    """What must never show up inside this pool's jail: the other tenants' homes and
    the other pools' jail roots. Built once for a whole model (`neighbourhood`) and
    narrowed per pool with `excluding`, which shares the indexes: checking a source
    path costs a walk up its parents, not a comparison with every tenant."""

    def __init__(self, tenant_homes: Mapping[str, str] | None = None,
                 jail_roots: Mapping[str, str] | None = None, *,
                 own_tenant: str | None = None, own_pool: str | None = None,
                 shared: tuple[PathIndex[str], PathIndex[str]] | None = None) -> None:
        self.tenant_homes: Mapping[str, str] = tenant_homes or {}
        self.jail_roots: Mapping[str, str] = jail_roots or {}
        self.own_tenant = own_tenant
        self.own_pool = own_pool
        self._homes, self._roots = shared or (
            PathIndex((home, t) for t, home in self.tenant_homes.items()),
            PathIndex((root, p) for p, root in self.jail_roots.items()))

    def excluding(self, tenant: str, pool: str) -> Neighbours:
        """The same neighbourhood as seen by `pool` of `tenant` (both left out)."""
        return Neighbours(self.tenant_homes, self.jail_roots, own_tenant=tenant,
                          own_pool=pool, shared=(self._homes, self._roots))

    def homes_overlapping(self, path: str) -> list[tuple[str, str]]:
        """(tenant, home) of each other tenant whose home overlaps path, by tenant."""
        hits = self._homes.overlapping(path)
        return sorted({(t, home) for home, t in hits if t != self.own_tenant}) if hits else []

    def homes_containing(self, path: str) -> list[tuple[str, str]]:
        return sorted({(t, home) for home, t in self._homes.containing(path)
                       if t != self.own_tenant})

    def roots_overlapping(self, path: str) -> list[tuple[str, str]]:
        """(pool, root) of each other pool whose jail root overlaps path, by pool."""
        hits = self._roots.overlapping(path)
        return sorted({(p, root) for root, p in hits if p != self.own_pool}) if hits else []

    def names(self) -> tuple[dict[str, str], dict[str, str]]:
        """What this pool must not see, as plain dicts (for tests and messages)."""
        return ({t: h for t, h in self.tenant_homes.items() if t != self.own_tenant},
                {p: r for p, r in self.jail_roots.items() if p != self.own_pool})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Neighbours) and self.names() == other.names()

    def __repr__(self) -> str:
        homes, roots = self.names()
        return f"Neighbours({homes!r}, {roots!r})"


@dataclass(frozen=True)
class Violation:
    pool: str
    path: str
    problem: str
    remedy: str

    def __str__(self) -> str:
        return f"pool {self.pool!r}: {self.path}: {self.problem}. {self.remedy}"


def neighbourhood(model: Model, jail_root: Callable[[str], str]) -> Neighbours:
    """Pure: every tenant's home and every pool's jail root, indexed once; narrow it
    to one pool with `.excluding(tenant, pool)`."""
    return Neighbours({t.name: t.home for t in model.tenants},
                      {p.name: jail_root(p.name) for p in model.pools})


def neighbours_of(model: Model, pool: str, jail_root: Callable[[str], str]) -> Neighbours:
    """Pure: the other tenants' homes and the other pools' jail roots."""
    own = model.pool(pool)
    return neighbourhood(model, jail_root).excluding(own.tenant, pool)


def find_violations(manifest: Manifest, facts: JailFacts,
                    neighbours: Neighbours) -> list[Violation]:
    """Pure: every broken invariant, in a stable order."""
    found = _parents(manifest.pool, facts.parents)
    found += _on_disk(manifest, facts.entries)
    found += _sources(manifest, facts.root, neighbours)
    return found


def check_invariants(manifest: Manifest, facts: JailFacts, neighbours: Neighbours) -> None:
    """PlanError listing every violation, when there is one."""
    found = find_violations(manifest, facts, neighbours)
    if found:
        lines = "\n".join(f"  - {v}" for v in found)
        raise PlanError(f"jail of pool {manifest.pool!r} at {facts.root} is unsafe "
                        f"({len(found)} problem{'s' if len(found) > 1 else ''}):\n{lines}")


def _parents(pool: str, parents: tuple[PathStat, ...]) -> list[Violation]:
    out = []
    for p in parents:
        if p.uid != 0:
            out.append(Violation(pool, p.path, f"owned by uid {p.uid}",
                                 f"chown root:root {p.path}: the jail root and its parents "
                                 "must be root's, or their owner can swap the jail"))
        if p.mode & 0o022:
            out.append(Violation(pool, p.path, f"group/world-writable (mode {p.mode:04o})",
                                 f"chmod go-w {p.path}: whoever can write it can rename the "
                                 "jail away and put another tree in its place"))
    return out


def _on_disk(manifest: Manifest, entries: Mapping[str, DiskEntry]) -> list[Violation]:
    out = []
    pool_dirs = set(manifest.pool_dirs) | _dropped_pool_dirs(manifest, entries)
    # what the pool left in its old on-disk /tmp (now a tmpfs target): the build removes it
    scratch = [p for p in pool_dirs if (w := manifest.get(p)) is not None and w.fstype == "tmpfs"]
    for path, e in sorted(entries.items()):
        if any(path != top and is_inside(path, top) for top in scratch) \
                and e.uid == manifest.uid and e.kind in ("file", "dir", "symlink") \
                and not e.mode & (stat.S_ISUID | stat.S_ISGID):
            continue
        if (e.kind not in ("dir", "symlink") and e.mode & (stat.S_ISUID | stat.S_ISGID)
                and not _mailer(manifest, path, e)):
            out.append(Violation(manifest.pool, path, f"setuid/setgid (mode {e.mode:04o})",
                                 "remove it and rebuild the jail: nothing in a jail may "
                                 "change identity when run"))
        if e.kind == "device":
            out += _device(manifest.pool, path, e)
        elif e.kind != "symlink" and path not in pool_dirs:
            out += _writable(manifest, path, e)
    return out


def _mailer(manifest: Manifest, path: str, e: DiskEntry) -> bool:
    """The jail's sendmail as the 'mail' feature puts it: root's, read-only, setgid
    (never setuid) to phphost-mail, the group whose sockets alone reach the SMTP relay.
    Also when this manifest drops the feature: the build then removes it."""
    del path
    return (e.kind == "file" and not e.mode & (stat.S_ISUID | 0o222) and e.uid == 0
            and manifest.mail_gid is not None and e.gid == manifest.mail_gid != 0)


def _dropped_pool_dirs(manifest: Manifest, entries: Mapping[str, DiskEntry]) -> set[str]:
    """Directories this pool owned under an earlier manifest (a session dir after the
    'sessions' feature is dropped): the pool owned them all along, and the build
    removes them, so they are no reason to refuse it. The same for the pool-owned
    /tmp of a jail built before /tmp became a tmpfs: the build hands it to root."""
    wanted = manifest.by_path()
    return {path for path, e in entries.items()
            if e.kind == "dir" and manifest.uid is not None and e.uid == manifest.uid
            and (path not in wanted or wanted[path].fstype == "tmpfs")}


def _device(pool: str, path: str, e: DiskEntry) -> list[Violation]:
    allowed = ALLOWED_DEVICES.get(path)
    if allowed is not None and e.char and e.rdev == allowed:
        return []
    what = f"{'character' if e.char else 'block'} device {e.rdev}"
    return [Violation(pool, path, f"unexpected {what}",
                      f"remove it (rm {path} inside the jail); a jail holds only "
                      f"{', '.join(sorted(ALLOWED_DEVICES))}")]


def _writable(manifest: Manifest, path: str, e: DiskEntry) -> list[Violation]:
    if e.uid != 0:
        return [Violation(manifest.pool, path, f"owned by uid {e.uid}",
                          "rebuild the jail: only the pool's own /tmp and session "
                          "directory may belong to it")]
    if e.mode & 0o022:
        return [Violation(manifest.pool, path, f"group/world-writable (mode {e.mode:04o})",
                          "rebuild the jail: system files in a jail are read-only")]
    return []


def _sources(manifest: Manifest, root: str, neighbours: Neighbours) -> list[Violation]:
    out = []
    for tenant, _home in neighbours.homes_containing(root):
        out.append(Violation(manifest.pool, root, f"the jail lies in the home of tenant "
                                 f"{tenant!r}", "keep jails under /var/lib/phphost/jails"))
    for e in manifest.entries:
        source = e.host_path if e.kind == "file" or (e.kind == "mount" and e.fstype == "bind") \
            else None
        if source is not None:
            out += _foreign(manifest.pool, e.path, source, root, neighbours)
    return out


def _foreign(pool: str, path: str, source: str, root: str,
             neighbours: Neighbours) -> list[Violation]:
    out = []
    for tenant, home in neighbours.homes_overlapping(source):
        out.append(Violation(pool, path, f"comes from {source}, which overlaps the home "
                             f"{home} of tenant {tenant!r}",
                             "a jail may only see its own tenant's files; drop this mount"))
    jails = [j for j in neighbours.roots_overlapping(source) if j[0] != pool]
    if is_inside(source, root) or is_inside(root, source):
        jails = sorted([*jails, (pool, root)])
    for other, other_root in jails:
        whose = "this jail itself" if other == pool else f"the jail of pool {other!r}"
        out.append(Violation(pool, path, f"comes from {source}, which overlaps {whose} "
                             f"({other_root})", "never mount jails into jails; drop it"))
    return out
