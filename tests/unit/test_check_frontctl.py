"""check's front controller warning: the script must be a file in the docroot."""

from __future__ import annotations

from pathlib import Path

from phphost.check.frontctl import front_controller_warnings
from phphost.spec.model import Model, Site, Tenant


def _model(docroot: Path, front: str | None) -> Model:
    site = Site("app", "app.example", tenant="t", docroot=str(docroot), pool="p",
                front_controller=front)
    return Model("spec.toml", (Tenant("t", "t", "t", str(docroot.parent)),), (), (site,))


def test_missing_front_controller_is_a_warning(tmp_path: Path) -> None:
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    [line] = front_controller_warnings(_model(docroot, "/index.php"))
    assert line.startswith("site app: front_controller /index.php:") and "does not exist" in line
    (docroot / "index.php").write_text("<?php")
    assert front_controller_warnings(_model(docroot, "/index.php")) == []
    assert front_controller_warnings(_model(docroot, None)) == []


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    (tmp_path / "elsewhere.php").write_text("<?php")
    (docroot / "index.php").symlink_to(tmp_path / "elsewhere.php")
    [line] = front_controller_warnings(_model(docroot, "/index.php"))
    assert "not a regular file" in line


def test_only_the_pools_checked(tmp_path: Path) -> None:
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    assert front_controller_warnings(_model(docroot, "/index.php"), ("other",)) == []
