"""Every journal record kind and its undo, in temporary directories. Commands
(groupadd, useradd, usermod, a2enmod) are recorded, not run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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
