"""diff_jail and jail_listing: pure, over a manifest and scan_jail-shaped facts."""

from __future__ import annotations

from phphost.jail.diff import Change, DiskEntry, diff_jail, jail_listing, object_name
from phphost.jail.features import build_manifest
from phphost.jail.manifest import Manifest
from phphost.jail.mounts import mounts_under, parse_mountinfo
from tests.unit.test_jail_fakes import LIB, TENANT, debian_host, pool


def manifest(features: tuple[str, ...] = ("base",)) -> Manifest:
    return build_manifest(pool(features=features), TENANT, debian_host())


def as_disk(m: Manifest) -> dict[str, DiskEntry]:
    """What scan_jail would report after a successful build of m."""
    out = {}
    for e in m.on_disk().values():
        uid, gid = m.owner_ids(e.owner)
        if e.kind in ("dir", "mount"):
            out[e.path] = DiskEntry("dir", e.mode, uid, gid)
        elif e.kind == "file":
            out[e.path] = DiskEntry("file", e.mode, 0, 0, digest=object_name(e.digest, e.mode))
        elif e.kind == "symlink":
            out[e.path] = DiskEntry("symlink", 0o777, 0, 0, target=str(e.source))
        else:
            out[e.path] = DiskEntry("device", e.mode, 0, 0, rdev=e.device)
    return out


def test_fresh_jail_creates_everything_parents_first() -> None:
    m = manifest()
    changes = diff_jail(m, {})
    assert len(changes) == len(m.on_disk()) == len(m.entries) - 1   # data: in the home mount
    assert {c.action for c in changes} == {"create"}
    assert changes[0].path == "/"
    assert str(next(c for c in changes if c.path == "/dev/null")) == \
        "create device /dev/null (c 1,3) [base]"


def test_built_jail_has_no_changes() -> None:
    m = manifest(("dns", "shell", "sessions"))
    assert diff_jail(m, as_disk(m)) == []


def test_changed_content_mode_owner_and_link() -> None:
    m = manifest(("shell",))
    disk = as_disk(m)
    disk["/etc/nsswitch.conf"] = DiskEntry("file", 0o444, 0, 0, digest="old")
    disk["/tmp"] = DiskEntry("dir", 0o1777, 0, 0)
    disk["/usr/bin/sh"] = DiskEntry("symlink", 0o777, 0, 0, target="bash")
    got = {c.path: c.detail for c in diff_jail(m, disk)}
    assert got == {"/tmp": "mode 1777 -> 0755",
                   "/usr/bin/sh": "target bash -> dash",
                   "/etc/nsswitch.conf": "content"}


def test_removals_are_topmost_and_come_first() -> None:
    m = manifest(("base",))
    disk = as_disk(manifest(("dns", "iconv")))
    changes = diff_jail(m, disk)
    removed = [c.path for c in changes if c.action == "remove"]
    assert f"{LIB}/gconv" in removed
    assert not any(p.startswith(f"{LIB}/gconv/") for p in removed)
    assert "/etc/resolv.conf" in removed
    assert all(c.action == "remove" for c in changes[: len(removed)])
    assert [c for c in changes if c.action != "remove"] == [
        Change("update", "/etc/nsswitch.conf", "file", "base", "content")]


def test_kind_change_replaces_the_subtree() -> None:
    m = manifest()
    disk = as_disk(m)
    disk["/lib"] = DiskEntry("dir", 0o755, 0, 0)                    # was a real dir
    disk["/lib/x86_64-linux-gnu"] = DiskEntry("dir", 0o755, 0, 0)
    changes = diff_jail(m, disk)
    assert changes == [Change("update", "/lib", "symlink", "base", "was a dir")]


def test_listing_names_what_brought_each_thing_in() -> None:
    rows = {r.path: r for r in jail_listing(manifest(("dns", "sessions", "proc")))}
    assert rows["/proc"].detail == "ro proc proc"
    assert rows["/srv/www/ncs"].why == "home" and rows["/srv/www/ncs"].detail == \
        "ro bind /srv/www/ncs"
    assert rows["/srv/www/ncs/data"].detail == "rw bind /srv/www/ncs/data"
    assert rows["/var/lib/php/sessions"].owner == "pool"
    assert rows[f"{LIB}/libresolv.so.2"].why == "dns"
    assert rows["/etc/passwd"].detail == "generated"
    assert "/etc" not in rows                   # plain root directories are left out


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
148 127 254:0 /srv/a\\040b /var/lib/phphost/jails/blog/srv/a\\040b ro,nosuid - ext4 /dev/vda rw
149 127 0:39 / /var/lib/phphost/jails/blog2/proc ro - proc proc ro
"""


def test_mountinfo() -> None:
    assert parse_mountinfo(MOUNTINFO)[1] == "/var/lib/phphost/jails/blog/srv/a b"
    assert mounts_under("/var/lib/phphost/jails/blog", MOUNTINFO) == (
        "/var/lib/phphost/jails/blog/srv/a b",)
    assert mounts_under("/var/lib/phphost/jails/shop", MOUNTINFO) == ()


def test_nested_mount_targets_are_not_built_on_disk() -> None:
    """A writable dir inside the home mount is reached through the home mount: the
    jail directory holds no path for it, so diff stays empty once built."""
    from phphost.jail.features import build_manifest
    from tests.unit.test_jail_fakes import TENANT, debian_host, pool

    m = build_manifest(pool(writable=("/srv/www/ncs/htdocs/uploads",)), TENANT, debian_host())
    assert "/srv/www/ncs/htdocs/uploads" in m.by_path()
    assert "/srv/www/ncs/htdocs/uploads" not in m.on_disk()
    assert "/srv/www/ncs" in m.on_disk()
