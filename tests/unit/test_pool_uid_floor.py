"""A pool uid is never handed out twice: the next pool user gets a uid below the lowest
one phphost ever gave (files and ACL entries of a removed pool keep its number)."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from phphost import layout
from phphost.errors import HostError
from phphost.host import identities


def _user(uid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd((f"u{uid}", "x", uid, uid, "", "/nonexistent", "/bin/false"))


@pytest.fixture
def floor_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pool-uid-floor"
    monkeypatch.setattr(layout, "POOL_UID_FLOOR", str(path))
    monkeypatch.setattr(layout, "TENANT_ID_MARK", str(tmp_path / "tenant-id-mark"))
    monkeypatch.setattr(layout, "STATE_DIR", str(tmp_path))
    monkeypatch.setattr(identities.files, "atomic_write",    # pytest's tmp is under /tmp
                        lambda p, text, mode: Path(p).write_text(text))
    return path


def test_first_pool_user_gets_the_top_of_the_range(floor_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(0), _user(1000)])
    assert identities.next_pool_uid_ceiling() == layout.POOL_UID_MAX


def test_a_removed_pools_uid_is_not_given_again(floor_file: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(59999), _user(59998)])
    identities.record_pool_uid(59998)
    # the pool of 59998 leaves the spec: its user is gone, the floor stays
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(59999)])
    assert identities.next_pool_uid_ceiling() == 59997
    identities.record_pool_uid(59999)           # never raises the floor
    assert floor_file.read_text() == "59998\n"


def test_existing_pool_users_count_without_a_record(floor_file: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(41000), _user(59999)])
    assert identities.next_pool_uid_ceiling() == 40999


def test_used_up_range_and_a_broken_record_are_clear_errors(
        floor_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwall", lambda: [])
    floor_file.write_text(f"{layout.POOL_UID_MIN}\n")
    with pytest.raises(HostError, match="used up"):
        identities.next_pool_uid_ceiling()
    floor_file.write_text("garbage\n")
    with pytest.raises(HostError, match="not a uid"):
        identities.next_pool_uid_ceiling()


def test_create_user_records_the_uid_before_useradd(floor_file: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(59990)])

    def fake_run(argv: list[str]) -> None:
        assert floor_file.read_text() == "59989\n"      # recorded first
        calls.append(argv)

    monkeypatch.setattr(identities, "run", fake_run)
    journal = type("J", (), {"record": lambda self, e: None})()
    identities.create_user(journal, "php-x", "x", "/nonexistent", True)  # type: ignore[arg-type]
    assert calls[0][-4:] == ["--system", "--uid", "59989", "php-x"]



def _prefix(root: Path) -> None:
    """A scratch passwd database for useradd --prefix (never the host's): tenant acme,
    the group of a new tenant newt, and pool php-b at 59998 (php-a, 59999, was removed)."""
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                "acme:x:1000:1000::/srv/www/acme:/usr/sbin/nologin\n"
                                "php-b:x:59998:1000::/srv/www/acme:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nacme:x:1000:\nnewt:x:1001:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nacme:!:19000::::::\n"
                                "php-b:!:19000::::::\n")
    (etc / "gshadow").write_text("root:*::\nacme:!::\nnewt:!::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o600)
    (etc / "login.defs").write_text(Path("/etc/login.defs").read_text())


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/sbin/useradd")
                    or not os.path.exists("/etc/login.defs"), reason="needs root and useradd")
def test_a_new_tenant_user_never_gets_a_removed_pools_uid(tmp_path: Path, floor_file: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Attacker review: useradd gives a tenant the highest used uid + 1, so with the
    top pool user (59999) removed and 59998 left, the next tenant user got 59999 and
    owned the files and ACL entries the removed pool left behind. Real useradd, on a
    scratch database."""
    _prefix(tmp_path)

    def in_prefix(argv: list[str]) -> None:
        subprocess.run([argv[0], "--prefix", str(tmp_path), *argv[1:]], check=True,
                       capture_output=True)

    monkeypatch.setattr(identities, "run", in_prefix)
    journal = type("J", (), {"record": lambda self, e: None})()
    identities.create_user(journal, "newt", "newt", "/srv/www/newt", False)  # type: ignore[arg-type]
    uids = {line.split(":")[0]: int(line.split(":")[2])
            for line in (tmp_path / "etc" / "passwd").read_text().splitlines()}
    assert uids["newt"] < layout.POOL_UID_MIN, uids


def _group(gid: int) -> grp.struct_group:
    return grp.struct_group((f"g{gid}", "x", gid, []))


def test_a_destroyed_tenants_ids_are_not_given_again(floor_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant destroyed without --purge leaves its home owned by its uid and gid:
    useradd/groupadd would give the next tenant the same numbers (highest used + 1)."""
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(0), _user(1000), _user(59999)])
    monkeypatch.setattr(grp, "getgrall", lambda: [_group(0), _group(1000)])
    assert identities.next_tenant_id("uid") == 1001
    assert identities.next_tenant_id("gid") == 1001
    # that tenant is destroyed: its user and group are gone, its home stays
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(0), _user(1000), _user(59999)])
    monkeypatch.setattr(grp, "getgrall", lambda: [_group(0), _group(1000)])
    assert identities.next_tenant_id("uid") == 1002
    assert identities.next_tenant_id("gid") == 1002
    assert (floor_file.parent / "tenant-id-mark").read_text() == "1002 1002\n"


def test_tenant_ids_count_accounts_made_by_hand_and_stop_below_the_pools(
        floor_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(4000), _user(65534)])
    assert identities.next_tenant_id("uid") == 4001
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(layout.POOL_UID_MIN - 1)])
    with pytest.raises(HostError, match="no uid left"):
        identities.next_tenant_id("uid")
    (floor_file.parent / "tenant-id-mark").write_text("garbage\n")
    with pytest.raises(HostError, match="UID GID"):
        identities.next_tenant_id("gid")


def test_create_group_and_tenant_user_pass_the_ids(floor_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(pwd, "getpwall", lambda: [_user(1500)])
    monkeypatch.setattr(grp, "getgrall", lambda: [_group(1700)])
    monkeypatch.setattr(identities, "run", calls.append)
    journal = type("J", (), {"record": lambda self, e: None})()
    identities.create_group(journal, "acme")  # type: ignore[arg-type]
    identities.create_user(journal, "acme", "acme", "/srv/www/acme", False)  # type: ignore[arg-type]
    assert calls[0] == ["groupadd", "--gid", "1701", "acme"]
    assert calls[1][-3:] == ["--uid", "1501", "acme"]
