"""apply tests Apache's config on a staged view of /etc/apache2 before it writes a
live file, and tests the live tree once more after its writes only when the staged
test read live files the plan changes (host/staging.py read_as_staged, host/opened.py).
Here with the real apache2ctl, on this host's own tree."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout
from phphost.host import staging
from phphost.plan import actions as A
from phphost.spec.model import Model

VHOST = "<VirtualHost *:80>\n    ServerName staged-test.invalid\n</VirtualHost>\n"
RELATIVE = "\nIncludeOptional sites-enabled/*.conf\n"


def _new_site() -> list[A.Action]:
    name = "phphost-staged-test.conf"
    return [A.WriteFile("test", f"{layout.APACHE_DIR}/sites-available/{name}", VHOST),
            A.Symlink("test", f"{layout.APACHE_DIR}/sites-enabled/{name}",
                      f"../sites-available/{name}")]


@pytest.fixture()
def apache_conf(demo: Model) -> Iterator[Path]:
    conf = Path(layout.APACHE_DIR) / "apache2.conf"
    original = conf.read_text()
    assert RELATIVE in original
    yield conf
    conf.write_text(original)


def test_debians_tree_is_read_as_staged(apache_conf: Path) -> None:
    """Debian's apache2.conf includes everything relative to ServerRoot: the staged
    test reads the staged tree, and the live test after the writes is not needed."""
    assert staging.validate_apache(_new_site())


def test_sites_included_by_absolute_path_need_the_live_test(apache_conf: Path) -> None:
    """The staged test globs the live sites-enabled (without the new site)."""
    original = apache_conf.read_text()
    apache_conf.write_text(original.replace(
        RELATIVE, f"\nIncludeOptional {layout.APACHE_DIR}/sites-enabled/*.conf\n"))
    assert not staging.validate_apache(_new_site())


def test_an_absolute_link_to_a_changed_file_needs_the_live_test(apache_conf: Path) -> None:
    """conf-enabled/zz.conf -> /etc/apache2/conf-available/phphost.conf: through it
    the staged test reads the live file as it is before the plan writes it."""
    link = Path(layout.APACHE_DIR) / "conf-enabled" / "zz-phphost-staged-test.conf"
    os.symlink(layout.APACHE_GLOBAL_CONF, link)
    try:
        content = Path(layout.APACHE_GLOBAL_CONF).read_text()
        write = [A.WriteFile("test", layout.APACHE_GLOBAL_CONF, content + "# changed\n")]
        assert not staging.validate_apache(write)
    finally:
        link.unlink()
    assert staging.validate_apache(write)


def test_a_module_change_needs_the_live_test(apache_conf: Path) -> None:
    """a2enmod and a2dismod are not what staging does (a2dismod leaves a .load that
    is a file, not a link, and exits 0)."""
    assert not staging.validate_apache([*_new_site(), A.ApacheModule("test", "info", True)])
