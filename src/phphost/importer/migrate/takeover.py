"""Stages 6 and 7: phphost's own rendering of the spec takes over from the old vhosts
(docs/migrate.md, stages 6-7). Stage 6: the admin's sites-enabled links that the spec
covers taken out (recorded, never deleted or rewritten), migrate's overlay gone,
`phphost apply` of the spec with every pool unjailed under its own users, the tenant
homes' owners and modes changed as owners.py says (shown and recorded first), then
the stage 5 masters stopped. Stage 7: the same spec applied with every pool jailed.
Back: the exact inverse, from the record; tenant data is never deleted (phphost's
destroy without --purge keeps tenant users, homes and files).

phphost's plan and apply live above this layer (cli): they come in as a Phphost."""

from __future__ import annotations

import dataclasses
import os
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from phphost import files, layout
from phphost.errors import HostError, PhphostError, PlanError, ValidationFailed
from phphost.facts.state import read_state
from phphost.importer.migrate import oldserver, owners, render, state
from phphost.importer.migrate.oldserver import OldServer
from phphost.importer.migrate.stages import name
from phphost.importer.migrate.state import MigrateState
from phphost.importer.migrate.urlcheck import Url
from phphost.spec.model import Model

Say = Callable[[str], None]


class Phphost(Protocol):
    """phphost's own plan, apply and destroy (cli/main.py), under its lock."""

    def plan(self, model: Model) -> str: ...

    def apply(self, model: Model, show: Say) -> None: ...

    def destroy(self, model: Model, show: Say) -> None: ...


@dataclass(frozen=True)
class VhostFile:
    file: str                       # as apache2 -S names it
    line: int
    names: tuple[str, ...]          # ServerName and aliases


def with_jails(model: Model, on: bool) -> Model:
    """The spec with every pool jailed (stage 7) or unjailed (stage 6)."""
    pools = tuple(replace(p, jail=replace(p.jail, enabled=on)) for p in model.pools)
    return dataclasses.replace(model, pools=pools)


def spec_names(model: Model) -> set[str]:
    return {n for s in model.sites for n in (s.server_name, *s.aliases)}


def links_to_disable(vhosts: Iterable[VhostFile], names: set[str], enabled_dir: str,
                     readlink: Callable[[str], str | None]) -> tuple[tuple[str, str], ...]:
    """(link, target) of every sites-enabled link whose vhosts the spec covers, all of
    them; PlanError naming every vhost file that cannot be disabled by taking its link
    out (not a link in sites-enabled, or holding vhosts the spec lacks too). Pure but
    for readlink (None: not a link)."""
    by_file: dict[str, list[VhostFile]] = {}
    for v in vhosts:
        by_file.setdefault(v.file, []).append(v)
    out: list[tuple[str, str]] = []
    problems: list[str] = []
    for path, found in sorted(by_file.items()):
        covered = [v for v in found if v.names and v.names[0] in names]
        if not covered:
            continue
        if len(covered) != len(found):
            left = ", ".join(f"{v.names[0] if v.names else '?'} ({v.file}:{v.line})"
                             for v in found if v not in covered)
            problems.append(f"{path}: holds vhosts of the spec and others it lacks ({left}); "
                            "move those to a file of their own (a2ensite it)")
            continue
        target = readlink(path) if os.path.dirname(path) == enabled_dir else None
        if target is None:
            problems.append(f"{path}:{found[0].line}: not a link in {enabled_dir}; stage 6 "
                            "disables an old vhost only by taking its link out (a2dissite). "
                            "Move the file to sites-available/ and a2ensite it")
            continue
        out.append((path, target))
    if problems:
        raise PlanError("stage 6 cannot disable the old vhosts the spec covers:\n  "
                        + "\n  ".join(problems) + "\nNothing was changed")
    return tuple(out)


def _readlink(path: str) -> str | None:
    return os.readlink(path) if os.path.islink(path) else None


def old_vhost_links(server: OldServer, model: Model) -> tuple[tuple[str, str], ...]:
    vhosts = [VhostFile(r.file, r.line, (r.name, *r.aliases)) for r in server.source.refs]
    return links_to_disable(vhosts, spec_names(model),
                            os.path.join(server.root, "sites-enabled"), _readlink)


