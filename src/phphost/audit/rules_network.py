"""PHA025: the pools' network policy (docs/network.md) is in the kernel."""

from __future__ import annotations

import re

from phphost import layout
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding
from phphost.render.nftables import DISPATCH, chain_name, table_name
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


_ELEMENT = re.compile(r'(\d+|"[^"]*"|[\w.-]+) : jump ([\w.-]+)')


def dispatch(listing: str) -> dict[str, str]:
    """The elements of the verdict map that sends each pool user's packets to its
    chain, in an `nft list table` text: {uid (or name) -> chain}. nft wraps a long
    element list over several lines; the map ends at the first line that is "}"."""
    lines = [ln.strip() for ln in listing.splitlines()]
    try:
        start = lines.index(f"map {DISPATCH} {{")
    except ValueError:
        return {}
    end = next((i for i in range(start + 1, len(lines)) if lines[i] == "}"), len(lines))
    text = " ".join(lines[start + 1:end])
    return {key.strip('"'): chain for key, chain in _ELEMENT.findall(text)}


def _pool(pool: Pool, facts: AuditFacts, listing: str, sends: dict[str, str]) -> list[Finding]:
    account = facts.accounts.users.get(pool.user)
    if account is None:
        return []
    rules = _chain(listing, chain_name(pool.name))
    sent_to = sends.get(str(account.ident), sends.get(pool.user))
    if sent_to != chain_name(pool.name) or not rules \
            or rules[-1] != "reject with icmpx admin-prohibited":
        return [Finding("PHA025", "high", f"pools.{pool.name}",
                        f"table {table_name()} does not hold pool {pool.name}'s policy (user "
                        f"{pool.user}, uid {account.ident}): its PHP reaches any address and "
                        "port, SMTP on port 25 included", REMEDY)]
    return []


def network_policy(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA025: every pool's network policy is loaded: table inet phphost's map sends the
    pool user's packets to the pool's chain, and the chain ends by refusing the rest
    (docs/network.md).
    After a reboot the first master to start loads it; until then, or after a hand-made
    `nft flush ruleset`, pools reach anything."""
    if not facts.nft_checked or not model.pools:
        return []
    if facts.nft_listing is None:
        return [Finding("PHA025", "high", table_name(),
                        f"table {table_name()} is not loaded: every pool's PHP reaches any "
                        "address and port, SMTP on port 25 included", REMEDY)]
    sends = dispatch(facts.nft_listing)
    return [f for pool in model.pools for f in _pool(pool, facts, facts.nft_listing, sends)]
