"""scripts/bench_noisy_neighbour.py places files as root in a tenant's docroot: a
tenant that swaps the docroot (or the file name) for a symlink must not get root to
write or chown anything outside it. The old path-based code is kept here to show
the attack works (BREACHED) where the safefs one refuses it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from phphost import safefs

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_noisy_neighbour_t", ROOT / "scripts" / "bench_noisy_neighbour.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def old_placed(t: object, content: str) -> Iterator[None]:
    """What the script did before: last component no-follow, then chown by path."""
    path = t.file  # type: ignore[attr-defined]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.chown(path, 65534, 65534)
    yield


def _swapped(tmp_path: Path) -> tuple[Path, Path]:
    """A docroot that is a symlink to a root-only dir holding a 'secret'."""
    secret_dir = tmp_path / "rootonly"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "script.php"
    secret.write_text("root only\n")
    os.chmod(secret, 0o600)
    (tmp_path / "docroot").symlink_to(secret_dir)
    return tmp_path / "docroot", secret


def _target(b: ModuleType, docroot: Path) -> object:
    return b.Target("s", "s.test", "/script.php", f"{docroot}/script.php", "nobody", "nogroup")


def test_old_code_is_breached_by_a_swapped_docroot(tmp_path: Path) -> None:
    b = bench()
    docroot, secret = _swapped(tmp_path)
    with old_placed(_target(b, docroot), "<?php"):
        pass
    assert secret.stat().st_uid == 65534          # root chowned the file behind the link


def test_placed_refuses_a_swapped_docroot(tmp_path: Path) -> None:
    b = bench()
    docroot, secret = _swapped(tmp_path)
    with pytest.raises(safefs.UnsafePath, match="docroot"), b.placed(_target(b, docroot),
                                                                      "<?php"):
        pass
    assert secret.stat().st_uid == 0 and secret.read_text() == "root only\n"


def test_placed_replaces_a_link_at_the_file_name(tmp_path: Path) -> None:
    b = bench()
    docroot = tmp_path / "real"
    docroot.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    (docroot / "script.php").symlink_to(secret)
    with b.placed(_target(b, docroot), "<?php"):
        placed = docroot / "script.php"
        assert not placed.is_symlink() and placed.stat().st_uid == 65534
    assert not (docroot / "script.php").exists()
    assert secret.stat().st_uid == 0 and secret.read_text() == "root only\n"
