"""Integration tests: root only, real apache2 + php-fpm + supervisord on this
machine. They reconfigure the host; only one run at a time."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.integration import hostkit

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.toml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ready = os.geteuid() == 0 and shutil.which("apache2ctl") and Path(hostkit.PHPHOST).exists()
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if not ready:
                item.add_marker(pytest.mark.skip(
                    reason="needs root and scripts/setup-demo (apache2, php-fpm, .venv)"))


HOST_LOCK = "/run/lock/phphost-integration.lock"


@pytest.fixture(scope="session", autouse=True)
def host_lock() -> Iterator[None]:
    """One integration run at a time on this machine (they reconfigure the host)."""
    os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
    with open(HOST_LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def demo(host_lock: None) -> Iterator[Model]:
    """The demo host, applied and filled with its sample content."""
    hostkit.phphost("apply", str(DEMO))
    subprocess.run([hostkit.PYTHON, str(ROOT / "scripts" / "demo_content.py"), str(DEMO),
                    str(ROOT / "examples" / "demo-content")], check=True)
    yield load_spec(str(DEMO))
    hostkit.phphost("apply", str(DEMO))     # leave the demo host as the README says


@pytest.fixture
def demo_text() -> str:
    return DEMO.read_text()


@pytest.fixture
def spec_dir() -> Iterator[Path]:
    """Below /root, not /tmp: TLS files must lie where only root can write."""
    d = Path(tempfile.mkdtemp(prefix="phphost-test-", dir="/root"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
