"""From the stage the host is at to the one asked for, one stage at a time: what
visitors see is fetched before and after each stage, and a stage that changed it is
taken back at once (the old server serving as before) and the walk stops."""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from phphost import files
from phphost.errors import HostError, PlanError, ValidationFailed
from phphost.importer.migrate import oldserver, render, state
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
    if target < current.stage:
        return [Step(s, ()) for s in range(current.stage - 1, target - 1, -1)]
    return [Step(target, moved)] if moved != current.moved else []


def probe_url(model: Model, probe: str) -> Url | None:
    site = next((s for s in model.sites if s.docroot and not s.redirect), None)
    if site is None:
        return None
    return Url("http", site.server_name, model.apache.http_port,
               f"/phphost-migrate-probe-{probe}")


def bring(server: OldServer, model: Model, current: MigrateState, step: Step,
          state_file: str) -> MigrateState:
    """The host from `current` to `step`: FPM first on the way up, Apache's overlay and
    module links checked with apache2 -t (put back as they were if it refuses), a
    graceful restart, FPM last on the way down. The state is written as soon as the
    files change, so a later run can always undo them."""
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


def migrate(opts: Options, say: Callable[[str], None] = lambda _: None) -> Outcome:
    model = load_spec(opts.spec)
    server = oldserver.open_server(opts.apache_root)
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
    out = Outcome(current.stage, current.stage)
    if not plan:
        out.log.append(f"already at stage {name(current.stage)}; nothing to do")
        return out
    if opts.dry_run:
        out.log += [_describe(model, server, s) for s in plan]
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
        current = bring(server, model, current, step, opts.state_file)
        diffs = compare(before, snapshot(urls, ignores))
        if diffs:
            out.differences, out.failed_stage = diffs, step.stage
            say(f"stage {name(step.stage)}: {len(diffs)} URL(s) differ; taking it back")
            current = bring(server, model, current, Step(previous.stage, previous.moved),
                            opts.state_file)
            out.log.append(f"stage {name(step.stage)} changed what visitors see and was "
                           f"taken back; the host is at stage {name(current.stage)}")
            out.stage = current.stage
            return out
        out.log.append(f"stage {name(step.stage)}: done, all {len(urls)} URLs answer as "
                       "before" + (f" ({len(step.moved)} site(s) on FPM)" if step.moved else "")
                       + f" [{time.monotonic() - began:.1f} s]")
        out.stage = current.stage
    return out


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"--urls {path}: cannot be read ({err}). Nothing was changed") from err


def _describe(model: Model, server: OldServer, step: Step) -> str:
    lines = [f"stage {name(step.stage)} would:"]
    if step.stage >= 2:
        lines.append(f"  run {render.PROGRAM} ({render.SUPERVISOR_CONF}, {render.FPM_CONF}) as "
                     f"{server.source.user}, pools: {', '.join(render.php_pools(model))}")
    text = render.render_overlay(model, step.stage, step.moved, "PROBE")
    lines.append(f"  {'write' if text else 'remove'} {server.overlay}" +
                 ("" if text is None else ":\n" + "".join(f"    {x}\n" for x in
                                                           text.splitlines())))
    if step.stage >= 3:
        where = os.path.join(server.root, "mods-enabled")
        lines.append(f"  enable mod_proxy, mod_proxy_fcgi in {where} unless loaded")
    return "\n".join(lines)
