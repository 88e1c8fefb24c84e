"""From the stage the host is at to the one asked for, one stage at a time: what
visitors see is fetched before and after each stage, and a stage that changed it is
taken back at once (the old server serving as before) and the walk stops."""

from __future__ import annotations

import fnmatch
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from phphost import files
from phphost.errors import HostError, PlanError, ValidationFailed
from phphost.importer.errors import SourceError
from phphost.importer.migrate import oldserver, render, state, takeover
from phphost.importer.migrate.modules import LinkPlan
from phphost.importer.migrate.oldserver import OldServer
from phphost.importer.migrate.stages import name
from phphost.importer.migrate.state import MigrateState
from phphost.importer.migrate.urlcheck import (
    Difference,
    Url,
    compare,
    compile_ignores,
    default_urls,
    read_urls,
    snapshot,
)
from phphost.spec.loader import load_spec
from phphost.spec.model import Model


@dataclass(frozen=True)
class Options:
    spec: str
    target: int
    apache_root: str
    sites: str | None = None
    urls: str | None = None
    ignore: tuple[str, ...] = ()
    dry_run: bool = False
    state_file: str = state.STATE_FILE
    phphost: takeover.Phphost | None = None     # apply/destroy for stages 6-7 (cli)


@dataclass
class Outcome:
    start: int
    stage: int
    log: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    failed_stage: int | None = None     # the stage taken back after a difference


@dataclass(frozen=True)
class Step:
    stage: int
    moved: tuple[str, ...]


def php_sites(model: Model) -> list[str]:
    return [s.name for s in model.sites if s.php and s.pool and s.docroot and not s.redirect]


def chosen(model: Model, pattern: str | None) -> tuple[str, ...]:
    """The PHP sites --sites names (a glob over site names and server names)."""
    names = php_sites(model)
    if pattern is None:
        return tuple(names)
    hit = tuple(s.name for s in model.sites if s.name in names and (
        fnmatch.fnmatchcase(s.name, pattern) or fnmatch.fnmatchcase(s.server_name, pattern)))
    if not hit:
        raise PlanError(f"--sites {pattern!r} matches no PHP site of {model.source} "
                        f"({', '.join(names) or 'it has none'}). Nothing was changed")
    return hit


def steps(current: MigrateState, target: int, moved: tuple[str, ...]) -> list[Step]:
    if target > current.stage:
        return [Step(s, moved if s >= 3 else ()) for s in range(current.stage + 1, target + 1)]
    if target < current.stage:       # back to 3 from 4 or 5: the sites stay on FPM
        return [Step(s, current.moved if s >= 3 else ())
                for s in range(current.stage - 1, target - 1, -1)]
    return [Step(target, moved)] if moved != current.moved else []


def probe_url(model: Model, probe: str) -> Url | None:
    site = next((s for s in model.sites if s.docroot and not s.redirect), None)
    if site is None:
        return None
    return Url("http", site.server_name, model.apache.http_port,
               f"/phphost-migrate-probe-{probe}")


def bring(server: OldServer, model: Model, current: MigrateState, step: Step,
          state_file: str, hooks: takeover.Phphost | None = None,
          say: Callable[[str], None] = lambda _: None) -> MigrateState:
    """The host from `current` to `step`: FPM first on the way up, Apache's overlay and
    module links checked with apache2 -t (put back as they were if it refuses), a
    graceful restart, FPM last on the way down. The state is written as soon as the
    files change, so a later run can always undo them. Into and out of stage 5:
    pools_step; into and out of stage 4: modphp_step; into and out of 6 and 7:
    takeover.step."""
    if max(step.stage, current.stage) >= 6 and step.stage != current.stage:
        if hooks is None:
            raise PlanError("stages 6-7 need phphost's apply (run them through `phphost "
                            "migrate`)")
        with deferred_signals():
            return takeover.step(server, model, current, step.stage, step.moved, state_file,
                                 hooks, say)
    if 5 in (step.stage, current.stage) and step.stage != current.stage:
        return pools_step(server, model, current, step, state_file)
    if 4 in (step.stage, current.stage) and step.stage != current.stage:
        return modphp_step(server, model, current, step, state_file)
    if step.stage >= 2 > current.stage:
        try:
            oldserver.fpm_up(model, server.source.user)
        except HostError:
            oldserver.fpm_down()
            raise
    old_overlay = files.read_text(server.overlay)
    probe = oldserver.new_probe()
    made = oldserver.enable_modules(server) if step.stage >= 3 else []
    oldserver.write_overlay(server, render.render_overlay(model, step.stage, step.moved, probe))
    links = (*current.links, *made) if step.stage >= 3 else ()
    if step.stage < 3:
        oldserver.disable_modules(current.links)
    problem = oldserver.configtest(server)
    if problem is not None:
        oldserver.write_overlay(server, old_overlay)
        oldserver.disable_modules(tuple(made))
        if step.stage < 3:
            oldserver.relink(current.links)
        raise ValidationFailed(f"apache2 -t refuses stage {name(step.stage)}; the old "
                               f"configuration is back in place: {problem}")
    new = replace(current, stage=step.stage, moved=step.moved, links=links)
    state.write(new, state_file)
    oldserver.graceful(server, probe_url(model, probe), loaded=step.stage > 0)
    if step.stage < 2 <= current.stage:
        oldserver.fpm_down()
    return new


