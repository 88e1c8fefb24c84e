"""Jails on the live host: chrooted pools serve their sites; rebuilding and removing
jails while masters run never touches tenant data; invariant violations are refused
with nothing changed."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout
from phphost.host.jailbuild import remove_jail
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, phphost

SHARED = Path("/srv/phphost-shared-test")      # a host dir bound into a jail


def jailed(text: str, model: Model, features: str = '["dns", "tls", "sessions", "iconv"]',
           extra: dict[str, str] | None = None) -> str:
    """Every pool jailed with these features (plus mysql where the demo needs it)."""
    for pool in model.pools:
        own = features[:-1] + ', "mysql"]' if "mysql" in pool.jail.features else features
        jail = f"{{ enabled = true, features = {own}{(extra or {}).get(pool.name, '')} }}"
        text = hostkit.set_pool_key(text, f"pools.{pool.name}", "jail", jail)
    return text


@pytest.fixture
def shared() -> Iterator[Path]:
    SHARED.mkdir(mode=0o755, exist_ok=True)
    (SHARED / "canary.txt").write_text("shared canary\n")
    yield SHARED
    shutil.rmtree(SHARED)


@pytest.fixture
def restore_demo() -> Iterator[None]:
    yield
    phphost("apply", str(DEMO))


def canaries(model: Model, shared: Path) -> dict[Path, str]:
    paths = [Path(s.docroot) / "canary.txt" for s in model.sites if s.docroot]
    paths += [Path(w) / "canary.txt" for p in model.pools for w in p.writable]
    marks = {}
    for path in paths:
        path.write_text(f"canary {path}\n")
        marks[path] = f"canary {path}\n"
    marks[shared / "canary.txt"] = "shared canary\n"
    return marks


def intact(marks: dict[Path, str]) -> bool:
    return all(p.exists() and p.read_text() == text for p, text in marks.items())


def test_jailed_demo_serves_and_rebuilds_leave_data_alone(
        demo: Model, demo_text: str, spec_dir: Path, shared: Path, restore_demo: None) -> None:
    mount = f', mounts = [{{ source = "{shared}", target = "/opt/shared" }}]'
    extra = {p.name: mount for p in demo.pools}
    spec = hostkit.write_spec(spec_dir, "jailed.toml", jailed(demo_text, demo, extra=extra))
    phphost("apply", spec)
    marks = canaries(demo, shared)
    try:
        for site in demo.sites:
            assert get(site.server_name, "/")[0] == 200, site.name
        # 1. a rebuild: another feature changes every jail in place, masters running
        more = jailed(demo_text, demo, '["dns", "tls", "sessions", "iconv", "locale"]', extra)
        out = phphost("apply", hostkit.write_spec(spec_dir, "more.toml", more))
        assert "build jail" in out.stdout
        assert intact(marks)
        # 2. remove every jail directory from the host while its master runs (its
        #    mounts of the tenant home, data dirs and the shared dir are live inside)
        for pool in demo.pools:
            remove_jail(layout.jail_root(pool.name))
        assert intact(marks), "removing a live jail reached into mounted data"
        # 3. jails off: apply removes them
        off = demo_text
        for pool in demo.pools:
            off = hostkit.set_pool_key(off, f"pools.{pool.name}", "jail", "{ enabled = false }")
        phphost("apply", hostkit.write_spec(spec_dir, "off.toml", off))
        assert not any(os.path.exists(layout.jail_root(p.name)) for p in demo.pools)
        assert intact(marks)
    finally:
        for path in marks:
            if path.parent != shared:
                path.unlink(missing_ok=True)


def refused(spec: str, words: str) -> None:
    before = hostkit.snapshot()
    proc = phphost("apply", spec, check=False)
    assert proc.returncode in (2, 4), proc.stdout + proc.stderr
    assert words in proc.stderr, proc.stderr
    assert hostkit.snapshot() == before


def test_tampered_jails_are_refused(demo: Model, demo_text: str, spec_dir: Path,
                                    restore_demo: None) -> None:
    pool = demo.pools[0]
    spec = hostkit.write_spec(spec_dir, "one.toml", hostkit.set_pool_key(
        demo_text, f"pools.{pool.name}", "jail", '{ enabled = true, features = ["dns"] }'))
    phphost("apply", spec)
    root = Path(layout.jail_root(pool.name))
    setuid = root / "etc" / "evil"
    setuid.write_text("x")
    os.chmod(setuid, 0o4755)  # noqa: S103 (the planted fault under test)
    refused(spec, "setuid")
    setuid.unlink()
    device = root / "dev" / "sda"
    os.mknod(device, 0o600 | stat.S_IFBLK, os.makedev(8, 0))
    refused(spec, "unexpected block device")
    device.unlink()
    os.chmod(root.parent, 0o775)  # noqa: S103 (the planted fault under test)
    try:
        refused(spec, "group/world-writable")
    finally:
        os.chmod(root.parent, 0o755)  # noqa: S103 (restores the default)
    assert phphost("plan", spec, check=False).returncode == 0


def test_specs_reaching_into_others_are_refused(demo: Model, demo_text: str,
                                                spec_dir: Path) -> None:
    mine, other = demo.pools[0], next(p for p in demo.pools if p.tenant != demo.pools[0].tenant)
    other_home = demo.tenant(other.tenant).home
    cases = {
        "home": (f'{{ enabled = true, mounts = [{{ source = "{other_home}", '
                 f'target = "/opt/x" }}] }}', "home"),
        "jail": (f'{{ enabled = true, mounts = [{{ source = "{layout.jail_root(other.name)}", '
                 f'target = "/opt/x" }}] }}', "jail"),
        "program": (f'{{ enabled = true, programs = ["{other_home}/bin/tool"] }}', other_home),
    }
    tool = Path(other_home) / "bin" / "tool"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    try:
        for name, (jail, words) in cases.items():
            spec = hostkit.write_spec(spec_dir, f"{name}.toml", hostkit.set_pool_key(
                demo_text, f"pools.{mine.name}", "jail", jail))
            refused(spec, words)
    finally:
        shutil.rmtree(tool.parent)
