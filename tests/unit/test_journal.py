"""Every journal record kind and its undo, in temporary directories: path, module,
modset, jail, group, user, usergroup, dir, dirmode, acl, nft, cgroupfile, cgroupdir,
nproc. Commands (groupadd, useradd,
usermod, a2enmod) are recorded, not run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout, safefs
from phphost.host import identities
from phphost.host import journal as J
from phphost.host.journal import Journal

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (/root, chown)")


@pytest.fixture()
def tmp_path() -> Iterator[Path]:
    """Below /root, not /tmp: root restores files only in directories only root can
    write, all the way up (a sticky /tmp is writable by everyone)."""
    top = Path(tempfile.mkdtemp(prefix="journal-", dir="/root"))
    yield top
    shutil.rmtree(top)


@pytest.fixture()
def jdir(tmp_path: Path) -> Journal:
    j = Journal(str(tmp_path / "journal"))
    j.begin()
    return j


@pytest.fixture()
def argvs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []
    monkeypatch.setattr(J, "run", lambda argv, check=True: seen.append(list(argv)))
    return seen


def test_path_records_restore_content_mode_and_links(jdir: Journal, tmp_path: Path) -> None:
    root = tmp_path / "etc"
    root.mkdir()
    old = root / "old.conf"
    old.write_text("before\n")
    os.chmod(old, 0o640)
    new = root / "new.conf"
    link = root / "link.conf"
    link.symlink_to("old.conf")
    for p in (old, new, link):
        jdir.record_path(str(p))
    old.write_text("after\n")
    new.write_text("created\n")
    link.unlink()
    link.symlink_to("new.conf")
    (root / ".phphost-half-written").write_text("torn")
    jdir.rollback()
    assert old.read_text() == "before\n" and oct(old.stat().st_mode & 0o777) == "0o640"
    assert not new.exists()
    assert os.readlink(link) == "old.conf"
    assert not (root / ".phphost-half-written").exists()
    assert not Path(jdir.dir).exists()


def test_modset_restores_the_exact_links(jdir: Journal, tmp_path: Path) -> None:
    conf = tmp_path / "apache2"
    (conf / "mods-enabled").mkdir(parents=True)
    (conf / "mods-enabled" / "mpm_prefork.load").symlink_to("../mods-available/mpm_prefork.load")
    jdir.record_modules(str(conf))
    (conf / "mods-enabled" / "mpm_prefork.load").unlink()
    for name in ("ssl.load", "socache_shmcb.load"):      # a2enmod ssl brings its dependency
        (conf / "mods-enabled" / name).symlink_to(f"../mods-available/{name}")
    jdir.rollback()
    assert sorted(os.listdir(conf / "mods-enabled")) == ["mpm_prefork.load"]


def test_identity_records_run_their_undo(jdir: Journal, argvs: list[list[str]]) -> None:
    jdir.record({"k": "group", "name": "t1"})
    jdir.record({"k": "user", "name": "t1"})
    jdir.record({"k": "usergroup", "name": "t1", "old": "users"})
    jdir.record({"k": "module", "name": "ssl", "was_enabled": False})
    jdir.rollback()
    assert argvs == [["a2dismod", "-q", "-f", "ssl"], ["usermod", "-g", "users", "t1"],
                     ["userdel", "t1"], ["groupdel", "t1"]]


def test_dir_and_dirmode(jdir: Journal, tmp_path: Path) -> None:
    made = tmp_path / "made"
    made.mkdir()
    kept = tmp_path / "kept"
    kept.mkdir(mode=0o750)
    full = tmp_path / "full"
    full.mkdir()
    (full / "data").write_text("x")
    jdir.record({"k": "dirmode", "path": str(kept), "uid": os.getuid(), "gid": os.getgid(),
                 "mode": 0o750})
    jdir.record({"k": "dir", "path": str(made)})
    jdir.record({"k": "dir", "path": str(full)})      # never recursive: data stays
    os.chmod(kept, 0o700)
    jdir.rollback()
    assert not made.exists() and (full / "data").exists()
    assert kept.stat().st_mode & 0o777 == 0o750


def test_a_torn_last_line_is_ignored(jdir: Journal, argvs: list[list[str]]) -> None:
    jdir.record({"k": "group", "name": "g"})
    with open(jdir.log, "a") as fh:
        fh.write('{"k": "user", "na')
    assert [e["k"] for e in jdir.entries()] == ["group"]
    jdir.rollback()
    assert argvs == [["groupdel", "g"]]


def test_one_failing_undo_does_not_stop_the_rest(jdir: Journal, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def boom(_e: J.Entry) -> None:
        raise OSError("gone")

    monkeypatch.setitem(J._UNDO, "dirmode", boom)
    monkeypatch.setattr(J, "run", lambda argv, check=True: seen.append(argv[0]))
    jdir.record({"k": "group", "name": "g"})
    jdir.record({"k": "dirmode", "path": "/x", "uid": 0, "gid": 0, "mode": 0})
    done = jdir.rollback()
    assert "not undone" in done[0] and seen == ["groupdel"]


def test_entries_are_json_lines(jdir: Journal) -> None:
    jdir.record({"k": "group", "name": "g"})
    assert json.loads(Path(jdir.log).read_text()) == {"k": "group", "name": "g"}


def _acls(*paths: Path) -> list[tuple[bytes | None, bytes | None]]:
    out = []
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            out.append(safefs.acl_blobs(fd))
        finally:
            os.close(fd)
    return out


def test_acl_records_restore_every_xattr_and_skip_swapped_paths(jdir: Journal,
                                                                tmp_path: Path) -> None:
    """system.posix_acl_access/default round-trip: an ACL the directory had is put back
    byte for byte, ACLs the grant added are removed, and a directory swapped for a
    symlink since the grant is skipped (its target keeps its ACL)."""
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True, mode=0o750)
    (home / "sub" / "index.php").write_text("<?php\n")
    (home / "gone").mkdir()
    with safefs.opened_dir(str(home)) as fd:
        safefs.grant(fd, ("user:nobody:r-x",))
    outside = tmp_path / "outside"
    outside.mkdir()
    watched = (home, home / "sub", home / "sub" / "index.php")
    before = _acls(*watched)
    assert before[0][0] is not None and before[1] == (None, None)
    identities.set_acl(jdir, str(home), ("user:www-data:r-x", "default:user:www-data:r-x"),
                       recursive=True)
    assert [e["k"] for e in jdir.entries()] == ["acl"]
    assert all(a != b for a, b in zip(_acls(*watched), before, strict=True))
    (home / "gone").rmdir()
    (home / "gone").symlink_to(outside)
    with safefs.opened_dir(str(outside)) as fd:
        safefs.grant(fd, ("user:www-data:r-x",))
    outside_acl = _acls(outside)
    done = jdir.rollback()
    assert _acls(*watched) == before
    assert _acls(outside) == outside_acl
    assert done == [f"acl {home}"]


def test_jail_records_remove_the_new_jail_only(jdir: Journal, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A jail this apply built from nothing is removed; its symlinks are unlinked,
    never followed; another pool's jail stays."""
    monkeypatch.setattr(layout, "JAILS_DIR", str(tmp_path / "jails"))
    secret = tmp_path / "secret"
    secret.write_text("keep\n")
    new = tmp_path / "jails" / "p1"
    (new / "etc" / "ssl").mkdir(parents=True)
    (new / "etc" / "passwd").write_text("p1:x:1:1::/:/bin/false\n")
    (new / "etc" / "ssl" / "certs").symlink_to(tmp_path)
    (new / "etc" / "key").symlink_to(secret)
    old = tmp_path / "jails" / "p2"
    (old / "etc").mkdir(parents=True)
    jdir.record({"k": "jail", "name": "p1"})
    assert jdir.rollback() == ["jail p1"]
    assert not new.exists() and old.is_dir()
    assert secret.read_text() == "keep\n" and (tmp_path / "jails").is_dir()


