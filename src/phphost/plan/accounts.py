"""Plan-time account check: phphost never takes over a Unix account it did not
create. A tenant named `mail`, `ssl-cert` or `docker` would otherwise hand every pool
of that tenant the group of the mail spool, the TLS keys or the Docker socket. Pure:
the accounts come from facts.accounts.read_accounts."""

from __future__ import annotations

from phphost.errors import PlanError
from phphost.facts.accounts import FIRST_REGULAR_ID, Account, AccountFacts
from phphost.facts.state import State
from phphost.spec.model import Model, Pool, Tenant


def _why(kind: str, account: Account, created: bool) -> str | None:
    what = "uid" if kind == "user" else "gid"
    if not created:
        return (f"{kind} {account.name!r} ({what} {account.ident}) already exists and "
                "phphost did not create it")
    if account.ident < FIRST_REGULAR_ID:
        return (f"{kind} {account.name!r} has {what} {account.ident}, a system account "
                f"(below {FIRST_REGULAR_ID})")
    return None


def tenant_problems(tenant: Tenant, state: State, accounts: AccountFacts) -> list[str]:
    """Why the tenant's existing user/group may not be used ([] when fine or adopted)."""
    if tenant.adopt:
        return []
    found = [("user", accounts.users.get(tenant.user), tenant.user in state.users),
             ("group", accounts.groups.get(tenant.group), tenant.group in state.groups)]
    return [f"tenants.{tenant.name}: {why}" for kind, account, created in found
            if account is not None and (why := _why(kind, account, created)) is not None]


def pool_problems(pool: Pool, state: State, accounts: AccountFacts) -> list[str]:
    """A pool's runtime user is always phphost's own (created as a system user, so a
    uid below 1000 is expected); there is no adopting one."""
    account = accounts.users.get(pool.user)
    if account is None or pool.user in state.pool_users:   # not state.users: a former
        return []                                          # tenant is not a pool user
    return [f"pools.{pool.name}: runtime user {pool.user!r} (uid {account.ident}) already "
            "exists and phphost did not create it"]


def account_problems(model: Model, state: State, accounts: AccountFacts) -> list[str]:
    out = [_in(model, f"tenants.{t.name}", p)
           for t in model.tenants for p in tenant_problems(t, state, accounts)]
    return out + [_in(model, f"pools.{pool.name}", p)
                  for pool in model.pools for p in pool_problems(pool, state, accounts)]


def _in(model: Model, key: str, problem: str) -> str:
    """A problem of a spec directory's file names that file."""
    where = model.file_of(key)
    return problem if where == model.source else f"{where}: {problem}"


def check_accounts(model: Model, state: State, accounts: AccountFacts) -> None:
    """PlanError (exit 4) naming every account phphost would take over, and the remedy."""
    problems = account_problems(model, state, accounts)
    if not problems:
        return
    lines = "\n".join(f"  {p}" for p in problems)
    raise PlanError(
        f"{model.source}: phphost will not take over accounts it did not create "
        f"(their files and group rights would become the tenant's):\n{lines}\n"
        "Rename the tenant (or set its `user`/`group`, or the pool's `user`) to names that "
        "do not exist yet. Only if an existing, unprivileged account really is meant to own "
        "the tenant's code, say so with `adopt = true` in its [tenants.NAME] table")
