"""phphost command line. Argument parsing and output only; errors are mapped to
exit codes in one place (main)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import functools
import importlib
import io
import json
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from phphost import layout
from phphost.cli.confirm import JailConfirm
from phphost.cli.output import Progress, print_plan
from phphost.cli.result import ApplyResult, PlanResult
from phphost.errors import PhphostError, PlanError, SpecError
from phphost.exitcodes import ExitCode
from phphost.facts.accounts import read_model_accounts
from phphost.facts.capacity import PoolMemory, machine_memory, pool_memory
from phphost.facts.gather import (
    DirFacts,
    Facts,
    ProgramsQuery,
    gather,
    read_dir_facts,
    read_early,
)
from phphost.facts.hostview import RealHostView
from phphost.facts.jails import JailState, PendingJails, manifest_for
from phphost.facts.state import State, applied_tenants, read_applied, read_state
from phphost.host import priority
from phphost.host.apply import execute, recover
from phphost.jail.features import ClosureCache
from phphost.monitor.runs import record_run
from phphost.plan import actions as A
from phphost.plan.accounts import check_accounts
from phphost.plan.capacity import Capacity, capacity, refuse_unless_fits
from phphost.plan.desired import Desired, desired_state, dir_paths
from phphost.plan.destroy import make_destroy_plan, with_purge
from phphost.plan.planner import make_plan
from phphost.plan.scope import Scope, doomed_model, make_scope, unknown_tenants
from phphost.spec.limits import pool_limits
from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from phphost.spec.snapshot import check_apart, limited_model, without

# the commands whose modules are imported only when they run (or for the whole
# --help): an apply under load imported them all for 0.1-0.3 s (docs/scale.md)
# command -> (its module, the function there that adds its parser, its command function)
LAZY: dict[str, tuple[str, str, str]] = {
    "audit": ("phphost.cli.audit", "add_audit_parser", "cmd_audit"),
    "verify": ("phphost.cli.verify", "add_verify_parser", "cmd_verify"),
    "check": ("phphost.cli.check", "add_check_parser", "cmd_check"),
    "jail": ("phphost.cli.jail", "add_jail_parser", "cmd_jail"),
    "exporter": ("phphost.cli.monitor", "add_monitor_parsers", "cmd_exporter"),
    "top": ("phphost.cli.monitor", "add_monitor_parsers", "cmd_top"),
    "logs": ("phphost.cli.monitor", "add_monitor_parsers", "cmd_logs"),
    "import": ("phphost.cli.importer", "add_import_parser", "cmd_import"),
    "migrate": ("phphost.cli.migrate", "add_migrate_parser", "cmd_migrate"),
}
CORE = ("plan", "apply", "destroy", "status")


def _lazy(command: str) -> Callable[..., int]:
    module, _adder, function = LAZY[command]
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def _run_lazy(command: str, args: argparse.Namespace) -> int:
    return _lazy(command)(args)


def _lazy_parsers(argv: Sequence[str]) -> list[str]:
    """The modules whose parsers this command line needs: none for a core command,
    one for another command, all of them otherwise (`phphost -h`, a typo)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and any(a in ("-h", "--help") for a in argv[:argv.index(command)]):
        command = None          # `phphost -h plan`: the whole list, as argparse shows it
    if command in CORE:
        return []
    chosen = [LAZY[command]] if command in LAZY else list(LAZY.values())
    return list(dict.fromkeys(f"{module}:{adder}" for module, adder, _f in chosen))


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phphost", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "show what apply would change (changes nothing)"),
                       ("apply", "bring the host to the spec"),
                       ("destroy", "remove what phphost created for the spec")):
        c = sub.add_parser(name, help=text)
        c.add_argument("spec", help="spec file (TOML) or directory of *.toml files")
        c.add_argument("--json", action="store_true", help="machine-readable output")
        c.add_argument("--tenant", dest="tenants", action="append", metavar="NAME",
                       help="change only this tenant's accounts, pools, jails and sites "
                            "(repeatable); every other tenant stays exactly as it is")
        if name == "plan":
            c.add_argument("-v", "--verbose", action="store_true", help="also list no-ops")
        if name in ("plan", "apply"):
            c.add_argument("--force", action="store_true",
                           help="plan/apply even when the pools' worst-case memory exceeds "
                                "the machine's (docs/sizing.md)")
        if name == "apply":
            c.add_argument("--plan", dest="saved_plan", metavar="FILE",
                           help="apply only if planning again gives exactly the plan that "
                                "`phphost plan SPEC --json` wrote to FILE")
        if name == "destroy":
            c.add_argument("--purge", action="store_true",
                           help="ALSO delete tenant homes and the users/groups phphost created")
    st = sub.add_parser("status", help="every pool's master and FPM status")
    st.add_argument("--json", action="store_true")
    for where in _lazy_parsers(argv):
        module, adder = where.split(":")
        getattr(importlib.import_module(module), adder)(sub)
    return p