def modphp_step(server: OldServer, model: Model, current: MigrateState, step: Step,
                state_file: str) -> MigrateState:
    """3 -> 4: mod_php's and the old MPM's links out of mods-enabled/, mpm_event's and
    mod_actions' in, the stage 4 overlay; 4 -> 3: exactly the inverse, from the record.
    apache2 -t first (refused: everything put back, ValidationFailed), then a full
    restart; if the new server does not come up, everything is put back and Apache
    restarted on the old configuration (HostError). The record of the links is
    written before the first link changes (switching them is idempotent: a later
    `--to 3` undoes an interrupted switch)."""
    with deferred_signals():
        return _modphp_step(server, model, current, step, state_file)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT and SIGTERM held back while Apache is switched, stopped and started (an
    interrupt between stop and start would leave the old server down), then raised
    again once it serves. Dispositions, not the signal mask: apache2, started in
    between, must not inherit blocked signals."""
    pending: list[int] = []
    old = {s: signal.signal(s, lambda n, _f: pending.append(n))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])


def _modphp_step(server: OldServer, model: Model, current: MigrateState, step: Step,
                 state_file: str) -> MigrateState:
    pidfile = oldserver.pid_file(server)
    if step.stage == 4:      # what Apache loads now (a step back to 4 follows a step to 3)
        plan = oldserver.plan_modphp_off(oldserver.open_server(server.root))
        new = replace(current, stage=4, moved=step.moved, off_made=plan.make,
                      off_removed=plan.remove)
        state.write(new, state_file)
    else:
        plan = LinkPlan(remove=current.off_made, make=current.off_removed)
        new = replace(current, stage=step.stage, moved=step.moved, off_made=(), off_removed=())

    def put(links: LinkPlan, stage: MigrateState) -> str:
        oldserver.switch_links(links)
        probe = oldserver.new_probe()
        oldserver.write_overlay(server, render.render_overlay(model, stage.stage, stage.moved,
                                                              probe))
        return probe

    probe = put(plan, new)
    problem = oldserver.configtest(server)
    if problem is not None:
        put(plan.inverse(), current)
        state.write(current, state_file)
        raise ValidationFailed(f"apache2 -t refuses stage {name(step.stage)}; the module links "
                               f"and migrate's conf are back as they were: {problem}")
    state.write(new, state_file)
    try:
        oldserver.full_restart(server, pidfile, probe_url(model, probe))
    except HostError as err:
        probe = put(plan.inverse(), current)
        state.write(current, state_file)
        try:
            oldserver.full_restart(server, pidfile, probe_url(model, probe))
        except HostError as again:
            raise HostError(f"stage {name(step.stage)}: {err}. The module links and "
                            f"migrate's conf are back as at stage {name(current.stage)}, but "
                            f"apache2 did not come up on them either: {again}. Start it "
                            f"(apache2 -d {server.root} -k start) and read its error "
                            "log") from again
        raise HostError(f"stage {name(step.stage)}: {err}. The module links and migrate's "
                        f"conf are back as they were and apache2 runs again at stage "
                        f"{name(current.stage)}") from err
    return new


def pools_step(server: OldServer, model: Model, current: MigrateState, step: Step,
                state_file: str) -> MigrateState:
    """4 -> 5: one master per pool started and answering, the overlay's handlers
    switched to their sockets (apache2 -t, graceful), the one master stopped. 5 -> 4:
    the one master started and answering, the overlay back (apache2 -t, graceful), the
    per-pool masters the record names stopped and their files removed. Either way no
    request meets a socket without a master; a failure puts back what the step did
    (the host stays at the stage it was at) and says so. SIGINT and SIGTERM wait until
    the step (or its undoing) is done, so an interrupt never leaves it half switched."""
    with deferred_signals():
        if step.stage == 5:
            return _split(server, model, current, step, state_file)
        return _unsplit(server, model, current, step, state_file)


def _split(server: OldServer, model: Model, current: MigrateState, step: Step,
           state_file: str) -> MigrateState:
    pools = render.php_pools(model)
    new = replace(current, stage=5, moved=step.moved,
                  split_programs=tuple(render.split_program(p) for p in pools),
                  split_files=tuple(f for p in pools for f in render.split_files(p)))
    state.write(new, state_file)          # before the first file: going back removes them

    def undo() -> None:
        oldserver.split_down(new.split_programs, new.split_files)
        state.write(current, state_file)

    try:
        oldserver.split_up(model, server.source.user, pools)
    except (HostError, PlanError) as err:
        undo()
        raise type(err)(f"stage {name(5)}: {err}. The per-pool masters are removed again; "
                        f"the host is at stage {name(current.stage)} as before") from err
    _switch_overlay(server, model, new, undo)
    oldserver.drain([render.socket(p) for p in render.php_pools(model)])
    oldserver.fpm_down()                  # the one master: nothing is sent to it any more
    return new


def _unsplit(server: OldServer, model: Model, current: MigrateState, step: Step,
             state_file: str) -> MigrateState:
    try:
        oldserver.fpm_up(model, server.source.user)
    except HostError as err:
        oldserver.fpm_down()
        raise HostError(f"stage {name(step.stage)}: {err}. The host stays at stage "
                        f"{name(current.stage)}, its per-pool masters serving") from err
    new = replace(current, stage=step.stage, moved=step.moved, split_programs=(),
                  split_files=())
    _switch_overlay(server, model, new, oldserver.fpm_down)
    oldserver.drain([render.split_socket(p.removeprefix(render.SPLIT_PREFIX))
                     for p in current.split_programs])
    oldserver.split_down(current.split_programs, current.split_files)
    state.write(new, state_file)          # only now: until then, going back again redoes it
    return new


def _switch_overlay(server: OldServer, model: Model, new: MigrateState,
                    undo: Callable[[], None]) -> None:
    """The overlay of `new` checked with apache2 -t and taken in by a graceful restart;
    refused or not taken in: the old overlay back (and taken in again), then undo()."""
    old = files.read_text(server.overlay)
    probe = oldserver.new_probe()
    oldserver.write_overlay(server, render.render_overlay(model, new.stage, new.moved, probe))
    problem = oldserver.configtest(server)
    if problem is not None:
        oldserver.write_overlay(server, old)
        undo()
        raise ValidationFailed(f"apache2 -t refuses stage {name(new.stage)}; the old "
                               f"configuration is back in place: {problem}")
    try:
        oldserver.graceful(server, probe_url(model, probe), loaded=True)
    except HostError as err:
        oldserver.write_overlay(server, old)
        server.apache("-k", "graceful", check=False)
        undo()
        raise HostError(f"stage {name(new.stage)}: {err}. migrate's conf is back as it was "
                        "(a graceful restart asked for)") from err


def modphp_ready(model: Model, current: MigrateState, plan: list[Step]) -> None:
    """Stage 4 turns mod_php off: only once stage 3 has moved every PHP site."""
    if current.stage >= 4 or not any(s.stage == 4 for s in plan):
        return
    at3 = current.moved if current.stage == 3 else next(s.moved for s in plan if s.stage == 3)
    left = [s for s in php_sites(model) if s not in at3]
    if left:
        via = "" if plan[-1].stage == 4 else f" (through stage {name(4)})"
        raise PlanError(f"--to {name(plan[-1].stage)}{via}: mod_php still serves the PHP site(s) "
                        f"{', '.join(left)}: stage 3 has not moved them to FPM. Move them "
                        f"first (phphost migrate {model.source} --to move, with --sites to "
                        "choose), then go to stage 4. Nothing was changed")


def migrate(opts: Options, say: Callable[[str], None] = lambda _: None) -> Outcome:
    model = load_spec(opts.spec)
    server = _open(opts)
    oldserver.check_layout(server)
    oldserver.check_spec(model, server)
    current = state.for_spec(state.read(opts.state_file), opts.spec, server.root,
                             opts.state_file)
    urls = default_urls(model, oldserver.access_logs(server)) if opts.urls is None else read_urls(
        opts.urls, _read_text(opts.urls))
    ignores = compile_ignores(opts.ignore)
    moved = chosen(model, opts.sites) if opts.target >= 3 else ()
    if opts.target >= 3 and current.stage >= 3:
        moved = tuple(s for s in php_sites(model) if s in set(moved) | set(current.moved))
    plan = steps(current, opts.target, moved)
    if any(s.stage >= 6 for s in plan) or (plan and current.stage >= 6):
        takeover.check_host(server, model, opts.phphost)     # before anything, stage 1 or 5
        if current.stage < 6 and any(s.stage == 6 for s in plan):
            takeover.old_vhost_links(server, model)
            _phphost_reads_htaccess(server, model)
    split_unchanged(model, current, plan)
    modphp_ready(model, current, plan)
    if any(s.stage == 4 for s in plan) and current.stage < 4:
        _modphp_off_possible(server, current)
    out = Outcome(current.stage, current.stage)
    if not plan:
        out.log.append(f"already at stage {name(current.stage)}; nothing to do")
        return out
    if opts.dry_run:
        stages = [current.stage, *(s.stage for s in plan)]
        out.log += [_describe(model, server, replace(current, stage=was), s, opts.phphost)
                    for was, s in zip(stages, plan, strict=False)]
        out.log.append(f"{len(urls)} URLs would be compared before and after each stage:")
        out.log += [f"  {u}" for u in urls]
        return out
    for step in plan:
        began = time.monotonic()
        before = snapshot(urls, ignores)
        if all(seen.error for seen in before.values()):
            raise PlanError(f"none of the {len(urls)} URLs answers (first: {urls[0]}: "
                            f"{before[urls[0]].error}). migrate compares what the running "
                            f"old Apache serves: start it ({server.config}), or give --urls "
                            f"that reach it. The host is at stage {name(current.stage)}; "
                            "nothing more was changed")
        say(f"stage {name(step.stage)}: {len(urls)} URLs fetched; changing the host")
        previous = current
        current = bring(server, model, current, step, opts.state_file, opts.phphost, say)
        diffs = compare(before, snapshot(urls, ignores))
        if diffs:
            out.differences, out.failed_stage = diffs, step.stage
            say(f"stage {name(step.stage)}: {len(diffs)} URL(s) differ; taking it back")
            current = bring(server, model, current, Step(previous.stage, previous.moved),
                            opts.state_file, opts.phphost, say)
            out.log.append(f"stage {name(step.stage)} changed what visitors see and was "
                           f"taken back; the host is at stage {name(current.stage)}")
            out.stage = current.stage
            return out
        out.log.append(f"stage {name(step.stage)}: done, all {len(urls)} URLs answer as "
                       "before" + (f" ({len(step.moved)} site(s) on FPM)" if step.moved else "")
                       + f" [{time.monotonic() - began:.1f} s]")
        out.stage = current.stage
    return out


def split_unchanged(model: Model, current: MigrateState, plan: list[Step]) -> None:
    """At stage 5 the per-pool masters are the record's: a spec whose PHP sites or pools
    changed since is refused (going back to 4 and forward again takes it in)."""
    if current.stage != 5 or not plan or plan[0].stage != 5:
        return
    programs = tuple(render.split_program(p) for p in render.php_pools(model))
    raise PlanError(f"{model.source}: the migration stands at stage {name(5)} with the masters "
                    f"{', '.join(current.split_programs) or 'none'} for the sites "
                    f"{', '.join(current.moved) or 'none'}; the spec now asks for "
                    f"{', '.join(programs) or 'none'} for {', '.join(plan[0].moved) or 'none'}. "
                    f"Go back to stage 4 (phphost migrate {model.source} --to 4), then to 5 "
                    "again. Nothing was changed")


def _phphost_reads_htaccess(server: OldServer, model: Model) -> None:
    """Stage 6 hands the sites to phphost's rendering, which allows an .htaccess only
    the spec's `allow_override`: every other line would be a 500 for its directory.
    All of them named before anything changes."""
    found = oldserver.htaccess_phphost_refuses(server, model)
    if found:
        raise PlanError(f"stage {name(6)}: phphost's Apache configuration would answer 500 "
                        "for these .htaccess lines (the site's allow_override does not allow "
                        "them; Rewrite*, Options, SetEnv*, handlers are never allowed, "
                        "docs/spec.md):\n  " + "\n  ".join(found) + "\nphphost import listed "
                        "them as lost: remove them (or move what they do into the spec), "
                        "then run migrate again. Nothing was changed")


def _modphp_off_possible(server: OldServer, current: MigrateState) -> None:
    """Every obstacle to stage 4 named before anything changes. Below stage 3 mod_php
    still needs its lines: they can go only once stage 3 has moved the sites."""
    try:
        oldserver.plan_modphp_off(server)
    except PlanError as err:
        if current.stage >= 3:
            raise
        raise PlanError(f"{err}\nmod_php still serves the sites at stage "
                        f"{name(current.stage)} and needs its lines until then: go to stage 3 "
                        "first (--to move: FPM then serves the same values), take the lines "
                        "out, then --to modphp-off") from err


def _open(opts: Options) -> OldServer:
    """The old Apache as it resolves its config; when apache2 rejects that config while
    a migration of it stands at stage 4, why that is (mod_php's lines put back early)."""
    try:
        return oldserver.open_server(opts.apache_root)
    except SourceError as err:
        found = state.read(opts.state_file)
        if found is None or found.stage < 4 or \
                found.apache_root != os.path.realpath(opts.apache_root):
            raise
        raise SourceError(
            f"{err}\nThe migration of this Apache stands at stage {name(found.stage)}: "
            "mod_php is not loaded, so its own lines (php_value, php_flag, php_admin_*, "
            "PHPINIDir) are unknown directives. Take them out again (or wrap them in "
            "<IfModule php_module>) until `phphost migrate SPEC --to 3` has put mod_php "
            "back, then restore them") from err


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"--urls {path}: cannot be read ({err}). Nothing was changed") from err


