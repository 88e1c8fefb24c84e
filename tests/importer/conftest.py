"""Root-only tests of `phphost import` against a real mod_php Apache of their own
(tests/importer/modphp_host.py). They never touch the host's apache2, FPM or
supervisord, so they do not take the integration lock; the second apache2 they start
is stopped by its pid and its directory removed."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.importer.modphp_host import ModPhpHost, debs


@pytest.fixture(scope="session")
def modphp() -> Iterator[ModPhpHost]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a second apache2 whose children run as www-data)")
    packages = debs()
    if packages is None:
        pytest.skip("run scripts/setup-demo: it downloads libapache2-mod-php8.2, adminer and "
                    "dokuwiki to /var/cache/phphost/debs")
    base = Path(tempfile.mkdtemp(prefix="phphost-import-", dir="/srv"))
    os.chmod(base, 0o755)  # noqa: S103 - the web user walks to the docroots, as on a real host
    host = ModPhpHost(base)
    try:
        host.build(packages)
        host.start()
        yield host
    finally:
        host.stop()
        shutil.rmtree(base)


HOST_LOCK = "/run/lock/phphost-integration.lock"


@pytest.fixture
def host_lock() -> Iterator[None]:
    """The integration lock, for tests that change the host's apache2, FPM or
    supervisord."""
    os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
    with open(HOST_LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
