"""safefs.walk_tree: the descriptor walk root makes over a tenant's tree (the docroot ACL
grant and its plan-time hard-link check). A tenant controls the tree: a FIFO or symlink
where a directory was is never opened, a deep tree is refused rather than crashing, a
vanished entry is skipped, and no descriptor is left open."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from phphost import safefs


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _tree(top: Path) -> None:
    (top / "d" / "e").mkdir(parents=True)
    (top / "a.php").write_text("a")
    (top / "d" / "b.php").write_text("b")
    (top / "d" / "e" / "c.php").write_text("c")
    if not (top / "link").is_symlink():
        os.symlink("/etc", top / "link")
    os.mkfifo(top / "d" / "fifo")


def test_walks_directories_and_files_only(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = _fds()
    seen = [rel for rel, _fd in safefs.walk_tree(str(tmp_path))]
    assert seen == [".", "a.php", "d", "d/b.php", "d/e", "d/e/c.php"]
    assert _fds() == before


def test_a_directory_swapped_for_a_fifo_is_skipped_not_opened(tmp_path: Path) -> None:
    """Listed as a directory, a FIFO by the time the walk gets to it: opening a FIFO
    without O_NONBLOCK would block root until a writer comes (os.fwalk does)."""
    _tree(tmp_path)
    seen = []
    for rel, _fd in safefs.walk_tree(str(tmp_path)):
        seen.append(rel)
        if rel == "a.php":                  # "d" is listed already, not yet opened
            for sub in ("d/e/c.php", "d/b.php"):
                (tmp_path / sub).unlink()
            (tmp_path / "d" / "fifo").unlink()
            (tmp_path / "d" / "e").rmdir()
            (tmp_path / "d").rmdir()
            os.mkfifo(tmp_path / "d")
    assert seen == [".", "a.php"]


def test_an_entry_gone_meanwhile_is_skipped(tmp_path: Path) -> None:
    _tree(tmp_path)
    seen = []
    for rel, _fd in safefs.walk_tree(str(tmp_path)):
        seen.append(rel)
        if rel == "d":
            (tmp_path / "d" / "b.php").unlink()
    assert seen == [".", "a.php", "d", "d/e", "d/e/c.php"]


def test_a_tree_too_deep_is_refused_and_leaks_nothing(tmp_path: Path) -> None:
    deep = tmp_path
    for _ in range(safefs.MAX_TREE_DEPTH + 5):
        deep = deep / "x"
    deep.mkdir(parents=True)
    before = _fds()
    with pytest.raises(safefs.UnsafePath, match="nested more than"):
        for _ in safefs.walk_tree(str(tmp_path)):
            pass
    assert _fds() == before


def test_stopping_part_way_closes_every_descriptor(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = _fds()
    walk = safefs.walk_tree(str(tmp_path))
    for rel, _fd in walk:
        if rel == "d/e":
            break
    walk.close()
    assert _fds() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="root's tree and root's file")
def test_a_hard_link_to_roots_file_is_refused_in_roots_tree(tmp_path: Path) -> None:
    """The tree's owner may own hard-linked files; root never counts as that owner (a
    link to a file of root's elsewhere would get the grant)."""
    outside = tmp_path / "outside"
    outside.write_text("root's\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    os.link(outside, tree / "linked")
    assert os.stat(tree).st_uid == 0
    with pytest.raises(safefs.UnsafePath, match="hard link"):
        for _ in safefs.walk_tree(str(tree)):
            pass


def _swap_for_fifo_link(top: Path) -> Path:
    """Replace directory d by a symlink to a FIFO outside the tree (a tenant's move)."""
    for sub in ("d/e/c.php", "d/b.php", "d/fifo"):
        (top / sub).unlink()
    (top / "d" / "e").rmdir()
    (top / "d").rmdir()
    fifo = top.parent / f"{top.name}-fifo"
    os.mkfifo(fifo)
    os.symlink(fifo, top / "d")
    return fifo


def test_the_same_swap_blocks_os_fwalk(tmp_path: Path) -> None:
    """What the walk defends against, shown on the walk it replaced: os.fwalk(top-down)
    lists d as a directory, the tenant swaps d for a symlink to a FIFO, and fwalk's
    open of d follows it and blocks (until a writer comes: this test is one)."""
    top = tmp_path / "tree"
    top.mkdir()
    _tree(top)
    fifo: list[Path] = []

    def walk() -> None:
        for dirpath, _dirs, _files, _fd in os.fwalk(str(top), follow_symlinks=False):
            if dirpath == str(top):
                fifo.append(_swap_for_fifo_link(top))
    walker = threading.Thread(target=walk, daemon=True)
    walker.start()
    walker.join(1.0)
    assert walker.is_alive(), "os.fwalk did not block on the FIFO"       # BREACHED
    fd = os.open(fifo[0], os.O_WRONLY)      # let it go
    os.close(fd)
    walker.join(5.0)
    assert not walker.is_alive()
    # walk_tree, given the same swap at the same point, neither blocks nor follows it
    (top / "d").unlink()
    fifo[0].unlink()
    (top / "a.php").unlink()
    _tree(top)
    seen = []
    for rel, _fd in safefs.walk_tree(str(top)):
        seen.append(rel)
        if rel == "a.php":
            _swap_for_fifo_link(top)
    assert seen == [".", "a.php"]


def test_fwalk_lists_like_os_fwalk(tmp_path: Path) -> None:
    """safefs.fwalk (audit's and import's walk) yields what os.fwalk yields top-down,
    without following symlinks, and honours pruning."""
    _tree(tmp_path)
    os.symlink("d", tmp_path / "dlink")
    mine = [(p, sorted(d), sorted(f)) for p, d, f, _ in safefs.fwalk(str(tmp_path))]
    theirs = [(p, sorted(d), sorted(f))
              for p, d, f, _ in os.fwalk(str(tmp_path), follow_symlinks=False)]
    assert mine == theirs
    pruned = []
    for path, dirs, _files, _fd in safefs.fwalk(str(tmp_path)):
        pruned.append(path)
        if "e" in dirs:
            dirs.remove("e")
    assert pruned == [str(tmp_path), str(tmp_path / "d")]


def test_fwalk_skips_a_fifo_swapped_in_and_leaks_nothing(tmp_path: Path) -> None:
    top = tmp_path / "tree"
    top.mkdir()
    _tree(top)
    before = _fds()
    seen = []
    for path, _dirs, _files, _fd in safefs.fwalk(str(top)):
        seen.append(path)
        if path == str(top):               # d listed as a directory, not yet opened
            _swap_for_fifo_link(top)
    assert seen == [str(top)]
    deep = tmp_path / "deep"
    for _ in range(safefs.MAX_TREE_DEPTH + 5):
        deep = deep / "x"
    deep.mkdir(parents=True)
    levels = sum(1 for _ in safefs.fwalk(str(tmp_path / "deep")))
    assert levels == safefs.MAX_TREE_DEPTH + 1
    assert _fds() == before


def test_remove_tree_unlinks_what_is_not_a_directory_and_follows_nothing(
        tmp_path: Path) -> None:
    """--purge's removal: a symlink to a directory outside and a FIFO inside are
    unlinked (never followed, never opened), the rest removed, nothing leaked."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    home = tmp_path / "home"
    home.mkdir()
    _tree(home)
    os.symlink(outside, home / "d" / "e" / "out")
    before = _fds()
    safefs.remove_tree(str(home))
    assert not home.exists() and (outside / "keep").read_text() == "keep"
    assert _fds() == before
    safefs.remove_tree(str(home))           # gone already: nothing to do


def test_remove_tree_refuses_a_symlink_at_the_top_and_a_tree_too_deep(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(target, tmp_path / "link")
    with pytest.raises(safefs.UnsafePath, match="symlink"):
        safefs.remove_tree(str(tmp_path / "link"))
    assert target.is_dir()
    deep = tmp_path / "deep"
    for _ in range(safefs.MAX_TREE_DEPTH + 5):
        deep = deep / "x"
    deep.mkdir(parents=True)
    before = _fds()
    with pytest.raises(safefs.UnsafePath, match="nested more than"):
        safefs.remove_tree(str(tmp_path / "deep"))
    assert _fds() == before