def _describe(model: Model, server: OldServer, current: MigrateState, step: Step,
              hooks: takeover.Phphost | None = None) -> str:
    if hooks is not None and max(step.stage, current.stage) >= 6:
        return "\n".join(takeover.describe(server, model, current, step.stage, hooks))
    lines = [f"stage {name(step.stage)} would:"]
    if step.stage == 5:
        lines += [f"  run {render.split_program(p)} ({', '.join(render.split_files(p))}) as "
                  f"{server.source.user}, listening on {render.split_socket(p)}"
                  for p in render.php_pools(model)]
        lines.append("  wait until each answers, then switch the handlers below (apache2 -t, "
                     f"graceful), then stop and remove {render.PROGRAM}")
    elif step.stage >= 2:
        lines.append(f"  run {render.PROGRAM} ({render.SUPERVISOR_CONF}, {render.FPM_CONF}) as "
                     f"{server.source.user}, pools: {', '.join(render.php_pools(model))}")
    text = render.render_overlay(model, step.stage, step.moved, "PROBE")
    lines.append(f"  {'write' if text else 'remove'} {server.overlay}" +
                 ("" if text is None else ":\n" + "".join(f"    {x}\n" for x in
                                                           text.splitlines())))
    if step.stage == 4 and current.stage == 5:
        lines.append("  wait until it answers, switch the handlers back (apache2 -t, graceful), "
                     "then stop and remove " + (", ".join(current.split_programs) or "nothing"))
        lines += [f"  remove {f}" for f in current.split_files]
    elif step.stage == 3 and current.stage == 4:
        lines += [f"  remove the link {link} -> {target}" for link, target in current.off_made]
        lines += [f"  put back the link {link} -> {target}"
                  for link, target in current.off_removed]
        lines.append(f"  apache2 -t, then stop and start apache2 ({server.config})")
    elif step.stage == 3:
        where = os.path.join(server.root, "mods-enabled")
        lines.append(f"  enable mod_proxy, mod_proxy_fcgi in {where} unless loaded")
    if step.stage == 4 and current.stage < 4:
        plan = oldserver.plan_modphp_off(server)
        lines += [f"  remove the link {link} -> {target}" for link, target in plan.remove]
        lines += [f"  link {link} -> {target}" for link, target in plan.make]
        lines.append(f"  apache2 -t, then stop and start apache2 ({server.config})")
    return "\n".join(lines)
