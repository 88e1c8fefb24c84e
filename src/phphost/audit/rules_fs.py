"""Audit rules over files: tenant trees, jails, and phphost's own rendered files.
Pure: (model, facts) -> findings."""

from __future__ import annotations

import stat

from phphost.audit.facts import AuditFacts, JailScan, TreeScan
from phphost.audit.findings import Finding, some
from phphost.plan.desired import desired_state
from phphost.spec.model import Model
from phphost.spec.validate import is_inside


def _tenant_key(scan: TreeScan) -> str:
    return f"tenants.{scan.tenant}.home"


# --- PHA003 / PHA004 / PHA005 -------------------------------------------------------------


def world_writable(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA003: no 777 anywhere: a world-writable file or directory in a tenant home
    can be rewritten by every local user, every other tenant's PHP included."""
    del model
    return [Finding("PHA003", "high", _tenant_key(s),
                    f"{len(s.world_writable)} world-writable path(s) in {s.home.path}: "
                    f"{some(s.world_writable)}",
                    "chmod o-w them; give PHP write access with the spec's `writable` dirs")
            for s in facts.trees if s.world_writable]


def world_readable(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA004: Apache reads docroots through ACLs, nobody needs world bits; a home
    other users can enter exposes every world-readable file (config, secrets)."""
    del model
    out = []
    for s in facts.trees:
        home_open = s.home.kind == "dir" and s.home.mode & (stat.S_IROTH | stat.S_IXOTH)
        if home_open:
            out.append(Finding("PHA004", "medium", _tenant_key(s),
                               f"home {s.home.path} is {s.home.mode:04o}: other users can "
                               "enter it", "chmod 0750 it (phphost apply does)"))
        if s.world_readable:
            out.append(Finding("PHA004", "medium" if home_open else "low", _tenant_key(s),
                               f"{len(s.world_readable)} world-readable path(s) in "
                               f"{s.home.path}: {some(s.world_readable)}",
                               "chmod o-rwx them; Apache reads through ACLs"))
        if s.truncated:
            out.append(Finding("PHA004", "info", _tenant_key(s),
                               f"stopped after {s.entries} entries; the rest of {s.home.path} "
                               "was not checked", "check the remaining tree by hand"))
    return out


def group_writable_code(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA005: pools run with the tenant group as primary group: group-writable code
    outside the declared writable dirs can be rewritten by PHP (a webshell stays)."""
    out = []
    for s in facts.trees:
        writable = [w for p in model.pools_of(s.tenant) for w in p.writable]
        code = [p for p in s.group_writable if not any(is_inside(p, w) for w in writable)]
        if code:
            out.append(Finding("PHA005", "medium", _tenant_key(s),
                               f"{len(code)} group-writable path(s) outside the writable "
                               f"dirs of {s.tenant}'s pools: {some(code)}",
                               "chmod g-w them (with ACLs: setfacl -m m::r-x), or declare "
                               "the dir in the pool's `writable`"))
    return out


# --- PHA006 / PHA007 ----------------------------------------------------------------------


def jail_invariants(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA006: a jail and every directory above it are root's and not group- or
    world-writable (else its owner can swap what the chrooted pool sees)."""
    out = []
    for jail in facts.jails:
        out += _jail_chain(jail, model)
        if jail.open_dirs:
            out.append(Finding("PHA006", "medium", jail.root,
                               f"group- or world-writable dirs in the jail: "
                               f"{some(jail.open_dirs)}",
                               "chmod go-w them (a jail's /tmp: 1777 is fine)"))
    return out


def _jail_chain(jail: JailScan, model: Model) -> list[Finding]:
    name = jail.root.rsplit("/", 1)[-1]
    wanted = any(p.name == name and p.jail.enabled for p in model.pools)
    out = []
    for st in jail.chain:
        if st.kind == "missing":
            if wanted:
                out.append(Finding("PHA006", "medium", f"pools.{name}.jail",
                                   f"jail {jail.root} does not exist", "run `phphost apply`"))
            break
        if st.uid != 0 or st.mode & (stat.S_IWGRP | stat.S_IWOTH):
            out.append(Finding("PHA006", "high", st.path,
                               f"{st.path} (above or at jail {jail.root}) is "
                               f"{st.owner}:{st.group} {st.mode:04o}: not root's or writable "
                               "by others", "chown root:root and chmod go-w it"))
    return out


def jail_setid(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA007: no setuid/setgid files inside a jail (a way back to root)."""
    del model
    return [Finding("PHA007", "high", jail.root,
                    f"setuid/setgid files in the jail: {some(jail.setid)}",
                    "chmod ug-s them, or remove them from the jail")
            for jail in facts.jails if jail.setid]


# --- PHA017 -------------------------------------------------------------------------------


def rendered_drift(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA017: phphost's files on disk are what the spec renders (a hand edit is lost
    at the next apply, and the audit of the live host differs from the spec's)."""
    out = []
    for wanted in desired_state(model).files:
        if wanted.path not in facts.files:
            continue
        actual = facts.files[wanted.path]
        if actual is None:
            out.append(Finding("PHA017", "medium", wanted.path, "file is missing",
                               "run `phphost apply`"))
        elif actual != wanted.content:
            out.append(Finding("PHA017", "low", wanted.path,
                               "file differs from what the spec renders (edited by hand?)",
                               "put the change in the spec and run `phphost apply`, or "
                               "`phphost apply` to restore it"))
    return out


# --- PHA024 -------------------------------------------------------------------------------


def _ends(model: Model) -> list[tuple[str, str]]:
    """(what, path) of every path phphost manages that Apache or PHP walks."""
    out = [(f"tenants.{t.name}.home", t.home) for t in model.tenants]
    out += [(f"sites.{s.name}.docroot", s.docroot) for s in model.sites if s.docroot]
    out += [(f"pools.{p.name}.writable", w) for p in model.pools for w in p.writable]
    return out


def symlinked_paths(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA024: no symlink at or above a tenant home, docroot or writable dir (its real
    path differs from the declared one). A tenant who swaps its docroot or a dir above
    it for a symlink points its site at another tenant's tree; phphost's Apache config
    refuses to follow such links, so the site answers 403 instead."""
    homes = [t.home for t in model.tenants]
    hits: dict[str, list[str]] = {}
    for what, end in _ends(model):
        for path in [p for p in facts.walk if is_inside(end, p)]:
            if facts.walk[path].kind == "link":
                hits.setdefault(path, []).append(what)
    out = []
    for path, whats in sorted(hits.items()):
        st = facts.walk[path]
        tenant_made = any(is_inside(path, h) for h in homes)
        out.append(Finding(
            "PHA024", "high" if tenant_made else "medium", path,
            f"{path} is a symlink (owner {st.owner}) on the way to {', '.join(sorted(whats))}"
            + (": at or in a tenant home, it can point a site at another tenant's tree"
               if tenant_made else ": above the tenant homes"),
            "replace it by the real directory (or declare the real path in the spec); "
            "Apache refuses to follow symlinks above a docroot, so the site answers 403"))
    return out
