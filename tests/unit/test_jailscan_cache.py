"""facts.jailscan's ScanCache: jails that link the same store objects are scanned to
the same entries as without it (each object stat'ed once per session), symlinks are
read but not stat'ed when asked, and a new session sees a changed object."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from phphost.facts.jailscan import ScanCache, scan_jail, store_index


def _jail(top: Path, name: str, store: Path) -> str:
    root = top / name
    (root / "usr" / "share").mkdir(parents=True)
    os.link(store / "obj-a", root / "usr" / "share" / "a")
    os.link(store / "obj-b", root / "usr" / "b")
    (root / "etc").mkdir()
    (root / "etc" / "own").write_text("not from the store\n")
    os.symlink("../usr/share/a", root / "etc" / "link")
    return str(root)


def test_cached_scans_equal_full_scans(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "obj-a").write_text("a\n")
    (store / "obj-b").write_text("b\n")
    os.chmod(store / "obj-b", 0o444)
    index = store_index(str(store))
    roots = [_jail(tmp_path, f"j{i}", store) for i in range(3)]
    cache = ScanCache(symlink_owners=False)
    for root in roots:
        full = scan_jail(root, index)
        fast = scan_jail(root, index, cache=cache)
        assert full["/usr/share/a"].digest == "obj-a"
        link = full["/etc/link"]
        assert fast["/etc/link"] == replace(link, mode=0o777, uid=-1, gid=-1)
        assert {p: e for p, e in fast.items() if p != "/etc/link"} == \
               {p: e for p, e in full.items() if p != "/etc/link"}
    assert len(cache.files) == 2        # each store object stat'ed once for three jails


def test_a_new_session_sees_a_changed_store_object(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "obj-a").write_text("a\n")
    (store / "obj-b").write_text("b\n")
    index = store_index(str(store))
    root = _jail(tmp_path, "j", store)
    before = scan_jail(root, index, cache=ScanCache())
    os.chmod(store / "obj-a", 0o4700)
    after = scan_jail(root, index, cache=ScanCache())
    assert before["/usr/share/a"].mode != after["/usr/share/a"].mode == 0o4700