# a killed apply's jail scan (cli/confirm.py) shares its lock until it has ended,
# milliseconds after apply: a moment's wait, not an error, for the next apply
LOCK_WAIT = 2.0


@contextmanager
def _lock() -> Iterator[None]:
    os.makedirs(layout.RUN_DIR, exist_ok=True)
    with open(layout.LOCK_FILE, "w") as fh:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as err:
                if time.monotonic() >= deadline:
                    raise PhphostError(
                        f"another phphost apply/destroy holds {layout.LOCK_FILE}; wait for "
                        "it to finish") from err
                time.sleep(0.05)
        yield


def _plan(model: Model, scope: Scope | None = None) -> A.Plan:
    """Read the host (including each jailed pool's manifest) and plan."""
    return _read_plan(model, scope)[0]


Memory = dict[str, PoolMemory]


def _read_plan(model: Model, scope: Scope | None = None) -> tuple[A.Plan, Memory]:
    """The plan, and what each pool's processes use now (for the capacity report).
    The jails the cache trusts are checked on disk in a child process meanwhile,
    which then reads the pools' cgroups, the live nftables table and the homes' and
    docroots' owners, modes and ACLs (PendingJails, read_early, _dir_facts); when a
    jail changed, the host is read again with its scan. The pools' memory (every
    process's status in /proc) is read by a thread once the child is forked: the
    report needs it only after the plan, and under load the child's work was what
    the plan waited for."""
    state = read_state()
    check_accounts(model, state, read_model_accounts(model))
    limits = tuple((p.name, pool_limits(p)) for p in model.pools
                   if scope is None or p.name in scope.pools)
    users = {p.name: p.user for p in model.pools}
    jails = PendingJails(model, scope.pools if scope else None,      # forks: no thread yet
                         also=lambda: (read_early(limits), _dir_facts(model, scope)))
    with ThreadPoolExecutor(max_workers=1) as other:    # ends before anything forks again
        memory = other.submit(pool_memory, users)
        try:
            desired, facts = _read_host(model, scope, state, jails.states,
                                        lambda: _early(jails.settle()))
            if not jails.held:
                desired, facts = _read_host(model, scope, state, jails.states)
        except BaseException:
            jails.cancel()
            raise
        plan = make_plan(desired, facts, state, jails.states, scope)
    return plan, memory.result()


def _read_host(model: Model, scope: Scope | None, state: State, jails: dict[str, JailState],
               early: Callable[[], dict[str, Any]] | None = None) -> tuple[Desired, Facts]:
    """early: read_early of the scope's pools, as read meanwhile."""
    # supervisord answers while the rest is read
    programs = ProgramsQuery([layout.program_name(p.name) for p in model.pools])
    desired = desired_state(model, {p: j.for_desired() for p, j in jails.items()},
                            foreign=scope.foreign_files if scope else ())
    wanted = scope.narrow(desired.wanted()) if scope else desired.wanted()
    return desired, gather(wanted, state, programs, early)


def _dir_facts(model: Model, scope: Scope | None) -> DirFacts:
    """The homes' and docroots' owners, modes and ACLs that gather will want (none in
    another tenant's home when the run is limited to some: Scope.narrow)."""
    dirs, acls = dir_paths(model)
    if scope is not None:
        dirs = [d for d in dirs if not scope.in_foreign_home(d)]
        acls = [a for a in acls if not scope.in_foreign_home(a)]
    return read_dir_facts(dirs, acls)


def _early(value: object) -> dict[str, Any]:
    """What the plan's child read (PendingJails `also`), checked for its shape: the
    Facts fields for gather, the directories' among them as "dir_facts"."""
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], dict)
            and isinstance(value[1], DirFacts)):
        raise TypeError(f"the plan's child gave {type(value).__name__}")
    return {**value[0], "dir_facts": value[1]}


def _check_tenants(model: Model, applied: Model | None, tenants: list[str]) -> None:
    unknown = unknown_tenants(model, applied, tenants)
    if unknown:
        names = ", ".join(t.name for t in model.tenants) or "none"
        raise SpecError(model.source, f"tenants.{unknown[0]}",
                        f"--tenant {unknown[0]}: no such tenant in the spec nor on the host",
                        f"name a tenant of the spec ({names})")


