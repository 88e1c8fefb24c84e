"""Files: one tenant's PHP reading, listing, writing or deleting another tenant's
code, data, sessions and logs, the host's secrets, and symlinks / hard links in its
own tree aimed at another tenant's files (fetched through PHP and through Apache)."""

from __future__ import annotations

import os
import urllib.parse

from phphost import layout
from phphost.render.supervisor import supervisor_log
from phphost.spec.model import Model, Tenant
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.fixtures import Canary, code_dir
from phphost.verify.fsops import FsResult, controlled, describe, op, run_ops, tried_line
from phphost.verify.result import Result, judged, not_applicable

FAMILY = "files"


def _own_control(ctx: Ctx) -> tuple[dict[str, str], str]:
    canary = ctx.run.fixtures.code_canary(ctx.tenant)
    return op("read", canary.path), canary.token


def _attempt(ctx: Ctx, ops: list[dict[str, str]]) -> list[FsResult]:
    control, token = _own_control(ctx)
    return controlled(ctx.run.probes, ctx.pool, control, token, ops)


def _verdict(ctx: Ctx, results: list[FsResult]) -> Result:
    """BREACHED when any operation succeeded."""
    return judged([describe(r) for r in results if r["ok"]], tried_line(ctx.pool, results),
                  "; ".join(describe(r) for r in results))


def _no_data(tenant: Tenant) -> Result:
    return not_applicable(f"tenant {tenant.name} has no writable dirs")


def read_code(ctx: Ctx) -> Result:
    target = ctx.target_tenant
    canary = ctx.run.fixtures.code_canary(target)
    ops = [op("read", canary.path), op("list", os.path.dirname(canary.path)),
           op("list", target.home)]
    return _verdict(ctx, _attempt(ctx, ops))


def read_data(ctx: Ctx) -> Result:
    canaries = ctx.run.fixtures.data_canaries(ctx.target_tenant)
    if not canaries:
        return _no_data(ctx.target_tenant)
    ops = [o for c in canaries for o in (op("read", c.path), op("list", os.path.dirname(c.path)))]
    return _verdict(ctx, _attempt(ctx, ops))


def _created(ctx: Ctx, directory: str, suffix: str) -> str:
    path = os.path.join(directory, ctx.name(f"by-{ctx.pool.name}{suffix}"))
    ctx.run.scratch.track(path)
    return path


def write_code(ctx: Ctx) -> Result:
    target = ctx.target_tenant
    canary = ctx.run.fixtures.code_canary(target)
    data = "<?php /* written by another tenant */"
    ops = [op("create", _created(ctx, os.path.dirname(canary.path), ".php"), data=data),
           op("create", _created(ctx, target.home, ".php"), data=data),
           op("append", canary.path, data=data)]
    return _verdict(ctx, _attempt(ctx, ops))


def write_data(ctx: Ctx) -> Result:
    canaries = ctx.run.fixtures.data_canaries(ctx.target_tenant)
    if not canaries:
        return _no_data(ctx.target_tenant)
    ops = [o for c in canaries for o in (
        op("create", _created(ctx, os.path.dirname(c.path), ".txt"), data="x"),
        op("append", c.path, data="x"))]
    return _verdict(ctx, _attempt(ctx, ops))


def delete(ctx: Ctx) -> Result:
    victims = ctx.run.fixtures.victims(ctx.target_tenant, ctx.pair.attacker)
    return _verdict(ctx, _attempt(ctx, [op("delete", v) for v in victims]))


def sessions(ctx: Ctx) -> Result:
    pools = ctx.model.pools_of(ctx.target_tenant.name)
    canaries = [c for c in (ctx.run.fixtures.session(p) for p in pools) if c is not None]
    if not canaries:
        return not_applicable(f"no pool of tenant {ctx.target_tenant.name} keeps "
                              "sessions in files")
    ops = [o for c in canaries for o in (op("read", c.file), op("list", c.dir),
                                         op("append", c.file, data="x"))]
    results = _attempt(ctx, ops)
    # listing a shared session dir is only a breach if it shows the target's session
    hits = [r for r in results if r["ok"] and (
        r["op"] != "list" or any(os.path.basename(c.file) in str(r["content"])
                                 for c in canaries))]
    return judged([describe(r) for r in hits], tried_line(ctx.pool, results),
                  "; ".join(describe(r) for r in results))


def log_files(model: Model, tenant: Tenant) -> list[str]:
    """Logs of the tenant's pools (FPM, supervisor) and sites (Apache). Pure."""
    paths = []
    for pool in model.pools_of(tenant.name):
        paths += [layout.fpm_log(pool.name), supervisor_log(pool.name)]
    for site in model.sites:
        if site.tenant == tenant.name:
            paths += [f"{layout.APACHE_LOG_DIR}/phphost-{site.name}-{kind}.log"
                      for kind in ("access", "error")]
    return paths


def logs(ctx: Ctx) -> Result:
    paths = [p for p in log_files(ctx.model, ctx.target_tenant) if os.path.exists(p)]
    if not paths:
        return not_applicable(f"tenant {ctx.target_tenant.name} has no log files yet")
    return _verdict(ctx, _attempt(ctx, [op("read", p) for p in paths]))


def secret_paths(model: Model) -> list[tuple[str, str]]:
    """(operation, path) of host secrets no tenant may touch. Pure."""
    found = [("read", "/etc/shadow"), ("list", "/root"), ("read", layout.STATE_FILE),
             ("list", layout.STATE_DIR), ("list", "/etc/ssl/private")]
    found += [("read", layout.fpm_conf(p.name)) for p in model.pools]
    found += [("read", s.tls.key) for s in model.sites if s.tls is not None]
    return found


