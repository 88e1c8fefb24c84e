"""Execute a Plan: transactional up to and including validation, then services.
Any failure or SIGTERM/SIGINT rolls every recorded change back."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Protocol, TypeVar

from phphost import files, layout, safefs
from phphost.errors import HostError, PhphostError
from phphost.facts import cgroups as cgroup_facts
from phphost.facts.jailcache import Gone
from phphost.host import cgroups, identities, jails, launcher, nftables, services, staging
from phphost.host.journal import Journal
from phphost.host.tls import check_files
from phphost.plan import actions as A
from phphost.runner import run

Progress = Callable[[int, int, str], None]
# measured on 2 cores: 0.30 s a jail alone, 0.25 s each two at once (filesystem-bound)
JAIL_BUILDS_AT_ONCE = 2
T = TypeVar("T", bound=A.Action)


class Interrupted(HostError):
    """A signal arrived during apply; everything was rolled back."""


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"apply interrupted by signal {signum}; changes were rolled back")


def recover(journal: Journal | None = None) -> list[str]:
    """Roll back what a killed apply left half-done. Returns what was undone."""
    journal = journal or Journal()
    return journal.rollback() if journal.exists() else []


class JailHook(Protocol):
    """Told when the plan's jails are built and which store objects the garbage
    collection after the commit point removed (cli/confirm.py)."""

    def built(self) -> None: ...

    def collected(self, removed: list[Gone]) -> None: ...


def execute(plan: A.Plan, progress: Progress, hook: JailHook | None = None) -> list[str]:
    """Carry out exactly the plan's actions: everything apply needs is in them."""
    journal = Journal()
    journal.begin()
    old = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGINT)}
    runner = _Runner(plan, journal, progress, hook)
    try:
        runner.stage()
        runner.services()
        _save_state(plan)
        journal.close()
    except PhphostError:
        _roll_back(journal, runner)
        raise
    except Exception as err:
        _roll_back(journal, runner)
        what = runner.current.describe() if runner.current else "preparing the changes"
        raise HostError(f"{what} failed unexpectedly ({type(err).__name__}: {err}); every "
                        "change of this apply was rolled back. Please report this") from err
    except BaseException:
        _roll_back(journal, runner)
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    runner.cleanup()
    return runner.done


def _roll_back(journal: Journal, runner: _Runner) -> None:
    made = [str(e["path"]) for e in journal.entries() if e["k"] == "cgroupdir"]
    journal.rollback()
    programs = runner.plan.one(A.UpdatePrograms)
    if runner.services_touched:
        _resync(programs.resync if programs else ())
        cgroups.remove_when_empty(made)     # masters this apply started are gone only now


def _save_state(plan: A.Plan) -> None:
    state = next(a for a in plan.actions if isinstance(a, A.SaveState)).state
    files.atomic_write(layout.STATE_FILE, json.dumps(state, indent=1) + "\n", 0o600)


def _resync(programs: tuple[str, ...]) -> None:
    """After rolling files back past the point where services saw them: supervisord
    takes the restored program files, and every pool whose file is back runs again
    (one that apply had stopped included), each step tried even if one fails."""
    with contextlib.suppress(HostError):
        services.update_programs(list(programs))
    with contextlib.suppress(HostError):
        services.ensure_running(list(programs))
    with contextlib.suppress(HostError):
        services.apache_reload(restart=False)


