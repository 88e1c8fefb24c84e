"""Root-only jail tests: real builds under a scratch directory, chroot, private mount
namespaces, a throwaway php-fpm8.2 master. Nothing here touches apache2, supervisord,
phphost's own FPM masters, /etc/phphost or /var/lib/phphost; every process started is
stopped by its pid."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from phphost.runner import run
from tests.jail.helpers import Account


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="jail tests need root (mknod, chown, chroot, namespaces)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)


@pytest.fixture
def scratch() -> Iterator[str]:
    """A root-owned 0700 directory under /var/lib (its parents are root's and not
    world-writable, as the jail invariants demand; /tmp and /var/tmp are not)."""
    path = tempfile.mkdtemp(prefix="phphost-jailtest-", dir="/var/lib")
    yield path
    if os.path.exists(path):
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            assert path not in fh.read(), "a test left a mount behind"
        shutil.rmtree(path)


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    """A throwaway system user and group (the pool user and the tenant group)."""
    tag = secrets.token_hex(3)
    user, group = f"pjtu{tag}", f"pjtg{tag}"
    run(["groupadd", "--system", group])
    try:
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--gid", group, user])
        try:
            yield Account(user, group, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        finally:
            run(["userdel", user], check=False)
    finally:
        run(["groupdel", group], check=False)




@pytest.fixture(scope="session")
def launcher_binary() -> Iterator[str]:
    """The C launcher (src/phphost/launcher/launch.c) built for these tests, as apply
    builds it (host/launcher.py), in a root-owned directory."""
    from phphost.host.launcher import build_launcher

    d = tempfile.mkdtemp(prefix="phphost-launch-", dir="/var/lib")
    os.chmod(d, 0o755)  # noqa: S103 - a program, not a secret
    path = os.path.join(d, "launch")
    build_launcher(path)
    yield path
    shutil.rmtree(d)
