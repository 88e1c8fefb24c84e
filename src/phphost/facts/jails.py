"""Jail facts for planning: each jailed pool's manifest (from the host's files,
ldd, passwd), what building it would change, and the safety invariants. A jail a
plan verified clean before and that provably did not change since is not walked
again (facts.jailcache). Read-only but for that cache, root's own file."""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Collection
from dataclasses import dataclass

from phphost import forked, layout
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
        rec = self.record(pool)
        if rec is not None and self.holds(pool, rec):
            return self.keep(pool, rec)
        return self.scan(pool)

    def record(self, pool: Pool) -> jc.JailRecord | None:
        """The cache's record of this jail, if it was made for the pool as it is now
        (it still has to hold on disk)."""
        root = layout.jail_root(pool.name)
        rec = self.old.jails.get(pool.name) if self.old is not None and self.trusted else None
        key = jc.jail_key(self.code, pool, self.model.tenant(pool.tenant), root)
        return rec if rec is not None and rec.key == key else None

    def holds(self, pool: Pool, rec: jc.JailRecord) -> bool:
        return self.checker.holds(rec, layout.jail_root(pool.name), pool.tenant, pool.name)

    def keep(self, pool: Pool, rec: jc.JailRecord) -> JailState:
        self.kept[pool.name] = rec
        return JailState(pool.name, layout.jail_root(pool.name), None, (), rec.mounts)

    def scan(self, pool: Pool) -> JailState:
        root = layout.jail_root(pool.name)
        key = jc.jail_key(self.code, pool, self.model.tenant(pool.tenant), root)
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


# fewer jails to check than this: checked in the process itself (a fork costs more)
FORK_AT = 64


class PendingJails:
    """gather_jails in two halves, for a plan (cli/main.py _plan). The jails whose
    cached record was made for the pool as it is now are taken as recorded at once
    (`states`), and checked against the disk in a child process (forked.fork_worker:
    at 1,000 jails about 60,000 stats, a third of a one-pool change) while the plan
    reads the rest of the host on this core; the others are scanned here meanwhile.
    `also`: more of the host to read in the child after the check (what it returns
    must pickle). `settle` waits for the child: `held` says whether every record held;
    a jail whose record did not hold is scanned like any other (the plan is then made
    again from the corrected states). The cache is written after."""

    def __init__(self, model: Model, only: Collection[str] | None = None,
                 cache_file: str = layout.JAIL_CACHE_FILE,
                 also: Callable[[], object] = lambda: None) -> None:
        self.run = _Run(model, cache_file)
        self.cache_file = cache_file
        self.also = also
        self.order: list[str] = []
        self.skipped: list[str] = []
        self.recorded: dict[str, tuple[Pool, jc.JailRecord]] = {}
        self.states: dict[str, JailState] = {}
        self.held: bool | None = None           # None: not settled yet
        self.also_value: object = None
        unknown: list[Pool] = []
        for p in model.pools:
            if not p.jail.enabled:
                continue
            if only is not None and p.name not in only:
                self.skipped.append(p.name)
                continue
            self.order.append(p.name)
            rec = self.run.record(p)
            if rec is None:
                unknown.append(p)
            else:
                self.recorded[p.name] = (p, rec)
        self.pid: int | None = None
        self.answer: int | None = None      # our end of the child's pipe
        if len(self.recorded) >= FORK_AT:
            self._fork()
        try:
            for p in unknown:
                self.states[p.name] = self.run.scan(p)
        except BaseException:       # a jail that breaks an invariant: no child left behind
            self.cancel()
            raise
        for name, (_p, rec) in self.recorded.items():
            self.states[name] = JailState(name, layout.jail_root(name), None, (), rec.mounts)
        self.states = {n: self.states[n] for n in self.order}

    def _check(self) -> list[str]:
        return [n for n, (p, rec) in self.recorded.items() if not self.run.holds(p, rec)]

    def _fork(self) -> None:
        try:
            mine, theirs = os.pipe()        # the child writes, this process reads
        except OSError:
            return

        def check() -> None:
            os.close(mine)
            failed = self._check()
            forked.write_all(theirs, pickle.dumps((failed, self.also())))
            os.close(theirs)

        def keep(pid: int) -> None:
            self.pid, self.answer = pid, mine

        started = forked.fork_worker(check, "the plan's check of the cached jails", keep)
        os.close(theirs)
        if not started:
            os.close(mine)

    def _answer(self) -> tuple[set[str], object]:
        """The jails whose record did not hold and what `also` read, as the child
        found them (both done here when there was no child, or it failed)."""
        if self.pid is not None and self.answer is not None:
            fd, self.answer = self.answer, None     # read_all closes it, whatever happens
            try:
                data = forked.read_all(fd)
            except OSError:
                data = b""
            code = forked.reap(self.pid)
            self.pid = None
            said: object = None
            if code == 0 and data:
                # our own child's words, through a pipe only the two of us hold
                with contextlib.suppress(pickle.UnpicklingError, ValueError, EOFError):
                    said = pickle.loads(data)   # noqa: S301
            if isinstance(said, tuple) and len(said) == 2 and isinstance(said[0], list) \
                    and all(isinstance(n, str) and n in self.recorded for n in said[0]):
                return set(said[0]), said[1]
        return set(self._check()), self.also()

    def settle(self) -> object:
        """Wait for the check (once); what `also` read. self.held: every cached record
        held (the states stand); else the ones that failed are scanned now."""
        if self.held is not None:
            return self.also_value
        failed, self.also_value = self._answer()
        for name, (p, rec) in self.recorded.items():
            if name in failed:
                self.states[name] = self.run.scan(p)
            else:
                self.run.keep(p, rec)
        self.run.save(self.cache_file, self.skipped)
        self.held = not failed
        return self.also_value

    def cancel(self) -> None:
        """The plan failed: end the child (our own, by pid), then close our end."""
        if self.pid is not None:
            forked.end(self.pid)
            self.pid = None
        if self.answer is not None:
            fd, self.answer = self.answer, None
            with contextlib.suppress(OSError):
                os.close(fd)