def secrets(ctx: Ctx) -> Result:
    ops = [op(kind, path) for kind, path in secret_paths(ctx.model) if os.path.lexists(path)]
    return _verdict(ctx, _attempt(ctx, ops))


# --- links ---------------------------------------------------------------------------


def _link_targets(ctx: Ctx) -> list[Canary]:
    target = ctx.target_tenant
    return [ctx.run.fixtures.code_canary(target), *ctx.run.fixtures.data_canaries(target)]


def _link_name(ctx: Ctx, stem: str) -> str:
    return ctx.name(f"{stem}-{ctx.pair.attacker}-{ctx.target_tenant.name}".replace(":", "-"))


def _read_hits(results: list[FsResult], canaries: list[Canary]) -> list[str]:
    return [describe(r) for r in results if r["ok"] and r["op"] == "read"
            and any(c.token in str(r["content"]) for c in canaries)]


def symlink_php(ctx: Ctx) -> Result:
    """Symlinks to the target's files, placed by the tenant in its code dir and by the
    pool in its writable dirs, then read through PHP."""
    canaries = _link_targets(ctx)
    own = code_dir(ctx.model, ctx.tenant)
    ops: list[dict[str, str]] = []
    for i, canary in enumerate(canaries):
        link = ctx.run.scratch.symlink(ctx.tenant, canary.path,
                                       os.path.join(own, _link_name(ctx, f"symlink{i}")))
        ops.append(op("read", link))
        for directory in ctx.pool.writable:
            made = _created(ctx, directory, f"-symlink{i}-{ctx.target_tenant.name}")
            ops += [op("symlink", made, target=canary.path), op("read", made)]
    results = _attempt(ctx, ops)
    return judged(_read_hits(results, canaries), tried_line(ctx.pool, results),
                  "; ".join(describe(r) for r in results if r["op"] == "read"))


def symlink_http(ctx: Ctx) -> Result:
    """Symlinks in the site's docroot to the target's files, fetched through Apache
    (Options SymLinksIfOwnerMatch must refuse them: the link's owner is not the file's)."""
    site, canaries = ctx.site, _link_targets(ctx)
    lines, hits = [], []
    for i, canary in enumerate(canaries):
        name = _link_name(ctx, f"link{i}") + ".txt"
        ctx.run.scratch.symlink(ctx.tenant, canary.path, os.path.join(ctx.docroot, name))
        resp = ctx.run.web.get(site, "/" + urllib.parse.quote(name))
        lines.append(f"GET /{name} (-> {canary.path}): {resp.brief()}")
        if canary.token in resp.text:
            hits.append(lines[-1])
    tried = f"tenant {ctx.tenant.name} symlinks in {ctx.docroot}, fetched from {site.server_name}"
    return judged(hits, tried, "; ".join(lines))


def hardlink(ctx: Ctx) -> Result:
    """Hard links to the target's files: by the tenant in its code dir, by the pool in
    its writable dirs. Making the link at all is the breach (Apache and the ACLs on
    the inode then serve another tenant's file from this tenant's tree)."""
    own = code_dir(ctx.model, ctx.tenant)
    made: list[str] = []
    lines: list[str] = []
    ops: list[dict[str, str]] = []
    for i, canary in enumerate(_link_targets(ctx)):
        path = os.path.join(own, _link_name(ctx, f"hardlink{i}"))
        err = ctx.run.scratch.hardlink(ctx.tenant, canary.path, path)
        line = f"tenant {ctx.tenant.name}: ln {canary.path} {path}: {err or 'succeeded'}"
        (lines if err else made).append(line)
        ops += [op("link", _created(ctx, d, f"-hardlink{i}-{ctx.target_tenant.name}"),
                   target=canary.path)
                for d in ctx.pool.writable]
    results = run_ops(ctx.run.probes, ctx.pool, ops) if ops else []
    made += [describe(r) for r in results if r["ok"]]
    lines += [describe(r) for r in results if not r["ok"]]
    tried = f"hard links as tenant {ctx.tenant.name} and as pool {ctx.pool.name}"
    return judged(made, tried, "; ".join(lines))


ATTACKS = (
    Attack("files.read-code", FAMILY, "read and list another tenant's code", "pool>tenant",
           read_code),
    Attack("files.read-data", FAMILY, "read and list another tenant's writable dirs",
           "pool>tenant", read_data),
    Attack("files.write-code", FAMILY, "create files in or append to another tenant's code",
           "pool>tenant", write_code),
    Attack("files.write-data", FAMILY, "create or append in another tenant's writable dirs",
           "pool>tenant", write_data),
    Attack("files.delete", FAMILY, "delete another tenant's files", "pool>tenant", delete),
    Attack("files.sessions", FAMILY, "read, list or write another pool's PHP sessions",
           "pool>tenant", sessions),
    Attack("files.logs", FAMILY, "read another tenant's FPM, supervisor and Apache logs",
           "pool>tenant", logs),
    Attack("files.secrets", FAMILY, "read /etc/shadow, /root, FPM configs, phphost state, "
           "TLS keys", "pool", secrets),
    Attack("files.symlink-php", FAMILY, "symlink to another tenant's files, read via PHP",
           "pool>tenant", symlink_php),
    Attack("files.symlink-http", FAMILY, "symlink to another tenant's files, fetch via Apache",
           "site>tenant", symlink_http),
    Attack("files.hardlink", FAMILY, "hard-link another tenant's files into one's own tree",
           "pool>tenant", hardlink),
)