class _Runner:
    def __init__(self, plan: A.Plan, journal: Journal, progress: Progress,
                 hook: JailHook | None = None):
        self.plan = plan
        self.hook = hook
        self.programs = plan.one(A.UpdatePrograms) or A.UpdatePrograms("none")
        self.journal = journal
        self.progress = progress
        self.total = len(plan.changes)
        self.done: list[str] = []
        self.services_touched = False
        self.current: A.Action | None = None
        self.user_groups: set[str] = set()
        self.apache_staged = False      # the staged test read the plan's tree alone

    def _step(self, action: A.Action) -> None:
        self.done.append(action.describe())
        self.progress(len(self.done), self.total, action.describe())

    def _of(self, *kinds: type[A.Action]) -> list[A.Action]:
        return [a for a in self.plan.actions if isinstance(a, kinds)]

    def _all(self, kind: type[T]) -> list[T]:
        return [a for a in self.plan.actions if isinstance(a, kind)]

    def _masters(self) -> list[A.StartMaster | A.RestartMaster | A.ReloadMaster]:
        return [a for a in self.plan.actions
                if isinstance(a, (A.StartMaster, A.RestartMaster, A.ReloadMaster))]

    def stage(self) -> None:
        """Everything before services, in an order where nothing unvalidated goes live:
        Apache's config is validated on a staged copy, then the TLS files (a TLS file
        in anyone else's reach was already refused by plan, facts.unsafe); then
        identities and jails (FPM's own test needs the users, log dir and chroot they
        make); then every pool config the plan writes passes php-fpm -t beside the live
        one; only then are live files written. Touches no service."""
        fpm_first = self._validate_first()
        staging.validate_extensions(self.plan.actions)
        for t in self._all(A.CheckTls):   # trust was refused at plan time (facts.unsafe)
            self.current = t
            check_files(t.site, t.cert, t.key, t.chain)
            self._step(t)
        identity = self._of(A.EnsureGroup, A.EnsureUser, A.EnsureDir, A.SetAcl)
        self.user_groups = _user_groups(identity)
        for run_of in _user_runs(identity, self.user_groups):
            self.current = run_of[0]
            made = [u for u in run_of if isinstance(u, A.EnsureUser)]
            if len(run_of) > 1 and _new_pool_user(run_of[0]):
                identities.create_pool_users(self.journal, [(u.name, u.group) for u in made])
            elif len(run_of) > 1:    # new tenant users, each with its new group
                identities.create_tenant_users(self.journal, [(u.name, u.home) for u in made])
            else:
                self._identity(run_of[0])
            for a in run_of:
                self._step(a)
        builds = self._all(A.BuildJail)
        self._build_jails(builds)
        if builds and self.hook is not None:
            self.hook.built()
        for c in self._all(A.SetCgroup):
            self.current = c
            if c.cgroup is not None:
                cgroups.apply(c.cgroup, self.journal.record)
            self._step(c)
        if not fpm_first:
            staging.validate_fpm(self.plan.actions)
        for load in self._all(A.LoadNftables):
            self.current = load
            nftables.check(load.content)
        nft = self._of(A.LoadNftables, A.UnloadNftables)
        old_policy = files.read_text(layout.NFT_CONF) if nft else None
        for a in self._of(A.WriteFile, A.RemoveFile, A.Symlink, A.ApacheModule):
            self.current = a
            self._file(a)
            self._step(a)
        for n in nft:
            self.current = n
            self._network(n, old_policy)
            self._step(n)
        if self._of(A.ReloadApache) and not self.apache_staged:
            # the live tree as it is now: the staged test did not run, or did not read
            # the staged tree alone (an apache2.conf with an absolute ServerRoot or
            # Include reads live files there: staging.read_as_staged)
            services.apache_configtest()
        staged = {a.path for a in staging.fpm_conf_writes(self.plan.actions)}
        for m in self._masters():
            if layout.fpm_conf(m.pool) not in staged:
                services.fpm_test(m.pool)

    def _validate_first(self) -> bool:
        """Apache's config on a staged copy (nothing live yet). When the plan makes no
        user, directory or jail, the pool configs' php-fpm -t needs nothing this apply
        makes: it runs at the same time, on the other core (both are processes of
        their own; a one-pool change at 1,000 tenants waited for each in turn). True
        when it ran."""
        if self._of(A.EnsureGroup, A.EnsureUser, A.EnsureDir, A.SetAcl, A.BuildJail):
            self.apache_staged = bool(staging.validate_apache(self.plan.actions))
            return False
        with ThreadPoolExecutor(max_workers=1) as other:
            fpm = other.submit(staging.validate_fpm, self.plan.actions)
            try:
                self.apache_staged = bool(staging.validate_apache(self.plan.actions))
            finally:
                fpm_error = fpm.exception()
        if fpm_error is not None:
            raise fpm_error
        return True

    def _build_jails(self, builds: list[A.BuildJail]) -> None:
        """Each jail from the manifest the plan carries (no new walk of the host), several
        at once: a build is mostly link/symlink/mkdir calls, which run outside the GIL.
        Every new jail is journaled before any build starts; the first failure in plan
        order is raised once the builds under way have finished (none is left half-way
        while rollback removes it), and the ones not started are cancelled."""
        for j in builds:
            self.current = j
            if j.manifest is None:
                raise HostError(f"the plan has no manifest for the jail of pool {j.pool}")
            if not jails.exists(j.pool):
                self.journal.record({"k": "jail", "name": j.pool})
        pool = ThreadPoolExecutor(max_workers=JAIL_BUILDS_AT_ONCE)
        try:
            running = [(j, pool.submit(jails.build, j.manifest, j.user, j.group))
                       for j in builds if j.manifest is not None]
            for j, future in running:
                self.current = j
                future.result()
                self._step(j)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _file(self, a: A.Action) -> None:
        if isinstance(a, A.WriteFile):
            self.journal.record_path(a.path)
            files.atomic_write(a.path, a.content, a.mode)
            if a.path == layout.LAUNCHER_SOURCE:      # the binary is built from it
                self.journal.record_path(layout.LAUNCHER)
                self.journal.record_path(layout.LAUNCHER_DIGEST)
                launcher.build_launcher(layout.LAUNCHER, a.path)
        elif isinstance(a, A.RemoveFile):
            self.journal.record_path(a.path)
            files.remove(a.path)
            if a.path == layout.LAUNCHER_SOURCE:
                for built in (layout.LAUNCHER, layout.LAUNCHER_DIGEST):
                    self.journal.record_path(built)
                    files.remove(built)
        elif isinstance(a, A.Symlink):
            self.journal.record_path(a.link)
            files.atomic_symlink(a.link, a.target)
        elif isinstance(a, A.ApacheModule):
            self.journal.record_modules()
            argv = ["a2enmod", "-q", a.module] if a.enable else ["a2dismod", "-q", "-f", a.module]
            run(argv)

    def _network(self, a: A.Action, old_policy: str | None) -> None:
        """Before services: new and changed pools start under their policy. The undo
        loads the file as it was before this apply, or deletes the table if none was."""
        self.journal.record_path(layout.NFT_LOADED)
        self.journal.record({"k": "nft", "name": " ".join(layout.NFT_TABLE),
                             "old": old_policy})
        if isinstance(a, A.LoadNftables):
            nftables.load(a.path)
        else:
            nftables.delete()

    def _identity(self, a: A.Action) -> None:
        j = self.journal
        if isinstance(a, A.EnsureGroup) and a.name in self.user_groups:
            identities.record_group(j, a.name)      # its user's useradd makes it
        elif isinstance(a, A.EnsureGroup):
            identities.create_group(j, a.name)
        elif isinstance(a, A.EnsureUser) and a.exists:
            identities.set_primary_group(j, a.name, a.group)
        elif isinstance(a, A.EnsureUser):
            identities.create_user(j, a.name, a.group, a.home, a.system,
                                   with_group=a.name in self.user_groups)
        elif isinstance(a, A.EnsureDir):
            identities.ensure_dir(j, a.path, a.owner, a.group, a.mode)
        elif isinstance(a, A.SetAcl):
            identities.set_acl(j, a.path, a.entries, a.recursive)

    def services(self) -> None:
        masters = [*self._masters(), *self._all(A.StopMaster)]
        if not masters and not self._all(A.ReloadApache) and not self.programs.update \
                and not self._all(A.SetProcessLimit):
            return
        self.services_touched = True
        if masters or self.programs.update:
            services.ensure_supervisord()
        if self.programs.update:    # a reread lists every program file: only when one changed
            services.update_programs(list(self.programs.update))
        starts = self._all(A.StartMaster)
        if starts:       # all at once: each master's wait below mostly finds it up
            self.current = starts[0]
            self._restart_early(services.start_programs(
                [layout.program_name(m.pool) for m in starts]))
        if starts:
            services.wake_masters([(m.pool, m.socket) for m in starts])
        for m in self._masters():
            self.current = m
            self._master(m)
            self._step(m)
        for n in self._all(A.SetProcessLimit):
            self.current = n
            old, note = services.set_nproc(n.pool, n.nproc)
            if old is not None:
                self.journal.record({"k": "nproc", "name": n.pool, "old": old})
            self._step(n)
            if note:
                print(f"note: {note}", file=sys.stderr)
        for r in self._all(A.ReloadApache):
            services.apache_reload(r.restart, tested=True)    # in stage(), files as now
            self._step(r)
        stops = self._all(A.StopMaster)
        if stops:
            self.current = stops[0]
            services.stop_programs([layout.program_name(st.pool) for st in stops])
        for st in stops:
            self._step(st)
        if self.programs.remove:
            services.update_programs(list(self.programs.remove))

    def _restart_early(self, already: set[str]) -> None:
        """A program the plan saw stopped that supervisord had started by itself by
        the time apply asked (autorestart after a crash, a start between plan and
        apply) may run a master that read the pool's files before apply wrote them:
        restarted, so it reads them now. supervisord's update started the programs it
        added or changed after the files were written: those stand."""
        for program in sorted(already - set(self.programs.update)):
            services.restart_program(program)

    def _master(self, a: A.StartMaster | A.RestartMaster | A.ReloadMaster) -> None:
        program = layout.program_name(a.pool)
        if isinstance(a, A.StartMaster):     # started and woken with the others (services)
            return
        if isinstance(a, A.RestartMaster):
            if program not in self.programs.update:     # supervisord's update restarted it
                services.restart_program(program)
            services.wake_masters([(a.pool, a.socket)])
        else:
            # its config passed php-fpm -t in stage(), staged or live
            services.reload_master(a.pool, a.socket, tested=True)

    def _prune(self) -> None:
        """The jails built now lose what older builds left beneath the base feature's
        bind targets (tzdata linked in before it was bound): their masters were
        restarted with the bind (services). A failure is a note: the next apply's
        build prunes again."""
        for b in self._all(A.BuildJail):
            if b.manifest is None:
                continue
            try:
                jails.prune(b.manifest)
            except (OSError, HostError) as err:
                print(f"note: jail of pool {b.pool}: what an older build left beneath its "
                      f"tzdata bind stays ({err}); the next apply removes it", file=sys.stderr)

    def cleanup(self) -> None:
        """After the commit point: removals that cannot be rolled back. Jails are
        removed JAIL_BUILDS_AT_ONCE at a time while the users and groups go (both wait
        on the disk, userdel also on the account files' lock: one does not hold up the
        other; a jail holds only root's files)."""
        removals = ThreadPoolExecutor(max_workers=JAIL_BUILDS_AT_ONCE)
        try:
            gone = [(r, removals.submit(jails.remove, r.pool))
                    for r in self._all(A.RemoveJail)]
            for c in self._all(A.RemoveCgroup):
                cgroups.remove(cgroup_facts.detect(), c.pool)
                self._step(c)
            users = self._all(A.RemoveUser)
            rest = set(identities.remove_pool_users([u.name for u in users]))
            for u in users:
                if u.name in rest:
                    identities.remove_user(u.name)
                self._step(u)
            for g in self._all(A.RemoveGroup):
                identities.remove_group(g.name)
                self._step(g)
            for r, future in gone:
                future.result()
                self._step(r)
        finally:
            removals.shutdown(wait=True, cancel_futures=True)
        self._prune()
        if self._of(A.BuildJail, A.RemoveJail):
            removed = jails.collect_garbage()
            if self.hook is not None:
                self.hook.collected(removed)
        for t in self._all(A.RemoveTree):
            _purge(t.path)
            self._step(t)


