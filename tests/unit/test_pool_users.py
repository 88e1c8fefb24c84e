"""identities.create_pool_users: many pool users in one change of the account files,
as useradd --system would write them, uids from the pool range's floor down."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout
from phphost.errors import HostError
from phphost.host import apply as apply_mod
from phphost.host import identities
from phphost.host.journal import Journal
from phphost.plan import actions as A

ACCOUNTS = "root:x:0:0:root:/root:/bin/bash\nold:x:59990:1001::/nonexistent:/usr/sbin/nologin\n"
GROUPS = "root:x:0:\nt1:x:1001:\nbusy:x:1003:\n"
SHADOW = "root:*:20000:0:99999:7:::\nold:!:20000::::::\nphp-b:!:1::::::\n"


@pytest.fixture()
def etc(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="pool-users-", dir="/root"))
    (top / "passwd").write_text(ACCOUNTS)
    (top / "shadow").write_text(SHADOW)
    os.chmod(top / "shadow", 0o640)
    for name, text in (("group", GROUPS), ("gshadow", "t1:!::\n"),
                       ("subuid", "t1:100000:65536\n"), ("subgid", "t1:100000:65536\n")):
        (top / name).write_text(text)
    monkeypatch.setattr(layout, "GROUP_DB", str(top / "group"))
    monkeypatch.setattr(layout, "GROUP_SHADOW_DB", str(top / "gshadow"))
    monkeypatch.setattr(layout, "SUBUID_DB", str(top / "subuid"))
    monkeypatch.setattr(layout, "SUBGID_DB", str(top / "subgid"))
    monkeypatch.setattr(layout, "USER_DB", str(top / "passwd"))
    monkeypatch.setattr(layout, "USER_SHADOW_DB", str(top / "shadow"))
    monkeypatch.setattr(layout, "POOL_UID_FLOOR", str(top / "floor"))
    monkeypatch.setattr(layout, "TENANT_ID_MARK", str(top / "tenant-id-mark"))
    monkeypatch.setattr(identities, "_account_lock", contextlib.nullcontext)
    monkeypatch.setattr(layout, "NSCD", str(top / "no-nscd"))
    monkeypatch.setattr(grp, "getgrnam", lambda g: grp.struct_group((g, "x", 1001, [])))
    monkeypatch.setattr(pwd, "getpwall", lambda: [pwd.struct_passwd(
        ("old", "x", 59990, 1001, "", "/nonexistent", layout.NOLOGIN))])
    yield top
    shutil.rmtree(top)


def test_pool_users_are_written_like_useradd_system(etc: Path) -> None:
    journal = Journal(str(etc / "journal"))
    journal.begin()
    identities.create_pool_users(journal, [("php-a", "t1"), ("php-b", "t2")])
    assert (etc / "passwd").read_text() == ACCOUNTS + (
        "php-a:x:59989:1001::/nonexistent:/usr/sbin/nologin\n"
        "php-b:x:59988:1001::/nonexistent:/usr/sbin/nologin\n")
    shadow = (etc / "shadow").read_text().splitlines()
    assert shadow[:2] == SHADOW.splitlines()[:2]          # the orphan php-b line went
    assert [line.split(":")[0] for line in shadow[2:]] == ["php-a", "php-b"]
    assert all(line.split(":")[1] == "!" and line.endswith("::::::") for line in shadow[2:])
    assert (etc / "passwd-").read_text() == ACCOUNTS        # the previous file, kept
    assert oct((etc / "shadow").stat().st_mode & 0o777) == "0o640"
    assert (etc / "floor").read_text() == "59988\n"       # recorded: never given again
    assert [e["name"] for e in journal.entries() if e["k"] == "user"] == ["php-a", "php-b"]


def test_refusals_change_nothing(etc: Path) -> None:
    journal = Journal(str(etc / "journal"))
    journal.begin()
    with pytest.raises(HostError, match="appeared meanwhile"):
        identities.create_pool_users(journal, [("php-a", "t1"), ("old", "t1")])
    with pytest.raises(HostError, match="not a user or group name"):
        identities.create_pool_users(journal, [("evil:x:0:0", "t1")])
    (etc / "floor").write_text(f"{layout.POOL_UID_MIN + 1}\n")
    with pytest.raises(HostError, match="has room for 1 more pool users, not 2"):
        identities.create_pool_users(journal, [("php-a", "t1"), ("php-c", "t1")])
    assert (etc / "passwd").read_text() == ACCOUNTS and (etc / "shadow").read_text() == SHADOW


def test_consecutive_new_pool_users_are_one_run() -> None:
    acts: list[A.Action] = [
        A.EnsureGroup("new", name="t"),
        A.EnsureUser("new", name="t", group="t", home="/srv/t", system=False),
        A.EnsureUser("new", name="php-a", group="t"),
        A.EnsureUser("new", name="php-b", group="t"),
        A.EnsureUser("group", name="php-c", group="t", exists=True),
        A.EnsureUser("new", name="php-d", group="t"),
    ]
    assert [len(r) for r in apply_mod._user_runs(acts, set())] == [1, 1, 2, 1, 1]


def test_pool_users_are_removed_together_others_left_to_userdel(
        etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(str(etc / "journal"))
    journal.begin()
    identities.create_pool_users(journal, [("php-a", "t1"), ("php-b", "t2")])
    monkeypatch.setattr(pwd, "getpwall", lambda: [
        pwd.struct_passwd((n, "x", uid, 1001, "", "/nonexistent", layout.NOLOGIN))
        for n, uid in (("old", 59990), ("php-a", 59989), ("php-b", 59988), ("root", 0))])
    monkeypatch.setattr(grp, "getgrall", lambda: [grp.struct_group(("t", "x", 1001, ["old"]))])

    def getgrnam(name: str) -> grp.struct_group:
        raise KeyError(name)

    monkeypatch.setattr(grp, "getgrnam", getgrnam)
    left = identities.remove_pool_users(["php-a", "old", "root", "php-b", "nobody-here"])
    assert left == ["old", "root", "nobody-here"]     # a group member, not a pool uid
    assert (etc / "passwd").read_text() == ACCOUNTS
    assert (etc / "shadow").read_text() == "root:*:20000:0:99999:7:::\nold:!:20000::::::\n"


def test_tenant_users_with_their_groups_are_written_like_useradd(etc: Path) -> None:
    (etc / "passwd").write_text(ACCOUNTS + "t1:x:1001:1001::/srv/t1:/usr/sbin/nologin\n")
    journal = Journal(str(etc / "journal"))
    journal.begin()
    identities.create_tenant_users(journal, [("t2", "/srv/t2"), ("t3", "/srv/w/t3")])
    passwd = (etc / "passwd").read_text().splitlines()
    # gids above every tenant gid in use or given (1003, busy): a free gid below it may
    # be a destroyed tenant's, still owning the home it left
    assert passwd[-2:] == ["t2:x:1002:1004::/srv/t2:/usr/sbin/nologin",
                           "t3:x:1003:1005::/srv/w/t3:/usr/sbin/nologin"]
    assert (etc / "group").read_text() == GROUPS + "t2:x:1004:\nt3:x:1005:\n"
    assert (etc / "tenant-id-mark").read_text() == "1003 1005\n"
    assert (etc / "gshadow").read_text() == "t1:!::\nt2:!::\nt3:!::\n"
    assert (etc / "subuid").read_text() == ("t1:100000:65536\nt2:165536:65536\n"
                                            "t3:231072:65536\n")
    assert (etc / "subgid").read_text() == (etc / "subuid").read_text()
    shadow = (etc / "shadow").read_text().splitlines()
    assert [line.split(":", 2)[0] + ":" + line.split(":", 3)[3] for line in shadow[-2:]] == [
        "t2:0:99999:7:::", "t3:0:99999:7:::"]
    assert all(line.split(":")[1] == "!" for line in shadow[-2:])
    assert [e["name"] for e in journal.entries() if e["k"] == "user"] == ["t2", "t3"]
    with pytest.raises(HostError, match="appeared meanwhile"):
        identities.create_tenant_users(journal, [("t2", "/srv/t2")])
    with pytest.raises(HostError, match="not a user or home"):
        identities.create_tenant_users(journal, [("t4", "/srv/x:0:0")])


def test_tenant_users_in_one_change_skip_ids_given_before(etc: Path) -> None:
    """A tenant destroyed without --purge left its home owned by uid 1010 and gid 1020:
    the batch never hands those out again."""
    (etc / "tenant-id-mark").write_text("1010 1020\n")
    journal = Journal(str(etc / "journal"))
    journal.begin()
    identities.create_tenant_users(journal, [("t2", "/srv/t2")])
    assert (etc / "passwd").read_text().splitlines()[-1] == \
        "t2:x:1011:1021::/srv/t2:/usr/sbin/nologin"
    assert (etc / "tenant-id-mark").read_text() == "1011 1021\n"


def test_a_tenant_that_gets_its_old_home_back_gets_its_ids_back(etc: Path) -> None:
    """A tenant removed without --purge left its home owned by 1500:1600, ids no account
    has now: the tenant given that home again gets them (its files stay its own); a
    tenant with another home gets new ids above every one given."""
    (etc / "tenant-id-mark").write_text("1600 1700\n")
    home = etc / "home-t2"
    home.mkdir()
    os.chown(home, 1500, 1600)
    journal = Journal(str(etc / "journal"))
    journal.begin()
    identities.create_tenant_users(journal, [("t2", str(home)), ("t3", "/srv/t3")])
    lines = (etc / "passwd").read_text().splitlines()
    assert lines[-2] == f"t2:x:1500:1600::{home}:/usr/sbin/nologin"
    assert lines[-1] == "t3:x:1601:1701::/srv/t3:/usr/sbin/nologin"
    # an owner that has an account now, or outside the tenant range, is not taken
    os.chown(home, 1001, 59990)
    assert identities.home_owner_ids(str(home), {1001}, set()) == (None, None)
    assert identities.home_owner_ids(str(etc / "missing"), set(), set()) == (None, None)