def test_nft_undo_loads_the_old_policy_or_deletes_the_table(
        jdir: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(J.nftables, "load_text", lambda text: calls.append(f"load {text}"))
    monkeypatch.setattr(J.nftables, "delete", lambda: calls.append("delete"))
    jdir.record({"k": "nft", "old": "table inet phphost {}\n"})
    jdir.record({"k": "nft", "old": None})
    jdir.rollback()
    assert calls == ["delete", "load table inet phphost {}\n"]


def test_cgroup_and_nproc_undos(jdir: Journal, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit file gets its old value back, a cgroup dir made by this apply goes, a
    live RLIMIT_NPROC change is set back on the running pool."""
    calls: list[str] = []
    monkeypatch.setattr(J.services, "set_nproc", lambda pool, n: calls.append(f"nproc {pool} {n}"))
    limit = tmp_path / "pids.max"
    limit.write_text("30")   # a cgroup file is written in place, as the kernel takes it
    made = tmp_path / "phphost"
    made.mkdir()
    jdir.record({"k": "cgroupdir", "path": str(made)})
    jdir.record({"k": "cgroupfile", "path": str(limit), "old": "40"})
    jdir.record({"k": "nproc", "name": "blog", "old": 40})
    jdir.rollback()
    assert calls == ["nproc blog 40"]
    assert limit.read_text() == "40" and not made.exists()


def test_these_tests_cover_every_record_kind() -> None:
    text = Path(__file__).read_text()
    assert sorted(J._UNDO) == sorted(["path", "module", "modset", "jail", "group", "user",
                                      "usergroup", "dir", "dirmode", "acl", "nft", "cgroupfile",
                                      "cgroupdir", "nproc"])
    untested = [k for k in J._UNDO if f'"k": "{k}"' not in text and f'"{k}"' not in text]
    assert untested == []
