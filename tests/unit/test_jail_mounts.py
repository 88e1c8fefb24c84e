"""The launcher's mount file and command line: pure parts."""

from __future__ import annotations

import json

import pytest

from phphost.jail.features import build_manifest
from phphost.jail.mounts import (
    MountSpec,
    mounts_file,
    parse_mount_arg,
    parse_mounts_json,
    render_mounts_json,
)
from phphost.launcher.launch import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REMOUNT,
    LaunchError,
    launcher_argv,
    parse_args,
    remount_flags,
    tmpfs_options,
)
from tests.unit.test_jail_fakes import TENANT, debian_host, pool

FPM = ["/usr/sbin/php-fpm8.2", "--nodaemonize", "--fpm-config", "/etc/phphost/fpm/blog.conf"]


def test_render_and_parse_round_trip() -> None:
    m = build_manifest(pool(features=("proc",)), TENANT, debian_host())
    text = render_mounts_json(m)
    assert json.loads(text)["mounts"][0] == {"type": "proc", "source": "proc",
                                             "target": "/proc", "writable": False}
    owner, mounts = parse_mounts_json(text)
    assert owner == "blog"
    assert json.loads(text)["mounts"][1] == {"type": "tmpfs", "source": "tmpfs",
                                             "target": "/tmp", "writable": True,
                                             "size": 64 * 1024 * 1024}
    assert mounts == (MountSpec("proc", "/proc", False, "proc"),
                      MountSpec("tmpfs", "/tmp", True, "tmpfs", 64 * 1024 * 1024),
                      MountSpec("/srv/www/ncs", "/srv/www/ncs"),
                      MountSpec("/srv/www/ncs/data", "/srv/www/ncs/data", True))
    assert mounts_file("blog") == "/etc/phphost/fpm/blog.mounts.json"


@pytest.mark.parametrize(("text", "error"), [
    ("nope", "not JSON"),
    ('{"pool": "blog"}', "mounts"),
    ('{"pool": "b", "mounts": [{"source": "x", "target": "/y"}]}', "must be absolute"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/y/../../etc"}]}', "without '..'"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/"}]}', "jail root"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/y", "writable": "yes"}]}',
     "writable true or false"),
    ('{"pool": "b", "mounts": [{"source": "/x", "target": "/y"}, '
     '{"source": "/z", "target": "/y/"}]}', "two mounts have the target /y"),
])
def test_bad_mount_files(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_mounts_json(text)


def test_mount_arg() -> None:
    assert parse_mount_arg("/srv/a:/srv/a:rw") == MountSpec("/srv/a", "/srv/a", True)
    assert parse_mount_arg("proc:/proc:ro") == MountSpec("proc", "/proc", False, "proc")
    with pytest.raises(ValueError, match="SRC:DST:ro"):
        parse_mount_arg("/a:/b")


def test_launcher_argv_and_parse_agree() -> None:
    argv = launcher_argv("/opt/phphost/bin/python", "blog", "/var/lib/phphost/jails/blog",
                         "/etc/phphost/fpm/blog.mounts.json", FPM)
    assert argv[:3] == ["/opt/phphost/bin/python", "-m", "phphost.launcher.launch"]
    files = {"/etc/phphost/fpm/blog.mounts.json":
             '{"pool": "blog", "mounts": [{"source": "/srv/www/ncs", "target": "/srv/www/ncs"}]}'}
    plan = parse_args(argv[3:], read=files.__getitem__)
    assert plan.pool == "blog" and plan.jail == "/var/lib/phphost/jails/blog"
    assert plan.command == tuple(FPM)
    assert plan.mounts == (MountSpec("/srv/www/ncs", "/srv/www/ncs"),)


def test_parse_args_mixes_cli_mounts_and_orders_parents_first() -> None:
    plan = parse_args(["--pool", "p", "--jail", "/j", "--mount", "/a/b:/x/y:rw",
                       "--mount", "/a:/x:ro", "--", "/bin/sleep", "9"])
    assert [m.target for m in plan.mounts] == ["/x", "/x/y"]


@pytest.mark.parametrize(("argv", "error"), [
    (["--pool", "p", "--jail", "/j"], "usage"),
    (["--pool", "p", "--", "/bin/true"], "--jail"),
    (["--pool", "p", "--jail", "j", "--", "/bin/true"], "absolute"),
    (["--pool", "p", "--jail", "/j", "--bogus", "x", "--", "/bin/true"], "unknown option"),
    (["--pool", "p", "--jail", "/j", "--mounts", "/f", "--", "/bin/true"], "pool 'q'"),
])
def test_parse_args_errors(argv: list[str], error: str) -> None:
    files = {"/f": '{"pool": "q", "mounts": []}'}
    with pytest.raises(LaunchError, match=error):
        parse_args(argv, read=files.__getitem__)


def test_remount_flags() -> None:
    base = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV
    assert remount_flags(MountSpec("/a", "/a")) == base | MS_RDONLY
    assert remount_flags(MountSpec("/a", "/a", writable=True)) == base | MS_NOEXEC


def test_pid_ns_flag() -> None:
    argv = launcher_argv("/usr/bin/python3", "p", "/j", "/f", ["/bin/true"], pid_ns=True)
    assert "--pid-ns" in argv
    files = {"/f": '{"pool": "p", "mounts": []}'}
    assert parse_args(argv[3:], read=files.__getitem__).pid_ns is True
    assert parse_args(["--pool", "p", "--jail", "/j", "--", "/bin/true"]).pid_ns is False


def test_launcher_is_standalone() -> None:
    """It may be installed as a single file: standard library imports only."""
    import ast

    from phphost.launcher import launch

    with open(launch.__file__, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("phphost") for m in modules), modules


def test_tmpfs_mounts() -> None:
    item = {"type": "tmpfs", "source": "tmpfs", "target": "/tmp", "writable": True,
            "size": 1 << 20}
    _, mounts = parse_mounts_json(json.dumps({"pool": "blog", "mounts": [item]}))
    assert mounts == (MountSpec("tmpfs", "/tmp", True, "tmpfs", 1 << 20),)
    assert tmpfs_options(mounts[0]) == "size=1048576,nr_inodes=1024,mode=1777"
    for bad in (0, -1, "1M", True, None):
        with pytest.raises(ValueError, match="size"):
            parse_mounts_json(json.dumps({"pool": "b", "mounts": [{**item, "size": bad}]}))