def _limited(model: Model, tenants: list[str] | None) -> tuple[Model, Scope | None]:
    """The model a run plans for, and its scope: with --tenant, the host as last
    applied with only those tenants taken from the spec (docs/spec.md)."""
    if not tenants:
        _note_missing_tenants(model)
        return model, None
    state, applied = read_state(), read_applied()
    _check_tenants(model, applied, tenants)
    if applied is None:
        if state.pools or state.sites:
            raise PlanError(
                f"--tenant needs phphost's record of the last apply, {layout.APPLIED_FILE}, "
                "and this host has none (it was applied by an older phphost). Run "
                "`phphost apply SPEC` once for the whole host (SPEC naming every tenant), "
                "then --tenant works; nothing was changed")
        applied = Model(source=layout.APPLIED_FILE, apache=model.apache,
                        exporter=model.exporter)      # a fresh host: the spec's settings
    limited = limited_model(model, applied, tenants)
    return limited, make_scope(tenants, (model, applied, limited), state)


def _note_missing_tenants(model: Model) -> None:
    """A spec is the whole host: say so when it leaves out tenants the host has."""
    applied = applied_tenants()
    have = {t.name for t in model.tenants}
    missing = sorted(t for t in applied if t not in have) if applied else []
    if missing:
        print(f"phphost: note: tenant(s) {', '.join(missing)} are on this host but not in "
              f"{model.source}: a spec is the whole host, so their pools and sites are removed "
              "(their users and data stay). To change only the spec's tenants, name them "
              "with --tenant NAME", file=sys.stderr)


def _capacity(model: Model, spec: str, force: bool, memory: Memory | None = None) -> Capacity:
    """The capacity report; PlanError when the worst case cannot fit (unless force).
    memory: the pools' memory as the plan read it (_read_plan)."""
    if memory is None:
        memory = pool_memory({p.name: p.user for p in model.pools})
    cap = capacity(model, memory, machine_memory())
    refuse_unless_fits(cap, spec, force)
    return cap


def cmd_plan(args: argparse.Namespace) -> int:
    model, scope = _limited(load_spec(args.spec), args.tenants)
    plan, memory = _read_plan(model, scope)
    cap = _capacity(model, args.spec, args.force, memory)
    interrupted = os.path.exists(f"{layout.JOURNAL_DIR}/entries.jsonl")
    return PlanResult(plan, args.verbose, interrupted, cap).emit(args.json)


def _same_as_saved(plan: A.Plan, path: str) -> None:
    """PlanError unless `path` holds this very plan (its fingerprint)."""
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except (OSError, ValueError) as err:
        raise PlanError(f"{path}: cannot read a saved plan ({err}). Write one with "
                        "`phphost plan SPEC --json > FILE`") from None
    digest = saved.get("fingerprint") if isinstance(saved, dict) else None
    if not isinstance(digest, str):
        raise PlanError(f"{path}: no \"fingerprint\" in it: not `phphost plan --json` output")
    if digest != plan.fingerprint():
        raise PlanError(f"{path}: the host or the spec changed since that plan was made, so "
                        "it is not applied (nothing was changed). Run `phphost plan` again, "
                        "review it, and apply the new one")


