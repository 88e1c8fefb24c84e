"""RealHostView trusts only root's files (jail.programs closures): real files in a
root-owned scratch directory, some handed to a test uid. Needs root (chown)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost.errors import PlanError
from phphost.facts.hostview import RealHostView
from phphost.jail.closure import Closure, UntrustedProgram

TENANT_UID = 64123      # no such user needed: ownership is what counts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory only root controls (/run is root 0755; /tmp is world-writable)."""
    top = Path(tempfile.mkdtemp(prefix="phphost-trust-", dir="/run"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def _script(path: Path, text: str, uid: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    os.chown(path, uid, 0)
    return path


def test_roots_script_is_trusted_and_read(base: Path) -> None:
    tool = _script(base / "bin" / "tool", "#!/bin/sh\necho hi\n")
    host = RealHostView()
    assert host.untrusted(str(tool)) is None
    assert host.head(str(tool)).startswith(b"#!/bin/sh")
    c = Closure(host)
    c.add_program(str(tool))
    assert str(tool) in c.needs and "/usr/bin/dash" in c.needs


def test_tenant_owned_script_is_never_read(base: Path) -> None:
    tool = _script(base / "bin" / "tool", "#!/etc/shadow\n", uid=TENANT_UID)
    host = RealHostView()
    assert f"{tool} is owned by uid {TENANT_UID}" in (host.untrusted(str(tool)) or "")
    with pytest.raises(UntrustedProgram):
        host.head(str(tool))
    with pytest.raises(UntrustedProgram):
        host.ldd(str(tool))
    c = Closure(host)
    with pytest.raises(UntrustedProgram):
        c.add_program(str(tool))
    assert "/etc/shadow" not in c.needs


def test_roots_file_in_a_tenant_directory_is_not_trusted(base: Path) -> None:
    home = base / "home"
    tool = _script(home / "bin" / "tool", "#!/etc/shadow\n")
    os.chown(home, TENANT_UID, TENANT_UID)
    problem = RealHostView().untrusted(str(tool)) or ""
    assert f"{home} is owned by uid {TENANT_UID}" in problem


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777])
def test_group_or_world_writable_directory_is_not_trusted(base: Path, mode: int) -> None:
    tool = _script(base / "bin" / "tool", "#!/bin/sh\n")
    (base / "bin").chmod(mode)
    assert "group/world-writable" in (RealHostView().untrusted(str(tool)) or "")


def test_group_writable_file_is_not_trusted(base: Path) -> None:
    tool = _script(base / "tool", "#!/bin/sh\n")
    tool.chmod(0o775)
    assert "group/world-writable" in (RealHostView().untrusted(str(tool)) or "")


def test_tenants_symlink_to_a_root_file_is_not_followed(base: Path) -> None:
    home = base / "home"
    home.mkdir()
    os.chown(home, TENANT_UID, TENANT_UID)
    link = home / "tool"
    os.symlink("/etc/shadow", link)
    os.chown(link, TENANT_UID, TENANT_UID, follow_symlinks=False)
    host = RealHostView()
    assert host.untrusted(str(link)) is not None
    with pytest.raises(UntrustedProgram):
        host.head(str(link))


def test_roots_symlink_in_a_root_dir_is_followed(base: Path) -> None:
    _script(base / "real" / "tool", "#!/bin/sh\n")
    os.symlink("real/tool", base / "tool")
    host = RealHostView()
    assert host.untrusted(str(base / "tool")) is None
    assert host.head(str(base / "tool")).startswith(b"#!")


def test_roots_symlink_into_a_tenant_dir_is_not_followed_to_its_end(base: Path) -> None:
    home = base / "home"
    _script(home / "tool", "#!/etc/shadow\n")
    os.chown(home, TENANT_UID, TENANT_UID)
    os.symlink(str(home / "tool"), base / "tool")
    assert RealHostView().untrusted(str(base / "tool")) is not None


def test_system_programs_stay_trusted() -> None:
    host = RealHostView()
    for path in ("/bin/sh", "/usr/bin/dash", "/lib64/ld-linux-x86-64.so.2"):
        assert host.untrusted(path) is None, path
    assert "libc.so" in host.ldd("/bin/dash")


def test_missing_program_is_a_plan_error(base: Path) -> None:
    with pytest.raises(PlanError):
        Closure(RealHostView()).add_program(str(base / "nope"))
