"""The Unix accounts a spec names, as they exist on this host (read-only): ids and
group memberships, for plan's account check and audit's account rules."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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


class AccountsDb:
    """passwd and group indexed by name, gid and member: one `getpwall`/`getgrall`
    instead of a linear NSS scan per lookup (at 1,000 tenants, with 2,000 users, the
    lookups of one plan were quadratic). Read again whenever /etc/passwd or
    /etc/group changes (useradd during an apply)."""

    def __init__(self) -> None:
        self._sig: tuple[Any, ...] | None = None
        self.users: dict[str, pwd.struct_passwd] = {}
        self.by_uid: dict[int, pwd.struct_passwd] = {}
        self.groups: dict[str, grp.struct_group] = {}
        self.by_gid: dict[int, grp.struct_group] = {}
        self.member_of: dict[str, list[str]] = {}

    def fresh(self) -> AccountsDb:
        sig = tuple(_stat_sig(p) for p in ("/etc/passwd", "/etc/group"))
        if sig != self._sig or sig[0] is None:
            self._load()
            self._sig = sig
        return self

    def _load(self) -> None:
        self.users, self.by_uid, self.groups, self.by_gid, self.member_of = {}, {}, {}, {}, {}
        for pw in pwd.getpwall():
            self.users.setdefault(pw.pw_name, pw)
            self.by_uid.setdefault(pw.pw_uid, pw)
        for gr in grp.getgrall():
            self.groups.setdefault(gr.gr_name, gr)
            self.by_gid.setdefault(gr.gr_gid, gr)
            for member in gr.gr_mem:
                self.member_of.setdefault(member, []).append(gr.gr_name)


def _stat_sig(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_DB = AccountsDb()


def accounts_db() -> AccountsDb:
    """The host's passwd and group, indexed (read again when either file changed)."""
    return _DB.fresh()


def read_accounts(users: Iterable[str], groups: Iterable[str]) -> AccountFacts:
    db = accounts_db()
    found_users: dict[str, Account] = {}
    for name in sorted(set(users)):
        pw = db.users.get(name)
        if pw is None:
            continue
        first = db.by_gid.get(pw.pw_gid)
        primary = first.gr_name if first is not None else str(pw.pw_gid)
        extra = sorted(g for g in db.member_of.get(name, ()) if g != primary)
        found_users[name] = Account(name, pw.pw_uid, (primary, *extra))
    found_groups: dict[str, Account] = {}
    for name in sorted(set(groups)):
        gr = db.groups.get(name)
        if gr is not None:
            found_groups[name] = Account(name, gr.gr_gid)
    return AccountFacts(found_users, found_groups)


def read_model_accounts(model: Model) -> AccountFacts:
    users, groups = spec_names(model)
    return read_accounts(users, groups)
