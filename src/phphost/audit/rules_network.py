"""PHA025: the pools' network policy (docs/network.md) is in the kernel."""

from __future__ import annotations

from phphost import layout
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding
from phphost.render.nftables import chain_name, table_name
from phphost.spec.model import Model, Pool

REMEDY = ("run `phphost apply` (restarting a pool's master also loads "
          f"{layout.NFT_CONF})")


def _chain(listing: str, name: str) -> list[str]:
    """The rules of one chain in an `nft list table` text."""
    lines = [ln.strip() for ln in listing.splitlines()]
    try:
        start = lines.index(f"chain {name} {{")
    except ValueError:
        return []
    end = next((i for i in range(start + 1, len(lines)) if lines[i] == "}"), len(lines))
    return lines[start + 1:end]


def _pool(pool: Pool, facts: AuditFacts, listing: str) -> list[Finding]:
    account = facts.accounts.users.get(pool.user)
    if account is None:
        return []
    jump = f"meta skuid {account.ident} jump {chain_name(pool.name)}"
    rules = _chain(listing, chain_name(pool.name))
    if jump not in _chain(listing, "output") or not rules \
            or rules[-1] != "reject with icmpx admin-prohibited":
        return [Finding("PHA025", "high", f"pools.{pool.name}",
                        f"table {table_name()} does not hold pool {pool.name}'s policy (user "
                        f"{pool.user}, uid {account.ident}): its PHP reaches any address and "
                        "port, SMTP on port 25 included", REMEDY)]
    return []


def network_policy(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA025: every pool's network policy is loaded: table inet phphost jumps to the
    pool's chain for its user, and the chain ends by refusing the rest (docs/network.md).
    After a reboot the first master to start loads it; until then, or after a hand-made
    `nft flush ruleset`, pools reach anything."""
    if not facts.nft_checked or not model.pools:
        return []
    if facts.nft_listing is None:
        return [Finding("PHA025", "high", table_name(),
                        f"table {table_name()} is not loaded: every pool's PHP reaches any "
                        "address and port, SMTP on port 25 included", REMEDY)]
    return [f for pool in model.pools for f in _pool(pool, facts, facts.nft_listing)]
