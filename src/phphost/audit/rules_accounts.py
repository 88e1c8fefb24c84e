"""Audit rules over the Unix accounts a spec uses and who owns the pools' writable
dirs. Pure: (model, facts) -> findings."""

from __future__ import annotations

from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding
from phphost.facts.accounts import FIRST_REGULAR_ID, PRIVILEGED_GROUPS, Account
from phphost.spec.model import Model, Tenant


def _privileged(account: Account) -> list[str]:
    return [g for g in account.groups if g in PRIVILEGED_GROUPS]


def _tenant_accounts(tenant: Tenant, facts: AuditFacts) -> list[Finding]:
    out = []
    user = facts.accounts.users.get(tenant.user)
    group = facts.accounts.groups.get(tenant.group)
    where = f"tenants.{tenant.name}"
    if user is not None and user.ident < FIRST_REGULAR_ID:
        out.append(Finding("PHA021", "high", where,
                           f"tenant user {tenant.user!r} is a system account (uid {user.ident})",
                           "give the tenant a user of its own (a name that does not exist "
                           "yet) and move its files to it"))
    if user is not None and (bad := _privileged(user)):
        out.append(Finding("PHA021", "high", where,
                           f"tenant user {tenant.user!r} is in the privileged group(s) "
                           f"{', '.join(bad)}", f"gpasswd -d {tenant.user} GROUP for each"))
    if group is not None and (group.ident < FIRST_REGULAR_ID
                              or tenant.group in PRIVILEGED_GROUPS):
        out.append(Finding("PHA021", "critical" if tenant.group in PRIVILEGED_GROUPS
                           else "high", where,
                           f"tenant group {tenant.group!r} (gid {group.ident}) is a system "
                           "group: every pool of the tenant runs with it as primary group",
                           "give the tenant a group of its own (a new name)"))
    return out


def adopted_accounts(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA021: a tenant's user or group is a system account (id below 1000) or in a
    privileged group, or a pool user is in a privileged group: the tenant's PHP gets
    that account's files and rights (the mail spool, TLS keys, the Docker socket)."""
    out = [f for t in model.tenants for f in _tenant_accounts(t, facts)]
    for pool in model.pools:
        user = facts.accounts.users.get(pool.user)
        if user is not None and (bad := _privileged(user)):
            out.append(Finding("PHA021", "critical", f"pools.{pool.name}.user",
                               f"pool user {pool.user!r} is in the privileged group(s) "
                               f"{', '.join(bad)}",
                               f"gpasswd -d {pool.user} GROUP for each; pool users belong "
                               "to their tenant's group only"))
    return out


def foreign_writable_dirs(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA022: a pool's writable dir is owned by someone other than its tenant or the
    tenant's pool users: that owner can chmod it, plant links in it, or read what the
    pool writes there (uploads, caches, sessions)."""
    out = []
    for pool in model.pools:
        tenant = model.tenant(pool.tenant)
        allowed = {tenant.user, *(p.user for p in model.pools_of(tenant.name))}
        for i, path in enumerate(pool.writable):
            st = facts.writable.get(path)
            if st is None or st.kind == "missing":
                continue
            if st.kind != "dir":
                out.append(Finding("PHA022", "high", f"pools.{pool.name}.writable[{i}]",
                                   f"writable path {path} is a {st.kind}, not a directory",
                                   "remove it; phphost apply creates the directory"))
            elif st.owner not in allowed:
                out.append(Finding("PHA022", "high", f"pools.{pool.name}.writable[{i}]",
                                   f"writable dir {path} is owned by {st.owner!r}, not by "
                                   f"tenant {tenant.name!r} or its pools",
                                   f"chown {tenant.user}:{tenant.group} {path} "
                                   "(phphost apply does)"))
    return out
