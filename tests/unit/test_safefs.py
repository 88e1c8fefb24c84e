"""safefs: root never acts through a path another user can swap. Real files in
temporary directories; root is needed for chown and for trusted (root-owned) trees."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import safefs
from phphost.host import identities
from phphost.host.journal import Journal

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, trusted trees)")
TENANT = 4242     # an id nobody uses: the "tenant" who owns the tree


@pytest.fixture()
def root_tree() -> Iterator[Path]:
    """A root-owned 0755 directory below /root: every parent is trusted."""
    top = Path(tempfile.mkdtemp(prefix="safefs-", dir="/root"))
    os.chmod(top, 0o755)  # noqa: S103 - a root-owned tree others may read
    yield top
    shutil.rmtree(top)


@pytest.fixture()
def home(root_tree: Path) -> Path:
    h = root_tree / "home"
    h.mkdir(mode=0o750)
    os.chown(h, TENANT, TENANT)
    return h


@pytest.fixture()
def secret(root_tree: Path) -> Path:
    s = root_tree / "shadow"
    s.write_text("root only\n")
    os.chmod(s, 0o600)
    return s


def _as_tenant(*paths: Path) -> None:
    for p in paths:
        os.lchown(p, TENANT, TENANT)


def _journal(home: Path) -> Journal:
    j = Journal(str(home.parent / "j"))
    j.begin()
    return j


def _unchanged(p: Path, mode: int = 0o600) -> None:
    st = p.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, mode)
    assert os.listxattr(p) == []


def test_make_and_fix_dir(home: Path) -> None:
    d = home / "data"
    assert safefs.make_dir(str(d))
    assert not safefs.make_dir(str(d))
    safefs.set_owner_mode(str(d), TENANT, TENANT, 0o2770)
    assert safefs.dir_state(str(d)) == safefs.DirState(TENANT, TENANT, 0o2770)
    assert safefs.dir_state(str(home / "missing")) is None


def test_writable_dir_under_a_default_acl_gets_group_write(home: Path) -> None:
    """A writable dir made inside a docroot inherits the docroot's default ACL
    (group::r-x): chmod 2770 alone only widens the mask, so the pool (the tenant group)
    could not write. dir_state shows the group's real bits; set_owner_mode fixes them."""
    doc = home / "htdocs"
    doc.mkdir(mode=0o750)
    os.chown(doc, TENANT, TENANT)
    with safefs.opened_dir(str(doc)) as fd:
        safefs.grant(fd, ("user:33:r-x", "default:user:33:r-x"))
    cache = doc / "cache"
    assert safefs.make_dir(str(cache))
    os.chmod(cache, 0o2770)  # noqa: S103 - what fchmod alone leaves
    assert safefs.dir_state(str(cache)) == safefs.DirState(0, 0, 0o2750)
    safefs.set_owner_mode(str(cache), TENANT, TENANT, 0o2770)
    assert safefs.dir_state(str(cache)) == safefs.DirState(TENANT, TENANT, 0o2770)
    with safefs.opened_dir(str(cache)) as fd:
        access, default = safefs.acl_blobs(fd)
    assert access and default
    assert (0x04, 7, 0xFFFFFFFF) in safefs.decode_acl(access)       # group::rwx
    assert (0x04, 7, 0xFFFFFFFF) in safefs.decode_acl(default)      # default:group::rwx
    assert (0x02, 5, 33) in safefs.decode_acl(access)               # www-data kept


def test_symlink_as_last_component_is_refused(home: Path, secret: Path) -> None:
    link = home / "data"
    link.symlink_to(secret)
    _as_tenant(link)
    for call in (lambda: safefs.dir_state(str(link)), lambda: safefs.make_dir(str(link)),
                 lambda: safefs.set_owner_mode(str(link), TENANT, TENANT, 0o777)):
        with pytest.raises(safefs.UnsafePath, match="symlink"):
            call()
    _unchanged(secret)


def test_symlink_above_is_refused_in_a_tenant_tree(home: Path, root_tree: Path) -> None:
    target = root_tree / "etc"
    (target / "sub").mkdir(parents=True)
    link = home / "htdocs"
    link.symlink_to(target)
    _as_tenant(link)
    with pytest.raises(safefs.UnsafePath, match=r"another user can write|symlink"):
        safefs.set_owner_mode(str(link / "sub"), TENANT, TENANT, 0o777)
    assert stat.S_IMODE((target / "sub").stat().st_mode) != 0o777


