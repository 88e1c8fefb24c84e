"""Jail facts for planning: each jailed pool's manifest (from the host's files,
ldd, passwd), what building it would change, and the safety invariants. A jail a
plan verified clean before and that provably did not change since is not walked
again (facts.jailcache). Read-only but for that cache, root's own file."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass

from phphost import layout
from phphost.facts import jailcache as jc
from phphost.facts.hostview import RealHostView
from phphost.facts.jailscan import ScanCache, gather_facts, store_objects
from phphost.jail.diff import Change, diff_jail
from phphost.jail.features import ClosureCache, build_manifest
from phphost.jail.invariants import Neighbours, check_invariants, neighbourhood
from phphost.jail.manifest import Manifest
from phphost.jail.mounts import render_mounts_json
from phphost.spec.model import Model, Pool


@dataclass(frozen=True)
class JailState:
    pool: str
    root: str
    manifest: Manifest | None       # None: trusted from the cache, nothing to change
    changes: tuple[Change, ...]
    mounts: str = ""                # the launcher's mounts file (when manifest is None)

    def for_desired(self) -> Manifest | str:
        """What desired_state needs of this jail: its manifest or its mounts file."""
        return self.manifest if self.manifest is not None else self.mounts


def manifest_for(model: Model, pool: Pool, host: RealHostView | None = None,
                 cache: ClosureCache | None = None) -> Manifest:
    return build_manifest(pool, model.tenant(pool.tenant), host or RealHostView(), cache=cache)


def _store_objects() -> dict[tuple[int, int], tuple[str, int, int, int]]:
    return store_objects(layout.STORE_DIR) if os.path.isdir(layout.STORE_DIR) else {}


def jail_state(model: Model, pool: Pool, host: RealHostView, index: dict[tuple[int, int], str],
               everyone: Neighbours, cache: ClosureCache | None = None,
               scans: ScanCache | None = None,
               walked: dict[str, os.stat_result] | None = None) -> JailState:
    """PlanError when the jail on disk (or its parents) breaks an invariant. walked:
    receives the directories the scan read (for the cache's record)."""
    root = layout.jail_root(pool.name)
    manifest = manifest_for(model, pool, host, cache)
    facts = gather_facts(root, index, scans, walked)   # one scan: invariants and diff alike
    check_invariants(manifest, facts, everyone.excluding(pool.tenant, pool.name))
    on_disk = facts.entries if os.path.isdir(root) else {}
    return JailState(pool.name, root, manifest, tuple(diff_jail(manifest, on_disk)))


class _Run:
    """One gather_jails: what every jail shares, and the records it makes."""

    def __init__(self, model: Model, cache_file: str) -> None:
        self.model = model
        self.since = jc.now_ns()
        self.host = jc.RecordingHostView()
        self.objects = _store_objects()
        self.index = {key: obj[0] for key, obj in self.objects.items()}
        self.everyone = neighbourhood(model, layout.jail_root)
        self.code = jc.code_digest()
        self.old = jc.load(cache_file)
        self.trusted = (self.old is not None and jc.store_holds(self.old.store, self.objects)
                        and jc.host_holds(self.old.host))
        self.checker = jc.Checker(self.host, self.index, self.everyone,
                                  self.old.sources if self.old is not None else {},
                                  self.old.shapes if self.old is not None else {})
        self.sources: dict[str, list[str]] = {}
        self.shapes: dict[str, list[str]] = {}
        self.closures, self.scans = ClosureCache(), ScanCache(symlink_owners=False)
        self.kept: dict[str, jc.JailRecord] = {}       # trusted from the old cache
        self.made: dict[str, jc.JailRecord] = {}       # verified by this run

    def jail(self, pool: Pool) -> JailState:
        root = layout.jail_root(pool.name)
        key = jc.jail_key(self.code, pool, self.model.tenant(pool.tenant), root)
        rec = self.old.jails.get(pool.name) if self.old is not None and self.trusted else None
        if rec is not None and rec.key == key and \
                self.checker.holds(rec, root, pool.tenant, pool.name):
            self.kept[pool.name] = rec
            return JailState(pool.name, root, None, (), rec.mounts)
        self.host.calls = []
        manifest = manifest_for(self.model, pool, self.host, self.closures)
        calls = list(self.host.calls)
        walked: dict[str, os.stat_result] = {}
        facts = gather_facts(root, self.index, self.scans, walked)
        check_invariants(manifest, facts, self.everyone.excluding(pool.tenant, pool.name))
        built = os.path.isdir(root)
        changes = tuple(diff_jail(manifest, facts.entries if built else {}))
        mounts = render_mounts_json(manifest)
        if built and not changes:
            sources, binds = jc.host_sources(manifest)
            sid = jc.sources_id(sources)
            made = jc.make_record(key, facts, walked, calls, mounts, sid, binds, self.since)
            if made is not None:
                self.made[pool.name] = made
                self.sources.setdefault(sid, list(sources))
                self.shapes.setdefault(made.shape, sorted(walked))
        return JailState(pool.name, root, manifest, changes, mounts)

    def save(self, cache_file: str, skipped: Collection[str], gone: Collection[jc.Gone] = ()
             ) -> None:
        """Record the jails verified clean: those trusted again, those this run found
        clean, and (a tenant-limited run) those it did not look at. Pools gone from
        the model lose their record. gone: store objects the garbage collection
        removed since the scan, left out of the recorded store. It removes only objects
        no jail links to (link count 1), and a jail that linked one when its record was
        made must have lost that link since, which changed a directory its record holds:
        no record that still holds depends on them. Matched by device, inode and name
        (jailcache.without_gone). When the GC ran before this run read the store, the
        old record is judged again without them."""
        if gone:
            drop = set(gone)
            self.objects = {k: v for k, v in self.objects.items()
                            if (k[0], k[1], v[0]) not in drop}
            if self.old is not None and not self.trusted:
                store = jc.without_gone(self.old.store, drop)
                self.trusted = (jc.store_holds(store, self.objects)
                                and jc.host_holds(self.old.host))
        old = self.old if self.trusted else None
        records = dict(self.kept)
        if old is not None:
            records.update({p: r for p, r in old.jails.items() if p in skipped})
        host = dict(old.host) if old is not None and records else {}
        # a host file that changed during this run, or too recently to tell: nothing
        # this run read of the host is trusted next time
        clash = any(host.get(path, sig) != sig for path, sig in self.host.sigs.items())
        if not clash and not jc.racy(self.host.sigs, self.since):
            host.update(self.host.sigs)
            records.update(self.made)
        store = jc.store_table(self.objects)
        if old is not None and records == old.jails and host == old.host and store == old.store:
            return      # nothing new: the file stays as it is
        known = {**(old.sources if old is not None else {}), **self.sources}
        sources = {r.sources: known[r.sources] for r in records.values() if r.sources in known}
        shapes = {**(old.shapes if old is not None else {}), **self.shapes}
        shapes = {r.shape: shapes[r.shape] for r in records.values() if r.shape in shapes}
        jc.save(jc.Cache(self.code, host, store, records, sources, shapes), cache_file)


def gather_jails(model: Model, only: Collection[str] | None = None,
                 cache_file: str = layout.JAIL_CACHE_FILE,
                 settle: Callable[[], Collection[jc.Gone] | None] | None = None
                 ) -> dict[str, JailState]:
    """only: these pools' jails (a tenant-limited plan leaves the others as they are).
    settle, called after the scan and before the cache is written: the store objects
    the garbage collection removed since the plan, or None to write nothing
    (cli/confirm.py)."""
    run = _Run(model, cache_file)
    out: dict[str, JailState] = {}
    skipped = []
    for p in model.pools:
        if not p.jail.enabled:
            continue
        if only is not None and p.name not in only:
            skipped.append(p.name)
            continue
        out[p.name] = run.jail(p)
    gone = settle() if settle is not None else ()
    if gone is not None:
        run.save(cache_file, skipped, gone)
    return out
