"""The network policy of the pools (docs/network.md): phphost's own nftables table,
one chain per pool, matched on the socket owner of every packet the host sends.

A pool's processes (uid = its runtime user) may open connections only to what its
jail features declare: DNS to the host's resolvers (`dns`), HTTPS anywhere (`tls`),
the SMTP relay of `jail.smtp` for the jail's sendmail alone (`mail`: the program is
setgid to phphost-mail, and only that group's sockets reach the relay), plus the
pool's `network.allow` list. Everything else is refused at once (TCP reset, ICMP
admin-prohibited), so PHP fails fast instead of waiting for a timeout. Unix sockets
(MariaDB, FPM) are not IP traffic and are unaffected. Pure.
"""

from __future__ import annotations

import hashlib
import ipaddress

from phphost import layout
from phphost.launcher import mailer
from phphost.spec.model import Model, Pool

HEADER = """\
# phphost network policy (docs/network.md), rendered from the spec.
# Do not edit: `phphost apply` rewrites it, checks it with `nft -c -f` and loads it
# with `nft -f`. The first two lines make a reload replace the whole table at once.
"""


def table_name() -> str:
    family, name = layout.NFT_TABLE
    return f"{family} {name}"


def digest(listing: str) -> str:
    """The fingerprint of a live table (`nft list table` text) recorded after a load."""
    return hashlib.sha256(listing.encode()).hexdigest()


POOL_USERS = "pool_users"     # set: every pool's runtime user
DISPATCH = "pools"            # verdict map: pool user -> jump to the pool's chain


def chain_name(pool: str) -> str:
    return f"pool-{pool}"


def parse_resolvers(text: str) -> tuple[str, ...]:
    """Pure: the nameserver addresses of a resolv.conf text (IP literals only, as the
    resolver itself accepts; a link-local %scope is dropped)."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(fields[1].split("%")[0])
            except ValueError:
                continue
            if str(addr) not in found:
                found.append(str(addr))
    return tuple(found)


def _daddr(addr: str) -> str:
    """`ip daddr X` or `ip6 daddr X` for an address or network (no brackets)."""
    net = ipaddress.ip_network(addr.strip("[]"), strict=False)
    text = str(net.network_address) if net.num_addresses == 1 else str(net)
    return f"{'ip6' if net.version == 6 else 'ip'} daddr {text}"


def _mail_rule(pool: Pool) -> str:
    host, port = mailer.split_server(pool.jail.smtp)
    try:
        where = _daddr(host) + " "
    except ValueError:       # a host name (the 'dns' feature resolves it): any address
        where = ""
    return (f'meta skgid "{layout.MAIL_GROUP}" {where}tcp dport {port} accept'
            f"  # mail: the jail's sendmail alone, to {pool.jail.smtp}")


def pool_rules(pool: Pool, resolvers: tuple[str, ...]) -> list[str]:
    """Pure: the rules of one pool's chain, in order."""
    features = pool.jail.features
    rules: list[str] = []
    if "dns" in features:
        for family in ("ip", "ip6"):
            mine = [r for r in resolvers if (":" in r) == (family == "ip6")]
            if mine:
                rules.append(f"{family} daddr {{ {', '.join(mine)} }} meta l4proto "
                             "{ tcp, udp } th dport 53 accept  # dns: the host's resolvers")
        if not resolvers:
            rules.append("# dns: /etc/resolv.conf names no nameserver")
    if "tls" in features:
        rules.append("tcp dport 443 accept  # tls: outbound HTTPS")
    if "mail" in features:
        rules.append(_mail_rule(pool))
    for dest in pool.network.allow:
        addr, _, port = dest.rpartition(":")
        rules.append(f"{_daddr(addr)} tcp dport {port} accept  # network.allow")
    rules += ["meta l4proto tcp reject with tcp reset  # anything else: refused at once",
              "reject with icmpx admin-prohibited"]
    return rules


def _elements(items: list[str]) -> list[str]:
    """The `elements = { ... }` lines of a set or map, one element a line (none: no line;
    nft refuses an empty `{ }`)."""
    if not items:
        return []
    return ["\t\telements = {", *(f"\t\t\t{item}," for item in items[:-1]),
            f"\t\t\t{items[-1]}", "\t\t}"]


def render_nftables(model: Model, resolvers: tuple[str, ...]) -> str:
    """Pure: /etc/phphost/nftables.conf for the model's pools. The output chain looks
    pool users up in a set and a verdict map (hashed: one lookup a packet at any number
    of pools, where a rule per pool made every packet the host sends walk them all), and
    a launcher checks its own pool with `nft get element` (a constant-size answer)."""
    out = [HEADER, f"table {table_name()}",
           f"delete table {table_name()}", "", f"table {table_name()} {{",
           f"\tset {POOL_USERS} {{", "\t\ttype uid"]
    out += _elements([f'"{p.user}"' for p in model.pools])
    out += ["\t}", "", f"\tmap {DISPATCH} {{", "\t\ttype uid : verdict"]
    out += _elements([f'"{p.user}" : jump {chain_name(p.name)}' for p in model.pools])
    out += ["\t}", "", "\tchain output {",
            "\t\ttype filter hook output priority filter; policy accept;",
            # a pool is never a network server: its packets on a connection someone else
            # opened (PHP listening on a port) are dropped before established traffic is
            # let through
            f"\t\tct direction reply meta skuid @{POOL_USERS} drop",
            "\t\tct state established,related accept",
            f"\t\tmeta skuid vmap @{DISPATCH}",
            "\t}"]
    for pool in model.pools:
        features = ", ".join(f for f in pool.jail.features if f in ("dns", "tls", "mail"))
        out += ["", f"\t# pool {pool.name} (user {pool.user}); network features: "
                f"{features or 'none'}", f"\tchain {chain_name(pool.name)} {{"]
        out += [f"\t\t{rule}" for rule in pool_rules(pool, resolvers)]
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"