def check_host(server: OldServer, model: Model, hooks: Phphost | None) -> None:
    """Stages 6-7 apply the spec to this host: its Apache must be the one phphost
    renders into, and phphost must manage nothing the spec lacks (a spec is the whole
    host: applying it would stop those pools)."""
    if hooks is None:
        raise PlanError("stages 6-7 need phphost's apply (run them through `phphost migrate`)")
    ours = os.path.realpath(layout.APACHE_DIR)
    if server.root != ours:
        raise PlanError(f"stages 6-7 hand the sites to phphost's own Apache configuration in "
                        f"{layout.APACHE_DIR}; this migration's Apache is {server.root}. "
                        "They run only where the old server is the host's own Apache "
                        "(stages 1-5 work on any ServerRoot). Nothing was changed")
    have = read_state()
    extra = sorted(set(have.pools) - {p.name for p in model.pools}) + sorted(
        set(have.sites) - {s.name for s in model.sites})
    if extra:
        raise PlanError(f"phphost already manages {', '.join(extra)} on this host, which "
                        f"{model.source} lacks; stage 6 applies the spec as the whole host "
                        "and would remove them. Put them into the spec (or destroy them "
                        "first). Nothing was changed")


def describe(server: OldServer, model: Model, current: MigrateState, stage: int,
             hooks: Phphost) -> list[str]:
    """What `--dry-run` prints for a step into or out of stage 6 or 7."""
    if stage == 7:
        return [f"stage {name(7)} would apply {model.source} with every pool jailed:",
                hooks.plan(with_jails(model, True))]
    if stage == 6 and current.stage == 7:
        return [f"stage {name(6)} would apply {model.source} with every pool unjailed:",
                hooks.plan(with_jails(model, False))]
    if stage == 6:
        links = old_vhost_links(server, model)
        changes = owners.plan(model, server.source.user)
        return [f"stage {name(6)} would:",
                *(f"  take out the link {link} -> {target}" for link, target in links),
                f"  remove {server.overlay}",
                f"  apply {model.source}, every pool unjailed as its own user:",
                hooks.plan(with_jails(model, False)),
                f"  change {len(changes)} path(s) in the tenant homes (owner:group mode):",
                *(f"    {c.line()}" for c in changes),
                "  then stop and remove " + (", ".join(current.split_programs) or "nothing")]
    return [f"stage {name(5)} would start the per-pool masters as {server.source.user} "
            f"again, put back {len(current.sites_off)} vhost link(s) and migrate's conf, "
            f"put back the owner and mode of {len(current.owners)} path(s), then phphost "
            f"destroy {model.source} (without --purge: users, homes and data stay)"]


def step(server: OldServer, model: Model, current: MigrateState, to: int, moved: tuple[str, ...],
         state_file: str, hooks: Phphost, say: Say) -> MigrateState:
    if to == 7:
        hooks.apply(with_jails(model, True), say)
        new = replace(current, stage=7)
    elif current.stage == 7:
        hooks.apply(with_jails(model, False), say)
        new = replace(current, stage=6)
    elif to == 6:
        return _identities(server, model, current, moved, state_file, hooks, say)
    else:
        return _back_to_pools(server, model, current, moved, state_file, hooks, say)
    state.write(new, state_file)
    return new


