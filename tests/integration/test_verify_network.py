"""The network family (docs/network.md): on the demo host every pool's direct
connections to an undeclared loopback port and to the SMTP ports are refused, and a
pool listening on a port never answers a connection verify opens; on the
same host with phphost's nftables table deleted they get through (BREACHED), plan
notices the missing (or flushed) table, and apply loads it again."""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path

from phphost import layout
from phphost.facts.gather import fpm_master_pid
from phphost.host import nftables, services
from phphost.host.journal import Journal
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.test_verify import DEMO, breached, verdicts, verify
from tests.integration.test_verify_weakened import BREACHED, restart_master, weakened

ATTACKS = ("network.loopback-port", "network.smtp-direct", "network.serve")


def nft(*args: str) -> str:
    return subprocess.run([layout.NFT_BINARY, *args], check=True, capture_output=True,
                          text=True, timeout=30).stdout


def pha025() -> set[str]:
    proc = hostkit.phphost("audit", str(DEMO), "--json", check=False)
    return {f["where"] for f in json.loads(proc.stdout)["findings"] if f["rule"] == "PHA025"}


def test_network_blocked_on_the_demo_host(demo: Model) -> None:
    assert hostkit.phphost("plan", str(DEMO), check=False).returncode == 0   # apply twice
    assert pha025() == set()
    listing = nft("list", "table", *layout.NFT_TABLE)
    for pool in demo.pools:
        assert f"jump pool-{pool.name}" in listing
    status, data = verify("network.*")
    print(json.dumps([(c["attack"], c["attacker"], c["evidence"]) for c in data["cells"]],
                     indent=1))
    assert status == 0
    for attack in ATTACKS:
        for pool in demo.pools:
            assert verdicts(data, attack, f"pool:{pool.name}") == {"blocked"}


def test_plan_notices_a_flushed_table(demo: Model) -> None:
    with weakened(demo):
        nft("flush", "table", *layout.NFT_TABLE)
        assert pha025() == {f"pools.{p.name}" for p in demo.pools}
        proc = hostkit.phphost("plan", str(DEMO), check=False)
        assert proc.returncode != 0
        assert "live table inet phphost differs from what phphost loaded" in proc.stdout


def test_network_breached_without_the_table(demo: Model) -> None:
    with weakened(demo):
        nft("delete", "table", *layout.NFT_TABLE)
        proc = hostkit.phphost("plan", str(DEMO), check=False)
        assert "table inet phphost is not loaded" in proc.stdout
        assert pha025() == {"inet phphost"}
        status, data = verify("network.*")
    assert status == BREACHED
    every = {(f"pool:{p.name}", None) for p in demo.pools}
    for attack in ATTACKS:
        assert breached(data, attack) == every, attack
    # weakened() re-applied the demo: the table is back and plan is clean
    assert "jump pool-blog" in nft("list", "table", *layout.NFT_TABLE)


def test_a_master_never_starts_without_its_policy(demo: Model) -> None:
    """As after a reboot: no table in the kernel; the launcher of the first master to
    start loads /etc/phphost/nftables.conf."""
    with weakened(demo):
        nft("delete", "table", *layout.NFT_TABLE)
        restart_master(demo, "blog")
        listing = nft("list", "table", *layout.NFT_TABLE)
        assert all(f"jump pool-{p.name}" in listing for p in demo.pools)
        assert hostkit.phphost("plan", str(DEMO), check=False).returncode == 0


def test_rollback_restores_the_loaded_policy(demo: Model, tmp_path: Path) -> None:
    """The journal's undo with the real nft: a policy loaded during an apply that then
    fails is replaced by the previous file, and the recorded digest matches again."""
    before = nft("list", "table", *layout.NFT_TABLE)
    old = Path(layout.NFT_CONF).read_text()
    journal = Journal(str(tmp_path / "journal"))
    journal.begin()
    journal.record_path(layout.NFT_LOADED)
    journal.record({"k": "nft", "name": "inet phphost", "old": old})
    nftables.load_text(old.replace("jump pool-blog", "accept"))    # blog unrestricted
    assert "jump pool-blog" not in nft("list", "table", *layout.NFT_TABLE)
    journal.rollback()
    assert nft("list", "table", *layout.NFT_TABLE) == before
    assert hostkit.phphost("plan", str(DEMO), check=False).returncode == 0


def test_a_ruleset_change_while_asleep_is_checked_at_the_next_wake(demo: Model) -> None:
    """A launcher skips its policy check while the kernel's ruleset generation is the
    one in which it last found its element (launch.c). Deleting the element makes a
    new generation: the next wake checks, finds it missing and loads the policy again
    before the master starts (a launcher that trusted its old answer would start it
    with the pool's packets going to no chain of its own)."""
    pool = next(p for p in demo.pools if p.settings.activated)
    element = f"{pwd.getpwnam(pool.user).pw_uid} : jump pool-{pool.name}"
    name = hostkit.program(pool.name)
    with weakened(demo):
        services.wake_masters([(pool.name, pool.socket)])     # found: generation kept
        launcher = hostkit.master_pids()[name]
        assert launcher is not None
        hostkit.wait_for(lambda: fpm_master_pid(launcher) is None, timeout=5, interval=0.1)
        nft("delete", "element", *layout.NFT_TABLE, "pools",
            f"{{ {pwd.getpwnam(pool.user).pw_uid} }}")
        assert element not in nft("list", "map", *layout.NFT_TABLE, "pools")
        services.wake_masters([(pool.name, pool.socket)])
        assert element in nft("list", "map", *layout.NFT_TABLE, "pools")
        assert hostkit.master_pids()[name] == launcher      # the same launcher loaded it
