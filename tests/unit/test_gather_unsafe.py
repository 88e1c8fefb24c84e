"""plan shows what apply would refuse: hard links to foreign files in a tree the
recursive ACL grant walks, TLS files within a tenant's reach (facts.gather)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phphost.facts.gather import check_hard_links, check_tls

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def test_hard_link_to_a_foreign_file_is_unsafe(tmp_path: Path) -> None:
    top = tmp_path / "docroot"
    (top / "sub").mkdir(parents=True)
    os.chown(top, 4242, 4242)
    foreign = tmp_path / "foreign"
    foreign.write_text("someone else's\n")
    os.chown(foreign, 65534, 65534)
    os.link(foreign, top / "sub" / "evil")
    unsafe: dict[str, str] = {}
    check_hard_links(str(top), unsafe)
    assert unsafe == {f"{top}/sub/evil": "is a hard link to a file another user owns"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
def test_tree_without_foreign_links_is_safe(tmp_path: Path) -> None:
    top = tmp_path / "docroot"
    top.mkdir()
    (top / "a").write_text("x")
    os.link(top / "a", top / "b")           # the tree's own file, linked twice: fine
    for path in (top, top / "a"):           # a tenant's tree (root never counts as its owner)
        os.chown(path, 65534, 65534)
    (top / "l").symlink_to("/etc/shadow")   # symlinks are skipped by the grant
    unsafe: dict[str, str] = {}
    check_hard_links(str(top), unsafe)
    assert unsafe == {}


def test_tls_file_in_a_writable_place_is_unsafe(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    unsafe: dict[str, str] = {}
    check_tls("blog", (str(cert), str(tmp_path / "missing.pem"), None), unsafe)
    assert list(unsafe) == [str(cert)]
    assert "TLS file of site blog" in unsafe[str(cert)]
    assert "/etc/ssl/private" in unsafe[str(cert)]


def test_socket_dir_must_be_root_only(tmp_path: Path) -> None:
    from phphost.facts.gather import check_socket_dir
    unsafe: dict[str, str] = {}
    check_socket_dir("p", "/run/p.sock", unsafe)                 # root 0755: fine
    assert unsafe == {}
    check_socket_dir("p", str(tmp_path / "p.sock"), unsafe)      # below /tmp (1777)
    check_socket_dir("q", "/run/no-such-dir/q.sock", unsafe)
    assert set(unsafe) == {str(tmp_path / "p.sock"), "/run/no-such-dir/q.sock"}
    assert "socket of pool p" in unsafe[str(tmp_path / "p.sock")]
    assert "does not exist" in unsafe["/run/no-such-dir/q.sock"]