def cmd_apply(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    with _lock():
        undone = recover()
        model, scope = _limited(spec, args.tenants)
        plan, memory = _read_plan(model, scope)
        _capacity(model, args.spec, args.force, memory)
        if args.saved_plan:
            _same_as_saved(plan, args.saved_plan)
        if not args.json:
            print_plan(plan)
        done = _execute(model, plan, Progress(quiet=args.json)) if plan.has_changes() else []
        return ApplyResult(plan, done, undone).emit(args.json)


def _execute(model: Model, plan: A.Plan, progress: Progress) -> list[str]:
    """execute(), and the scan of the jails it built (cli/confirm.py) done before the
    lock is let go."""
    confirm = JailConfirm(model, plan)
    try:
        done = execute(plan, progress, confirm)
    except BaseException:
        confirm.cancel()
        raise
    confirm.finish()
    return done


def cmd_destroy(args: argparse.Namespace) -> int:
    model = load_spec(args.spec)
    with _lock():
        undone = recover()
        plan = _destroy_plan(model, args.tenants, args.purge)
        done = _execute(model, plan, Progress(quiet=args.json))
        return ApplyResult(plan, done, undone).emit(args.json)


def _destroy_plan(model: Model, tenants: list[str] | None, purge: bool) -> A.Plan:
    """Remove the spec's (or the named tenants') pools and sites. While other
    tenants stay on the host, what they share (launcher, Apache global conf,
    nftables table, ...) is rendered for them alone, as an apply of what remains."""
    state, applied = read_state(), read_applied()
    if tenants:
        _check_tenants(model, applied, tenants)
    targets = tenants or [t.name for t in model.tenants]
    if applied is not None:     # the spec must not hand another tenant's objects to these
        check_apart(model, applied, targets)
    doomed = doomed_model(model, applied, targets)
    if not tenants:     # the whole spec: also its redirect-only sites
        doomed = dataclasses.replace(doomed, sites=model.sites)
    rest = (without(applied, targets, {p.name for p in doomed.pools},
                    {s.name for s in doomed.sites}) if applied is not None else None)
    host, cache = RealHostView(), ClosureCache()
    desired = desired_state(doomed, {p.name: manifest_for(doomed, p, host, cache)
                                     for p in doomed.pools if p.jail.enabled})
    if rest is None or not (rest.tenants or rest.pools or rest.sites):
        return make_destroy_plan(desired, gather(desired.wanted(), state), state, purge)
    plan = _plan(rest, make_scope(targets, (model, applied or rest, rest), state))
    return with_purge(plan, desired, gather(desired.wanted(), state), state) if purge else plan


def cmd_status(args: argparse.Namespace) -> int:
    from phphost.cli.status import StatusResult, pool_statuses

    return StatusResult(pool_statuses(read_state().pools)).emit(args.json)


def cmd_migrate_locked(args: argparse.Namespace) -> int:
    """migrate changes supervisord's programs and /etc/phphost: one at a time with apply."""
    with _lock():
        return _lazy("migrate")(args, MigrateHooks())


class MigrateHooks:
    """phphost's plan, apply and destroy for migrate's stages 6-7, under the lock
    cmd_migrate_locked holds: the plan is shown (line by line, through `show`) before
    it is carried out."""

    def plan(self, model: Model) -> str:
        out = io.StringIO()
        print_plan(_plan(model), out)
        return out.getvalue()

    def apply(self, model: Model, show: Callable[[str], None]) -> None:
        recover()
        plan, memory = _read_plan(model)
        _capacity(model, model.source, False, memory)
        _show(plan, show)
        if plan.has_changes():
            _execute(model, plan, Progress())

    def destroy(self, model: Model, show: Callable[[str], None]) -> None:
        recover()
        plan = _destroy_plan(model, None, purge=False)
        _show(plan, show)
        _execute(model, plan, Progress())


def _show(plan: A.Plan, show: Callable[[str], None]) -> None:
    out = io.StringIO()
    print_plan(plan, out)
    for line in out.getvalue().splitlines():
        show(f"  {line}")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "plan": cmd_plan, "apply": cmd_apply, "destroy": cmd_destroy, "status": cmd_status,
    "migrate": cmd_migrate_locked,
    **{c: functools.partial(_run_lazy, c) for c in LAZY if c != "migrate"}}


SIGPIPE_EXIT = ExitCode.BROKEN_PIPE


def internal_error(err: Exception) -> int:
    print(f"phphost: internal error: {type(err).__name__}: {err} (set PHPHOST_DEBUG=1 "
          "for the traceback; please report it)", file=sys.stderr)
    if os.environ.get("PHPHOST_DEBUG"):
        raise err
    return ExitCode.ERROR


def stdout_gone() -> bool:
    """True when stdout is a pipe or socket whose reader has gone (poll: POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (OSError, ValueError):
        return False


def quiet_broken_pipe() -> int:
    """The reader of our stdout went away (`phphost top --json | head -1`): say
    nothing, point stdout at /dev/null so Python's exit-time flush stays quiet, and
    exit 141 as a process killed by SIGPIPE would (what the shell shows for
    `yes | head -1`; `set -o pipefail` sees it)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return SIGPIPE_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv).parse_args(argv)
    started, code = time.time(), int(ExitCode.ERROR)
    try:
        with priority.planning() if args.command in priority.AHEAD else contextlib.nullcontext():
            code = COMMANDS[args.command](args)
        sys.stdout.flush()          # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError as err:
        if not stdout_gone():       # a socket or a child's pipe: a real error, below
            code = internal_error(err)
            return code
        code = quiet_broken_pipe()
        return code
    except PhphostError as err:
        print(f"phphost: error: {err}", file=sys.stderr)
        code = err.exit_code
        return code
    except KeyboardInterrupt:
        print("phphost: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as err:   # a bug: say so in one line, never a traceback
        code = internal_error(err)
        return code
    finally:
        record_run(args.command, code, started)     # apply/check/verify/audit -> runs.json


if __name__ == "__main__":
    sys.exit(main())
