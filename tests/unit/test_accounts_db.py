"""facts.accounts.AccountsDb: the indexed passwd and group answer as the NSS lookups
they replace, and are read again when /etc/passwd or /etc/group changes."""

from __future__ import annotations

import grp
import pwd

import pytest

from phphost.facts import accounts
from phphost.facts.accounts import AccountsDb, read_accounts
from phphost.facts.gather import _name, group_exists, primary_group


def test_lookups_answer_as_nss() -> None:
    users = [*[p.pw_name for p in pwd.getpwall()][:20], "no-such-user-xyz"]
    groups = [*[g.gr_name for g in grp.getgrall()][:20], "no-such-group-xyz"]
    found = read_accounts(users, groups)
    for name in users[:-1]:
        pw = pwd.getpwnam(name)
        assert found.users[name].ident == pw.pw_uid
        assert found.users[name].groups[0] == grp.getgrgid(pw.pw_gid).gr_name
        assert primary_group(name) == grp.getgrgid(pw.pw_gid).gr_name
        assert _name("user", pw.pw_uid) == pwd.getpwuid(pw.pw_uid).pw_name
    assert "no-such-user-xyz" not in found.users and primary_group("no-such-user-xyz") is None
    for name in groups[:-1]:
        assert found.groups[name].ident == grp.getgrnam(name).gr_gid
        assert group_exists(name)
    assert not group_exists("no-such-group-xyz")
    assert _name("user", 2**31 - 7) == str(2**31 - 7)


def test_read_again_when_the_files_change(monkeypatch: pytest.MonkeyPatch) -> None:
    db = AccountsDb()
    sig = [(1, 2, 3, 4)]
    loads: list[int] = []
    monkeypatch.setattr(accounts, "_stat_sig", lambda path: sig[0])
    monkeypatch.setattr(db, "_load", lambda: loads.append(1))
    db.fresh()
    db.fresh()
    assert loads == [1]
    sig[0] = (1, 2, 3, 5)       # useradd rewrote /etc/passwd
    db.fresh()
    assert loads == [1, 1]
