"""destroy removes what phphost made and nothing else; --purge alone deletes data."""

from __future__ import annotations

import pwd
import shutil
import subprocess
from pathlib import Path

from phphost import layout
from phphost.facts import cgroups
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, master_pids, phphost

SMALL = """
[tenants.tmpx]
home = "/srv/phphost-test/tmpx"

[pools.tmpx]
tenant = "tmpx"
pm = "static"
max_children = 1

[sites.tmpx]
server_name = "tmpx.demo.test"
tenant = "tmpx"
docroot = "htdocs"
pool = "tmpx"
"""


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_destroy_keeps_data_and_foreign_config(demo: Model) -> None:
    canaries = []
    for tenant in demo.tenants:
        canary = Path(tenant.home) / "canary.txt"
        canary.write_text("tenant data\n")
        canaries.append(canary)
    foreign = Path("/etc/apache2/sites-available/handwritten-test.conf")
    foreign.write_text("# not phphost's\n")
    try:
        phphost("destroy", str(DEMO))
        assert not [n for n in master_pids()]
        assert not list(Path(layout.FPM_CONF_DIR).glob("*.conf"))
        assert not list(Path("/etc/apache2/sites-enabled").glob("phphost-*"))
        assert all(c.read_text() == "tenant data\n" for c in canaries)
        assert foreign.exists() and Path("/etc/apache2/sites-enabled/000-default.conf").exists()
        assert all(not user_exists(p.user) for p in demo.pools)
        assert not cgroups.existing_pools(cgroups.detect()) & {p.name for p in demo.pools}
        assert all(user_exists(t.user) for t in demo.tenants)
        # the network policy (docs/network.md): file and table gone
        assert not Path(layout.NFT_CONF).exists()
        assert subprocess.run([layout.NFT_BINARY, "list", "table", *layout.NFT_TABLE],
                              capture_output=True, check=False).returncode != 0
        # the names now fall through to Debian's default vhost: no PHP runs for them
        assert get(demo.sites[0].server_name, "/index.php")[0] == 404
    finally:
        foreign.unlink()
        phphost("apply", str(DEMO))
        for c in canaries:
            c.unlink()
    assert all(get(s.server_name, "/")[0] == 200 for s in demo.sites)


def test_purge_deletes_tenant_data(demo: Model, spec_dir: Path) -> None:
    spec = hostkit.write_spec(spec_dir, "small.toml", SMALL)
    try:
        phphost("apply", spec)
        home = Path("/srv/phphost-test/tmpx")
        (home / "htdocs" / "data.txt").write_text("x")
        phphost("destroy", spec)
        assert (home / "htdocs" / "data.txt").exists(), "destroy without --purge deleted data"
        phphost("destroy", "--purge", spec)
        assert not home.exists()
        assert not user_exists("tmpx") and not user_exists("php-tmpx")
    finally:
        phphost("apply", str(DEMO))
        shutil.rmtree("/srv/phphost-test", ignore_errors=True)   # made by this test