def test_root_owned_symlink_in_trusted_dirs_is_followed(root_tree: Path) -> None:
    real = root_tree / "real"
    (real / "inner").mkdir(parents=True)
    (root_tree / "alias").symlink_to("real")
    assert safefs.dir_state(str(root_tree / "alias" / "inner")) is not None
    safefs.make_dir(str(root_tree / "alias" / "made"))
    assert (real / "made").is_dir()


def test_tenant_owned_symlink_even_in_a_trusted_dir_is_refused(root_tree: Path) -> None:
    (root_tree / "real").mkdir()
    link = root_tree / "alias"
    link.symlink_to("real")
    _as_tenant(link)
    with pytest.raises(safefs.UnsafePath):
        safefs.make_dir(str(link / "x"))


def test_fifo_and_file_where_a_dir_belongs(home: Path) -> None:
    os.mkfifo(home / "fifo")
    (home / "file").write_text("x")
    for name, kind in (("fifo", "FIFO"), ("file", "a file")):
        with pytest.raises(safefs.UnsafePath, match=kind):
            safefs.dir_state(str(home / name))


def test_acl_codec_and_mask() -> None:
    entries = [(0x01, 7, 0xFFFFFFFF), (0x04, 5, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    assert safefs.decode_acl(safefs.encode_acl(entries)) == entries
    merged = safefs.merge_acl(entries, {(0x02, 33): 5})
    assert (0x10, 5, 0xFFFFFFFF) in merged and (0x02, 5, 33) in merged
    with pytest.raises(ValueError):
        safefs.decode_acl(b"\x01\x00")


def _tree(home: Path, secret: Path) -> Path:
    doc = home / "htdocs"
    (doc / "sub").mkdir(parents=True)
    (doc / "index.html").write_text("hi")
    (doc / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(doc / "sub" / "run.sh", 0o750)  # noqa: S103 - an executable file
    (doc / "sub" / "evil").symlink_to(secret)
    for p in (doc, doc / "sub", doc / "index.html", doc / "sub" / "run.sh", doc / "sub" / "evil"):
        os.lchown(p, TENANT, TENANT)
    return doc


def test_recursive_grant_skips_symlinks(home: Path, secret: Path) -> None:
    doc = _tree(home, secret)
    entries = ("user:33:r-x", "default:user:33:r-x")
    identities.set_acl(_journal(home), str(doc), entries, recursive=True)
    with safefs.opened_dir(str(doc / "sub")) as fd:
        assert {"user:www-data:r-x", "default:user:www-data:r-x"} <= safefs.named_entries(fd)
    fd = os.open(doc / "index.html", os.O_RDONLY)
    assert safefs.named_entries(fd) == {"user:www-data:r--"}
    os.close(fd)
    fd = os.open(doc / "sub" / "run.sh", os.O_RDONLY)
    assert safefs.named_entries(fd) == {"user:www-data:r-x"}
    os.close(fd)
    _unchanged(secret)


def test_hard_link_to_a_foreign_file_is_refused(home: Path, secret: Path) -> None:
    doc = _tree(home, secret)
    os.link(secret, doc / "shadow-link")
    with pytest.raises(safefs.UnsafePath, match="hard link"):
        identities.set_acl(_journal(home), str(doc), ("user:33:r-x",), True)
    _unchanged(secret)


def test_journal_undoes_dirs_modes_and_acls(home: Path, secret: Path) -> None:
    doc = _tree(home, secret)
    j = Journal(str(home.parent / "journal"))
    j.begin()
    identities.ensure_dir(j, str(home / "new"), "root", "root", 0o755)
    identities.ensure_dir(j, str(doc), "root", "root", 0o700)
    identities.set_acl(j, str(doc), ("user:33:r-x", "default:user:33:r-x"), True)
    assert os.listxattr(doc / "index.html")
    undone = j.rollback()
    assert [u.split()[0] for u in undone] == ["acl", "dirmode", "dir"]
    assert not (home / "new").exists()
    st = doc.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (TENANT, 0o755)
    assert os.listxattr(doc / "index.html") == [] and os.listxattr(doc) == []


def test_undo_never_follows_a_symlink_swapped_in(home: Path, secret: Path) -> None:
    j = Journal(str(home.parent / "journal"))
    j.begin()
    d = home / "data"
    identities.ensure_dir(j, str(d), "root", "root", 0o755)
    d.rmdir()
    d.symlink_to(secret)
    _as_tenant(d)
    j.rollback()
    assert d.is_symlink()
    _unchanged(secret)


def test_remove_tree_does_not_follow(home: Path, secret: Path, root_tree: Path) -> None:
    keep = root_tree / "keep"
    keep.mkdir()
    (keep / "file").write_text("stay")
    (home / "inner").symlink_to(keep)
    link = root_tree / "homelink"
    link.symlink_to(home)
    with pytest.raises(safefs.UnsafePath):
        safefs.remove_tree(str(link))
    safefs.remove_tree(str(home))
    assert not home.exists() and (keep / "file").read_text() == "stay"
    _unchanged(secret)


def test_read_file_refuses_symlinks_in_tenant_tree(home: Path, secret: Path) -> None:
    key = home / "key.pem"
    key.symlink_to(secret)
    _as_tenant(key)
    with pytest.raises(safefs.UnsafePath):
        safefs.read_file(str(key))
    (home / "real.pem").write_text("PEM")
    assert safefs.read_file(str(home / "real.pem")) == b"PEM"


def test_root_files_only_in_trusted_dirs(home: Path, root_tree: Path) -> None:
    safefs.require_trusted_dir(str(root_tree))
    with pytest.raises(safefs.UnsafePath, match="only root can write"):
        safefs.require_trusted_dir(str(home))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_dir_opener_reads_as_open_dir_does(home: Path, root_tree: Path, secret: Path) -> None:
    """DirOpener keeps walks for the next paths; each answer and each refusal is
    open_dir's: a tenant's symlink below a kept walk is refused, a root-owned one in
    trusted directories followed, and no fd is left open."""
    (home / "htdocs").mkdir()
    (home / "evil").symlink_to(secret.parent)
    _as_tenant(home / "htdocs", home / "evil")
    (root_tree / "real" / "inner").mkdir(parents=True)
    (root_tree / "alias").symlink_to("real")
    paths = [home, home / "htdocs", home / "evil", home / "evil" / "x",
             root_tree / "alias" / "inner", root_tree / "missing", home / "htdocs" / "no"]

    def answer(open_dir: object, path: Path) -> object:
        try:
            fd = open_dir(str(path))        # type: ignore[operator]
        except (safefs.UnsafePath, OSError) as err:
            return type(err).__name__
        try:
            st = os.fstat(fd)
            return (st.st_ino, st.st_uid)
        finally:
            os.close(fd)

    before = _open_fds()
    with safefs.DirOpener() as opener:
        got = [answer(opener.open_dir, p) for p in paths * 2]
    assert got == [answer(safefs.open_dir, p) for p in paths * 2]
    assert got[2] == got[3] == "UnsafePath" and got[5] == "FileNotFoundError"
    assert _open_fds() == before


def test_dir_opener_keeps_only_its_last_walks(root_tree: Path) -> None:
    for i in range(safefs.DirOpener.KEEP * 2):
        (root_tree / f"t{i}" / "htdocs").mkdir(parents=True)
    before = _open_fds()
    opener = safefs.DirOpener()
    for i in range(safefs.DirOpener.KEEP * 2):
        os.close(opener.open_dir(str(root_tree / f"t{i}" / "htdocs")))
    assert _open_fds() - before <= safefs.DirOpener.KEEP
    opener.close()
    assert _open_fds() == before


def test_dir_opener_keeps_no_walk_a_tenant_can_change(home: Path, root_tree: Path,
                                                     secret: Path) -> None:
    """A tenant renames its htdocs away and puts a symlink in its place: the next
    answer is open_dir's refusal, not the directory a kept walk still holds."""
    (home / "htdocs" / "pub").mkdir(parents=True)
    _as_tenant(home / "htdocs", home / "htdocs" / "pub")
    with safefs.DirOpener() as opener:
        os.close(opener.open_dir(str(home / "htdocs" / "pub")))
        (home / "htdocs").rename(home / "htdocs.old")
        (home / "htdocs").symlink_to(secret.parent)
        _as_tenant(home / "htdocs")
        with pytest.raises(safefs.UnsafePath):
            opener.open_dir(str(home / "htdocs" / "pub"))
        deep = "/" + "/".join(["d"] * 2000)          # no recursion per component
        with pytest.raises(FileNotFoundError):
            opener.open_dir(deep)