def _new_pool_user(a: A.Action) -> bool:
    return isinstance(a, A.EnsureUser) and a.system and not a.exists \
        and a.home == "/nonexistent"


def _user_runs(identity: list[A.Action], user_groups: set[str]) -> list[list[A.Action]]:
    """The identity actions in plan order, each alone, except that consecutive new
    pool users form one run (made together: identities.create_pool_users), and so do
    consecutive new tenant users that come with their group (user_groups;
    identities.create_tenant_users)."""
    def kind(a: A.Action) -> str:
        if _new_pool_user(a):
            return "pool"
        if isinstance(a, A.EnsureUser) and not a.system and not a.exists \
                and a.name in user_groups:
            return "tenant"
        return ""

    out: list[list[A.Action]] = []
    for a in identity:
        if kind(a) and out and kind(out[-1][-1]) == kind(a):
            out[-1].append(a)
        else:
            out.append([a])
    return out


def _user_groups(identity: list[A.Action]) -> set[str]:
    """New tenant groups that their new user of the same name can make (useradd
    --user-group): no identity action between the two needs the group, and no
    other group is made with the same name."""
    made = {a.name for a in identity if isinstance(a, A.EnsureGroup)}
    out: set[str] = set()
    needed: set[str] = set()
    for a in identity:
        if isinstance(a, A.EnsureUser) and not a.exists and not a.system \
                and a.name == a.group and a.name in made and a.name not in needed:
            out.add(a.name)
        elif isinstance(a, A.EnsureUser):
            needed.add(a.group)
        elif isinstance(a, (A.EnsureDir, A.SetAcl)):
            return out      # from here on every group must exist
    return out


def _purge(path: str) -> None:
    """--purge only: delete a tenant home. Refuses anything that is not a
    directory below / with at least two components, and walks by descriptor: a
    symlink at the home is refused, symlinks inside are unlinked, never followed."""
    if path.count("/") < 2 or path.rstrip("/") in ("", "/"):
        raise HostError(f"refusing to purge {path!r}: not a tenant home")
    try:
        safefs.remove_tree(path)
    except (OSError, safefs.UnsafePath) as e:
        raise HostError(f"purging {path} failed: {e}") from e
