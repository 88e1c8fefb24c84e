"""The Unix accounts a spec names, as they exist on this host (read-only): ids and
group memberships, for plan's account check and audit's account rules."""

from __future__ import annotations

import grp
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from phphost.spec.model import Model

FIRST_REGULAR_ID = 1000     # Debian: ids below are system accounts (adduser.conf FIRST_UID)

# Groups whose members can read secrets, logs or devices, or become root: a tenant's
# group (every pool of the tenant runs with it) or a pool user must never be in one.
PRIVILEGED_GROUPS = frozenset({
    "root", "adm", "sudo", "wheel", "shadow", "disk", "kmem", "tty", "docker", "lxd",
    "libvirt", "ssl-cert", "systemd-journal", "staff", "mail", "mysql", "www-data",
    "crontab", "operator", "src", "backup", "lp", "dialout", "video", "audio", "input",
    "netdev", "plugdev", "kvm", "sasl", "postfix", "postdrop", "ssh", "_ssh",
})


@dataclass(frozen=True)
class Account:
    name: str
    ident: int                      # uid (users) or gid (groups)
    groups: tuple[str, ...] = ()    # users: primary group name, then supplementary ones


@dataclass(frozen=True)
class AccountFacts:
    """Only the names asked about that exist."""

    users: Mapping[str, Account] = field(default_factory=dict)
    groups: Mapping[str, Account] = field(default_factory=dict)


def spec_names(model: Model) -> tuple[set[str], set[str]]:
    """(user names, group names) the spec makes phphost create or use."""
    users = {t.user for t in model.tenants} | {p.user for p in model.pools}
    groups = {t.group for t in model.tenants}
    return users, groups


def read_accounts(users: Iterable[str], groups: Iterable[str]) -> AccountFacts:
    everyone = grp.getgrall()
    found_users: dict[str, Account] = {}
    for name in sorted(set(users)):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        primary = next((g.gr_name for g in everyone if g.gr_gid == pw.pw_gid), str(pw.pw_gid))
        extra = sorted(g.gr_name for g in everyone if name in g.gr_mem and g.gr_name != primary)
        found_users[name] = Account(name, pw.pw_uid, (primary, *extra))
    found_groups: dict[str, Account] = {}
    for name in sorted(set(groups)):
        try:
            found_groups[name] = Account(name, grp.getgrnam(name).gr_gid)
        except KeyError:
            continue
    return AccountFacts(found_users, found_groups)


def read_model_accounts(model: Model) -> AccountFacts:
    users, groups = spec_names(model)
    return read_accounts(users, groups)
