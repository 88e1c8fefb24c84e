"""Jail: from inside a chrooted pool, try to get out (.., /proc/1/root), reach host
paths that must not be mounted into the jail, and open device nodes.

Only meaningful for jailed pools; an unjailed pool's cell is n/a. The three attacks
share one probe run (jail.php); adding another jail attack is one function that
reads `_seen(ctx)` plus one Attack line."""

from __future__ import annotations

from typing import Any

from phphost import layout
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.result import Result, judged, not_applicable

FAMILY = "jail"
# device nodes a jail may hold: /dev/null, zero, random, urandom (major 1)
ALLOWED_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/random": (1, 8),
                   "/dev/urandom": (1, 9)}
ESCAPES = ("/proc/1/root/", "/proc/1/cwd/", "/proc/self/root/../../etc/")


def host_only_paths(ctx: Ctx) -> list[str]:
    """Host paths no jail may show: phphost's own config and state, Apache's config,
    the sockets dir, other tenants' homes."""
    others = [t.home for t in ctx.model.tenants if t.name != ctx.pool.tenant]
    return [layout.FPM_CONF_DIR, layout.STATE_DIR, layout.APACHE_DIR, "/etc/shadow",
            layout.SUPERVISOR_DIR, layout.RUN_DIR, "/root", *others]


def _seen(ctx: Ctx) -> dict[str, Any] | None:
    """The jail probe's answer, or None when the pool is not jailed."""
    if not ctx.pool.jail.enabled:
        return None
    key = ("jail", ctx.pool.name)
    if key not in ctx.run.memo:
        paths = [*ESCAPES, *host_only_paths(ctx)]
        ctx.run.memo[key] = ctx.probe("jail.php", {"paths": paths})
    return dict(ctx.run.memo[key])


def _reached(seen: dict[str, Any], paths: tuple[str, ...] | list[str]) -> list[str]:
    out = []
    for entry in seen.get("paths", []):
        if entry["path"] in paths and (entry.get("list") is not None or entry.get("read")):
            what = f"lists {entry['list'][:5]}" if entry.get("list") is not None else "readable"
            out.append(f"{entry['path']} {what}")
    return out


NOT_JAILED = "pool not jailed"


def escape(ctx: Ctx) -> Result:
    seen = _seen(ctx)
    if seen is None:
        return not_applicable(NOT_JAILED)
    hits = _reached(seen, ESCAPES)
    if seen.get("cwd_after_dotdot") not in ("/", None):
        hits.append(f"chdir('..') x64 ends in {seen['cwd_after_dotdot']}")
    return judged(hits, f"PHP in jailed pool {ctx.pool.name}: {', '.join(ESCAPES)}, "
                  "chdir('..')", "all refused; / is the jail")


def host_mounts(ctx: Ctx) -> Result:
    seen = _seen(ctx)
    if seen is None:
        return not_applicable(NOT_JAILED)
    paths = host_only_paths(ctx)
    return judged(_reached(seen, paths), f"PHP in jailed pool {ctx.pool.name}: "
                  f"list/read {', '.join(paths)}", "none of them exists in the jail")


def devices(ctx: Ctx) -> Result:
    seen = _seen(ctx)
    if seen is None:
        return not_applicable(NOT_JAILED)
    hits = []
    for dev in seen.get("devices", []):
        rdev = int(dev["rdev"])
        if ALLOWED_DEVICES.get(dev["name"]) != (rdev >> 8 & 0xFFF, rdev & 0xFF):
            hits.append(f"{dev['name']} ({rdev >> 8 & 0xFFF},{rdev & 0xFF})"
                        + (" opened" if dev.get("open") else ""))
    return judged(hits, f"PHP in jailed pool {ctx.pool.name}: device nodes under /dev",
                  "only " + ", ".join(sorted(ALLOWED_DEVICES)))


ATTACKS = (
    Attack("jail.escape", FAMILY, "get out of the chroot", "pool", escape),
    Attack("jail.host-mounts", FAMILY, "reach host paths from inside the jail", "pool",
           host_mounts),
    Attack("jail.devices", FAMILY, "device nodes inside the jail", "pool", devices),
)
