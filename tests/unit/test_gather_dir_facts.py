"""The plan's child reads the homes' and docroots' owners, modes and ACLs
(facts.gather DirFacts); gather takes them only when they cover every directory it
wants, and keeps only the unsafe paths it wants."""

from __future__ import annotations

import os
from pathlib import Path

from phphost.facts.gather import DirFact, DirFacts, Wanted, _dirs_and_acls, read_dir_facts


def test_covering_facts_stand_for_gathers_own_read(tmp_path: Path) -> None:
    home, docroot = tmp_path / "home", tmp_path / "home" / "htdocs"
    docroot.mkdir(parents=True)
    pre = read_dir_facts([str(home), str(docroot), "/nonexistent-phphost"], [str(docroot)])
    stale = DirFacts({**pre.dirs, str(home): DirFact("x", "y", 0o7)}, pre.acls,
                     {str(docroot): "planted", "/elsewhere": "not wanted"},
                     pre.read, pre.acl_read)
    wanted = Wanted(dirs=(str(home),), acls=((str(docroot), True),))
    unsafe: dict[str, str] = {}
    dirs, acls = _dirs_and_acls(wanted, stale, unsafe)
    assert dirs == {str(home): DirFact("x", "y", 0o7)}       # taken as read, not read again
    assert set(acls) == {str(docroot)}
    assert unsafe == {str(docroot): "planted"}               # only what gather wants


def test_facts_that_miss_a_wanted_directory_are_read_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o700)
    pre = DirFacts({}, {}, {"/x": "planted"}, frozenset(), frozenset())
    unsafe: dict[str, str] = {}
    dirs, _acls = _dirs_and_acls(Wanted(dirs=(str(home),)), pre, unsafe)
    fact = dirs[str(home)]
    assert fact is not None and fact.mode & 0o7777 == 0o700
    assert unsafe == {}
    # read for its owner and mode but not its ACL: an ACL wanted means a read here
    only_dir = read_dir_facts([str(home)], [])
    _dirs, acls = _dirs_and_acls(Wanted(acls=((str(home), False),)), only_dir, unsafe)
    assert str(home) in acls