def _identities(server: OldServer, model: Model, current: MigrateState, moved: tuple[str, ...],
                state_file: str, hooks: Phphost, say: Say) -> MigrateState:
    links = old_vhost_links(server, model)
    changes = owners.plan(model, server.source.user)
    say(f"stage {name(6)}: the old vhost links the spec covers, taken out (kept in the record):")
    for link, target in links:
        say(f"  {link} -> {target}")
    say(f"stage {name(6)}: {len(changes)} path(s) of the tenant homes change owner, group or "
        "mode (owner:group mode, before -> after):")
    for c in changes:
        say(f"  {c.line()}")
    new = replace(current, stage=6, moved=moved, sites_off=links,
                  owners=tuple(c.record() for c in changes))
    state.write(new, state_file)            # before the first change: going back has it all
    old_overlay = files.read_text(server.overlay)
    for link, _target in links:
        files.remove(link)
    oldserver.write_overlay(server, render.render_guard(model))     # stage 4's guard stays
    try:
        hooks.apply(with_jails(model, False), say)     # its reload takes in the links gone
    except PhphostError as err:
        _relink(links)
        oldserver.write_overlay(server, old_overlay)
        server.apache("-k", "graceful", check=False)
        state.write(current, state_file)
        raise _again(err, f"stage {name(6)}: phphost apply failed and rolled itself back; the "
                          f"old vhost links and migrate's conf are back, the host is at "
                          f"stage {name(current.stage)}") from err
    skipped = owners.make(changes)
    if skipped:
        say(f"stage {name(6)}: left alone (gone or changed since the listing): "
            + ", ".join(skipped))
    oldserver.graceful(server, _probe(model), loaded=False)
    oldserver.drain([render.split_socket(p.removeprefix(render.SPLIT_PREFIX))
                     for p in current.split_programs])
    oldserver.split_down(current.split_programs, current.split_files)
    new = replace(new, split_programs=(), split_files=())
    state.write(new, state_file)
    return new


def _back_to_pools(server: OldServer, model: Model, current: MigrateState,
                   moved: tuple[str, ...], state_file: str, hooks: Phphost,
                   say: Say) -> MigrateState:
    pools = render.php_pools(model)
    programs = tuple(render.split_program(p) for p in pools)
    written = tuple(f for p in pools for f in render.split_files(p))
    mid = replace(current, split_programs=programs, split_files=written)
    state.write(mid, state_file)            # before the first master: a failure removes them
    try:
        oldserver.split_up(model, server.source.user, pools)
    except (HostError, PlanError) as err:
        oldserver.split_down(programs, written)
        state.write(current, state_file)
        raise _again(err, f"stage {name(5)}: the web user's masters did not come up; removed "
                          f"again, the host stays at stage {name(6)}") from err
    probe = oldserver.new_probe()
    _relink(current.sites_off)
    oldserver.write_overlay(server, render.render_overlay(model, 5, moved, probe))
    problem = oldserver.configtest(server)
    if problem is not None:
        for link, _target in current.sites_off:
            files.remove(link)
        oldserver.write_overlay(server, render.render_guard(model))
        oldserver.split_down(programs, written)
        state.write(current, state_file)
        raise ValidationFailed(f"apache2 -t refuses the old vhosts back (stage {name(5)}); "
                               f"they are out again and the host stays at stage {name(6)}: "
                               f"{problem}")
    ids = _tenant_ids(model)
    skipped = owners.restore(current.owners, ids)
    web = pwd.getpwnam(server.source.user)
    handed = owners.handed_back(model, (web.pw_uid, web.pw_gid), ids,
                                {r[0] for r in current.owners})
    say(f"stage {name(5)}: owner and mode of {len(current.owners) - len(skipped)} path(s) put "
        f"back, {handed} made since in the writable dirs given to {server.source.user}"
        + (f"; left alone (gone or another user's since): {', '.join(skipped)}"
           if skipped else ""))
    hooks.destroy(with_jails(model, False), say)    # its reload takes in the old vhosts
    oldserver.graceful(server, _probe_url(model, probe), loaded=True)
    new = replace(mid, stage=5, moved=moved, sites_off=(), owners=())
    state.write(new, state_file)
    return new


def _tenant_ids(model: Model) -> set[int]:
    """The uids of the spec's tenant and pool users that exist now."""
    out: set[int] = set()
    for user in [*(t.user for t in model.tenants), *(p.user for p in model.pools)]:
        try:
            out.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            continue
    return out - {0}


def _relink(links: Iterable[tuple[str, str]]) -> None:
    for link, target in links:
        files.atomic_symlink(link, target)


def _probe(model: Model) -> Url | None:
    return _probe_url(model, oldserver.new_probe())


def _probe_url(model: Model, probe: str) -> Url | None:
    site = next((s for s in model.sites if s.docroot and not s.redirect), None)
    if site is None:
        return None
    return Url("http", site.server_name, model.apache.http_port,
               f"/phphost-migrate-probe-{probe}")


def _again(err: PhphostError, text: str) -> PhphostError:
    if isinstance(err, (HostError, PlanError, ValidationFailed)):
        return type(err)(f"{text}: {err}")
    return HostError(f"{text}: {err}")

